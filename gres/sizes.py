"""Memory sizes in configs: plain byte counts or numbers with a binary unit."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from slurm_vgpu.errors import ConfigError

UNITS: dict[str, int] = {
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}
ALLOWED = "a byte count (integer) or a number with a unit B, KiB, MiB, GiB or TiB (e.g. 2GiB)"
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: object, field: str) -> int:
    """Bytes from an int or a string like "1.5GiB"; errors name `field` and the allowed forms."""
    if isinstance(value, bool):
        raise ConfigError(f"{field}: {value!r} is not a size; allowed: {ALLOWED}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{field}: {value} is negative; allowed: {ALLOWED}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{field}: {value!r} is not a size; allowed: {ALLOWED}")
    match = _SIZE_RE.match(value)
    if match is None:
        raise ConfigError(f"{field}: {value!r} is not a size; allowed: {ALLOWED}")
    number, unit = match.groups()
    unit = unit or "B"
    if unit not in UNITS:
        hint = ""
        if unit.upper() in {"K", "M", "G", "T", "KB", "MB", "GB", "TB"}:
            hint = f" (write {unit[0].upper()}iB for binary units; decimal units are not accepted)"
        raise ConfigError(f"{field}: unknown unit {unit!r} in {value!r}{hint}; allowed: {ALLOWED}")
    try:
        amount = Decimal(number) * UNITS[unit]
    except InvalidOperation as e:  # pragma: no cover - the regex admits only valid decimals
        raise ConfigError(f"{field}: {value!r} is not a size; allowed: {ALLOWED}") from e
    return int(amount)


def format_size(nbytes: int) -> str:
    """The largest binary unit that divides the size exactly ("1536MiB", "80GiB")."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if nbytes and nbytes % UNITS[unit] == 0:
            return f"{nbytes // UNITS[unit]}{unit}"
    return f"{nbytes}B"
