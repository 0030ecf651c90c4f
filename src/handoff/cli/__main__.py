"""``python -m handoff.cli``."""

from handoff.cli import main

main()
