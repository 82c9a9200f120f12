"""Numbering patterns such as ``SO-{YYYY}-{#####}``.

The counter runs per *prefix*: the text of the pattern with its date parts
filled in, so ``SO-{YYYY}-{#####}`` starts again at 00001 each year while
``C-{#####}`` never restarts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

_TOKEN = re.compile(r"\{([^{}]*)\}")
_DATE_TOKENS = {"YYYY": "%Y", "YY": "%y", "MM": "%m", "DD": "%d"}


class PatternError(ValueError):
    pass


@dataclass(frozen=True)
class SequencePattern:
    source: str
    digits: int

    def scope(self, on: date) -> str:
        """The counter's key for a date: the pattern with date tokens filled in."""
        return _TOKEN.sub(
            lambda m: on.strftime(_DATE_TOKENS[m.group(1)]) if m.group(1) in _DATE_TOKENS
            else m.group(0),
            self.source,
        )

    def render(self, on: date, number: int) -> str:
        return _TOKEN.sub(
            lambda m: f"{number:0{self.digits}d}" if m.group(1).startswith("#")
            else m.group(0),
            self.scope(on),
        )

    def render_many(self, on: date, numbers: Iterable[int]) -> list[str]:
        """:meth:`render` for many numbers of one day, the pattern filled in once (a batch
        of new records takes a block of numbers)."""
        scoped = self.scope(on)
        counters = [m for m in _TOKEN.finditer(scoped) if m.group(1).startswith("#")]
        if len(counters) != 1:
            return [self.render(on, number) for number in numbers]
        head, tail = scoped[:counters[0].start()], scoped[counters[0].end():]
        return [f"{head}{number:0{self.digits}d}{tail}" for number in numbers]


def parse_sequence_pattern(text: str) -> SequencePattern:
    digits = None
    for match in _TOKEN.finditer(text):
        token = match.group(1)
        if token in _DATE_TOKENS:
            continue
        if token and set(token) == {"#"}:
            if digits is not None:
                raise PatternError("the pattern has more than one {#…} counter; use one")
            digits = len(token)
            continue
        raise PatternError(
            f"unknown part '{{{token}}}' in the pattern; use {{YYYY}}, {{YY}}, {{MM}}, {{DD}} "
            "and one counter such as {#####}"
        )
    if digits is None:
        raise PatternError("the pattern needs a counter such as {#####}")
    if len(text) > 60:
        raise PatternError("the pattern is longer than 60 characters")
    return SequencePattern(source=text, digits=digits)
