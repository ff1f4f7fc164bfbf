"""The trace simulator (`vgpu simulate`): traces, static and dynamic replays, the product's
placement as the simulator models it, plots. Imports no daemon I/O and no Slurm client
(tests/test_layout.py checks it).
"""
