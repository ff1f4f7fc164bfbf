"""`vgpu daemon`: run the per-node policy daemon (see docs/daemon.md)."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from slurm_vgpu.errors import ConfigError
from slurm_vgpu.policies.decide.config import DEFAULT_CONFIG_PATH, DaemonConfig, load_config

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

log = logging.getLogger("slurm_vgpu.daemon")


def resolve_config(config_path: Path | None) -> DaemonConfig:
    """An explicit --config must exist; without one, the default path is used if present."""
    if config_path is not None:
        return load_config(config_path)
    if DEFAULT_CONFIG_PATH.exists():
        return load_config(DEFAULT_CONFIG_PATH)
    return DaemonConfig()


def apply_overrides(cfg: DaemonConfig, nodes: tuple[str, ...], runtime_dir: str | None,
                    inventory: str | None, metrics_port: int | None) -> DaemonConfig:
    if nodes:
        cfg = dataclasses.replace(cfg, nodes=nodes)
    if runtime_dir:
        cfg = dataclasses.replace(cfg, runtime_dir=runtime_dir)
    if inventory:
        cfg = dataclasses.replace(cfg, inventory_path=inventory)
    if metrics_port is not None:
        if not 0 <= metrics_port <= 65535:
            raise ConfigError(f"--metrics-port: expected 0..65535, got {metrics_port}")
        cfg = dataclasses.replace(cfg, metrics=dataclasses.replace(cfg.metrics,
                                                                   port=metrics_port))
    return cfg


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help=f"YAML config (default {DEFAULT_CONFIG_PATH} if present).")
@click.option("--node", "nodes", multiple=True, help="Slurm node to manage (repeatable).")
@click.option("--runtime-dir", default=None, help="Override runtime_dir.")
@click.option("--inventory", default=None, help="Override the inventory path.")
@click.option("--metrics-port", type=int, default=None, help="Override metrics.port.")
@click.option("--once", is_flag=True, help="Run one control cycle and exit.")
@click.option("--dry-run", is_flag=True, help="Plan and log actions without applying them.")
@click.option("--check-config", is_flag=True, help="Validate the config and exit.")
def daemon(config_path: Path | None, nodes: tuple[str, ...], runtime_dir: str | None,
           inventory: str | None, metrics_port: int | None, once: bool, dry_run: bool,
           check_config: bool) -> None:
    """Run the per-node policy daemon: share adjustment, backfill, packing, backstop, metrics.
    Every instance reads Slurm itself; large clusters run `vgpu agent` + `vgpu controller`."""
    serve(config_path, nodes, runtime_dir, inventory, metrics_port, once, dry_run,
          check_config, agent=False)


def serve(config_path: Path | None, nodes: tuple[str, ...], runtime_dir: str | None,
          inventory: str | None, metrics_port: int | None, once: bool, dry_run: bool,
          check_config: bool, agent: bool) -> None:
    """Run the daemon, or the node agent (its Slurm facts from the cluster controller)."""
    cfg = apply_overrides(resolve_config(config_path), nodes, runtime_dir, inventory,
                          metrics_port)
    if agent and cfg.exchange.dir is None:
        raise ConfigError("exchange.dir: the node agent needs the exchange directory shared "
                          "with the cluster controller (docs/daemon.md)")
    if check_config:
        click.echo("vgpu: config OK")
        return
    _setup_logging(cfg, "slurm_vgpu.daemon")
    from slurm_vgpu.policies.service.daemon import Daemon, build_daemon

    d: Daemon
    if agent:
        from slurm_vgpu.policies.service.agent import build_agent

        d = build_agent(cfg, dry_run=dry_run)
    else:
        d = build_daemon(cfg, dry_run=dry_run)
    stop, reload = _signal_controls(log, lambda: apply_overrides(
        resolve_config(config_path), nodes, runtime_dir, inventory, metrics_port))
    if cfg.metrics.enabled and not once:
        from slurm_vgpu.policies.service.metrics import DaemonCollector

        _serve_metrics(cfg, DaemonCollector(d.state))
        log.info("vgpu: metrics on http://%s:%d/metrics", cfg.metrics.address, cfg.metrics.port)
    log.info("vgpu: %s managing %s every %.1fs", "node agent" if agent else "daemon",
             ",".join(d.observer.node_names), cfg.control_period_seconds)
    d.run(stop, max_cycles=1 if once else None, reload=reload)


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help=f"YAML config (default {DEFAULT_CONFIG_PATH} if present).")
@click.option("--node", "nodes", multiple=True, help="This node's Slurm name.")
@click.option("--runtime-dir", default=None, help="Override runtime_dir.")
@click.option("--inventory", default=None, help="Override the inventory path.")
@click.option("--metrics-port", type=int, default=None, help="Override metrics.port.")
@click.option("--once", is_flag=True, help="Run one control cycle and exit.")
@click.option("--dry-run", is_flag=True, help="Plan and log actions without applying them.")
@click.option("--check-config", is_flag=True, help="Validate the config and exit.")
def agent(config_path: Path | None, nodes: tuple[str, ...], runtime_dir: str | None,
          inventory: str | None, metrics_port: int | None, once: bool, dry_run: bool,
          check_config: bool) -> None:
    """Run the node agent: the daemon's node-local work, no Slurm reads (the cluster
    controller tells it its jobs through exchange.dir)."""
    serve(config_path, nodes, runtime_dir, inventory, metrics_port, once, dry_run,
          check_config, agent=True)


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help=f"YAML config (default {DEFAULT_CONFIG_PATH} if present).")
@click.option("--metrics-port", type=int, default=None, help="Override metrics.port.")
@click.option("--once", is_flag=True, help="Run one cycle and exit.")
@click.option("--dry-run", is_flag=True, help="Read and log what it would do; write nothing.")
@click.option("--check-config", is_flag=True, help="Validate the config and exit.")
def controller(config_path: Path | None, metrics_port: int | None, once: bool, dry_run: bool,
               check_config: bool) -> None:
    """Run the cluster controller: reads Slurm once per period for all node agents."""
    cfg = apply_overrides(resolve_config(config_path), (), None, None, metrics_port)
    if cfg.exchange.dir is None:
        raise ConfigError("exchange.dir: the cluster controller needs the exchange directory "
                          "shared with the node agents (docs/daemon.md)")
    if check_config:
        click.echo("vgpu: config OK")
        return
    clog = logging.getLogger("slurm_vgpu.controller")
    _setup_logging(cfg, clog.name)
    from slurm_vgpu.policies.service.controller import build_controller

    c = build_controller(cfg, dry_run=dry_run)
    stop, reload = _signal_controls(clog, lambda: apply_overrides(
        resolve_config(config_path), (), None, None, metrics_port))
    if cfg.metrics.enabled and not once:
        from slurm_vgpu.policies.service.metrics import ControllerCollector

        _serve_metrics(cfg, ControllerCollector(c.state))
    clog.info(
        "vgpu: cluster controller every %.1fs through %s", cfg.control_period_seconds,
        cfg.exchange.dir)
    c.run(stop, max_cycles=1 if once else None, reload=reload)


def _setup_logging(cfg: DaemonConfig, logger: str) -> None:
    level = getattr(logging, cfg.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger(logger).setLevel(level)


def _signal_controls(logger: logging.Logger, reread: Callable[[], DaemonConfig]
                     ) -> tuple[threading.Event, Callable[[], DaemonConfig | None]]:
    """SIGTERM/SIGINT set the returned stop event; SIGHUP makes the returned reload() re-read
    the config before the next cycle (a bad file is reported and the running config kept)."""
    stop = threading.Event()
    hangup = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("vgpu: signal %d: stopping", signum)
        stop.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        hangup.set()  # applied before the next cycle

    def reload() -> DaemonConfig | None:
        if not hangup.is_set():
            return None
        hangup.clear()
        try:
            return reread()
        except ConfigError as e:
            logger.error("vgpu: reload refused, keeping the running config: %s", e)
            return None

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    return stop, reload


def _serve_metrics(cfg: DaemonConfig, collector: Collector) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        start_http_server(cfg.metrics.port, addr=cfg.metrics.address, registry=registry)
    except OSError as e:
        raise ConfigError(f"metrics.port: cannot listen on {cfg.metrics.address}:"
                          f"{cfg.metrics.port}: {e.strerror or e}") from e
