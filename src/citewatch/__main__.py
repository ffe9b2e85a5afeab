"""`python -m citewatch` runs the CLI."""

from citewatch.cli import main

if __name__ == "__main__":
    main()
