"""E-mail over STARTTLS and TLS to a real local SMTP server with its own certificate."""

from __future__ import annotations

import datetime as dt
import shutil
import ssl
import subprocess

import pytest

from engine.context import FixedClock
from engine.notifications.worker import NotificationWorker
from tests.notification_support import START, SmtpSink, notification_settings, open_club_site


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


def deliver_one(tmp_path, db_url, smtp, security, ca_file):
    clock = FixedClock(START)
    settings = notification_settings(smtp, smtp={"security": security, "ca_file": str(ca_file)})
    site = open_club_site(tmp_path, db_url, clock, settings)
    try:
        site.users.create("li", password=None, roles=["manager"])
        site.records.create(site.users.actor("li"), "member", {
            "name": "Zhang Wei", "email": "zhang@example.com", "expiry_date": "2026-06-30"})
        clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
        NotificationWorker(site).run_once()
        table = site.schema.system("crm_outbox")
        with site.engine.connect() as conn:
            return conn.execute(table.select().where(
                table.c.address == "zhang@example.com")).mappings().one()
    finally:
        site.close()


def test_starttls_is_used_and_the_certificate_checked(tmp_path, db_url, certificate):
    cert, context = certificate
    with SmtpSink(tls_context=context, require_starttls=True) as smtp:
        row = deliver_one(tmp_path, db_url, smtp, "starttls", cert)
        assert row["status"] == "sent"
        assert [m["To"] for m in smtp.messages] == ["zhang@example.com"]


def test_tls_from_the_first_byte(tmp_path, db_url, certificate):
    cert, context = certificate
    with SmtpSink(ssl_context=context) as smtp:
        row = deliver_one(tmp_path, db_url, smtp, "tls", cert)
        assert row["status"] == "sent" and len(smtp.messages) == 1


def test_an_unknown_certificate_is_refused_and_nothing_sent(tmp_path, db_url, certificate):
    cert, context = certificate
    other = tmp_path / "other"
    other.mkdir()
    with SmtpSink(tls_context=context, require_starttls=True) as smtp:
        # the system's CA bundle does not know the server's self-signed certificate
        row = deliver_one(other, db_url, smtp, "starttls", "/etc/ssl/certs/ca-certificates.crt")
        assert row["status"] == "pending" and "CERTIFICATE_VERIFY_FAILED" in row["reason"]
        assert smtp.messages == []
