"""Real servers and a small club pack for the reminder tests.

:class:`SmtpSink` is a real SMTP server (aiosmtpd) on a free local port
that keeps what it receives and can be told to refuse; :class:`SmsGateway`
is a local HTTP server standing in for an SMS provider, which keeps the
requests, can fail, and drops copies carrying an idempotency key it has
already seen (as gateways that accept such keys do).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller

from engine.context import FixedClock
from engine.site import Site
from tests.support import open_migrated, write_pack, write_site

# 2026-05-25 10:00 in Shanghai
START = dt.datetime(2026, 5, 25, 2, 0, tzinfo=dt.UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink:
    """A real SMTP server; ``refuse`` (e.g. "451 4.3.0 Try later") makes it refuse DATA."""

    def __init__(self, **server: Any) -> None:
        """``server``: aiosmtpd options, e.g. tls_context + require_starttls for STARTTLS,
        ssl_context for TLS from the first byte."""
        self.messages: list[Message] = []
        self.attempts = 0
        self.refuse: str | None = None
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **server)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.attempts += 1
            if self.refuse:
                return self.refuse
            message = message_from_bytes(envelope.content)
            message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class SmsGateway:
    """An HTTP SMS gateway: keeps each accepted message; ``fail_with`` answers an error."""

    def __init__(self, token: str = "secret-token") -> None:
        self.accepted: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_with: int | None = None
        self.token = token
        self.keys: set[str] = set()
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with gateway.lock:
                    gateway.requests += 1
                    status = gateway.fail_with
                    if self.headers.get("Authorization") != f"Bearer {gateway.token}":
                        status = 401
                    key = self.headers.get("Idempotency-Key")
                    if status is None and not (key and key in gateway.keys):
                        gateway.accepted.append(json.loads(body))
                        if key:
                            gateway.keys.add(key)
                self.send_response(status or 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status is None else b'{"error": "no"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SmsGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


CLUB_FILES = {
    "entities/member.yaml": """
        entity: member
        label: {en: Member, zh: 会员}
        title_field: name
        fields:
          name: {type: string, required: true, label: {en: Name, zh: 姓名}}
          email: {type: email}
          mobile: {type: phone}
          email_opt_in: {type: boolean, default: true}
          sms_opt_in: {type: boolean, default: true}
          status:
            type: choice
            default: active
            label: {en: Status, zh: 状态}
            choices: {active: {en: Active, zh: 有效}, lapsed: {en: Lapsed, zh: 已失效}}
          expiry_date: {type: date}
          birthday: {type: date}
    """,
    "entities/invoice.yaml": """
        entity: invoice
        fields:
          number: {type: string, required: true}
          member: {type: reference, to: member}
          due_date: {type: date}
          paid: {type: boolean, default: false}
    """,
    "roles.yaml": """
        roles:
          manager:
            label: {en: Manager, zh: 经理}
            entities:
              "*": {rights: all, scope: all}
          staff:
            label: {en: Staff, zh: 员工}
            entities:
              "*": {rights: all, scope: all}
    """,
    "reminders/membership_expiry.yaml": """
        reminder: membership_expiry
        entity: member
        label: {en: Membership expiry, zh: 会员到期}
        schedule:
          date: {field: expiry_date, before: [30d, 7d], at: "09:00"}
        when: "status == 'active'"
        to: [owner, email:email, phone:mobile]
        channels: [in_app, email, sms]
        opt_in: {email: email_opt_in, sms: sms_opt_in}
        subject:
          en: "Your membership ends on {{ record.expiry_date }}"
          zh: "您的会员将于 {{ record.expiry_date }} 到期"
        message:
          en: "Dear {{ record.name }}, your membership ({{ display.status }}) ends on {{ record.expiry_date }}."
          zh: "{{ record.name }} 您好,您的会员({{ display.status }})将于 {{ record.expiry_date }} 到期。"
    """,
    "reminders/birthday.yaml": """
        reminder: birthday
        entity: member
        schedule:
          date: {field: birthday, yearly: true, at: "08:00"}
        to: [email:email]
        channels: [email]
        opt_in: {email: email_opt_in}
        message: {en: "Happy birthday, {{ record.name }}!", zh: "{{ record.name }},生日快乐!"}
    """,
    "reminders/invoice_overdue.yaml": """
        reminder: invoice_overdue
        entity: invoice
        schedule:
          date: {field: due_date, after: [3d]}
        when: "not paid"
        to: [owner, role:manager, email:member.email]
        channels: [in_app, email]
        subject: {en: "Invoice {{ record.number }} is overdue", zh: "发票 {{ record.number }} 已逾期"}
        message: {en: "Invoice {{ record.number }} was due on {{ record.due_date }}.", zh: "发票 {{ record.number }} 应于 {{ record.due_date }} 付款。"}
    """,
}


def notification_settings(sink: SmtpSink | None = None, gateway: SmsGateway | None = None,
                          **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"sender": "Club <club@example.com>",
                            "delivery": {"max_attempts": 3, "backoff": "1m", "lease": "5m"}}
    if sink is not None:
        data["smtp"] = {"host": "127.0.0.1", "port": sink.port, "security": "none",
                        "timeout": 5}
    if gateway is not None:
        data["sms"] = {"url": gateway.url, "auth_env": "CLUB_SMS_TOKEN",
                       "body": '{"to": {{ to | tojson }}, "text": {{ text | tojson }}}'}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def open_club_site(tmp_path: Path, db_url: str, clock: FixedClock,
                   notifications: dict[str, Any] | None = None,
                   files: dict[str, str] | None = None) -> Site:
    """The club pack on a fresh database, with crm.yaml's notifications section."""
    write_pack(tmp_path / "packs", "club", files or CLUB_FILES)
    root = write_site(tmp_path / "site", db_url, ["club"], pack_paths=[str(tmp_path / "packs")])
    config = yaml.safe_load((root / "crm.yaml").read_text(encoding="utf-8"))
    config["notifications"] = notifications or {}
    (root / "crm.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return open_migrated(root, clock=clock)
