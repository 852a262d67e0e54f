"""Entry point of the `quote` command line (typer)."""

import typer

app = typer.Typer(help="Quote: token-level runtime interventions in LLM generation.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Quote command line."""
