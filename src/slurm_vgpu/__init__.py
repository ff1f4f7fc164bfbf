"""slurm-vgpu: fractional GPU sharing for Slurm."""

from slurm_vgpu._version import __version__

__all__ = ["__version__"]
