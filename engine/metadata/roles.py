"""Roles declared in YAML (``roles:`` documents): model and checks."""

from __future__ import annotations

from typing import Any

from engine.errors import Problem

#: Document kinds this module builds from.
ROLE_KINDS: tuple[str, ...] = ()


def build_roles(
    documents: list[tuple[str, Any, str]],
    entities: dict[str, Any],
    workflows: dict[str, Any],
    packs: dict[str, Any],
) -> tuple[dict[str, Any], list[Problem]]:
    return {}, []
