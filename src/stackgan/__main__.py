"""``python -m stackgan`` is the ``stackgan`` command."""

from stackgan.cli import main

main()
