"""The generator's YAML config: yaml.safe_load, then a strict schema check (unknown keys and
out-of-range values are errors naming the field and the allowed values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.gres import hostlist
from slurm_vgpu.gres.device import (
    DEFAULT_ALLOCATION_GRANULARITY,
    Device,
    amd_device_file,
    nvidia_device_file,
)
from slurm_vgpu.gres.sizes import format_size, parse_size

DEFAULT_CONFIG_PATH = Path("/etc/slurm-vgpu/vgpu-gres.yaml")
DEFAULT_SLICES_PER_GPU = 10
MIN_SLICES, MAX_SLICES = 1, 100
# CUDA contexts, cuBLAS workspaces and the driver's own bookkeeping live outside any cap the
# hook enforces; holding this much back per GPU keeps the last slice really usable.
DEFAULT_RESERVED_MEMORY = 512 * 1024 * 1024
DEFAULT_DISCOVERY = "auto"
MAX_GPUS_PER_NODE = 64

Selector = int | str
"""A GPU named by physical index (int), UUID or PCI bus id (str)."""
SELECTOR_ALLOWED = "a list of GPU indices (0, 1, ...), UUIDs (GPU-...) or PCI bus ids"


@dataclass(frozen=True)
class ModelOverride:
    slices_per_gpu: int | None = None
    reserved_memory: int | None = None
    allocation_granularity: int | None = None
    whole: bool = False
    exclude: bool = False


@dataclass(frozen=True)
class NodeGroup:
    """One `nodes:` entry: settings for the nodes its hostlist expression names."""

    position: int
    names: str
    nodes: tuple[str, ...]
    expect_gpus: int | None = None
    gpus: tuple[Device, ...] | None = None
    """A static inventory: these devices instead of discovery."""
    discovery: str | None = None
    slices_per_gpu: int | None = None
    reserved_memory: int | None = None
    exclude: tuple[Selector, ...] | None = None
    whole: tuple[Selector, ...] | None = None

    @property
    def field(self) -> str:
        return f"nodes[{self.position}]"


@dataclass(frozen=True)
class GresConfig:
    slices_per_gpu: int = DEFAULT_SLICES_PER_GPU
    reserved_memory: int = DEFAULT_RESERVED_MEMORY
    discovery: str = DEFAULT_DISCOVERY
    models: Mapping[str, ModelOverride] = field(default_factory=dict)
    exclude: tuple[Selector, ...] = ()
    whole: tuple[Selector, ...] = ()
    nodes: tuple[NodeGroup, ...] = ()
    source: str = "<defaults>"

    def group_for(self, node: str) -> NodeGroup | None:
        for group in self.nodes:
            if node in group.nodes:
                return group
        return None


TOP_KEYS = ("slices_per_gpu", "reserved_memory", "discovery", "models", "exclude", "whole", "nodes")
MODEL_KEYS = ("slices_per_gpu", "reserved_memory", "allocation_granularity", "whole", "exclude")
NODE_KEYS = (
    "names",
    "expect_gpus",
    "gpus",
    "discovery",
    "slices_per_gpu",
    "reserved_memory",
    "exclude",
    "whole",
)
GPU_KEYS = (
    "count",
    "index",
    "uuid",
    "model",
    "memory",
    "compute_units",
    "pci_bus_id",
    "numa_node",
    "allocation_granularity",
    "device_file",
    "vendor",
)


def _mapping(value: object, fld: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{fld}: expected a mapping (key: value), got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{fld}: key {key!r} is not a string")
    return value


def _check_keys(value: Mapping[str, object], allowed: tuple[str, ...], fld: str) -> None:
    for key in value:
        if key not in allowed:
            where = f"{fld}." if fld else ""
            raise ConfigError(f"{where}{key}: unknown key; allowed keys here: {', '.join(allowed)}")


def _int(value: object, fld: str, low: int, high: int | None = None) -> int:
    allowed = f"an integer {low}..{high}" if high is not None else f"an integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{fld}: {value!r} is not an integer; allowed: {allowed}")
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{fld}: {value} is out of range; allowed: {allowed}")
    return value


def _bool(value: object, fld: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{fld}: {value!r} is not a boolean; allowed: true or false")
    return value


def _text(value: object, fld: str, what: str = "a non-empty string") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{fld}: {value!r} is not valid; allowed: {what}")
    # Values end up in gres.conf comments and inventory lines: a newline or '#' there could
    # smuggle in lines of their own.
    if not value.isprintable() or "#" in value:
        raise ConfigError(f"{fld}: {value!r} contains control characters or '#'; allowed: {what}")
    return value.strip()


def _word(value: object, fld: str, what: str) -> str:
    text = _text(value, fld, what)
    if any(ch.isspace() for ch in text):
        raise ConfigError(f"{fld}: {value!r} contains whitespace; allowed: {what}")
    return text


def _slices(value: object, fld: str) -> int:
    return _int(value, fld, MIN_SLICES, MAX_SLICES)


def _granularity(value: object, fld: str) -> int:
    size = parse_size(value, fld)
    if size <= 0 or size & (size - 1):
        raise ConfigError(
            f"{fld}: {value!r} is not a power of two; allowed: a power-of-two size such as 2MiB"
        )
    return size


def _selectors(value: object, fld: str) -> tuple[Selector, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{fld}: expected {SELECTOR_ALLOWED}")
    result: list[Selector] = []
    for i, item in enumerate(value):
        if isinstance(item, int) and not isinstance(item, bool):
            result.append(_int(item, f"{fld}[{i}]", 0, MAX_GPUS_PER_NODE - 1))
        elif isinstance(item, str):
            result.append(_word(item, f"{fld}[{i}]", SELECTOR_ALLOWED))
        else:
            raise ConfigError(f"{fld}[{i}]: {item!r} is not valid; allowed: {SELECTOR_ALLOWED}")
    return tuple(result)


def _model_override(value: object, fld: str) -> ModelOverride:
    data = _mapping(value, fld)
    _check_keys(data, MODEL_KEYS, fld)
    override = ModelOverride(
        slices_per_gpu=_slices(data["slices_per_gpu"], f"{fld}.slices_per_gpu")
        if "slices_per_gpu" in data
        else None,
        reserved_memory=parse_size(data["reserved_memory"], f"{fld}.reserved_memory")
        if "reserved_memory" in data
        else None,
        allocation_granularity=_granularity(
            data["allocation_granularity"], f"{fld}.allocation_granularity"
        )
        if "allocation_granularity" in data
        else None,
        whole=_bool(data.get("whole", False), f"{fld}.whole"),
        exclude=_bool(data.get("exclude", False), f"{fld}.exclude"),
    )
    if override.whole and override.exclude:
        raise ConfigError(f"{fld}: whole and exclude are both true; choose one")
    return override


def _static_gpus(value: object, fld: str) -> tuple[Device, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{fld}: expected a list of GPUs (each with model and memory)")
    devices: list[Device] = []
    for i, item in enumerate(value):
        gfld = f"{fld}[{i}]"
        data = _mapping(item, gfld)
        _check_keys(data, GPU_KEYS, gfld)
        for key in ("model", "memory"):
            if key not in data:
                raise ConfigError(f"{gfld}.{key}: required")
        count = _int(data.get("count", 1), f"{gfld}.count", 1, MAX_GPUS_PER_NODE)
        if count > 1:
            for key in ("index", "uuid", "pci_bus_id", "device_file"):
                if key in data:
                    raise ConfigError(
                        f"{gfld}.{key}: not allowed together with count > 1 "
                        "(it names one GPU); list such GPUs one by one"
                    )
        model = _text(data["model"], f"{gfld}.model", "the model name as the vendor reports it")
        memory = parse_size(data["memory"], f"{gfld}.memory")
        if memory <= 0:
            raise ConfigError(f"{gfld}.memory: must be larger than 0")
        vendor = _word(data.get("vendor", "nvidia"), f"{gfld}.vendor", "a vendor name").lower()
        for _ in range(count):
            index = (
                _int(data["index"], f"{gfld}.index", 0, MAX_GPUS_PER_NODE - 1)
                if "index" in data
                else len(devices)
            )
            device_file = data.get("device_file")
            devices.append(
                Device(
                    index=index,
                    uuid=_word(data["uuid"], f"{gfld}.uuid", "the GPU's UUID")
                    if "uuid" in data
                    else None,
                    model=model,
                    memory_bytes=memory,
                    compute_units=_int(data["compute_units"], f"{gfld}.compute_units", 1)
                    if "compute_units" in data
                    else None,
                    pci_bus_id=_word(
                        data["pci_bus_id"], f"{gfld}.pci_bus_id", "a PCI bus id"
                    ).lower()
                    if "pci_bus_id" in data
                    else None,
                    numa_node=_int(data["numa_node"], f"{gfld}.numa_node", 0)
                    if "numa_node" in data
                    else None,
                    allocation_granularity=_granularity(
                        data["allocation_granularity"], f"{gfld}.allocation_granularity"
                    )
                    if "allocation_granularity" in data
                    else DEFAULT_ALLOCATION_GRANULARITY,
                    device_file=_word(device_file, f"{gfld}.device_file", "a /dev path")
                    if device_file is not None
                    else _default_device_file(vendor, index),
                    vendor=vendor,
                )
            )
    if len(devices) > MAX_GPUS_PER_NODE:
        raise ConfigError(f"{fld}: {len(devices)} GPUs; allowed: at most {MAX_GPUS_PER_NODE}")
    indices = [d.index for d in devices]
    uuids = [d.uuid for d in devices if d.uuid is not None]
    if len(set(indices)) != len(indices):
        raise ConfigError(f"{fld}: two GPUs have the same index; each must be unique")
    if len(set(uuids)) != len(uuids):
        raise ConfigError(f"{fld}: two GPUs have the same uuid; each must be unique")
    return tuple(sorted(devices, key=lambda d: d.index))


def _default_device_file(vendor: str, index: int) -> str | None:
    """Slurm's File= for a static GPU kept whole: /dev/nvidia<index>, or for AMD the DRM
    render node Slurm's own AMD autodetect names (/dev/dri/renderD<128 + index>)."""
    if vendor == "nvidia":
        return nvidia_device_file(index)
    if vendor == "amd":
        return amd_device_file(128 + index)
    return None


