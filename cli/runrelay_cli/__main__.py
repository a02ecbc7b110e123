"""`python -m local.cli` = `runrelay`."""

from local.cli.app import app

app(prog_name="runrelay")
