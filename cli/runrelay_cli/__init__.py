"""The `runrelay` command line (typer + rich): see `runrelay --help`."""

from local.cli.app import app

__all__ = ["app"]
