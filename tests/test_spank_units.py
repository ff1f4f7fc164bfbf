"""Unit tests of the SPANK plugin's Slurm-free C modules, through build/spank/test_spank_units.

They cover the GRES strings slurmctld reports, plugstack arguments, the node inventory, the
placement algorithm and its crash-safe table, and the per-job files.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from spank_helpers import (
    DRIVER,
    LIMITS_MAGIC,
    LIMITS_SIZE,
    PLUGIN,
    SHARE_BURST,
    amd_gpu_uuid,
    build_spank,
    decode_limits,
    gpu_uuid,
    run_driver,
    write_inventory,
)

pytestmark = pytest.mark.native


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    build_spank()
    assert DRIVER.exists()


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the plugin accepts only root-owned inventories and dirs")


@pytest.fixture
def rt(tmp_path: Path, as_root: None) -> Iterator[Path]:
    # tmp_path's parents are root-owned when running as root; the runtime dir must be.
    yield tmp_path / "rt"


# ----------------------------------------------------------------- GRES strings


@pytest.mark.parametrize(
    ("detail", "want"),
    [
        ("vgpu(CNT:3)", "count 3"),                       # count-only gres.conf
        ("vgpu:3(IDX:0-2)", "count 3"),                   # one File= per slice
        ("vgpu:1(IDX:7)", "count 1"),
        ("gpu:1(IDX:0),vgpu(CNT:2)", "count 2"),          # several GRES on the node
        ("vgpu:g0:2(IDX:0-1),vgpu:g1:3(IDX:10-12)", "count 5"),  # typed, split by Slurm
        ("vgpu(IDX:0,2-4)", "count 4"),                   # no count printed: count indices
        ("gpu:2(IDX:0,2)", "count 0"),                    # no vgpu at all
        ("vgpux(CNT:3)", "count 0"),                      # a different GRES name
        ("", "count 0"),
        ("vgpu(CNT:x)", "error"),
        ("vgpu(CNT:)", "error"),
        ("vgpu(IDX:3-1)", "error"),
        ("vgpu", "error"),
    ],
)
def test_gres_detail_count(detail: str, want: str) -> None:
    assert run_driver("gres-detail", "vgpu", detail).stdout.strip() == want


@pytest.mark.parametrize(
    ("tres", "want"),
    [
        ("gres:vgpu:2", "found 2"),
        ("gres/vgpu:2", "found 2"),
        ("gres:gpu:1,gres:vgpu:g0:2", "found 2"),
        ("gres:vgpu", "found 1"),
        ("gres:vgpu:0", "found 0"),
        ("cpu=1", "absent"),
        ("gres:gpu:1", "absent"),
        ("gres:vgpux:4", "absent"),
        ("gres:vgpu:99999999999", "error"),
    ],
)
def test_step_tres_count(tres: str, want: str) -> None:
    assert run_driver("tres", "vgpu", tres).stdout.strip() == want


# ----------------------------------------------------------------- plugstack arguments


def parse_config(*args: str) -> dict[str, str]:
    result = run_driver("config", *args)
    assert result.returncode == 0, result.stdout
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def test_config_defaults() -> None:
    cfg = parse_config()
    assert cfg["runtime_dir"] == "/run/slurm-vgpu"
    assert cfg["inventory"] == "/etc/slurm-vgpu/inventory.conf"
    assert cfg["hook"].endswith("/lib/slurm-vgpu/libvgpu.so")
    assert cfg["on_error"] == "deny"
    assert cfg["gres"] == "vgpu"
    assert cfg["visible_env"] == "CUDA_VISIBLE_DEVICES"
    assert cfg["accounting"] == "admin_comment"


def test_config_every_argument() -> None:
    cfg = parse_config(
        "runtime_dir=/run/x/%n", "inventory=/etc/x/%n.conf", "hook=/opt/libvgpu.so",
        "on_error=allow", "gres=slice", "visible_env=CUDA_VISIBLE_DEVICES,ROCR_VISIBLE_DEVICES",
        "lock_timeout_ms=250", "accounting=none",
    )
    assert cfg == {
        "runtime_dir": "/run/x/%n", "inventory": "/etc/x/%n.conf", "hook": "/opt/libvgpu.so",
        "gres": "slice", "visible_env": "CUDA_VISIBLE_DEVICES,ROCR_VISIBLE_DEVICES",
        "on_error": "allow", "lock_timeout_ms": "250", "accounting": "none",
    }


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("colour=blue", "unknown plugstack argument 'colour=blue'"),
        ("runtime_dir", "is not key=value"),
        ("runtime_dir=relative/dir", "must be an absolute path"),
        ("on_error=maybe", "use on_error=deny or on_error=allow"),
        ("lock_timeout_ms=0", "from 1 to 60000"),
        ("hook=/a:b.so", "may not contain ':'"),
        ("accounting=sometimes", "accounting=admin_comment or accounting=none"),
    ],
)
def test_config_errors_say_what_to_fix(arg: str, message: str) -> None:
    result = run_driver("config", arg)
    assert result.returncode == 1
    assert message in result.stdout


@pytest.mark.parametrize(
    ("template", "node", "want"),
    [
        ("/run/slurm-vgpu/%n", "n1", "/run/slurm-vgpu/n1"),
        ("/etc/x/%n/%n.conf", "n2", "/etc/x/n2/n2.conf"),
        ("/run/100%%", "", "/run/100%"),
        ("/run/plain", "", "/run/plain"),
        ("/run/%n", "", "error"),      # %n with no SLURMD_NODENAME
        ("/run/%x", "n1", "error"),    # unknown escape
        ("/run/%n", "../etc", "error"),  # a node name never walks out of the directory
    ],
)
def test_expand_node_name(template: str, node: str, want: str) -> None:
    assert run_driver("expand", template, node).stdout.strip() == want


# ----------------------------------------------------------------- inventory


def test_inventory_reads_generated_format(tmp_path: Path, as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (3, 4)], slice_bytes=123)
    result = run_driver("inventory", str(inv), check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == "node=n1 gpus=2"
    assert f"gpu index=3 uuid={gpu_uuid('n1', 3)} slices=4 slice_bytes=123 " \
        "slice_permille=250" in lines[2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version=1\ngpu index=0 slices=10 slice_bytes=1 slice_permille=100 model=X\n",
         "line 2: gpu record needs index=, uuid="),
        ("version=2\n", "line 1: unsupported inventory version"),
        ("gpu index=0 uuid=A slices=101 slice_bytes=1 slice_permille=1\n",
         "line 1: bad value slices=101"),
        ("gpu index=0 uuid=A slices=10 slice_bytes=1 slice_permille=200\n",
         "slices x slice_permille exceeds 1000"),
        ("gpu index=0 uuid=A slices=1 slice_bytes=1 slice_permille=1\n"
         "gpu index=0 uuid=B slices=1 slice_bytes=1 slice_permille=1\n", "listed twice"),
    ],
)
def test_inventory_errors_name_the_line(tmp_path: Path, as_root: None, text: str,
                                        message: str) -> None:
    path = tmp_path / "inv.conf"
    path.write_text(text)
    result = run_driver("inventory", str(path))
    assert result.returncode == 1
    assert message in result.stdout


def test_inventory_ignores_unknown_keys_and_records(tmp_path: Path, as_root: None) -> None:
    path = tmp_path / "inv.conf"
    path.write_text(
        "# comment\nversion=1\nnode=n9\nfuture_record x=1\n\n"
        "gpu index=1 uuid=GPU-x slices=5 slice_bytes=7 slice_permille=200 numa=0 "
        "model=NVIDIA A100 80GB PCIe\n"
    )
    lines = run_driver("inventory", str(path), check=True).stdout.splitlines()
    assert lines == ["node=n9 gpus=1",
                     "gpu index=1 uuid=GPU-x slices=5 slice_bytes=7 slice_permille=200"]


def test_inventory_must_not_be_writable_by_users(tmp_path: Path, as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10)], mode=0o666)
    result = run_driver("inventory", str(inv))
    assert result.returncode == 1
    assert "owned by root and not writable by group or others" in result.stdout


def test_inventory_missing_says_how_to_make_one(tmp_path: Path) -> None:
    result = run_driver("inventory", str(tmp_path / "absent.conf"))
    assert result.returncode == 1
    assert "vgpu gres generate" in result.stdout


# ----------------------------------------------------------------- placement


def place(rt: Path, inv: Path, job: int, count: int) -> str:
    return run_driver("place", str(rt), str(inv), str(job), str(count)).stdout.strip()


def test_two_half_jobs_share_a_gpu_and_a_third_goes_to_the_next(tmp_path: Path,
                                                               rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    assert place(rt, inv, 1, 5) == "placed gpu0:5"
    assert place(rt, inv, 2, 5) == "placed gpu0:5"
    assert place(rt, inv, 3, 5) == "placed gpu1:5"


def test_best_fit_fills_the_fullest_gpu_that_still_fits(tmp_path: Path, rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    assert place(rt, inv, 1, 7) == "placed gpu0:7"
    assert place(rt, inv, 2, 4) == "placed gpu1:4"   # gpu0 has only 3 left
    assert place(rt, inv, 3, 3) == "placed gpu0:3"   # exact fit beats gpu1's 6
    assert place(rt, inv, 4, 6) == "placed gpu1:6"


def test_span_only_when_no_single_gpu_has_room(tmp_path: Path, rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10), (2, 10)])
    assert place(rt, inv, 1, 7) == "placed gpu0:7"
    assert place(rt, inv, 2, 4) == "placed gpu1:4"
    assert place(rt, inv, 3, 8) == "placed gpu2:8"
    # free: gpu0 3, gpu1 6, gpu2 2. One slice fits on one GPU (best fit: gpu2)...
    assert place(rt, inv, 4, 1) == "placed gpu2:1"
    # ...nine do not: the most-free GPUs first (gpu1 6, gpu0 3), gpu2 untouched
    assert place(rt, inv, 5, 9) == "placed gpu0:3+gpu1:6"
    table = (rt / "placements").read_text()
    assert "job=5 gpu=1 slices=6" in table and "job=5 gpu=0 slices=3" in table


def test_span_takes_most_free_gpus_first(tmp_path: Path, rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    assert place(rt, inv, 1, 7) == "placed gpu0:7"
    assert place(rt, inv, 2, 4) == "placed gpu1:4"
    # free 3 + 6: a 8-slice job spans, the larger share on gpu1, each GPU capped separately
    assert place(rt, inv, 3, 8) == "placed gpu0:2+gpu1:6"


def test_not_enough_free_slices_is_an_error(tmp_path: Path, rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10)])
    assert place(rt, inv, 1, 8) == "placed gpu0:8"
    out = place(rt, inv, 2, 3)
    assert out == "error: 3 slices wanted but only 2 free on this node"


def test_release_frees_slices_and_replacing_a_job_is_idempotent(tmp_path: Path,
                                                                 rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10)])
    assert place(rt, inv, 1, 8) == "placed gpu0:8"
    assert place(rt, inv, 1, 8) == "placed gpu0:8"  # requeued job id: placed afresh
    assert run_driver("release", str(rt), "1").stdout.strip() == "released 1"
    assert place(rt, inv, 2, 10) == "placed gpu0:10"


def test_concurrent_placements_never_overbook(tmp_path: Path, rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda job: place(rt, inv, job, 2), range(1, 13)))
    placed = [r for r in results if r.startswith("placed")]
    assert len(placed) == 10, results  # 20 slices hold exactly ten 2-slice jobs
    rows = [line.split() for line in (rt / "placements").read_text().splitlines()
            if line.startswith("job=")]
    per_gpu: dict[str, int] = {}
    for _job, gpu, slices in rows:
        per_gpu[gpu] = per_gpu.get(gpu, 0) + int(slices.split("=")[1])
    assert per_gpu == {"gpu=0": 10, "gpu=1": 10}
    assert not list(rt.glob("placements.tmp.*"))  # atomic writes leave no temp files


def test_malformed_table_is_reported_with_its_line(tmp_path: Path, rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10)])
    rt.mkdir(mode=0o755)
    (rt / "placements").write_text("job=1 gpu=0 slices=2\njob=two gpu=0 slices=1\n")
    assert "line 2 is malformed" in place(rt, inv, 3, 1)


# ----------------------------------------------------------------- lent slices (policy daemon)


def lent_text(node: str = "n1", gpus: tuple[tuple[int, int], ...] = ((0, 4),),
              preemptible: str = "preemptible partitions=scavenger,low qos=scav",
              version: int = 2) -> str:
    from slurm_vgpu.policies.decide.lent_file import HEADER

    lines = [HEADER, f"version={version}", f"node={node}", preemptible]
    lines += [f"gpu index={i} uuid={gpu_uuid('n1', i)} slices={n}" for i, n in gpus]
    return "\n".join(lines) + "\n"


def write_lent(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(mode=0o755, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def read_lent(path: Path, inv: Path, node: str = "n1") -> str:
    return run_driver("lent", str(path), node, str(inv)).stdout.strip()


def test_lent_file_as_the_daemon_writes_it(tmp_path: Path, as_root: None) -> None:
    from slurm_vgpu.policies.decide.lent_file import format_lent
    from slurm_vgpu.policies.decide.snapshot import GpuState

    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    gpus = [GpuState("n1", i, gpu_uuid("n1", i), 10, 1 << 30, 100, 10 << 30) for i in (0, 1)]
    text = format_lent("n1", gpus, {gpu_uuid("n1", 1): 3, gpu_uuid("n1", 0): 2},
                       ("scavenger",), ("scav", "low"))
    path = write_lent(tmp_path / "lent", text)
    assert read_lent(path, inv) == "lent total=5 gpu0:2 gpu1:3 partitions=scavenger qos=scav,low"
    # nothing lent: still a valid file
    path.write_text(format_lent("n1", gpus, {}, ("scavenger",)))
    assert read_lent(path, inv) == "lent total=0 partitions=scavenger qos="
    assert read_lent(tmp_path / "absent", inv) == "absent"


@pytest.mark.parametrize(("mode", "owner"), [(0o666, 0), (0o620, 0), (0o644, 1234)])
def test_lent_file_must_be_root_owned_and_not_writable_by_users(
        tmp_path: Path, as_root: None, mode: int, owner: int) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10)])
    path = write_lent(tmp_path / "lent", lent_text(), mode)
    os.chown(path, owner, 0)
    out = read_lent(path, inv)
    assert out.startswith("error: ") and "owned by root and not writable by group or " \
        "others" in out, out


def test_lent_file_that_is_a_link_or_a_directory_is_refused(tmp_path: Path,
                                                            as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10)])
    real = write_lent(tmp_path / "real", lent_text())
    (tmp_path / "link").symlink_to(real)
    assert read_lent(tmp_path / "link", inv).startswith("error: cannot open")
    (tmp_path / "dir").mkdir()
    assert read_lent(tmp_path / "dir", inv).startswith("error: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (lent_text(node="n2"), "written for node 'n2', this is n1"),
        (lent_text(version=1), "unsupported lent file version"),
        (lent_text().replace("version=2\n", ""), "no version= record"),
        (lent_text().replace("node=n1\n", ""), "no node= record"),
        (lent_text(preemptible=""), "no preemptible record"),
        (lent_text() + "preemptible partitions=x\n", "bad preemptible record"),
        (lent_text(preemptible="preemptible partitions=a,,b qos="), "bad preemptible record"),
        (lent_text(preemptible="preemptible partitions=a qos=b,"), "bad preemptible record"),
        (lent_text(preemptible="preemptible partitions"), "bad preemptible record"),
        (lent_text(gpus=((5, 1),)), "gpu index=5 uuid="),               # not in the inventory
        (lent_text(gpus=((0, 11),)), "slices=11 lent on GPU 0, which has 10"),
        (lent_text(gpus=((0, 0),)), "slices=0 lent on GPU 0"),
        (lent_text(gpus=((0, 1), (0, 2))), "gpu index=0 is listed twice"),
        (lent_text().replace("slices=4", "slices=-4"), "bad gpu record"),
        (lent_text().replace("slices=4", "slices=4x"), "bad gpu record"),
        (lent_text().replace(" slices=4", ""), "needs index=, uuid= and slices="),
        (lent_text().replace(gpu_uuid("n1", 0), "GPU-other"), "is not a GPU of the node"),
        (lent_text().replace("gpu index=0", "gpu index=0 junk"), "bad gpu record"),
    ],
)
def test_lent_file_errors_name_the_line(tmp_path: Path, as_root: None, text: str,
                                        message: str) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    out = read_lent(write_lent(tmp_path / "lent", text), inv)
    assert out.startswith("error: ") and message in out, out


def test_lent_file_ignores_comments_and_unknown_records(tmp_path: Path, as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    text = lent_text(gpus=((1, 2),)).replace("slices=2", "slices=2 numa=1  # note") + \
        "future x=1\n\n"
    assert read_lent(write_lent(tmp_path / "lent", text), inv) == \
        "lent total=2 gpu1:2 partitions=scavenger,low qos=scav"


def fill(rt: Path, inv: Path) -> None:
    """An owner job books every slice of both GPUs."""
    assert place(rt, inv, 1, 10) == "placed gpu0:10"
    assert place(rt, inv, 2, 10) == "placed gpu1:10"


def place_as(rt: Path, inv: Path, job: int, count: int, partition: str, qos: str) -> str:
    result = run_driver("place", str(rt), str(inv), str(job), str(count), partition, qos)
    return result.stdout.strip()


def test_a_preemptible_job_is_placed_on_lent_slices(tmp_path: Path, rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)], slice_bytes=1000)
    fill(rt, inv)
    write_lent(rt / "lent", lent_text(gpus=((0, 4), (1, 6))))
    # best fit over lent capacity: GPU 0's 4 hold 3 with the fewest left over
    assert place_as(rt, inv, 3, 3, "scavenger", "normal") == "placed gpu0:3"
    assert place_as(rt, inv, 4, 2, "debug", "scav") == "placed gpu1:2"  # by its QOS
    assert place_as(rt, inv, 5, 4, "low", "") == "placed gpu1:4"
    # the lent slices are booked like any others: 1 left on GPU 0, none on GPU 1
    assert place_as(rt, inv, 6, 2, "scavenger", "normal") == \
        "error: 2 slices wanted but only 0 free on this node; with the 10 slices lent by " \
        "the policy daemon: 2 slices wanted but only 1 free on this node (counting lent " \
        "slices)"
    assert (3, 0, 3) in [tuple(int(t.split("=")[1]) for t in line.split())
                         for line in (rt / "placements").read_text().splitlines()
                         if line.startswith("job=")]
    # its limits are those of any 3-slice job on GPU 0
    out = tmp_path / "limits"
    run_driver("limits", str(out), str(inv), "3", "0", "0", "0:3", check=True)
    lim = decode_limits(out.read_bytes())
    assert (lim.gpus[0].memory_limit_bytes, lim.gpus[0].compute_guaranteed_permille) == (
        3000, 300)


def test_a_job_that_is_not_preemptible_never_gets_lent_slices(tmp_path: Path,
                                                                rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    fill(rt, inv)
    write_lent(rt / "lent", lent_text(gpus=((0, 4),)))
    # it would fit on the 4 lent slices: slurmctld started it there, "refused" (the prolog
    # requeues it instead of failing it)
    out = place_as(rt, inv, 3, 2, "debug", "normal")
    assert out == ("refused: 2 slices wanted but only 0 free on this node; 4 more are lent by "
                   "the policy daemon, but only to jobs in a preemptible partition "
                   "(scavenger,low) or QOS (scav), and this job runs in partition debug "
                   "with QOS normal")
    # unknown partition/QOS (e.g. a name too long to keep), a prefix of a listed name: no
    assert place_as(rt, inv, 3, 2, "", "").startswith("refused: ")
    assert "but only to jobs" in place_as(rt, inv, 3, 2, "scav", "scavenger")
    # more than is lent: not on lent capacity either, a plain error as before
    out = place_as(rt, inv, 3, 5, "debug", "normal")
    assert out.startswith("error: 5 slices wanted but only 0 free") and \
        "but only to jobs" in out, out
    assert "job=3" not in (rt / "placements").read_text()


def test_lent_slices_need_a_good_lent_file(tmp_path: Path, rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10)])
    assert place(rt, inv, 1, 10) == "placed gpu0:10"
    wanted = "error: 2 slices wanted but only 0 free on this node"
    assert place_as(rt, inv, 3, 2, "scavenger", "") == wanted  # no lent file: nothing lent
    for text, mode in ((lent_text(), 0o666), (lent_text(node="n2"), 0o644),
                       (lent_text(gpus=((0, 11),)), 0o644)):
        write_lent(rt / "lent", text, mode)
        result = run_driver("place", str(rt), str(inv), "3", "2", "scavenger", "")
        assert result.stdout.strip() == wanted
        assert "vgpu: ignoring the lent file, nothing counts as lent" in result.stderr
    write_lent(rt / "lent", lent_text(gpus=()))  # valid, nothing lent
    assert place_as(rt, inv, 3, 2, "scavenger", "") == wanted
    write_lent(rt / "lent", lent_text(gpus=((0, 2),)))
    assert place_as(rt, inv, 3, 2, "scavenger", "") == "placed gpu0:2"


def test_a_preemptible_job_takes_free_slices_before_lent_ones(tmp_path: Path,
                                                               rt: Path) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    assert place(rt, inv, 1, 10) == "placed gpu0:10"
    write_lent(rt / "lent", lent_text(gpus=((0, 4),)))
    assert place_as(rt, inv, 2, 3, "scavenger", "") == "placed gpu1:3"


def test_lock_waits_are_bounded(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    holder = subprocess.Popen([str(DRIVER), "lock", str(lock), "1000", "1500"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        result = run_driver("lock", str(lock), "100")
        assert result.returncode == 1
        assert "timed out after 100 ms" in result.stdout
    finally:
        holder.wait(timeout=10)
    assert run_driver("lock", str(lock), "100").stdout.strip() == "locked"


# ----------------------------------------------------------------- per-job files


def test_limits_file_layout(tmp_path: Path, as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)],
                          slice_bytes=1_610_612_736)
    out = tmp_path / "limits"
    run_driver("limits", str(out), str(inv), "4242", "1234", str(SHARE_BURST), "0:3", "1:2",
               check=True)
    st = out.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 0
    lim = decode_limits(out.read_bytes())
    assert (lim.magic, lim.version, lim.size) == (LIMITS_MAGIC, 1, LIMITS_SIZE)
    assert (lim.generation, lim.job_id, lim.uid, lim.share_policy, lim.flags) == (
        0, 4242, 1234, SHARE_BURST, 0)
    assert [(g.physical_index, g.slices) for g in lim.gpus] == [(0, 3), (1, 2)]
    assert lim.gpus[0].uuid == gpu_uuid("n1", 0) == "GPU-00006e31-0000-0000-0000-000000000000"
    assert lim.gpus[0].memory_limit_bytes == 3 * 1_610_612_736
    assert lim.gpus[0].compute_guaranteed_permille == 300
    assert lim.gpus[0].compute_limit_permille == 300
    assert lim.gpus[1].memory_limit_bytes == 2 * 1_610_612_736


def test_a_step_holding_fewer_slices_gets_its_share_of_the_job_limits(
        tmp_path: Path, as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)], slice_bytes=1000)
    job = tmp_path / "limits"
    run_driver("limits", str(job), str(inv), "7", "1234", str(SHARE_BURST), "1:4", check=True)
    out = tmp_path / "step.0.limits"
    assert run_driver("step-limits", str(job), "1", str(out)).stdout.strip() == "step"
    step = decode_limits(out.read_bytes())
    assert (step.job_id, step.uid, step.share_policy) == (7, 1234, SHARE_BURST)
    gpu = step.gpus[0]
    assert (gpu.physical_index, gpu.slices, gpu.memory_limit_bytes) == (1, 1, 1000)
    assert gpu.compute_guaranteed_permille == gpu.compute_limit_permille == 100
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    # the whole job's count, more, or none: the job's own limits apply
    for slices in ("4", "5", "0"):
        assert run_driver("step-limits", str(job), slices, str(out)).stdout.strip() == "job"


def test_a_step_of_a_job_spanning_gpus_keeps_the_job_limits(tmp_path: Path,
                                                             as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10), (1, 10)])
    job = tmp_path / "limits"
    run_driver("limits", str(job), str(inv), "7", "0", "0", "0:2", "1:10", check=True)
    assert run_driver("step-limits", str(job), "1", str(tmp_path / "s")).stdout.strip() == "job"


def test_state_file_is_empty_and_private_to_the_job_user(tmp_path: Path,
                                                         as_root: None) -> None:
    path = tmp_path / "state"
    path.write_text("stale")
    run_driver("state", str(path), "4321", "8765", check=True)
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_size) == (4321, 8765, 0o600, 0)


def test_state_file_never_follows_a_planted_link(tmp_path: Path, as_root: None) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "state").symlink_to(victim)
    run_driver("state", str(tmp_path / "state"), "4321", "4321", check=True)
    assert victim.read_text() == "keep" and victim.stat().st_uid == 0
    assert not (tmp_path / "state").is_symlink()


def test_driver_usage_error() -> None:
    assert run_driver("nonsense").returncode == 2


def test_plugin_exports_only_its_entry_points() -> None:
    out = subprocess.run(["nm", "-D", "--defined-only", str(PLUGIN)], capture_output=True,
                         text=True, check=True).stdout
    symbols = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert symbols == {"plugin_name", "plugin_type", "plugin_version", "spank_plugin_version",
                       "slurm_spank_init", "slurm_spank_init_post_opt", "slurm_spank_user_init",
                       "slurm_spank_task_init", "slurm_spank_exit", "slurm_spank_job_prolog",
                       "slurm_spank_job_epilog"}


def test_reads_what_the_gres_generator_writes(tmp_path: Path, as_root: None) -> None:
    from slurm_vgpu.gres.inventory import InventoryGpu, NodeInventory, format_inventory

    inventory = NodeInventory(node="gpu07", gpus=(
        InventoryGpu(index=0, uuid="GPU-0a1b2c3d-0000-1111-2222-333344445555", slices=10,
                     slice_bytes=8_589_934_592, slice_permille=100,
                     memory_bytes=85_899_345_920, model="NVIDIA A100-SXM4-80GB"),
        InventoryGpu(index=2, uuid="GPU-0a1b2c3d-0000-1111-2222-333344445557", slices=4,
                     slice_bytes=4_294_967_296, slice_permille=250,
                     memory_bytes=17_179_869_184, model="Tesla T4"),
    ))
    path = tmp_path / "inventory.conf"
    path.write_text(format_inventory(inventory))
    path.chmod(0o644)
    lines = run_driver("inventory", str(path), check=True).stdout.splitlines()
    assert lines == [
        "node=gpu07 gpus=2",
        "gpu index=0 uuid=GPU-0a1b2c3d-0000-1111-2222-333344445555 slices=10 "
        "slice_bytes=8589934592 slice_permille=100",
        "gpu index=2 uuid=GPU-0a1b2c3d-0000-1111-2222-333344445557 slices=4 "
        "slice_bytes=4294967296 slice_permille=250",
    ]


# ----------------------------------------------------------------- GPU vendors (issue 17)


def write_mixed_inventory(path: Path, node: str, gpus: list[tuple[int, int, str]]) -> Path:
    """Inventory of (index, slices, vendor) GPUs, each line with its vendor= token."""
    lines = ["version=1", f"node={node}"]
    for index, slices, vendor in gpus:
        uuid = amd_gpu_uuid(node, index) if vendor == "amd" else gpu_uuid(node, index)
        lines.append(f"gpu index={index} uuid={uuid} slices={slices} slice_bytes={1 << 30} "
                     f"slice_permille={1000 // slices} vendor={vendor} model=Sim {vendor}")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return path


def test_inventory_reads_the_vendor_token(tmp_path: Path, as_root: None) -> None:
    inv = write_mixed_inventory(tmp_path / "inv.conf", "n1",
                                [(0, 10, "nvidia"), (1, 10, "amd")])
    lines = run_driver("inventory", str(inv), check=True).stdout.splitlines()
    assert lines == [
        "node=n1 gpus=2",
        f"gpu index=0 uuid={gpu_uuid('n1', 0)} slices=10 slice_bytes={1 << 30} "
        "slice_permille=100",
        f"gpu index=1 uuid={amd_gpu_uuid('n1', 1)} slices=10 slice_bytes={1 << 30} "
        "slice_permille=100 vendor=amd",
    ]
    assert amd_gpu_uuid("n1", 1) == "GPU-00006e31a3d00001"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpu index=0 uuid=GPU-0123456789abcdef slices=1 slice_bytes=1 slice_permille=1 "
         "vendor=intel model=X\n", "line 1: bad value vendor=intel (this plugin knows "
         "vendor=nvidia and vendor=amd)"),
        ("gpu index=0 uuid=GPU-0123456789ABCDEF slices=1 slice_bytes=1 slice_permille=1 "
         "vendor=amd model=X\n", "line 1: uuid=GPU-0123456789ABCDEF of an AMD GPU must be "
         "GPU- and 16 lowercase hex digits"),
        ("gpu index=0 uuid=GPU-00006e31-0000-0000-0000-000000000000 slices=1 slice_bytes=1 "
         "slice_permille=1 vendor=amd model=X\n", "of an AMD GPU must be"),
    ],
)
def test_inventory_vendor_errors_name_the_line(tmp_path: Path, as_root: None, text: str,
                                               message: str) -> None:
    path = tmp_path / "inv.conf"
    path.write_text(text)
    result = run_driver("inventory", str(path))
    assert result.returncode == 1
    assert message in result.stdout


def test_a_vendor_token_after_model_is_part_of_the_model(tmp_path: Path,
                                                         as_root: None) -> None:
    # model= takes the rest of the line: a GPU named "... vendor=amd" is still NVIDIA
    path = tmp_path / "inv.conf"
    path.write_text(f"gpu index=0 uuid={gpu_uuid('n1', 0)} slices=2 slice_bytes=1 "
                    "slice_permille=500 model=Odd vendor=amd\n")
    path.chmod(0o644)
    lines = run_driver("inventory", str(path), check=True).stdout.splitlines()
    assert not lines[1].endswith("vendor=amd")


def test_one_gpu_placement_ignores_vendor(tmp_path: Path, rt: Path) -> None:
    inv = write_mixed_inventory(tmp_path / "inv.conf", "n1",
                                [(0, 10, "nvidia"), (1, 10, "amd")])
    assert place(rt, inv, 1, 7) == "placed gpu0:7"
    assert place(rt, inv, 2, 3) == "placed gpu0:3"   # best fit, whatever the vendor
    assert place(rt, inv, 3, 3) == "placed gpu1:3"


def test_a_span_never_mixes_vendors(tmp_path: Path, rt: Path) -> None:
    inv = write_mixed_inventory(tmp_path / "inv.conf", "n1",
                                [(0, 10, "nvidia"), (1, 10, "amd"), (2, 10, "amd")])
    assert place(rt, inv, 1, 4) == "placed gpu0:4"   # nvidia: 6 free
    assert place(rt, inv, 2, 8) == "placed gpu1:8"   # amd: 2 + 10 free
    # 11: the NVIDIA GPU cannot hold them, the AMD ones can (the most-free first)
    assert place(rt, inv, 3, 11) == "placed gpu1:1+gpu2:10"
    # 7 free in all (6 on gpu0, 1 on gpu1), but not on GPUs of one vendor
    out = place(rt, inv, 4, 7)
    assert out == ("error: 7 slices wanted: 6 free on this node's NVIDIA GPUs and 1 on its "
                   "AMD GPUs, and a job's slices stay on GPUs of one vendor")
    assert "job=4" not in (rt / "placements").read_text()


def test_a_span_takes_the_vendor_needing_fewer_gpus(tmp_path: Path, rt: Path) -> None:
    inv = write_mixed_inventory(tmp_path / "inv.conf", "n1",
                                [(0, 4, "nvidia"), (1, 4, "nvidia"), (2, 4, "nvidia"),
                                 (3, 6, "amd"), (4, 6, "amd")])
    # 11: three NVIDIA GPUs (4+4+3) or two AMD ones (6+5): the AMD ones
    assert place(rt, inv, 1, 11) == "placed gpu3:6+gpu4:5"


def test_a_span_tie_goes_to_the_vendor_listed_first(tmp_path: Path, rt: Path) -> None:
    inv = write_mixed_inventory(tmp_path / "inv.conf", "n1",
                                [(0, 5, "amd"), (1, 5, "amd"), (2, 5, "nvidia"),
                                 (3, 5, "nvidia")])
    assert place(rt, inv, 1, 7) == "placed gpu0:5+gpu1:2"
    assert place(rt, inv, 2, 7) == "placed gpu2:5+gpu3:2"


def visible(inv: Path, limits: str, env: str = "CUDA_VISIBLE_DEVICES") -> list[str]:
    result = run_driver("visible", str(inv), limits, env)
    return result.stdout.splitlines()


def test_visibility_of_an_amd_job_is_rocr_by_uuid(tmp_path: Path, as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n2", [(0, 10), (1, 10)], vendor="amd")
    lim = tmp_path / "limits"
    run_driver("limits", str(lim), str(inv), "5", "0", "0", "1:3", check=True)
    assert decode_limits(lim.read_bytes()).gpus[0].uuid == amd_gpu_uuid("n2", 1)
    # HIP reads HIP_VISIBLE_DEVICES, else CUDA_VISIBLE_DEVICES, as a second selection
    # relative to ROCr's: both go, or an inherited value would pick from the wrong list
    assert visible(inv, str(lim)) == [
        "vendor=amd", "unset CUDA_VISIBLE_DEVICES", "unset HIP_VISIBLE_DEVICES",
        f"set ROCR_VISIBLE_DEVICES={amd_gpu_uuid('n2', 1)}",
    ]
    # visible_env names NVIDIA's variables: an AMD job has none of them
    assert visible(inv, str(lim), "CUDA_VISIBLE_DEVICES,ASCEND_RT_VISIBLE_DEVICES,"
                   "ROCR_VISIBLE_DEVICES") == [
        "vendor=amd", "unset CUDA_VISIBLE_DEVICES", "unset ASCEND_RT_VISIBLE_DEVICES",
        f"set ROCR_VISIBLE_DEVICES={amd_gpu_uuid('n2', 1)}", "unset HIP_VISIBLE_DEVICES",
    ]


def test_visibility_of_an_amd_job_spanning_gpus(tmp_path: Path, as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n2", [(0, 10), (1, 10), (3, 10)],
                          vendor="amd")
    lim = tmp_path / "limits"
    run_driver("limits", str(lim), str(inv), "5", "0", "0", "1:10", "3:2", check=True)
    assert visible(inv, str(lim))[-1] == (
        f"set ROCR_VISIBLE_DEVICES={amd_gpu_uuid('n2', 1)},{amd_gpu_uuid('n2', 3)}")


def test_visibility_of_an_nvidia_job_is_unchanged(tmp_path: Path, as_root: None) -> None:
    for name, vendor in (("plain.conf", None), ("token.conf", "nvidia")):
        inv = write_inventory(tmp_path / name, "n1", [(0, 10), (1, 10)], vendor=vendor)
        lim = tmp_path / f"{name}.limits"
        run_driver("limits", str(lim), str(inv), "5", "0", "0", "1:3", check=True)
        assert visible(inv, str(lim)) == ["vendor=nvidia", "set CUDA_VISIBLE_DEVICES=1"]
        # on an all-NVIDIA node visible_env= is taken as written, ROCR included
        assert visible(inv, str(lim), "CUDA_VISIBLE_DEVICES,ROCR_VISIBLE_DEVICES") == [
            "vendor=nvidia", "set CUDA_VISIBLE_DEVICES=1", "set ROCR_VISIBLE_DEVICES=1"]


def test_visibility_on_a_node_with_both_vendors(tmp_path: Path, as_root: None) -> None:
    inv = write_mixed_inventory(tmp_path / "inv.conf", "n1",
                                [(0, 10, "nvidia"), (1, 10, "amd")])
    nv, amd = tmp_path / "nv.limits", tmp_path / "amd.limits"
    run_driver("limits", str(nv), str(inv), "5", "0", "0", "0:3", check=True)
    run_driver("limits", str(amd), str(inv), "6", "0", "0", "1:3", check=True)
    # an NVIDIA job sees no AMD GPU: ROCR_VISIBLE_DEVICES set but empty (ROCr: none)
    assert visible(inv, str(nv)) == [
        "vendor=nvidia", "set CUDA_VISIBLE_DEVICES=0", "set ROCR_VISIBLE_DEVICES="]
    assert visible(inv, str(nv), "CUDA_VISIBLE_DEVICES,ROCR_VISIBLE_DEVICES") == [
        "vendor=nvidia", "set CUDA_VISIBLE_DEVICES=0", "set ROCR_VISIBLE_DEVICES="]
    # by UUID: the inventory numbers a mixed node's AMD GPUs after its NVIDIA ones
    assert visible(inv, str(amd))[-1] == f"set ROCR_VISIBLE_DEVICES={amd_gpu_uuid('n1', 1)}"
    # a step holding no slices sees no GPU of either vendor
    assert visible(inv, "-") == [
        "vendor=-", "set CUDA_VISIBLE_DEVICES=", "set ROCR_VISIBLE_DEVICES="]


def test_visibility_of_a_zero_slice_step_on_an_nvidia_node_is_unchanged(
        tmp_path: Path, as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10)])
    assert visible(inv, "-") == ["vendor=-", "set CUDA_VISIBLE_DEVICES="]


def test_visibility_needs_the_limits_gpus_in_the_inventory(tmp_path: Path,
                                                           as_root: None) -> None:
    inv = write_inventory(tmp_path / "inv.conf", "n1", [(0, 10)])
    other = write_inventory(tmp_path / "other.conf", "n2", [(0, 10)], vendor="amd")
    lim = tmp_path / "limits"
    run_driver("limits", str(lim), str(other), "5", "0", "0", "0:3", check=True)
    out = visible(inv, str(lim))
    assert out == [f"error: GPU {amd_gpu_uuid('n2', 0)} of the job's limits is not in the "
                   "node inventory (was the inventory regenerated?)"]


def test_visibility_refuses_limits_spanning_two_vendors(tmp_path: Path, as_root: None) -> None:
    # placement never does this; a limits file that does is refused, not half-applied
    inv = write_mixed_inventory(tmp_path / "inv.conf", "n1",
                                [(0, 10, "nvidia"), (1, 10, "amd")])
    lim = tmp_path / "limits"
    run_driver("limits", str(lim), str(inv), "5", "0", "0", "0:1", "1:1", check=True)
    assert visible(inv, str(lim)) == ["error: the job's GPUs are of two vendors (nvidia and amd)"]
