"""What every benchmark shares: timing, the machine's description, and result files.

Machines are shared and noisy, so a cost of the engine is always reported as
a ratio against a baseline measured in the same process, in the same run.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

RESULTS_DIR = Path(__file__).parent / "results"


def machine(database_urls: Iterable[str] = ()) -> dict[str, Any]:
    """What the figures were measured on: the hardware, the software, and how busy it was
    (the load average: figures taken beside other work are noisier, ratios less so)."""
    import sqlite3

    import sqlalchemy

    found: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        if hasattr(os, "sysconf") else None,
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite3.sqlite_version,
    }
    for url in database_urls:
        found["postgresql"] = _server_version(url)
    if hasattr(os, "getloadavg"):
        found["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    return found


def _server_version(url: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    except Exception as exc:  # the figures still say what was asked for
        return f"unreachable ({exc.__class__.__name__})"
    finally:
        engine.dispose()


def best_of(func: Callable[[], Any], repeat: int = 5) -> float:
    """The fastest of several runs, in seconds: the least disturbed by other load."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return {"p50": pick(0.5), "p95": pick(0.95), "mean": statistics.fmean(ordered)}


def write_result(name: str, figures: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), "figures": figures,
               "argv": sys.argv[1:]}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def print_table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n## {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


@contextlib.contextmanager
def scratch_database(url: str | None, tmp: Path) -> Iterator[str]:
    """A URL to an empty database: a temporary SQLite file, or a throw-away
    PostgreSQL schema inside the given database (dropped afterwards), so a
    benchmark never touches existing tables."""
    if not url:
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    if not url.startswith("postgresql"):
        yield url
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _captured(run: Callable[..., Any], *args: Any) -> tuple[Any, str]:
    """In the fresh process: the benchmark's result and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = run(*args)
    return result, printed.getvalue()


def isolated(run: Callable[..., Any], *args: Any) -> Any:
    """``run(*args)`` in a fresh Python process; what it prints is printed here."""
    with ProcessPoolExecutor(max_workers=1,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        result, printed = pool.submit(_captured, run, *args).result()
    sys.stdout.write(printed)
    return result
