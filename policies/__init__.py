"""Policy daemon, accounting and trace simulator (installed as slurm_vgpu.policies)."""
