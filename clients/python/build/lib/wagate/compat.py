"""A drop-in for the old Node server's Python client: replace

    from apps.appointments.whatsapp_baileys_client import whatsapp_baileys_client

with

    from wagate.compat import whatsapp_baileys_client

and the calls and return shapes stay the same. Configured from the
environment when first used: ``WAGATE_URL`` (default
``http://127.0.0.1:8080``), ``WAGATE_TOKEN`` (the admin token, or one org's
token), ``WAGATE_TOKEN_<ORG>`` (a token for that org only, e.g.
``WAGATE_TOKEN_4``, preferred over ``WAGATE_TOKEN``) and ``WAGATE_TIMEOUT``
(seconds, default 10). Like the old client it never raises for a failed
call: the answer says what went wrong in ``"error"``."""

from __future__ import annotations

import os
import threading
from typing import Dict, Optional, TypedDict

from . import errors
from ._core import OrgId, Phone
from .client import Client

DEFAULT_URL = "http://127.0.0.1:8080"


class CompatStatus(TypedDict, total=False):
    status: str
    connected: bool
    phone_number: Optional[str]
    phone: Optional[str]
    #: Only when the status could not be read.
    error: str


class CompatSend(TypedDict, total=False):
    success: bool
    message_id: Optional[str]
    status: str
    #: Only when the message was not accepted.
    error: str


class WhatsAppBaileysClient:
    """The old ``whatsapp_baileys_client``'s two calls over wagate's API."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Optional[float] = None,
    ) -> None:
        self._base_url = base_url
        self._token = token
        self._timeout = timeout
        self._clients: Dict[str, Client] = {}
        self._lock = threading.Lock()

    def get_status(self, org_id: OrgId) -> CompatStatus:
        """``{"status", "connected", "phone_number", "phone"}``; ``status`` is
        wagate's link state (``connected``, ``pairing``, ``reconnecting`` …,
        or ``error`` with ``"error"`` when it could not be read)."""
        try:
            s = self._client(org_id).get_status(org_id)
        except (errors.WagateError, ValueError, TypeError) as e:
            return {
                "status": "error",
                "connected": False,
                "phone_number": None,
                "phone": None,
                "error": _say(e),
            }
        phone = s.get("phone_number")
        return {
            "status": s.get("state", "unknown"),
            "connected": bool(s.get("connected", False)),
            "phone_number": phone,
            "phone": phone,
        }

    def send_message(self, org_id: OrgId, phone: Phone, text: str) -> CompatSend:
        """``{"success": True, "message_id", "status": "queued"}`` once the
        gateway has stored the message (it goes out as soon as the link is
        up); ``{"success": False, "message_id": None, "status": "error",
        "error"}`` when it was refused (bad number, empty text, wrong token)
        or the gateway could not be reached."""
        try:
            m = self._client(org_id).send_message(org_id, phone, text)
        except (errors.WagateError, ValueError, TypeError) as e:
            return {"success": False, "message_id": None, "status": "error", "error": _say(e)}
        return {"success": True, "message_id": m.get("id"), "status": m.get("status", "queued")}

    def _client(self, org_id: OrgId) -> Client:
        if isinstance(org_id, bool) or not isinstance(org_id, (str, int)):
            raise TypeError(f"org_id must be a str or int, not {type(org_id).__name__}")
        env_key = "WAGATE_TOKEN_" + str(org_id).upper().replace("-", "_")
        token = os.environ.get(env_key) or self._token or os.environ.get("WAGATE_TOKEN")
        if not token:
            raise ValueError(
                f"no token for organization {org_id}: set WAGATE_TOKEN (or {env_key})"
            )
        url = self._base_url or os.environ.get("WAGATE_URL") or DEFAULT_URL
        timeout = self._timeout or _env_float("WAGATE_TIMEOUT", 10.0)
        key = f"{url}\n{token}"
        with self._lock:
            c = self._clients.get(key)
            if c is None:
                c = Client(url, token, timeout=timeout)
                self._clients[key] = c
            return c


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        return default


def _say(e: Exception) -> str:
    if isinstance(e, errors.WagateError):
        return f"{e.message} ({e.code})"
    return str(e)


#: The object the appointments app imports.
whatsapp_baileys_client = WhatsAppBaileysClient()
