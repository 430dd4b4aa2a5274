"""Rebuild full exports from what ``scripts/gpu_birds_stage1.sh`` brings back: join each
generator's parts and write ``NAME.safetensors`` with the text encoder embedded (the encoder
stayed on this machine; only the generator travels back).

    python scripts/gpu_collect.py --from OUT_FOLDER --encoder .gpu/birds-text-b16k.safetensors \
        --to runs/gpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open

from stackgan.checkpoint import config_from_spec, export_generator
from stackgan.text.trainable import TrainedTextEncoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", required=True, type=Path)
    ap.add_argument("--encoder", required=True, type=Path)
    ap.add_argument("--to", type=Path, default=Path("runs/gpu"))
    args = ap.parse_args()
    args.to.mkdir(parents=True, exist_ok=True)
    encoder = TrainedTextEncoder(args.encoder)
    names = sorted({p.name.split(".g.safetensors")[0] for p in args.src.glob("*.g.safetensors*")})
    for name in names:
        joined = args.to / f"{name}.g.safetensors"
        parts = sorted(args.src.glob(f"{name}.g.safetensors.part-*"))
        joined.write_bytes(b"".join(p.read_bytes() for p in parts))
        with safe_open(str(joined), "pt") as f:
            meta = f.metadata()
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        cfg = config_from_spec(json.loads(meta["model_spec"]), joined)
        out = args.to / f"{name}.safetensors"
        export_generator(
            out,
            state,
            cfg,
            half=True,
            text_encoder=encoder,
            training_config=meta.get("training_config") or None,
        )
        joined.unlink()
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
