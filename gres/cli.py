"""`vgpu gres` subcommands."""

import click


@click.group()
def gres() -> None:
    """Generate and check gres.conf/slurm.conf fragments and the node inventory."""
