"""``crm serve --workers N``: gunicorn workers sharing nothing but the database and the key."""

from __future__ import annotations

import http.client
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support import open_migrated, write_pack, write_site

METRICS_TOKEN = "metrics-token-for-the-test-0123"


def _status(port: int, path: str, cookie: str) -> int:
    """The status of a GET sending exactly ``cookie`` (a copied cookie; redirects not followed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": cookie})
        return conn.getresponse().status
    finally:
        conn.close()


def _two_at_once(port: int, path: str, cookie: str) -> tuple[int, int]:
    """Two GETs at once, so two workers answer: one holds a half-sent request meanwhile."""
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        held.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
        time.sleep(0.3)  # a worker has taken it and waits for the rest
        other = _status(port, path, cookie)
        held.sendall(f"Cookie: {cookie}\r\nConnection: close\r\n\r\n".encode())
        return int(held.recv(64).split()[1]), other
    finally:
        held.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sessions_hold_across_gunicorn_workers(tmp_path: Path, db_url: str):
    write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": """
        entity: note
        label: {en: Note, zh: 笔记}
        fields:
          title: {type: string, required: true}
        """})
    root = write_site(tmp_path / "site", db_url, ["notes"], pack_paths=["../packs"])
    with open_migrated(root) as site:
        site.users.create("alice", password="password-1", roles=[], is_admin=True)
    port = _free_port()
    crm = Path(sys.executable).parent / "crm"
    # gunicorn reads extra settings from GUNICORN_CMD_ARGS: log each request's worker pid
    env = {**os.environ, "GUNICORN_CMD_ARGS": "--access-logformat 'pid=%(p)s %(r)s %(s)s'",
           "CRM_METRICS_TOKEN": METRICS_TOKEN}
    log = tmp_path / "gunicorn.log"
    server = subprocess.Popen([str(crm), "--site", str(root), "serve", "--workers", "2",
                               "--port", str(port)], stdout=log.open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=10) as ready:
                    assert ready.status == 200
                    break
            except OSError:  # not listening yet, or a worker still booting
                time.sleep(0.2)
        else:
            raise AssertionError("gunicorn did not start")
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(base + "/login").read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        opener.open(base + "/login", urllib.parse.urlencode(
            {"login": "alice", "password": "password-1", "csrf_token": token}).encode())
        for _ in range(200):  # until both workers have served the logged-in user
            with opener.open(base + "/r/note") as response:
                assert response.status == 200 and "/login" not in response.url
            served = set(re.findall(r"pid=<(\d+)> GET /r/note ", log.read_text()))
            if len(served) == 2:
                break
        assert len(served) == 2, f"only workers {served} served 200 requests"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/metrics")
        assert refused.value.code == 401
        asked = urllib.request.Request(base + "/metrics",
                                       headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        metrics = urllib.request.urlopen(asked).read().decode()
        assert "visioncrm_request_seconds" in metrics
        # A copy of the cookie works on both workers until the user's sessions end —
        # ended by a third process — and then on neither.
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        assert _status(port, "/r/note", cookie) == 200
        with open_migrated(root) as site:
            site.users.end_sessions("alice")
        for _ in range(20):
            assert _two_at_once(port, "/r/note", cookie) == (302, 302)
            refused_by = set(re.findall(r"pid=<(\d+)> GET /r/note HTTP/1.1 302", log.read_text()))
            if len(refused_by) == 2:
                break
        assert len(refused_by) == 2, f"only workers {refused_by} refused the ended session"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def test_serve_workers_serves_the_installation_of_crm_sites(tmp_path: Path, db_url: str,
                                                            other_db_url: str):
    """The web unit of several sites sets CRM_SITES, no CRM_SITE, and runs from /."""
    write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": """
        entity: note
        label: {en: Note, zh: 笔记}
        fields:
          title: {type: string, required: true}
        """})
    for name, url in (("acme", db_url), ("beta", other_db_url)):
        open_migrated(write_site(tmp_path / name, url, ["notes"], pack_paths=["../packs"])).close()
    installation = tmp_path / "crm-sites.yaml"
    installation.write_text("sites:\n  - {path: acme, hosts: [crm.acme.cn]}\n"
                            "  - {path: beta, hosts: [crm.beta.cn]}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("CRM_SITE", "CRM_SECRET_KEY")}
    env["CRM_SITES"] = str(installation)
    port = _free_port()
    crm = Path(sys.executable).parent / "crm"
    log = tmp_path / "gunicorn.log"
    server = subprocess.Popen([str(crm), "serve", "--workers", "1", "--port", str(port)],
                              cwd="/", env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)

    def status(host: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as refused:
            return refused.code

    try:
        for _ in range(100):
            try:
                answers = {host: status(host) for host in ("crm.acme.cn", "crm.beta.cn", "x.cn")}
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                time.sleep(0.2)
        else:
            raise AssertionError("gunicorn did not start: " + log.read_text())
        assert answers == {"crm.acme.cn": 200, "crm.beta.cn": 200, "x.cn": 404}
        assert "Serving crm.acme.cn, crm.beta.cn" in log.read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
