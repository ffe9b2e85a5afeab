"""citewatch: archival link and citation checker."""

__version__ = "0.1.0"
