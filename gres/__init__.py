"""Device discovery and Slurm configuration generation (installed as slurm_vgpu.gres)."""
