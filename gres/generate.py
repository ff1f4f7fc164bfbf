"""From config (+ discovery) to the three generated files, and the check against installed ones."""

from __future__ import annotations

import difflib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.gres.atomic import write_atomic
from slurm_vgpu.gres.backends import (
    AUTO,
    BackendOptions,
    DiscoveryBackend,
    DiscoveryError,
    create_backend,
    discover_auto,
)
from slurm_vgpu.gres.config import GresConfig
from slurm_vgpu.gres.device import Device
from slurm_vgpu.gres.inventory import MAX_GPUS, MAX_UUID_LEN, format_inventory
from slurm_vgpu.gres.plan import NodePlan, plan_node
from slurm_vgpu.gres.render import inventory_for, render_gres_conf, render_slurm_fragment

GRES_CONF = "gres.conf"
SLURM_FRAGMENT = "slurm.conf.fragment"
INVENTORY = "inventory.conf"
FILE_NAMES = (GRES_CONF, SLURM_FRAGMENT, INVENTORY)

BackendMaker = Callable[[str, BackendOptions], DiscoveryBackend]


@dataclass(frozen=True)
class Generated:
    """File name -> text, in FILE_NAMES order (cluster mode has no inventory)."""

    files: dict[str, str]
    plans: tuple[NodePlan, ...]


def local_node_name() -> str:
    # slurmd's default NodeName is the short host name.
    return socket.gethostname().split(".")[0]


def _discover(
    backend_name: str, options: BackendOptions, make_backend: BackendMaker
) -> tuple[list[Device], str]:
    """Devices and the name of the backend(s) that found them (`auto`: those that answered)."""
    if backend_name == AUTO:
        return discover_auto(options, make_backend)
    return make_backend(backend_name, options).discover(), backend_name


def _node_devices(
    config: GresConfig, node: str, options: BackendOptions, make_backend: BackendMaker
) -> list[Device]:
    group = config.group_for(node)
    if group is not None and group.gpus is not None:
        if all(device.uuid is not None for device in group.gpus):
            return list(group.gpus)
        # A static inventory without UUIDs (one list for many nodes) describes the node but
        # cannot name its GPUs: discover them here and hold them to the description.
        backend_name = group.discovery or config.discovery
        discovered, backend_name = _discover(backend_name, options, make_backend)
        found = sorted(discovered, key=lambda d: d.index)
        described = [(d.index, d.model) for d in group.gpus]
        if [(d.index, d.model) for d in found] != described:
            have = ", ".join(f"{d.index}: {d.model}" for d in found) or "none"
            raise DiscoveryError(
                f"{group.field}.gpus: {backend_name} discovery on {node} found GPUs ({have}) "
                f"unlike the static inventory ({', '.join(f'{i}: {m}' for i, m in described)}); "
                "fix the node or the config"
            )
        return found
    if group is not None and group.expect_gpus == 0:
        return []  # a GPU-less node: no driver needed, nothing to discover
    backend_name = (group.discovery if group is not None else None) or config.discovery
    devices, backend_name = _discover(backend_name, options, make_backend)
    if group is not None and group.expect_gpus is not None and len(devices) != group.expect_gpus:
        raise DiscoveryError(
            f"{group.field}.expect_gpus: {backend_name} discovery found {len(devices)} GPUs on "
            f"{node}, the config expects {group.expect_gpus}; fix the node or the config"
        )
    if not devices:
        raise DiscoveryError(
            f"no devices found: {backend_name} discovery found no GPUs on {node}; if the node "
            "has none, give it a nodes: entry with expect_gpus: 0 (or gpus: [])"
        )
    return sorted(devices, key=lambda d: d.index)


def generate_local(
    config: GresConfig,
    node: str,
    options: BackendOptions | None = None,
    make_backend: BackendMaker = create_backend,
) -> Generated:
    """The files of one node, its devices from the config's static inventory or discovery."""
    devices = _node_devices(config, node, options or BackendOptions(), make_backend)
    group = config.group_for(node)
    plan = plan_node(node, devices, config, group)
    for gpu in plan.sliced:
        if gpu.device.uuid is None:
            where = f"{group.field}.gpus" if group is not None else "gpus"
            raise ConfigError(
                f"{where}: GPU {gpu.device.index} of {node} has no uuid, which the node "
                "inventory needs; add uuid: GPU-... to the static inventory"
            )
    if len(plan.sliced) > MAX_GPUS:
        raise ConfigError(
            f"{node} has {len(plan.sliced)} sliced GPUs; the SPANK plugin handles at most "
            f"{MAX_GPUS} per node: exclude or keep whole the others (exclude:, whole:)"
        )
    for gpu in plan.sliced:
        if len(gpu.device.uuid or "") > MAX_UUID_LEN:
            raise DiscoveryError(
                f"{node} {gpu.device.describe()}: UUID longer than {MAX_UUID_LEN} characters"
            )
    try:
        files = {
            GRES_CONF: render_gres_conf([plan], with_node_names=False),
            SLURM_FRAGMENT: render_slurm_fragment([plan]),
            INVENTORY: format_inventory(inventory_for(node, plan)),
        }
    except ValueError as e:  # a value the file formats cannot carry
        raise ConfigError(f"{node}: {e}") from e
    return Generated(files=files, plans=(plan,))


def generate_cluster(config: GresConfig) -> Generated:
    """One gres.conf and slurm.conf fragment for every node group (static inventories only:
    nothing can be discovered on other hosts). Node inventories are written on each node."""
    if not config.nodes:
        raise ConfigError(
            "nodes: required for --all-nodes (a list of node groups with names: and gpus:)"
        )
    plans = []
    for group in config.nodes:
        if group.gpus is not None:
            devices = list(group.gpus)
        elif group.expect_gpus == 0:
            devices = []
        else:
            raise ConfigError(
                f"{group.field}.gpus: required for --all-nodes ({group.names} has no static "
                "inventory; nothing can be discovered from another host); or generate on "
                "those nodes themselves"
            )
        plans.append(plan_node(group.names, devices, config, group))
    try:
        files = {
            GRES_CONF: render_gres_conf(plans, with_node_names=True),
            SLURM_FRAGMENT: render_slurm_fragment(plans),
        }
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return Generated(files=files, plans=tuple(plans))


def write_files(generated: Generated, targets: dict[str, Path]) -> None:
    """Atomically replace each target; every text is rendered before the first write, so an
    error leaves all installed files untouched."""
    for name, text in generated.files.items():
        try:
            write_atomic(targets[name], text)
        except OSError as e:
            raise ConfigError(f"cannot write {targets[name]}: {e.strerror or e}") from e


def diff_installed(generated: Generated, targets: dict[str, Path]) -> list[str]:
    """Unified diffs (installed -> generated) of every file that differs; empty when all match."""
    diffs: list[str] = []
    for name, text in generated.files.items():
        path = targets[name]
        try:
            installed = path.read_text(encoding="utf-8")
            label = str(path)
        except FileNotFoundError:
            installed, label = "", f"{path} (missing)"
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read installed file {path}: {e}") from e
        if installed == text:
            continue
        diffs.append(
            "".join(
                difflib.unified_diff(
                    installed.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    fromfile=label,
                    tofile=f"{name} (generated)",
                )
            )
        )
    return diffs
