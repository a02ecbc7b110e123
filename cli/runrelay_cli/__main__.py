"""`python -m runrelay_cli` = `runrelay`."""

from runrelay_cli.app import app

app(prog_name="runrelay")
