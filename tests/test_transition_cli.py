"""Stage flows from the command line: the core pack's sales process through `crm record`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args, ok=True, **kwargs):
    result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False, **kwargs)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def site_dir(tmp_path, runner, db_url):
    folder = tmp_path / "acme"
    invoke(runner, "init", folder, "--pack", "core", "--database-url", db_url,
           "--admin-password", "correct-horse")
    invoke(runner, "--site", folder, "record", "create", "customer", "name=华信科技有限公司")
    invoke(runner, "--site", folder, "record", "create", "opportunity", "name=机房改造",
           "customer=1")
    return folder


def test_update_cannot_change_the_stage(site_dir, runner):
    result = invoke(runner, "--site", site_dir, "record", "update", "opportunity", "1",
                    "stage=needs", ok=False)
    assert result.exit_code == 1
    assert ("stage: The stage changes only through a transition: take 'Needs confirmed' to "
            "move to 'Needs confirmed'.") in result.output
    result = invoke(runner, "--site", site_dir, "record", "create", "opportunity", "name=x",
                    "customer=1", "stage=won", ok=False)
    assert "stage: A new Opportunity starts in the stage 'Initial contact'" in result.output


def test_transitions_lists_what_can_be_taken(site_dir, runner):
    output = invoke(runner, "--site", site_dir, "record", "transitions", "opportunity", "1").output
    assert "opportunity 1 is in Initial contact (initial, open), version 1." in output
    assert "+ needs          Needs confirmed   [confirm_needs]" in output
    assert "give on the way: amount" in output
    assert "give on the way: lost_reason" in output
    data = json.loads(invoke(runner, "--site", site_dir, "record", "transitions", "opportunity",
                             "1", "--json").output)
    assert data["stage"] == "initial"
    assert [t["to"] for t in data["transitions"]] == ["needs", "proposal", "lost"]


def test_transition_moves_refuses_and_confirms(site_dir, runner):
    result = invoke(runner, "--site", site_dir, "record", "transition", "opportunity", "1",
                    "proposal", ok=False)
    assert result.exit_code == 1
    assert "cannot move from 'Initial contact' to 'Proposal'" in result.output
    assert "Fill in before moving to 'Proposal': Amount." in result.output
    assert "amount: This field is required." in result.output
    moved = invoke(runner, "--site", site_dir, "record", "transition", "opportunity", "1",
                   "proposal", "amount=800000", "--comment", "方案已提交", "--version", "1")
    assert "Moved opportunity 1 from Initial contact to Proposal (version 2)." in moved.output
    stale = invoke(runner, "--site", site_dir, "record", "transition", "opportunity", "1",
                   "negotiation", "--version", "1", ok=False)
    assert "changed by someone else" in stale.output
    # 'lose' asks for a confirmation: answering no changes nothing
    declined = invoke(runner, "--site", site_dir, "record", "transition", "opportunity", "1",
                      "lost", "lost_reason=price", input="n\n", ok=False)
    assert "Close this opportunity as lost?" in declined.output and declined.exit_code == 1
    lost = json.loads(invoke(runner, "--site", site_dir, "record", "transition", "opportunity",
                             "1", "lost", "lost_reason=price", "--yes", "--json").output)
    assert (lost["stage"], lost["lost_reason"], lost["probability"]) == ("lost", "price", 0)
    history = invoke(runner, "--site", site_dir, "record", "history", "opportunity", "1").output
    assert 'transition stage: "proposal" → "lost"' in history
