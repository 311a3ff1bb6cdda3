"""The Typer command line; nothing imports it."""
