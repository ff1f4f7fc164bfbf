"""Pure decision code: the snapshot the policies see, the policies (share, backfill, packing,
backstop), the planner and the config they read. Imports no Slurm client, no NVML, no cffi
binding and no daemon I/O (tests/test_layout.py checks it).
"""
