"""`vgpu gres` subcommands: generate and check."""

from __future__ import annotations

from pathlib import Path

import click

from slurm_vgpu.errors import ConfigError, VgpuError


class FilesDiffer(VgpuError):
    """`check` found installed files that differ from the generated ones (exit code 1)."""

    exit_code = 1


def _common(func: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Generator config (YAML). Default: /etc/slurm-vgpu/vgpu-gres.yaml when it "
            "exists, else built-in defaults (10 slices per GPU, auto discovery: NVML and "
            "ROCm SMI).",
        ),
        click.option(
            "--node",
            metavar="NAME",
            help="Node to generate for (default: this host's short name, as slurmd uses).",
        ),
        click.option(
            "--all-nodes",
            is_flag=True,
            help="Generate one gres.conf and slurm.conf fragment for every node group of the "
            "config (static inventories; no node inventory).",
        ),
        click.option(
            "--discovery",
            metavar="BACKEND",
            help="Discovery backend: auto (default: every vendor whose library answers), "
            "nvml (NVIDIA) or rsmi (AMD ROCm SMI).",
        ),
        click.option(
            "--library",
            metavar="PATH",
            help="Vendor management library to load instead of the system one "
            "(a libnvidia-ml.so.1 or librocm_smi64.so.1; under auto it goes to the vendor "
            "its file name names).",
        ),
        click.option(
            "--sys-root",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("/"),
            show_default=True,
            hidden=True,
        ),
        click.option(
            "--output-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Directory of gres.conf, slurm.conf.fragment and inventory.conf.",
        ),
        click.option(
            "--gres-conf",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Path of gres.conf (overrides --output-dir for this file).",
        ),
        click.option(
            "--slurm-fragment",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Path of the slurm.conf fragment (overrides --output-dir for this file).",
        ),
        click.option(
            "--inventory",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Path of the node inventory (overrides --output-dir for this file; the SPANK "
            "plugin and daemon read /etc/slurm-vgpu/inventory.conf).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run(
    config_path: Path | None,
    node: str | None,
    all_nodes: bool,
    discovery: str | None,
    library: str | None,
    sys_root: Path,
) -> object:
    # Imported here so `vgpu gres --help` stays fast.
    from dataclasses import replace

    from slurm_vgpu.gres.backends import BackendOptions
    from slurm_vgpu.gres.config import DEFAULT_CONFIG_PATH, GresConfig, load_config
    from slurm_vgpu.gres.generate import generate_cluster, generate_local, local_node_name

    if config_path is not None:
        config = load_config(config_path)
    elif DEFAULT_CONFIG_PATH.exists():
        config = load_config(DEFAULT_CONFIG_PATH)
    else:
        config = GresConfig()
    if discovery is not None:
        config = replace(config, discovery=discovery)
    if all_nodes:
        if node is not None:
            raise ConfigError("--node and --all-nodes exclude each other; give one")
        return generate_cluster(config)
    options = BackendOptions(library=library, sys_root=sys_root)
    return generate_local(config, node or local_node_name(), options)


def _targets(
    files: list[str],
    output_dir: Path | None,
    gres_conf: Path | None,
    slurm_fragment: Path | None,
    inventory: Path | None,
) -> dict[str, Path]:
    from slurm_vgpu.gres.generate import GRES_CONF, INVENTORY, SLURM_FRAGMENT

    targets: dict[str, Path] = {}
    if output_dir is not None:
        targets = {name: output_dir / name for name in files}
    for name, path in (
        (GRES_CONF, gres_conf),
        (SLURM_FRAGMENT, slurm_fragment),
        (INVENTORY, inventory),
    ):
        if path is None:
            continue
        if name not in files:
            raise ConfigError(f"--inventory: --all-nodes writes no {name}; generate it on the node")
        targets[name] = path
    return targets


@click.group()
def gres() -> None:
    """Generate and check gres.conf/slurm.conf fragments and the node inventory."""


@gres.command()
@_common
@click.option(
    "--only",
    type=click.Choice(["gres.conf", "slurm.conf.fragment", "inventory.conf"]),
    help="Print only this file (stdout mode).",
)
def generate(
    config_path: Path | None,
    node: str | None,
    all_nodes: bool,
    discovery: str | None,
    library: str | None,
    sys_root: Path,
    output_dir: Path | None,
    gres_conf: Path | None,
    slurm_fragment: Path | None,
    inventory: Path | None,
    only: str | None,
) -> None:
    """Discover GPUs (or read the static inventory) and write or print the Slurm GRES config.

    Prints every file to stdout unless --output-dir or file paths are given; then replaces
    each file atomically. On any error nothing is written and the exit code is 2.
    """
    from slurm_vgpu.gres.generate import Generated, write_files

    generated = _run(config_path, node, all_nodes, discovery, library, sys_root)
    assert isinstance(generated, Generated)
    names = list(generated.files)
    targets = _targets(names, output_dir, gres_conf, slurm_fragment, inventory)
    if targets:
        if only is not None:
            raise ConfigError("--only: applies to printing; drop it or the output paths")
        if output_dir is not None:
            try:
                output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"--output-dir: cannot create {output_dir}: {e}") from e
        subset = {name: generated.files[name] for name in targets}
        write_files(Generated(files=subset, plans=generated.plans), targets)
        for name in subset:
            click.echo(f"vgpu: wrote {targets[name]}", err=True)
        return
    if only is not None:
        if only not in generated.files:
            raise ConfigError(f"--only: --all-nodes writes no {only}; generate it on the node")
        click.echo(generated.files[only], nl=False)
        return
    for i, name in enumerate(names):
        if i:
            click.echo()
        click.echo(f"# ==> {name} <==")
        click.echo(generated.files[name], nl=False)


@gres.command()
@_common
def check(
    config_path: Path | None,
    node: str | None,
    all_nodes: bool,
    discovery: str | None,
    library: str | None,
    sys_root: Path,
    output_dir: Path | None,
    gres_conf: Path | None,
    slurm_fragment: Path | None,
    inventory: Path | None,
) -> None:
    """Compare installed files with what `generate` would write.

    Exit 0 when they match; exit 1 and print a unified diff per differing (or missing) file.
    """
    from slurm_vgpu.gres.generate import Generated, diff_installed

    generated = _run(config_path, node, all_nodes, discovery, library, sys_root)
    assert isinstance(generated, Generated)
    targets = _targets(list(generated.files), output_dir, gres_conf, slurm_fragment, inventory)
    if not targets:
        raise ConfigError(
            "check: nothing to compare; give --output-dir DIR or --gres-conf/--slurm-fragment/"
            "--inventory paths of the installed files"
        )
    subset = Generated(files={n: generated.files[n] for n in targets}, plans=generated.plans)
    diffs = diff_installed(subset, targets)
    for diff in diffs:
        click.echo(diff, nl=False)
    if diffs:
        raise FilesDiffer(
            f"{len(diffs)} of {len(targets)} files differ from what vgpu gres generate "
            "would write; run it with the same options to update them"
        )
    click.echo(f"vgpu: {len(targets)} files up to date", err=True)
