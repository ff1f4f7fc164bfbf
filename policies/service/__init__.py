"""The running daemon and its node-side edges: `vgpu daemon`/`agent`/`controller`, observation
(per-job files through the hook's binding, NVML, /proc), applying plans, the exchange between
agents and controller, Prometheus metrics, `vgpu status`.
"""
