"""`python -m citewatch` runs the CLI."""

from citewatch.cli import main

main()
