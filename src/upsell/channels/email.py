"""The email channel: one message per delivery, over SMTP (smtplib)."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from upsell.channels.base import Delivery, Outcome
from upsell.settings import Settings


def message_id(idempotency_key: str) -> str:
    """The Message-ID of a delivery: the same key always gives the same id, so that a message
    sent twice is recognisable as one (``<32 hex digits of SHA-256@upsell>``)."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return f"<{digest[:32]}@upsell>"


class Email:
    """Sends the offer to the account's address, as plain text with an HTML alternative when the
    message has one. SMTP or SMTPS, with STARTTLS and login when configured. Headers: a
    Message-ID derived from the idempotency key, ``X-Upsell-Contact`` (the contact id),
    ``X-Upsell-Offer`` (the offer id) and ``Content-Language`` (the message's locale).

    Never raises on a failed delivery: no address, a malformed message, a refused recipient or an
    unreachable server all return a failed Outcome with the reason. It does not retry: a failure
    of one attempt is the caller's to reschedule.
    """

    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def problems(self) -> list[str]:
        s = self.settings
        found = []
        if not s.smtp_host:
            found.append("UPSELL_SMTP_HOST is not set")
        if s.smtp_ssl and s.smtp_starttls:
            found.append("UPSELL_SMTP_SSL and UPSELL_SMTP_STARTTLS are both set; choose one")
        if s.smtp_password is not None and not s.smtp_user:
            found.append("UPSELL_SMTP_PASSWORD is set but UPSELL_SMTP_USER is not")
        return found

    def build(self, delivery: Delivery) -> EmailMessage:
        """The message for a delivery that has an address; KeyError, TypeError or ValueError
        when the payload's message lacks a key or a header would not be valid."""
        if not delivery.email:
            raise ValueError("account has no email address")
        message = delivery.payload["message"]
        msg = EmailMessage()
        msg["From"] = self.settings.smtp_from
        msg["To"] = delivery.email
        msg["Subject"] = message["subject"]
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = message_id(delivery.idempotency_key)
        if delivery.contact_id is not None:
            msg["X-Upsell-Contact"] = str(delivery.contact_id)
        if delivery.payload.get("offer_id") is not None:
            msg["X-Upsell-Offer"] = str(delivery.payload["offer_id"])
        text = message["body"]
        if message.get("cta_url"):
            text += f"\n\n{message.get('cta') or message['cta_url']}: {message['cta_url']}"
        msg.set_content(text)
        if message.get("html"):
            msg.add_alternative(message["html"], subtype="html")
        if message.get("locale"):
            msg["Content-Language"] = message["locale"]
        return msg

    def deliver(self, delivery: Delivery) -> Outcome:
        if not delivery.email:
            return Outcome("failed", attempts=0, detail="account has no email address")
        if found := self.problems():
            return Outcome("failed", attempts=0, detail="; ".join(found))
        try:
            msg = self.build(delivery)
        except (KeyError, TypeError, ValueError) as exc:
            return Outcome("failed", attempts=0, detail=f"cannot build the message: {exc!r}")
        try:
            self._send(msg)
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome("failed", detail=f"{type(exc).__name__}: {exc}")
        return Outcome(
            "sent", detail=f"accepted by {self.settings.smtp_host}:{self.settings.smtp_port}"
        )

    def _send(self, msg: EmailMessage) -> None:
        s = self.settings
        assert s.smtp_host is not None
        smtp: smtplib.SMTP
        if s.smtp_ssl:
            context = ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        with smtp:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                smtp.login(s.smtp_user, password)
            smtp.send_message(msg)
