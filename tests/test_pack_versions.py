"""Version ranges in a pack's dependencies: checked when the packs are resolved."""

from __future__ import annotations

import pytest

from engine.errors import DefinitionError
from engine.metadata.loader import load_registry
from engine.metadata.versions import RangeError, satisfies
from engine.testing import write_pack

ENTITY = {"entities/thing.yaml": "entity: thing\nfields:\n  name: {type: string}\n"}


@pytest.mark.parametrize(("version", "wanted", "ok"), [
    ("1.2.0", ">=1.2.0, <2.0.0", True),
    ("2.0.0", ">=1.2.0, <2.0.0", False),
    ("1.9.3", "^1.2", True),
    ("1.1.9", "^1.2", False),
    ("1.2.7", "~1.2.0", True),
    ("1.3.0", "~1.2.0", False),
    ("0.1.0", "0.1", True),
    ("0.1.1", "!=0.1.1", False),
])
def test_satisfies(version, wanted, ok):
    assert satisfies(version, wanted) is ok


def test_a_range_that_is_not_one_is_refused():
    with pytest.raises(RangeError, match="'about 1' is not a version comparison"):
        satisfies("1.0.0", ">=0.1, about 1")


def _load(tmp_path, base_version, wanted):
    write_pack(tmp_path, "base", ENTITY, version=base_version)
    write_pack(tmp_path, "addon", {}, depends=[{"pack": "base", "version": wanted}])
    return load_registry(["addon"], search_paths=[tmp_path])


def test_a_dependency_in_range_loads(tmp_path):
    registry = _load(tmp_path, "1.4.2", ">=1.2.0, <2.0.0")
    assert registry.packs["addon"].depends == ("base",)
    assert "thing" in registry.entities


def test_a_dependency_out_of_range_is_reported_at_the_manifest_line(tmp_path):
    with pytest.raises(DefinitionError) as caught:
        _load(tmp_path, "2.1.0", "^1.2")
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.path) == (
        "packs/addon/pack.yaml", 3, "depends[0].version")
    assert problem.message.startswith("pack 'addon' needs 'base' ^1.2, but the one found (")
    assert problem.message.endswith("is version 2.1.0; upgrade it, or widen the range")


def test_a_malformed_range_is_reported(tmp_path):
    with pytest.raises(DefinitionError) as caught:
        _load(tmp_path, "1.0.0", "version one")
    (problem,) = caught.value.problems
    assert problem.path == "depends[0].version"
    assert "'version one' is not a version comparison" in problem.message
