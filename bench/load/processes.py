"""Starting and stopping the servers of the load test: gunicorn via ``crm serve --workers``,
``crm worker`` processes, and ``crm migrate`` from another process.

Everything binds to 127.0.0.1; every process started here is stopped here,
by its own id, whatever happens in between.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CRM = str(Path(sys.executable).parent / "crm")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_available(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means: run the workers without Redis
        return False


def _stop(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_ready(base_url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        with contextlib.suppress(OSError), \
                urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{base_url}/readyz did not answer 200 within {timeout:.0f} s")


@contextlib.contextmanager
def serving(root: Path, *, web_workers: int, queue_workers: int, redis_url: str | None,
            logs: Path) -> Iterator[str]:
    """gunicorn with ``web_workers`` workers plus ``queue_workers`` ``crm worker`` processes;
    yields the base URL once ``/readyz`` answers."""
    port = free_port()
    env = dict(os.environ)
    env.pop("CRM_SITES", None)
    metrics = logs / f"metrics-{web_workers}"
    metrics.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    if redis_url:
        env["CRM_REDIS_URL"] = redis_url
    processes: list[subprocess.Popen] = []
    try:
        with open(logs / f"web-{web_workers}.log", "ab") as log:
            web = subprocess.Popen(
                [CRM, "--site", str(root), "serve", "--workers", str(web_workers),
                 "--host", "127.0.0.1", "--port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        processes.append(web)
        for n in range(queue_workers):
            with open(logs / f"worker-{web_workers}-{n}.log", "ab") as log:
                processes.append(subprocess.Popen(
                    [CRM, "--site", str(root), "worker", "--poll", "1"],
                    stdout=log, stderr=subprocess.STDOUT, env=env))
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, web)
        yield base
    finally:
        for process in reversed(processes):
            _stop(process)


def migrate(root: Path, logs: Path) -> tuple[int, str]:
    """``crm migrate`` in a process of its own, as an operator on another machine would."""
    done = subprocess.run([CRM, "--site", str(root), "migrate"], capture_output=True, text=True,
                          timeout=300)
    (logs / "migrate.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    return done.returncode, (done.stdout + done.stderr)[-2000:]