def _node_group(value: object, position: int) -> NodeGroup:
    fld = f"nodes[{position}]"
    data = _mapping(value, fld)
    _check_keys(data, NODE_KEYS, fld)
    if "names" not in data:
        raise ConfigError(f"{fld}.names: required (a node name or hostlist like gpu[01-04])")
    raw_names = data["names"]
    if isinstance(raw_names, list):
        parts = [_word(n, f"{fld}.names[{i}]", hostlist.SYNTAX) for i, n in enumerate(raw_names)]
        if not parts:
            raise ConfigError(f"{fld}.names: empty list; allowed: {hostlist.SYNTAX}")
        names = ",".join(parts)
    else:
        names = _word(raw_names, f"{fld}.names", hostlist.SYNTAX)
    nodes = tuple(hostlist.expand(names, f"{fld}.names"))
    if "gpus" in data and "expect_gpus" in data:
        raise ConfigError(
            f"{fld}: give either gpus (a static inventory) or expect_gpus (check on discovery)"
        )
    return NodeGroup(
        position=position,
        names=names,
        nodes=nodes,
        expect_gpus=_int(data["expect_gpus"], f"{fld}.expect_gpus", 0, MAX_GPUS_PER_NODE)
        if "expect_gpus" in data
        else None,
        gpus=_static_gpus(data["gpus"], f"{fld}.gpus") if "gpus" in data else None,
        discovery=_word(data["discovery"], f"{fld}.discovery", "a backend name")
        if "discovery" in data
        else None,
        slices_per_gpu=_slices(data["slices_per_gpu"], f"{fld}.slices_per_gpu")
        if "slices_per_gpu" in data
        else None,
        reserved_memory=parse_size(data["reserved_memory"], f"{fld}.reserved_memory")
        if "reserved_memory" in data
        else None,
        exclude=_selectors(data["exclude"], f"{fld}.exclude") if "exclude" in data else None,
        whole=_selectors(data["whole"], f"{fld}.whole") if "whole" in data else None,
    )


