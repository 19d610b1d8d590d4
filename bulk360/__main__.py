"""``python -m bulk360`` runs the command-line interface."""

from bulk360.cli import main

main()
