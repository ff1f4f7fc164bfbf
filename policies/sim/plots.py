"""Plots of simulator results (matplotlib, imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def _pyplot() -> Any:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise click.ClickException("plots need matplotlib: pip install matplotlib") from e
    return plt


def plot_static(data: dict[str, Any], path: Path) -> None:
    """Allocation % against arrived workload %, mean over seeds, per policy and slice size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves: dict[tuple[str, int], list[list[float]]] = {}
    for run in data["runs"]:
        curves.setdefault((run["policy"], run["slice_milli"]), []).append(run["allocation_curve"])
    for (policy, milli), runs in curves.items():
        n = min(len(c) for c in runs)
        mean = [sum(c[i] for c in runs) / len(runs) for i in range(n)]
        label = policy if milli == 1 else f"{policy} ({milli / 10:g}% slices)"
        ax.plot(range(n), mean, label=label)
    ax.plot([0, 100], [0, 100], color="#999999", linestyle=":", label="ideal")
    ax.axvline(100, color="#cccccc", linewidth=0.8)
    ax.set_xlabel("arrived GPU requests, % of capacity")
    ax.set_ylabel("allocated GPU, % of capacity")
    ax.set_title("FGD static protocol (openb)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_dynamic(data: dict[str, Any], path: Path) -> None:
    """Bars per mode: queue wait, allocation and effective utilization, slowdown."""
    plt = _pyplot()
    rows = data["summary"]
    modes = [r["mode"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    axes[0].bar(modes, [r["mean_wait_s"] / 60 for r in rows], label="mean")
    axes[0].bar(modes, [r["p95_wait_s"] / 60 for r in rows], alpha=0.35, label="p95")
    axes[0].set_ylabel("queue wait (min)")
    axes[0].legend(fontsize=8)
    x = range(len(modes))
    axes[1].bar([i - 0.2 for i in x], [r["allocation_pct"] for r in rows], 0.4,
                label="allocated")
    axes[1].bar([i + 0.2 for i in x], [r["effective_util_pct"] for r in rows], 0.4,
                label="used compute")
    axes[1].set_xticks(list(x), modes)
    axes[1].set_ylabel("% of GPU capacity")
    axes[1].legend(fontsize=8)
    axes[2].bar(modes, [r["mean_slowdown"] for r in rows], label="mean")
    axes[2].bar(modes, [r["p95_slowdown"] for r in rows], alpha=0.35, label="p95")
    axes[2].set_ylabel("run time / alone")
    axes[2].legend(fontsize=8)
    fig.suptitle("Philly replay: whole GPUs vs vgpu slices vs slices + sharing")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_capacity(data: dict[str, Any], path: Path) -> None:
    """Left: mean delay (or wait) against cluster size, every replay of every seed as a dot, its
    non-increasing fit (what the size found is read from) as a line, the target dashed.
    Right: capacity per regime (whole GPUs' count over the regime's), seeds' range."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    colors = {"whole": "tab:gray", "slices": "tab:blue", "shared": "tab:green",
              "steered": "tab:orange"}
    for run in data["runs"]:
        color = colors.get(run["mode"], "black")
        # (log scale: a delay under 0.1 min is drawn at 0.1)
        pts = sorted((int(g), max(0.1, w / 60)) for g, w in run["probes"].items()
                     if w != float("inf"))
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "o", ms=2.5, alpha=0.5,
                     color=color)
        fit = sorted((int(g), max(0.1, w / 60)) for g, w in run.get("fit", {}).items()
                     if w != float("inf"))
        axes[0].plot([p[0] for p in fit], [p[1] for p in fit], "-", lw=1.2, alpha=0.8,
                     color=color, label=run["mode"] if run["seed"] == data["seeds"][0] else None)
    for target in sorted({r["target_s"] for r in data["runs"]}):
        axes[0].axhline(target / 60, ls="--", lw=0.8, color="black")
    axes[0].set_xlabel("cluster GPUs")
    axes[0].set_ylabel(f"mean {data['metric']} (min)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    rows = data["summary"]
    modes = [r["mode"] for r in rows]
    caps = [r["capacity"] for r in rows]
    err = [[c - r["capacity_min"] for c, r in zip(caps, rows, strict=True)],
           [r["capacity_max"] - c for c, r in zip(caps, rows, strict=True)]]
    axes[1].bar(modes, caps, yerr=err, capsize=4,
                color=[colors.get(m, "black") for m in modes])
    axes[1].axhline(1.0, lw=0.8, color="black")
    axes[1].set_ylabel("capacity (x whole GPUs)")
    fig.suptitle(f"Philly replay: GPUs needed for the same jobs at the same mean {data['metric']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
