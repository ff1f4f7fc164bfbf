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
