"""Errors shared by every part of the Python suite."""


class VgpuError(Exception):
    """Base class: a problem the user or admin can fix; printed without a traceback."""

    exit_code = 1


class ConfigError(VgpuError):
    """A configuration file or option is invalid; the message names the field and what to fix."""

    exit_code = 2
