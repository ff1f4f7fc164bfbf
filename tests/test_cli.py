from pathlib import Path

import pytest
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


def test_a_config_that_is_not_utf8_is_one_line_naming_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"slices_per_gpu: 10\n\xff\xfe bad\n")
    for argv in (["gres", "generate", "--config", str(bad), "--output-dir", str(tmp_path)],
                 ["daemon", "--config", str(bad), "--once"],
                 ["status", "--config", str(bad)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and str(bad) in lines[0] and "not UTF-8" in lines[0], err
