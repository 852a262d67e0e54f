"""`python -m quote_cli` == `quote`."""

from quote_cli.main import app

app()
