"""How several workers share the work: alone, or through Redis.

The outbox table is the queue of record: a message exists once (unique
key) and is claimed by one worker at a time (row claiming), whatever
coordinates the workers.  So a second store of messages (an RQ or Celery
queue) would only add a copy that can disagree with the table after a
crash.  What several workers on several machines need besides is:

- *one scan at a time*: the reminder scan is idempotent but costs queries;
  with Redis, a worker scans only when it wins ``SET key NX PX`` for the
  scan interval, so the cluster scans once per interval whoever is up;
- *waking up*: a worker that wrote messages pushes a token onto a Redis
  list; idle workers block on it (``BLPOP``) instead of waiting for their
  next poll.

:class:`LocalCoordinator` is the default without Redis: every worker
scans on its own interval and polls; still nothing is sent twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from typing import Protocol


class Coordinator(Protocol):
    def scan_turn(self, every: dt.timedelta) -> bool: ...

    def wake(self, workers: int = 1) -> None: ...

    def wait(self, seconds: float) -> None: ...


class LocalCoordinator:
    """One worker on its own: scans on its interval, sleeps between polls."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self._last_scan: float | None = None

    def scan_turn(self, every: dt.timedelta) -> bool:
        now = time.monotonic()
        if self._last_scan is not None and now - self._last_scan < every.total_seconds():
            return False
        self._last_scan = now
        return True

    def wake(self, workers: int = 1) -> None:
        """Nobody else to wake."""

    def wait(self, seconds: float) -> None:
        self.stop.wait(seconds)


#: Seconds any Redis reply may take. A ``BLPOP`` waits at most ``BLOCK_MARGIN`` less: a
#: socket timeout no longer than the block (redis-py 8 defaults to 5 s, the default
#: ``crm worker --poll``) would end every idle wait in a TimeoutError and stop the worker.
SOCKET_TIMEOUT = 30
BLOCK_MARGIN = 5


class RedisCoordinator:
    """Workers sharing one site through Redis (see the module docstring)."""

    def __init__(self, url: str, namespace: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT,
                                          socket_connect_timeout=BLOCK_MARGIN)
        self.scan_key = f"{namespace}:scan"
        self.wake_key = f"{namespace}:wake"

    @staticmethod
    def namespace_for(database_url: str) -> str:
        """Keys per site database, so sites sharing a Redis never meet."""
        return "visioncrm:" + hashlib.sha256(database_url.encode()).hexdigest()[:16]

    def scan_turn(self, every: dt.timedelta) -> bool:
        millis = max(1, int(every.total_seconds() * 1000))
        return bool(self.redis.set(self.scan_key, b"1", nx=True, px=millis))

    def wake(self, workers: int = 1) -> None:
        with self.redis.pipeline() as pipe:
            pipe.rpush(self.wake_key, *([b"1"] * max(1, workers)))
            pipe.ltrim(self.wake_key, -100, -1)
            pipe.execute()

    def wait(self, seconds: float) -> None:
        block = min(max(1, int(round(seconds))), SOCKET_TIMEOUT - BLOCK_MARGIN)
        self.redis.blpop([self.wake_key], timeout=block)
