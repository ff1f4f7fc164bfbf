from click.testing import CliRunner

from slurm_vgpu import __version__
from slurm_vgpu.cli import SUBCOMMANDS, cli, main


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_every_group() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in SUBCOMMANDS:
        assert name in result.output


def test_every_subcommand_has_help() -> None:
    for name in SUBCOMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_unknown_subcommand_is_usage_error() -> None:
    assert main(["no-such-command"]) == 2
