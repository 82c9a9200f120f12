"""Numbering patterns such as ``SO-{YYYY}-{#####}`` and ``M{********}``.

The counter runs per *prefix*: the text of the pattern with its date parts
filled in, so ``SO-{YYYY}-{#####}`` starts again at 00001 each year while
``C-{#####}`` never restarts.

A ``{#####}`` counter tells whoever receives a number how many came before
it (a clerk registering a member learns the member count, two numbers a week
apart tell how many joined in between).  A ``{*****}`` counter is *opaque*:
the counter is put through a keyed permutation of the numbers of its width
(:func:`scramble`), so numbers stay unique, without gaps in the counter and
without retries, but their order and size say nothing.  The key is the
site's, kept with the counters (engine.services.records.sequences).  Once the
counter passes the width (99999 for five stars) numbers get longer and are
no longer scrambled: give an opaque counter room.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

_TOKEN = re.compile(r"\{([^{}]*)\}")
_DATE_TOKENS = {"YYYY": "%Y", "YY": "%y", "MM": "%m", "DD": "%d"}
_ROUNDS = 4


class PatternError(ValueError):
    pass


def scramble(number: int, digits: int, key: int) -> int:
    """``number`` through a permutation of ``0 .. 10**digits - 1`` chosen by ``key``.

    A four-round Feistel network over the smallest even number of bits that
    holds the range, walked again until the result falls inside it (a
    permutation of the larger range restricted this way is one of the
    smaller).  Numbers outside the range come back unchanged.
    """
    limit = 10 ** digits
    if not 0 <= number < limit:
        return number
    bits = max(2, (limit - 1).bit_length())
    half = (bits + 1) // 2
    mask = (1 << half) - 1
    secret = key.to_bytes(8, "big", signed=False)
    value = number
    while True:
        left, right = value >> half, value & mask
        for turn in range(_ROUNDS):
            digest = hashlib.blake2b(f"{turn}:{right}".encode(), key=secret, digest_size=8)
            left, right = right, left ^ (int.from_bytes(digest.digest(), "big") & mask)
        value = (left << half) | right
        if value < limit:
            return value


@dataclass(frozen=True)
class SequencePattern:
    source: str
    digits: int
    #: ``{*****}``: the counter is scrambled with the site's key (see :func:`scramble`).
    opaque: bool = False

    def scope(self, on: date) -> str:
        """The counter's key for a date: the pattern with date tokens filled in."""
        return _TOKEN.sub(
            lambda m: on.strftime(_DATE_TOKENS[m.group(1)]) if m.group(1) in _DATE_TOKENS
            else m.group(0),
            self.source,
        )

    def _shown(self, number: int, key: int) -> int:
        return scramble(number, self.digits, key) if self.opaque else number

    def render(self, on: date, number: int, key: int = 0) -> str:
        return _TOKEN.sub(
            lambda m: f"{self._shown(number, key):0{self.digits}d}"
            if m.group(1)[:1] in ("#", "*") else m.group(0),
            self.scope(on),
        )

    def render_many(self, on: date, numbers: Iterable[int], key: int = 0) -> list[str]:
        """:meth:`render` for many numbers of one day, the pattern filled in once (a batch
        of new records takes a block of numbers)."""
        scoped = self.scope(on)
        counters = [m for m in _TOKEN.finditer(scoped) if m.group(1)[:1] in ("#", "*")]
        if len(counters) != 1:
            return [self.render(on, number, key) for number in numbers]
        head, tail = scoped[:counters[0].start()], scoped[counters[0].end():]
        return [f"{head}{self._shown(number, key):0{self.digits}d}{tail}" for number in numbers]


def parse_sequence_pattern(text: str) -> SequencePattern:
    digits = None
    opaque = False
    for match in _TOKEN.finditer(text):
        token = match.group(1)
        if token in _DATE_TOKENS:
            continue
        if token and (set(token) == {"#"} or set(token) == {"*"}):
            if digits is not None:
                raise PatternError("the pattern has more than one counter; use one")
            digits, opaque = len(token), token[0] == "*"
            continue
        raise PatternError(
            f"unknown part '{{{token}}}' in the pattern; use {{YYYY}}, {{YY}}, {{MM}}, {{DD}} "
            "and one counter such as {#####} (or {*****}, which does not show the count)"
        )
    if digits is None:
        raise PatternError("the pattern needs a counter such as {#####}")
    if opaque and digits < 4:
        raise PatternError("an opaque counter {*…} needs at least 4 digits to hide anything")
    if len(text) > 60:
        raise PatternError("the pattern is longer than 60 characters")
    return SequencePattern(source=text, digits=digits, opaque=opaque)
