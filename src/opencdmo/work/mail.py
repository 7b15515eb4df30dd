"""Sending mail: the standard library's ``smtplib`` behind one typed function, run in a thread
so the event loop never waits on the mail server.

``OPENCDMO_SMTP_URL``: ``smtp://[user[:password]@]host[:port]`` (port 25 unless given; STARTTLS
whenever the server offers it) or ``smtps://...`` (TLS from the first byte, port 465 unless
given). The password comes from the URL or from the environment variable named by
``OPENCDMO_SMTP_PASSWORD_ENV``; it is never sent over a connection that is not encrypted,
except to a server on the machine itself (loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from functools import cache
from typing import Any
from urllib.parse import unquote, urlsplit

from jinja2 import Environment

from opencdmo.errors import AppError
from opencdmo.settings import Settings, SettingsError
from opencdmo.web.templating import build_environment


class MailFailed(AppError):
    """The mail server could not be reached or refused the mail (the job is retried)."""

    status_code = 503
    title = "Mail not sent"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    tls: bool  # TLS from the first byte (smtps); otherwise STARTTLS when offered
    user: str | None
    password: str | None
    timeout: float

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def server(settings: Settings) -> Server | None:
    """The configured mail server (None: mail is off)."""
    if not settings.smtp_url:
        return None
    parts = urlsplit(settings.smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SettingsError("OPENCDMO_SMTP_URL: expected smtp://host[:port] or smtps://host[:port]")
    password = unquote(parts.password) if parts.password else None
    if settings.smtp_password_env:
        password = os.environ.get(settings.smtp_password_env) or password
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
    except ValueError:
        raise SettingsError("OPENCDMO_SMTP_URL: the port is not a number") from None
    return Server(
        host=parts.hostname,
        port=port,
        tls=parts.scheme == "smtps",
        user=unquote(parts.username) if parts.username else None,
        password=password,
        timeout=float(settings.smtp_timeout_seconds),
    )


def sender(settings: Settings) -> str:
    """The From address: ``mail_from``, else opencdmo@ the public URL's host (or the server's)."""
    if settings.mail_from:
        return settings.mail_from
    public = urlsplit(settings.public_url or "").hostname
    host = public or urlsplit(settings.smtp_url or "").hostname
    return formataddr(("OpenCDMO", f"opencdmo@{host or 'localhost'}"))


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str


def from_templates(to: str, subject: str, name: str, values: dict[str, Any]) -> Mail:
    """A mail of the templates ``name``.txt (plain text) and ``name``.html (escaped), given
    ``values`` and the subject."""
    env = _environment()
    values = {**values, "subject": subject}
    text = env.get_template(f"{name}.txt").render(values)
    html = env.get_template(f"{name}.html").render(values)
    return Mail(to=to, subject=subject, text=text, html=html)


@cache
def _environment() -> Environment:
    return build_environment()


def message(settings: Settings, mail: Mail) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender(settings)
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Message-ID"] = make_msgid(domain="opencdmo")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(mail.text)
    msg.add_alternative(mail.html, subtype="html")
    return msg


async def send(settings: Settings, mail: Mail) -> None:
    """Hand the mail to the server; ``MailFailed`` when it cannot be delivered to it."""
    found = server(settings)
    if found is None:
        raise MailFailed("No mail server is configured (OPENCDMO_SMTP_URL).")
    try:
        await asyncio.to_thread(_deliver, found, message(settings, mail))
    except (smtplib.SMTPException, OSError) as exc:
        raise MailFailed(
            f"The mail server {found.host}:{found.port} did not take the mail: {_said(exc)}"
        ) from exc


def _said(exc: Exception) -> str:
    """What went wrong, as people read it: the server's answer (code and text, not smtplib's
    tuple of bytes), or the connection's error."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"it answered {exc.smtp_code} {text}".strip()
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "it refused the recipient " + ", ".join(exc.recipients)
    return str(exc) or type(exc).__name__


def _deliver(found: Server, msg: EmailMessage) -> None:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if found.tls:
        smtp = smtplib.SMTP_SSL(found.host, found.port, timeout=found.timeout, context=context)
    else:
        smtp = smtplib.SMTP(found.host, found.port, timeout=found.timeout)
    with smtp:
        encrypted = found.tls
        if not found.tls:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
                encrypted = True
        if found.user:
            if not encrypted and not found.loopback:
                raise MailFailed(
                    f"The mail server {found.host} offers no encryption (STARTTLS): the "
                    "password is not sent in the clear. Use smtps:// or a server with STARTTLS."
                )
            smtp.login(found.user, found.password or "")
        smtp.send_message(msg)