def parse_config(data: object, source: str = "<config>") -> GresConfig:
    """A validated GresConfig from the object yaml.safe_load returned (None: all defaults)."""
    if data is None:
        return GresConfig(source=source)
    top = _mapping(data, "config")
    _check_keys(top, TOP_KEYS, "")
    models: dict[str, ModelOverride] = {}
    raw_models = _mapping(top.get("models", {}) or {}, "models")
    for name, value in raw_models.items():
        models[name.strip()] = _model_override(value, f"models[{name!r}]")
    raw_nodes = top.get("nodes", []) or []
    if not isinstance(raw_nodes, list):
        raise ConfigError("nodes: expected a list of node groups (each with names:)")
    groups = tuple(_node_group(item, i) for i, item in enumerate(raw_nodes))
    owner: dict[str, int] = {}
    for group in groups:
        for node in group.nodes:
            if node in owner:
                raise ConfigError(
                    f"{group.field}.names: node {node} is already in nodes[{owner[node]}]; "
                    "each node may appear in one group only"
                )
            owner[node] = group.position
    config = GresConfig(
        slices_per_gpu=_slices(top["slices_per_gpu"], "slices_per_gpu")
        if "slices_per_gpu" in top
        else DEFAULT_SLICES_PER_GPU,
        reserved_memory=parse_size(top["reserved_memory"], "reserved_memory")
        if "reserved_memory" in top
        else DEFAULT_RESERVED_MEMORY,
        discovery=_word(top["discovery"], "discovery", "a backend name")
        if "discovery" in top
        else DEFAULT_DISCOVERY,
        models=models,
        exclude=_selectors(top["exclude"], "exclude") if "exclude" in top else (),
        whole=_selectors(top["whole"], "whole") if "whole" in top else (),
        nodes=groups,
        source=source,
    )
    _check_overlap(config.exclude, config.whole, "")
    for group in groups:
        _check_overlap(group.exclude or (), group.whole or (), f"{group.field}.")
    return config


def _check_overlap(exclude: tuple[Selector, ...], whole: tuple[Selector, ...], prefix: str) -> None:
    for selector in exclude:
        if selector in whole:
            raise ConfigError(
                f"{prefix}whole: GPU {selector!r} is also in {prefix}exclude; choose one"
            )


def load_config(path: Path) -> GresConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                          f"{e.start}); save it as UTF-8") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    try:
        return parse_config(data, str(path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def describe_defaults() -> str:
    return (
        f"slices_per_gpu={DEFAULT_SLICES_PER_GPU} reserved_memory="
        f"{format_size(DEFAULT_RESERVED_MEMORY)} discovery={DEFAULT_DISCOVERY}"
    )
