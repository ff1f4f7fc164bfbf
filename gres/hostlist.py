"""Slurm hostlist expressions ("gpu[01-04,07],login1") expanded to node names.

Written from Slurm's documented syntax: top-level commas separate items; an item is literal text
with bracketed range lists; ranges keep the zero padding of their lower bound; several bracket
groups in one item form their cartesian product (rack[1-2]n[1-3]).
"""

from __future__ import annotations

import itertools
import re

from slurm_vgpu.errors import ConfigError

MAX_NODES = 65536  # a typo like n[1-99999999] must not eat the machine's memory
_LITERAL_RE = re.compile(r"^[A-Za-z0-9._-]*$")
_RANGE_RE = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")
SYNTAX = "node names or Slurm hostlist expressions such as gpu[01-04,07] (letters, digits, . _ -)"


def _split_top_level(expr: str, field: str) -> list[str]:
    items: list[str] = []
    depth = 0
    current = ""
    for ch in expr:
        if ch == "[":
            if depth:
                raise ConfigError(f"{field}: nested '[' in {expr!r}; allowed: {SYNTAX}")
            depth = 1
        elif ch == "]":
            if not depth:
                raise ConfigError(f"{field}: unmatched ']' in {expr!r}; allowed: {SYNTAX}")
            depth = 0
        if ch == "," and not depth:
            items.append(current)
            current = ""
        else:
            current += ch
    if depth:
        raise ConfigError(f"{field}: unmatched '[' in {expr!r}; allowed: {SYNTAX}")
    items.append(current)
    return items


def _expand_ranges(body: str, expr: str, field: str) -> list[str]:
    values: list[str] = []
    for part in body.split(","):
        match = _RANGE_RE.match(part.strip())
        if match is None:
            raise ConfigError(f"{field}: bad range {part!r} in {expr!r}; allowed: {SYNTAX}")
        low_text, high_text = match.group(1), match.group(2) or match.group(1)
        low, high = int(low_text), int(high_text)
        if high < low:
            raise ConfigError(f"{field}: range {part!r} in {expr!r} runs backwards")
        if high - low >= MAX_NODES:
            raise ConfigError(f"{field}: range {part!r} in {expr!r} names over {MAX_NODES} nodes")
        width = len(low_text) if low_text.startswith("0") else 0
        values.extend(str(n).zfill(width) for n in range(low, high + 1))
    return values


def _expand_item(item: str, expr: str, field: str) -> list[str]:
    pieces: list[list[str]] = []
    rest = item
    while rest:
        start = rest.find("[")
        literal = rest if start < 0 else rest[:start]
        if not _LITERAL_RE.match(literal):
            raise ConfigError(f"{field}: bad character in {expr!r}; allowed: {SYNTAX}")
        if literal:
            pieces.append([literal])
        if start < 0:
            break
        end = rest.index("]", start)
        pieces.append(_expand_ranges(rest[start + 1 : end], expr, field))
        rest = rest[end + 1 :]
    total = 1
    for choices in pieces:
        total *= len(choices)
    if total > MAX_NODES:
        raise ConfigError(f"{field}: {expr!r} names over {MAX_NODES} nodes")
    return ["".join(combo) for combo in itertools.product(*pieces)]


def expand(expr: str, field: str = "names") -> list[str]:
    """Every node name `expr` denotes, in order, without duplicates."""
    if not expr.strip():
        raise ConfigError(f"{field}: empty node name; allowed: {SYNTAX}")
    names: list[str] = []
    for item in _split_top_level(expr.strip(), field):
        item = item.strip()
        if not item:
            raise ConfigError(f"{field}: empty item in {expr!r}; allowed: {SYNTAX}")
        names.extend(_expand_item(item, expr, field))
    for name in names:
        if not name or name[0] in "-.":
            raise ConfigError(f"{field}: {name!r} (from {expr!r}) is not a valid node name")
    return list(dict.fromkeys(names))
