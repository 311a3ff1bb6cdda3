"""`python -m kpmobile` runs the CLI."""

from kpmobile.cli.app import main

main()
