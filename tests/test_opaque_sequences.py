"""An opaque sequence ({*****}) numbers records without telling how many there are.

A till clerk registers members but must not count them: the membership
pack's member number is ``M{********}``.  Numbers stay unique (single
creates and batches alike), have the declared width, and do not follow the
order of registration; the scrambling key is the site's, kept with the
counters.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.context import FixedClock
from engine.metadata.sequence_pattern import PatternError, parse_sequence_pattern, scramble
from tests.api_support import NOW
from tests.support import open_migrated, write_site


@pytest.mark.parametrize("digits", [4, 5])
def test_scramble_is_a_permutation_of_the_width(digits):
    numbers = [scramble(n, digits, key=987654321) for n in range(10 ** digits)]
    assert sorted(numbers) == list(range(10 ** digits))
    assert numbers[:5] != list(range(5))
    assert [scramble(n, digits, key=1) for n in range(1, 6)] != numbers[1:6]  # keyed
    assert scramble(10 ** digits + 3, digits, key=1) == 10 ** digits + 3  # past the width


@pytest.mark.parametrize("text, error", [
    ("M{***}", "at least 4 digits"),
    ("M{##}{****}", "more than one counter"),
    ("M{*#*#}", "unknown part"),
])
def test_opaque_patterns_that_make_no_sense_are_refused(text, error):
    with pytest.raises(PatternError, match=error):
        parse_sequence_pattern(text)


def test_a_clerk_registering_members_cannot_read_the_count(tmp_path, db_url):
    site = open_migrated(write_site(tmp_path / "site", db_url, ["membership"]),
                         clock=FixedClock(NOW))
    site.users.create("boss", password="correct-horse", roles=["owner"])
    site.users.create("clerk", password="correct-horse", roles=["clerk"])
    boss = site.users.actor("boss")
    store = site.records.create(boss, "store", {"code": "SH01", "name": "上海南京路店"})
    site.users.link("clerk", "store", store["id"])
    clerk = site.users.actor("clerk")
    numbers = [site.records.create(clerk, "member", {
        "name": f"会员{i}", "phone": f"1360000{i:04d}", "home_store": store["id"]})[
        "member_number"] for i in range(5)]
    batch = site.records.create_many(boss, "member", [
        {"name": f"批量{i}", "phone": f"1370000{i:04d}", "home_store": store["id"]}
        for i in range(5)])
    assert batch.errors == [None] * 5
    table = site.schema.table("member")
    with site.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(select(table.c.member_number)
                                             .order_by(table.c.id))]
    assert stored[:5] == numbers
    assert all(re.fullmatch(r"M\d{8}", n) for n in stored)
    assert len(set(stored)) == 10
    assert stored != sorted(stored)  # the order of registration does not show
    assert not any(n.endswith(("0000001", "0000002", "0000005", "0000010")) for n in stored)
    # the counter still counts (no gaps, no retries); the key is kept beside it
    sequences = site.schema.system("crm_sequence")
    with site.engine.connect() as conn:
        rows = dict(conn.execute(select(sequences.c.scope, sequences.c.value)).all())
    assert rows["member.member_number:M{********}"] == 10
    assert "key:member.member_number" in rows
    site.close()
