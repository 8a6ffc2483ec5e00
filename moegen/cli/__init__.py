"""The moegen command line: one module per command."""

from moegen.cli.main import main

__all__ = ["main"]
