"""Research probes: scripts that measure models and data (what D attends to, what the negatives
differ in, whether the metrics behave) rather than speed. Run them as modules from the
repository root, e.g. `python -m research.d_text_attention CKPT`. Timing lives in benchmarks/."""
