"""Per-job utilization summaries (AdminComment), their tracking while jobs run, and `vgpu report`
over sacct.
"""
