"""Sending one message to a contact point, and telling a transient failure from a permanent one.

- **webhook**: the Alertmanager body POSTed as JSON (httpx);
- **email**: Django's email backend (SMTP, the ``EMAIL_*`` settings), plain text;
- **Slack**: an incoming webhook, through Slack's own ``slack_sdk`` client.

apprise was the suggested library; it was not chosen because its ``notify()`` answers only
True or False, so a 400 (fix the contact point) and a 500 (try again) look the same, and
its Slack URLs always go to hooks.slack.com. A failure is **permanent** when trying again
cannot help: an HTTP 4xx other than 408 and 429 (Slack's 404 ``no_service``, 403
``invalid_token``...), a refused recipient or sender, an SMTP 5xx, a redirect (not
followed), a malformed address. Anything else (5xx, 408, 429, connection refused, a
timeout, an SMTP 4xx) is **transient**, retried with backoff by ``delivery``.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from slack_sdk.errors import SlackRequestError
from slack_sdk.webhook import WebhookClient

from meshui.alerts.notify import payload

TIMEOUT_S = 10.0
DETAIL_MAX = 500
USER_AGENT = "meshui-alerts/1"
SLACK_LOGGER = logging.getLogger("meshui.alerts.slack")


@dataclass(frozen=True, slots=True)
class Result:
    ok: bool
    permanent: bool = False
    status_code: int | None = None
    detail: str = ""
    duration_ms: float = 0.0


def _http_result(status: int, body: str) -> Result:
    text = " ".join(body.split())[:200]
    if 200 <= status < 300:
        return Result(True, status_code=status, detail=f"HTTP {status}")
    transient = status >= 500 or status in (408, 429)
    if 300 <= status < 400:
        return Result(False, True, status, f"HTTP {status}: redirects are not followed; "
                                           "give the final URL")
    return Result(False, not transient, status, f"HTTP {status}" + (f": {text}" if text else ""))


def send_webhook(config: Mapping[str, Any], body: Mapping[str, Any]) -> Result:
    try:
        # No proxy from the environment: receivers are usually in the same network, and a
        # proxy meant for the outside would swallow them.
        with httpx.Client(timeout=TIMEOUT_S, trust_env=False, follow_redirects=False,
                          headers={"User-Agent": USER_AGENT}) as client:
            response = client.post(config["url"], json=body)
    except httpx.InvalidURL as exc:
        return Result(False, True, detail=f"not a URL that can be sent to: {exc}")
    except httpx.HTTPError as exc:
        return Result(False, detail=f"{type(exc).__name__}: {exc or 'no answer'}")
    return _http_result(response.status_code, response.text)


def send_slack(config: Mapping[str, Any], body: Mapping[str, Any]) -> Result:
    message = payload.slack(body)
    # Its own retries off: ``delivery`` retries, with backoff, and logs every attempt.
    client = WebhookClient(config["url"], timeout=int(TIMEOUT_S), user_agent_prefix=USER_AGENT,
                           retry_handlers=[], logger=SLACK_LOGGER)
    try:
        response = client.send(text=message["text"], blocks=message["blocks"])
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Result(False, detail=f"{type(exc).__name__}: {reason}")
    except (SlackRequestError, ValueError) as exc:  # a URL urllib cannot open
        return Result(False, True, detail=f"not a URL that can be sent to: {exc}")
    return _http_result(response.status_code, response.body or "")


def _addresses(config: Mapping[str, Any]) -> list[str]:
    return [part.strip() for part in str(config.get("address", "")).split(",") if part.strip()]


def send_email(config: Mapping[str, Any], body: Mapping[str, Any]) -> Result:
    subject, text = payload.email(body)
    message = EmailMessage(subject, text, settings.MESHUI_ALERTS_FROM_EMAIL, _addresses(config),
                           connection=get_connection(settings.MESHUI_ALERTS_EMAIL_BACKEND,
                                                     timeout=TIMEOUT_S))
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(f"{who}: {code} {reason.decode(errors='replace')}"
                            for who, (code, reason) in exc.recipients.items())
        return Result(False, True, detail=f"the server refused the recipients ({refused})")
    except smtplib.SMTPSenderRefused as exc:
        return Result(False, True, exc.smtp_code,
                      f"the server refused the sender {exc.sender}: {exc.smtp_code} "
                      f"{exc.smtp_error.decode(errors='replace')}")
    except smtplib.SMTPResponseException as exc:
        reason = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        return Result(False, exc.smtp_code >= 500, exc.smtp_code,
                      f"SMTP {exc.smtp_code}: {reason}")
    except (smtplib.SMTPException, OSError) as exc:
        return Result(False, detail=f"{type(exc).__name__}: {exc or 'no answer'} (SMTP "
                                    f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT})")
    return Result(True, detail=f"accepted by {settings.EMAIL_HOST}:{settings.EMAIL_PORT}")


SENDERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Result]] = {
    "webhook": send_webhook, "email": send_email, "slack": send_slack}


def send(kind: str, config: Mapping[str, Any], body: Mapping[str, Any]) -> Result:
    """Send ``body`` (a webhook body) by ``kind``; never raises for what the receiver does."""
    started = time.perf_counter()
    sender = SENDERS.get(kind)
    if sender is None:
        result = Result(False, True, detail=f"there is no sender for {kind!r}")
    else:
        result = sender(config, body)
    took = (time.perf_counter() - started) * 1000
    return Result(result.ok, result.permanent, result.status_code,
                  result.detail[:DETAIL_MAX], round(took, 3))
