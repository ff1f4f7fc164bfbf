"""`vgpu daemon`."""

import click


@click.command()
def daemon() -> None:
    """Not implemented yet."""
    raise click.ClickException("vgpu daemon is not implemented yet")
