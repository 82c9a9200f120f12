"""The channels that carry a message out of the CRM: e-mail over SMTP, SMS over HTTP.

(The in-app channel writes to the database and lives with the delivery,
which makes it exactly-once in one transaction.)

A channel sends one outbox row and says how it went by raising:

- :class:`TransientFailure` — not delivered, worth trying again (SMTP 4xx,
  a refused connection, HTTP 5xx or 429);
- :class:`PermanentFailure` — not delivered and never will be (SMTP 5xx,
  HTTP 4xx, a missing setting);
- :class:`DeliveryUncertain` — the connection broke after the message was
  handed over, so it may have arrived.

Before the step that hands the message over for good (SMTP ``DATA``, the
HTTP request) the channel calls ``handoff()``, which records the moment
and fails if this worker no longer holds the message — see delivery.py.
"""

from __future__ import annotations

import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

from engine.metadata.message_templates import render_text
from engine.notifications.settings import NotificationSettings


class DeliveryError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientFailure(DeliveryError):
    """Not delivered this time; retry later."""


class PermanentFailure(DeliveryError):
    """Not delivered, and retrying will not help."""


class DeliveryUncertain(DeliveryError):
    """Interrupted after the hand-over: the message may have arrived."""


class Channel(Protocol):
    #: Whether sending the same message again is harmless (the far end drops copies).
    idempotent: bool

    def send(self, row: Mapping[str, Any], handoff: Callable[[], None]) -> None: ...


def message_id(row: Mapping[str, Any]) -> str:
    """A Message-ID made from the message's unique key: a copy is recognisable as one."""
    return f"<{row['key'][:32]}.{row['id']}@visioncrm>"


class SmtpChannel:
    """E-mail through the configured SMTP server (plain, STARTTLS or TLS)."""

    idempotent = False

    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings

    def _connect(self) -> smtplib.SMTP:
        smtp = self.settings.smtp
        assert smtp is not None
        # certificates are always verified (against ca_file when given)
        context = ssl.create_default_context(cafile=smtp.ca_file)
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout,
                                                    context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
            if smtp.security == "starttls":
                client.starttls(context=context)
        if smtp.user:
            client.login(smtp.user, smtp.password or "")
        return client

    def build(self, row: Mapping[str, Any]) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.settings.sender
        mail["To"] = row["address"]
        mail["Subject"] = row.get("title") or row["body"].splitlines()[0][:120]
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = message_id(row)
        mail["X-VisionCRM-Key"] = row["key"]
        mail.set_content(row["body"])
        return mail

    def send(self, row: Mapping[str, Any], handoff: Callable[[], None]) -> None:
        if self.settings.smtp is None:
            raise PermanentFailure("no SMTP server is configured (notifications.smtp in crm.yaml)")
        mail = self.build(row)
        try:
            client = self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentFailure(f"the SMTP server refused the login: {exc.smtp_code}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientFailure(f"cannot reach the SMTP server: {exc}") from exc
        try:
            self._transaction(client, mail, handoff)
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

    @staticmethod
    def _refusal(code: int, text: Any) -> DeliveryError:
        words = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        kind = TransientFailure if 400 <= code < 500 else PermanentFailure
        return kind(f"the SMTP server answered {code} {words}".strip())

    def _transaction(self, client: smtplib.SMTP, mail: EmailMessage,
                     handoff: Callable[[], None]) -> None:
        """MAIL, RCPT, then DATA — the hand-over — step by step, so each answer is known."""
        try:
            client.ehlo_or_helo_if_needed()
            code, text = client.mail(str(mail["From"]))
            if code != 250:
                raise self._refusal(code, text)
            code, text = client.rcpt(str(mail["To"]))
            if code not in (250, 251):
                raise self._refusal(code, text)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise TransientFailure(f"the SMTP connection broke: {exc}") from exc
        handoff()
        try:
            code, text = client.data(mail.as_bytes())
        except smtplib.SMTPDataError as exc:
            raise self._refusal(exc.smtp_code, exc.smtp_error) from exc
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise DeliveryUncertain(f"the SMTP connection broke while the message was being "
                                    f"handed over: {exc}") from exc
        if code != 250:
            raise self._refusal(code, text)


class SmsGatewayChannel:
    """Text messages through an HTTP gateway described in crm.yaml (URL, auth, body)."""

    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings
        self.idempotent = bool(settings.sms and settings.sms.idempotency_header)

    def request(self, row: Mapping[str, Any]) -> urllib.request.Request:
        sms = self.settings.sms
        assert sms is not None
        text = row["body"] if not row.get("title") else f"{row['title']}: {row['body']}"
        body = render_text(sms.body, {"to": row["address"], "text": text, "key": row["key"],
                                      "id": row["id"]})
        headers = {"Content-Type": sms.content_type}
        if sms.auth_value:
            headers[sms.auth_header] = sms.auth_value
        if sms.idempotency_header:
            headers[sms.idempotency_header] = row["key"]
        return urllib.request.Request(sms.url, data=body.encode(), headers=headers,
                                      method=sms.method)

    def send(self, row: Mapping[str, Any], handoff: Callable[[], None]) -> None:
        sms = self.settings.sms
        if sms is None:
            raise PermanentFailure("no SMS gateway is configured (notifications.sms in crm.yaml)")
        request = self.request(row)
        handoff()
        try:
            with urllib.request.urlopen(request, timeout=sms.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode(errors="replace")
            kind = TransientFailure if exc.code >= 500 or exc.code == 429 else PermanentFailure
            raise kind(f"the SMS gateway answered {exc.code}: {detail}".strip()) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ConnectionRefusedError):
                raise TransientFailure(f"cannot reach the SMS gateway: {exc.reason}") from exc
            raise DeliveryUncertain(f"the SMS gateway did not answer: {exc.reason}") from exc
        except (TimeoutError, OSError) as exc:
            raise DeliveryUncertain(f"the SMS gateway did not answer: {exc}") from exc


def default_channels(settings: NotificationSettings) -> dict[str, Channel]:
    return {"email": SmtpChannel(settings), "sms": SmsGatewayChannel(settings)}

