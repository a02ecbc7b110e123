"""The `runrelay` command line (typer + rich): see `runrelay --help`."""

from runrelay_cli.app import app

__all__ = ["app"]
