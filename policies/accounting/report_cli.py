"""`vgpu report`: slice utilization from Slurm accounting."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

import click

from slurm_vgpu.policies.accounting.report import (
    ReportError,
    SacctRunner,
    build_report,
    format_job,
    format_table,
    parse_sacct_json,
    plot_report,
    sacct_argv,
)


def run_sacct(argv: Sequence[str]) -> str:
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=300, check=False)
    except FileNotFoundError as e:
        raise ReportError("sacct not found: run vgpu report on a host with Slurm's client "
                          "commands") from e
    except subprocess.TimeoutExpired as e:
        raise ReportError("sacct did not answer within 300 s; narrow --start/--end") from e
    if p.returncode != 0:
        raise ReportError(f"{' '.join(argv)} failed: {p.stderr.strip() or p.returncode}")
    return p.stdout


def make_report_command(sacct: SacctRunner = run_sacct) -> click.Command:
    @click.command()
    @click.option("--start", "-S", default="now-1days", show_default=True,
                  help="Start of the range (any sacct -S time).")
    @click.option("--end", "-E", default="now", show_default=True,
                  help="End of the range (any sacct -E time).")
    @click.option("--job", "-j", default=None, help="Show one job's summary instead.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.option("--png", type=click.Path(dir_okay=False, writable=True), default=None,
                  help="Also plot slice-hours by user and account to this PNG.")
    @click.option("--worst", default=10, show_default=True, type=click.IntRange(0, 1000),
                  help="How many worst-utilized jobs to list.")
    def report(start: str, end: str, job: str | None, as_json: bool, png: str | None,
               worst: int) -> None:
        """Allocated vs used slice-hours and efficiency by user, account and partition."""
        try:
            if job is not None:
                if not job.replace("_", "").isdigit():
                    raise click.BadParameter(f"{job!r} is not a job id", param_hint="--job")
                records = [r for r in parse_sacct_json(sacct(sacct_argv(None, None, job)))
                           if r.job_id == job or not job.isdigit()]
                if not records:
                    raise ReportError(f"job {job}: sacct knows no job with vgpu slices by "
                                      "that id")
                if as_json:
                    r = records[0]
                    click.echo(json.dumps({"job_id": r.job_id, "user": r.user,
                                           "slices": r.slices, "elapsed_s": r.elapsed_s,
                                           "summary": None if r.summary is None
                                           else r.summary.__dict__ | {
                                               "gpus": [g.__dict__ for g in r.summary.gpus]}},
                                          indent=2))
                else:
                    click.echo(format_job(records[0]))
                return
            rep = build_report(parse_sacct_json(sacct(sacct_argv(start, end, None))),
                               start, end, worst)
            if as_json:
                click.echo(json.dumps(rep.to_json(), indent=2))
            else:
                click.echo(format_table(rep))
            if png:
                plot_report(rep, png)
        except ReportError as e:
            raise click.ClickException(str(e)) from e

    return report


report = make_report_command()
