"""`vgpu report`."""

import click


@click.command()
def report() -> None:
    """Not implemented yet."""
    raise click.ClickException("vgpu report is not implemented yet")
