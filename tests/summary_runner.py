"""A stand-in for the commands that store job summaries (tests of the daemon's accounting)."""

from __future__ import annotations

from collections.abc import Sequence


class FakeRunner:
    """Answers sacct/scontrol/sacctmgr: records writes in `calls` and reads of the current
    AdminComment (sacct: always none) in `reads`; commands named in `fail` are refused."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []  # writes (scontrol, sacctmgr)
        self.reads: list[list[str]] = []  # sacct reads of the current AdminComment
        self.fail: set[str] = set()

    def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
        if argv[0] == "sacct":
            self.reads.append(list(argv))
            return 0, "\n", ""
        self.calls.append(list(argv))
        if argv[0] in self.fail:
            return 1, "", f"{argv[0]}: refused (fake)"
        return 0, "", ""
