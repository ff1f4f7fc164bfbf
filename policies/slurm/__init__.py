"""The Slurm edges: reading and writing slurmctld through squeue/sinfo/scontrol/scancel, vgpu-
slurm-read or pyslurm.
"""
