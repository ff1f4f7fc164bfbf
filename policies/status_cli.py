"""`vgpu status`."""

import click


@click.command()
def status() -> None:
    """Not implemented yet."""
    raise click.ClickException("vgpu status is not implemented yet")
