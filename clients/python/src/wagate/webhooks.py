"""Verifying the webhooks wagate sends.

    from wagate.webhooks import verify, InvalidSignature

    def view(request):
        try:
            event = verify(request.body, request.headers["Wagate-Signature"], SECRET)
        except InvalidSignature:
            return HttpResponse(status=400)
        ...

The signature is ``t=<unix seconds>,v1=<hex>`` (a second ``v1=`` during a
secret rotation): HMAC-SHA256 keyed with the endpoint's secret over
``"<t>.<raw body>"``. ``verify`` recomputes it over the raw bytes received,
compares in constant time, refuses a ``t`` more than ``tolerance`` seconds
from this clock (a replayed request) and returns the parsed event
(``{"id", "type", "org", "created_at", "data"}``). Delivery is at least once:
de-duplicate by the event's ``id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Dict, List, Optional, Union

from .errors import WagateError


class InvalidSignature(WagateError):
    """The webhook's signature does not verify (or it is too old)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_signature")


def sign(body: bytes, secret: str, t: int) -> str:
    """The hex signature of ``body`` at ``t`` (what ``v1=`` carries)."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def verify(
    body: Union[bytes, str],
    header: Optional[str],
    secret: str,
    tolerance: int = 300,
    now: Optional[float] = None,
) -> Dict[str, Any]:
    """The event in ``body`` if ``header`` (``Wagate-Signature``) signs it with
    ``secret`` within ``tolerance`` seconds of ``now``; else ``InvalidSignature``."""
    if isinstance(body, str):
        body = body.encode()
    if not header:
        raise InvalidSignature("no Wagate-Signature header")
    t: Optional[int] = None
    sigs: List[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                t = int(value)
            except ValueError:
                raise InvalidSignature("the signature's t= is not a number") from None
        elif key == "v1" and value:
            sigs.append(value)
    if t is None or not sigs:
        raise InvalidSignature("the signature needs t= and v1=")
    current = time.time() if now is None else now
    if abs(current - t) > tolerance:
        raise InvalidSignature(f"the signature is {int(abs(current - t))} s from this clock (over {tolerance} s)")
    expected = sign(body, secret, t)
    if not any(hmac.compare_digest(expected, s) for s in sigs):
        raise InvalidSignature("the signature does not match this secret and body")
    try:
        event = json.loads(body)
    except ValueError:
        raise InvalidSignature("the body is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidSignature("the body is not a JSON object")
    return event
