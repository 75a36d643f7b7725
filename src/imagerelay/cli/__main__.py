"""`python -m imagerelay.cli`: the console entry point."""

from .plumbing import main

main()
