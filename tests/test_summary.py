"""The AdminComment summary format: round trip, size bound, writer fallbacks (fake runner)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from slurm_vgpu.policies.accounting.job_summary import (
    MAX_CHARS,
    GpuSlices,
    JobSummary,
    SummaryError,
    format_summary,
    parse_summary,
    summary_tokens,
    write_summary,
)

UUID = "GPU-8f2c41d0-1234-5678-9abc-def012345678"


def _summary(n_gpus: int = 1) -> JobSummary:
    gpus = tuple(GpuSlices(f"GPU-8f2c41d0-1234-5678-9abc-def0123456{i:02d}", 2)
                 for i in range(n_gpus))
    return JobSummary(slices=2 * n_gpus, slices_per_gpu=10, gpus=gpus, observed_s=3600,
                      avg_compute_pct=7.5, peak_compute_pct=41.0, peak_memory_mib=2048,
                      borrowed_s=120, backfilled_s=30, backstop_events=2)


def test_round_trip_and_text() -> None:
    s = _summary()
    text = format_summary(s)
    assert text.startswith("vgpu1;sl:2;spg:10;g:GPU-8f2c41d0-")
    assert parse_summary(text) == s
    assert parse_summary(text.lower()) == s  # sacctmgr stores it lowercased
    assert s.spans == 1 and s.efficiency_pct == pytest.approx(37.5)


def test_not_ours_or_newer_version_is_no_summary() -> None:
    assert parse_summary(None) is None
    assert parse_summary("") is None
    assert parse_summary("site admin note") is None
    assert parse_summary("vgpu2;sl:3") is None


def test_unknown_keys_are_kept_and_bad_fields_rejected() -> None:
    parsed = parse_summary("vgpu1;sl:3;spg:10;new:7")
    assert parsed is not None and parsed.extra == {"new": "7"}
    with pytest.raises(SummaryError, match="not key:value"):
        parse_summary("vgpu1;sl:3;spg")
    with pytest.raises(SummaryError, match="malformed"):
        parse_summary("vgpu1;sl:x;spg:10")


def test_size_bound_shortens_uuids_then_cuts_the_gpu_list() -> None:
    medium = format_summary(_summary(12))
    assert len(medium) <= MAX_CHARS and "GPU-8f2c41d0*2" in medium and ";gx:" not in medium
    big = _summary(64)
    text = format_summary(big)
    assert len(text) <= MAX_CHARS
    parsed = parse_summary(text)
    assert parsed is not None
    assert parsed.spans == 64 and parsed.gpus_dropped > 0
    assert parsed.slices == 128 and parsed.avg_compute_pct == 7.5  # scalars survive


def test_uuid_with_separator_is_refused() -> None:
    bad = JobSummary(1, 10, (GpuSlices("GPU-1;sl:99", 1),))
    with pytest.raises(SummaryError, match="UUID"):
        format_summary(bad)


class FakeSlurm:
    """Answers sacct/scontrol/sacctmgr like Slurm 22.05 for a running or finished job whose
    AdminComment is `comment` (sacctmgr stores it lowercased, as 22.05 does)."""

    def __init__(self, running: bool, comment: str = "") -> None:
        self.running = running
        self.comment = comment
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
        self.calls.append(list(argv))
        if argv[0] == "sacct":
            return 0, self.comment + "\n", ""
        if argv[0] == "scontrol":
            if self.running:
                self.comment = argv[-1].removeprefix("AdminComment=")
                return 0, "", ""
            return 1, "", "slurm_update error: Job/step already completing or completed"
        self.comment = argv[-1].removeprefix("AdminComment=").lower()
        return 0, " Modified job\n", ""


def test_writer_uses_scontrol_while_running() -> None:
    fake = FakeSlurm(running=True)
    text = write_summary(17, _summary(), fake)
    assert fake.calls == [["sacct", "-X", "-n", "-P", "-j", "17", "-o", "AdminComment"],
                          ["scontrol", "update", "job=17", f"AdminComment={text}"]]


def test_writer_falls_back_to_sacctmgr_after_the_end() -> None:
    fake = FakeSlurm(running=False)
    text = write_summary("17", _summary(), fake)
    assert [c[0] for c in fake.calls] == ["sacct", "scontrol", "sacctmgr"]
    assert fake.calls[2] == ["sacctmgr", "-i", "modify", "job", "jobid=17", "set",
                             f"AdminComment={text}"]


def _node_summary(node: str, slices: int, avg: float) -> JobSummary:
    return JobSummary(slices, 10, (GpuSlices(f"GPU-{node}0000-0000", slices),), observed_s=60,
                      avg_compute_pct=avg, peak_compute_pct=avg * 2, peak_memory_mib=100,
                      node=node)


def test_writer_keeps_placements_notes_and_other_nodes_summaries() -> None:
    fake = FakeSlurm(running=True, comment="vgpu:n1=gpu0:3 vgpu:n2=gpu1:2 site-note")
    write_summary(5, _node_summary("n2", 2, 10.0), fake)
    write_summary(5, _node_summary("n1", 3, 20.0), fake)
    write_summary(5, _node_summary("n2", 2, 15.0), fake)  # a refresh replaces n2's token
    tokens = fake.comment.split()
    assert tokens[:3] == ["vgpu:n1=gpu0:3", "vgpu:n2=gpu1:2", "site-note"]
    assert [t.split(";")[1] for t in tokens[3:]] == ["n:n1", "n:n2"]
    both = parse_summary(fake.comment)
    assert both is not None
    assert both.slices == 5 and both.avg_compute_pct == 35.0 and both.spans == 2
    assert both.peak_memory_mib == 200 and both.observed_s == 60
    mine = parse_summary(fake.comment, nodes=["n1"])
    assert mine is not None and mine.slices == 3 and mine.node == "n1"
    assert parse_summary(fake.comment, nodes=["n9"]) is None


def test_writer_unites_what_slurmctld_reported_with_the_database() -> None:
    # slurmdbd has not got the plugin's placement record yet; slurmctld reported it
    fake = FakeSlurm(running=False, comment="")
    text = write_summary(6, _node_summary("n1", 3, 20.0), fake, known_comment="vgpu:n1=gpu0:3")
    assert text.split()[0] == "vgpu:n1=gpu0:3"
    # and when sacct fails, what slurmctld reported is all there is to keep
    def no_sacct(argv: Sequence[str]) -> tuple[int, str, str]:
        return (1, "", "sacct: error") if argv[0] == "sacct" else (0, "", "")
    text = write_summary(6, _node_summary("n1", 3, 20.0), no_sacct, running=True,
                         known_comment="vgpu:n1=gpu0:3 note")
    assert text.split()[:2] == ["vgpu:n1=gpu0:3", "note"]


def test_lowercased_copies_are_not_doubled() -> None:
    stored = "vgpu:n1=gpu0:3 " + format_summary(_node_summary("n1", 3, 20.0)).lower()
    fake = FakeSlurm(running=True, comment=stored)
    text = write_summary(7, _node_summary("n1", 3, 25.0), fake,
                         known_comment="vgpu:n1=gpu0:3 " + format_summary(
                             _node_summary("n1", 3, 20.0)))
    assert len(summary_tokens(text)) == 1 and text.count("vgpu:n1=gpu0:3") == 1
    parsed = parse_summary(text)
    assert parsed is not None and parsed.avg_compute_pct == 25.0


def test_writer_reports_both_failures() -> None:
    def nothing(argv: Sequence[str]) -> tuple[int, str, str]:
        if argv[0] == "scontrol":
            return 1, "", "Invalid job id specified"
        return 0, " Nothing modified\n", ""
    with pytest.raises(SummaryError, match=r"scontrol: Invalid job id.*sacctmgr: Nothing"):
        write_summary(99, _summary(), nothing)
    with pytest.raises(SummaryError, match="not a Slurm job id"):
        write_summary("1;rm", _summary(), nothing)


def test_a_running_jobs_refresh_does_not_read_accounting() -> None:
    # slurmctld's copy (this period's squeue) is current while the job runs: no sacct
    fake = FakeSlurm(running=True)
    text = write_summary(8, _node_summary("n1", 3, 20.0), fake, running=True,
                         known_comment="vgpu:n1=gpu0:3 note")
    assert [c[0] for c in fake.calls] == ["scontrol"]
    assert text.split()[:2] == ["vgpu:n1=gpu0:3", "note"]


# ------------------------------------------------------------------ GPU vendor (issue 17)

AMD_UUID = "GPU-a9201ef500000000"


def test_nvidia_summaries_are_written_as_before() -> None:
    text = format_summary(_summary(2))
    assert ";v:" not in text  # NVIDIA is the default: no v: field
    parsed = parse_summary(text)
    assert parsed is not None and parsed.vendor == "nvidia"
    assert {g.vendor for g in parsed.gpus} == {"nvidia"}


def test_amd_summary_carries_its_vendor_and_round_trips() -> None:
    s = JobSummary(slices=3, slices_per_gpu=10, gpus=(GpuSlices(AMD_UUID, 3, "amd"),),
                   observed_s=60, avg_compute_pct=12.5, node="n1")
    text = format_summary(s)
    assert text == ("vgpu1;n:n1;sl:3;spg:10;g:GPU-a9201ef500000000*3;v:amd;obs:60;avg:12.5;"
                    "pk:0;mem:0;bor:0;bf:0;bs:0")
    assert parse_summary(text) == s
    assert parse_summary(text.lower()) == s  # sacctmgr lowercases
    assert s.vendor == "amd"


def test_mixed_vendors_are_listed_per_gpu_and_combined_across_nodes() -> None:
    s = JobSummary(slices=4, slices_per_gpu=10,
                   gpus=(GpuSlices(UUID, 2), GpuSlices(AMD_UUID, 2, "amd")))
    text = format_summary(s)
    assert ";v:nvidia+amd;" in text
    assert parse_summary(text) == s and s.vendor == "amd+nvidia"
    nv = format_summary(JobSummary(2, 10, (GpuSlices(UUID, 2),), node="n1"))
    amd = format_summary(JobSummary(2, 10, (GpuSlices(AMD_UUID, 2, "amd"),), node="n2"))
    both = parse_summary(f"{nv} {amd}")
    assert both is not None and [g.vendor for g in both.gpus] == ["nvidia", "amd"]
    with pytest.raises(SummaryError, match="vendors for"):
        parse_summary("vgpu1;sl:2;spg:10;g:GPU-a*1+GPU-b*1;v:amd+nvidia+amd")


def test_older_parsers_keep_v_as_an_unknown_key() -> None:
    # what a reader without vendor support does with v: (JobSummary.extra), simulated by
    # a newer key it does not know; the scalar figures still parse
    s = parse_summary("vgpu1;sl:3;spg:10;g:GPU-a9201ef500000000*3;v:amd;w:1;obs:60;avg:5")
    assert s is not None and s.extra == {"w": "1"} and s.gpus[0].vendor == "amd"


def test_size_bound_keeps_vendor_of_the_listed_gpus() -> None:
    gpus = tuple(GpuSlices(f"GPU-{i:016x}", 1, "amd") for i in range(40))
    text = format_summary(JobSummary(slices=40, slices_per_gpu=10, gpus=gpus))
    assert len(text) <= MAX_CHARS and ";gx:" in text and ";v:amd;" in text
    parsed = parse_summary(text)
    assert parsed is not None and parsed.vendor == "amd" and parsed.spans == 40
