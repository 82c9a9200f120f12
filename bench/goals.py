"""The suite's goals, checked against the figures of one run (``python -m bench`` prints them).

A goal is a ratio against a baseline measured in the same run, or a figure
the issue tracker set (import rows per second); each row says the measure,
the goal, what was found and whether it is met, so a missed goal is read
with the size of the miss.  Why a goal is missed is for the person reading
the profile; ``bench/results/NOTES.md`` keeps that explanation next to the
figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

Results = Mapping[str, Any]
Row = tuple[str, str, str, str]


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _at_most(label: str, goal: float, found: float | None, unit: str = "×") -> Row:
    if found is None:
        return (label, f"≤ {goal:g}{unit}", "not measured", "—")
    return (label, f"≤ {goal:g}{unit}", f"{found:.2f}{unit}",
            "met" if found <= goal else f"missed by {found / goal:.2f}×")


def _at_least(label: str, goal: float, found: float | None, unit: str) -> Row:
    if found is None:
        return (label, f"≥ {goal:,.0f} {unit}", "not measured", "—")
    return (label, f"≥ {goal:,.0f} {unit}", f"{found:,.0f} {unit}",
            "met" if found >= goal else f"missed by {goal / found:.2f}×")


def _records(backend: str, figures: Results) -> Iterator[Row]:
    for label in ("create, one per transaction", "get by id", "update, one per transaction"):
        yield _at_most(f"record {label} vs Core ({backend})", 1.5,
                       _get(figures, label, "ratio"))
    # The same goals against the baselines that do what the service must do (a connection
    # per call; read, update and audit): shown beside the rows above, never instead of them.
    for label in ("get by id, vs Core with a connection per get",
                  "update, one per transaction, vs read + update + audit by hand"):
        yield _at_most(f"record {label} ({backend})", 1.5, _get(figures, label, "ratio"))


def _api(backend: str, figures: Results) -> Iterator[Row]:
    for label in ("API create", "API list (filter, sort, 50 rows)"):
        yield _at_most(f"{label} vs hand-written Flask ({backend})", 1.5,
                       _get(figures, label, "ratio_p50"))


def _import(backend: str, figures: Results) -> Iterator[Row]:
    if backend == "sqlite":
        yield _at_least("import, validated rows/s, wall clock (sqlite)", 10_000,
                        _get(figures, "import_rows_per_s"), "rows/s")
        yield _at_least("import, validated rows/s, CPU time (sqlite)", 10_000,
                        _get(figures, "import_rows_per_cpu_s"), "rows/s")
    peaks = _get(figures, "export_peak_mib") or {}
    if len(peaks) == 2:
        small, large = (peaks[k] for k in sorted(peaks, key=int))
        yield _at_most(f"export peak memory, 10× the rows ({backend})", 1.5,
                       large / small if small else None)


def _scale(backend: str, figures: Results) -> Iterator[Row]:
    sizes = sorted(_get(figures, "by_size") or {}, key=int)
    if len(sizes) < 2:
        return
    first, last = sizes[0], sizes[-1]
    growth = f"{int(first):,} → {int(last):,}"
    for reader in ("salesperson (own)", "owner (all)"):
        label = f"list · service · {reader}"
        a = _get(figures, "by_size", first, label, "engine_ms", "p50")
        b = _get(figures, "by_size", last, label, "engine_ms", "p50")
        yield _at_most(f"indexed list page p50 growth, {growth} ({reader}, {backend})", 2.0,
                       b / a if a and b else None)
    for label in ("weighted pipeline by stage · owner", "weighted pipeline by owner · owner",
                  "won/lost by month (12) · owner"):
        yield _at_most(f"{label} vs Core GROUP BY at {int(last):,} ({backend})", 1.5,
                       _get(figures, "by_size", last, label, "ratio_p50"))


CHECKS: dict[str, Callable[[str, Results], Iterator[Row]]] = {
    "records": _records, "api": _api, "import": _import, "scale": _scale,
}


def goal_rows(results: Mapping[tuple[str, str], Results]) -> list[Row]:
    """Rows of the goals table from ``{(benchmark, backend): figures}``."""
    rows: list[Row] = []
    for (name, backend), figures in results.items():
        check = CHECKS.get(name)
        if check is not None and figures:
            rows.extend(check(backend, figures))
    return rows
