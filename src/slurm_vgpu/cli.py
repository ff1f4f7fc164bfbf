"""The `vgpu` command. Each subcommand lives with the code it drives and is imported lazily,
so `vgpu --help` stays fast and a broken optional part cannot break the others."""

from __future__ import annotations

import importlib
import os
import sys

import click

from slurm_vgpu._version import __version__
from slurm_vgpu.errors import VgpuError

# name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "gres": ("slurm_vgpu.gres.cli:gres", "Generate and check Slurm GRES config."),
    "daemon": ("slurm_vgpu.policies.service.daemon_cli:daemon", "Run the per-node policy daemon."),
    "agent": ("slurm_vgpu.policies.service.daemon_cli:agent",
              "Run the node agent (with `vgpu controller`; no Slurm reads)."),
    "controller": ("slurm_vgpu.policies.service.daemon_cli:controller",
                   "Run the cluster controller (reads Slurm for all node agents)."),
    "status": ("slurm_vgpu.policies.service.status_cli:status",
               "Show GPUs, slices and jobs on this node."),
    "report": ("slurm_vgpu.policies.accounting.report_cli:report",
               "Slice utilization from Slurm accounting."),
    "simulate": ("slurm_vgpu.policies.sim.simulate_cli:simulate", "Replay cluster traces."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table so `vgpu --help` imports nothing heavy.
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vgpu")
def cli() -> None:
    """slurm-vgpu: fractional GPUs for Slurm."""


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="vgpu", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except VgpuError as e:
        click.echo(f"vgpu: error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except (OSError, UnicodeError, ValueError) as e:
        # never a traceback for bad input; VGPU_DEBUG=1 shows one for a bug report
        if os.environ.get("VGPU_DEBUG"):
            raise
        what: object = e
        if isinstance(e, OSError) and e.strerror:
            what = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
        click.echo(f"vgpu: error: {what} (VGPU_DEBUG=1 for details)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
