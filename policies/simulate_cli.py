"""`vgpu simulate`."""

import click


@click.command()
def simulate() -> None:
    """Not implemented yet."""
    raise click.ClickException("vgpu simulate is not implemented yet")
