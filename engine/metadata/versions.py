"""Pack versions and the version ranges a pack may require of the packs it depends on.

Versions are ``major.minor.patch`` (the manifest schema enforces it).  A
range is one or more comparisons separated by commas, all of which must
hold: ``>=1.2.0, <2.0.0``; ``^1.2`` means "1.2 or later, below 2";
``~1.2.0`` means "1.2.0 or later, below 1.3".  Missing parts count as 0.
"""

from __future__ import annotations

import re

Version = tuple[int, int, int]
_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<|\^|~)?\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$")
_OPERATORS = {
    ">=": lambda v, w: v >= w, "<=": lambda v, w: v <= w, ">": lambda v, w: v > w,
    "<": lambda v, w: v < w, "==": lambda v, w: v == w, "!=": lambda v, w: v != w,
}


class RangeError(ValueError):
    """A version range that cannot be read; the message says what is expected."""


def parse_version(text: str) -> Version:
    match = _COMPARISON.match(text)
    if match is None or match.group(1):
        raise RangeError(f"'{text}' is not a version such as 1.2.0")
    return (int(match.group(2)), int(match.group(3) or 0), int(match.group(4) or 0))


def _comparisons(text: str) -> list[tuple[str, Version]]:
    found: list[tuple[str, Version]] = []
    for part in text.split(","):
        match = _COMPARISON.match(part)
        if match is None:
            raise RangeError(
                f"'{part.strip()}' is not a version comparison; write for example '>=1.2.0', "
                "'<2.0.0', '^1.2' or '~1.2.0', separated by commas")
        op, major, minor, patch = match.groups()
        version = (int(major), int(minor or 0), int(patch or 0))
        if op == "^":
            found += [(">=", version), ("<", (version[0] + 1, 0, 0))]
        elif op == "~":
            found += [(">=", version), ("<", (version[0], version[1] + 1, 0))]
        else:
            found.append((op or "==", version))
    return found


def check_range(text: str) -> None:
    """Raise :class:`RangeError` when ``text`` is not a range."""
    _comparisons(text)


def satisfies(version: str, text: str) -> bool:
    """Whether ``version`` is inside the range ``text``."""
    have = parse_version(version)
    return all(_OPERATORS[op](have, wanted) for op, wanted in _comparisons(text))
