"""What the sync and asyncio clients share: the shapes the API answers with,
how each call becomes a request, when a failed request may be retried, how
an answer becomes a value or an exception, and the Server-Sent Events parser.
Nothing here does I/O."""

from __future__ import annotations

import datetime as _dt
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, TypedDict, Union
from urllib.parse import quote

import httpx

from . import errors

OrgId = Union[str, int]
Phone = Union[str, int]
#: A moment for ``send_at``/``send_before``: a timezone-aware datetime, or
#: Unix milliseconds.
When = Union[_dt.datetime, int]

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
#: The server sends a keep-alive comment every 15 s; a stream silent for
#: longer than this is treated as dead and reopened.
STREAM_READ_TIMEOUT = 45.0
#: Reconnect delays for the event stream: 1 s doubling to 30 s.
STREAM_BACKOFF_START = 1.0
STREAM_BACKOFF_MAX = 30.0
#: Statuses worth another try of a request that is safe to repeat.
RETRY_STATUSES = frozenset({502, 503, 504})


class SessionStatus(TypedDict, total=False):
    """``GET /v1/orgs/{org}/session``."""

    org: str
    state: str
    connected: bool
    since: str
    last_seen: Optional[str]
    reconnect_attempt: int
    next_retry_in_ms: Optional[int]
    phone_number: Optional[str]
    detail: str
    #: Why the link is in its state, as data: ``{"code": "retry_scheduled", …}``.
    reason: Dict[str, Any]
    qr_available: bool
    pair_code: Optional[str]
    pair_code_expires_in_ms: Optional[int]
    queued_messages: Optional[int]
    #: When the last queued message is expected to leave (Unix ms), from the sending policy.
    queue_empty_eta_ms: Optional[int]
    #: Queued messages held by a WhatsApp limit (see ``Message.held_reason``).
    held_messages: Optional[int]
    #: Until when WhatsApp refuses first messages to new contacts (RFC 3339), or ``None``.
    reachout_timelock_until: Optional[str]
    #: WhatsApp's new-chat quota as last announced: ``used``, ``total``,
    #: ``cycle_end``, ``status``, ``capped``; ``None`` if never announced.
    message_capping: Optional[Dict[str, Any]]
    decrypt_failures: int


class Message(TypedDict, total=False):
    """One outgoing message; ``status`` is ``scheduled``, ``queued``,
    ``sent``, ``delivered``, ``read``, ``failed`` (then ``error`` says why),
    ``expired`` (its ``send_before`` passed; never sent) or ``canceled``."""

    id: str
    to: str
    text: str
    status: str
    error: Optional[str]
    wa_id: str
    idempotency_key: Optional[str]
    attempts: int
    created_ms: int
    updated_ms: int
    send_at_ms: Optional[int]
    send_before_ms: Optional[int]
    #: A queued or scheduled message: when it is expected to leave (Unix ms).
    eta_ms: Optional[int]
    #: A queued message waiting on a WhatsApp limit: ``reachout_timelock``,
    #: ``message_cap`` or ``new_contact_cap``; ``None`` otherwise.
    held_reason: Optional[str]
    #: When a held message is tried again (RFC 3339).
    retry_at: Optional[str]


class MessagePage(TypedDict):
    messages: List[Message]
    next_cursor: Optional[str]


#: A message a patient sent to the org; ``from`` is the sender's number (also
#: when WhatsApp addressed it by LID: ``from_lid``); ``in_reply_to`` is our
#: message it quotes, else ``last_outbound_id`` our latest to that contact
#: within 72 h; a reaction has ``reaction_to`` and its emoji as ``text``.
InboundMessage = TypedDict(
    "InboundMessage",
    {
        "wa_id": str,
        "from": str,
        "from_lid": Optional[str],
        "text": str,
        "received_ms": int,
        "in_reply_to": Optional[str],
        "last_outbound_id": Optional[str],
        "quoted_wa_id": Optional[str],
        "reaction_to": Optional[str],
    },
    total=False,
)


class InboundPage(TypedDict):
    messages: List[InboundMessage]
    next_cursor: Optional[str]


class QrCode(TypedDict):
    """The QR on offer: ``qr`` is the string to render as a QR code."""

    qr: str
    expires_in_ms: int


class PairCode(TypedDict):
    pair_code: str
    expires_in_ms: int


class Org(TypedDict, total=False):
    id: str
    name: str
    default_country_code: Optional[str]
    created_at: str
    state: Optional[str]
    phone_number: Optional[str]
    queued_messages: Optional[int]
    #: Only in the answer to ``create_org``: shown once.
    token: str


class StateChange(TypedDict, total=False):
    at: str
    state: str
    detail: str
    reason: Optional[Dict[str, Any]]


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event from ``GET /v1/orgs/{org}/events``.

    ``event`` is its kind (``status``, ``state``, ``qr``, ``pair_code``,
    ``message.status``, ``message.received``, ``message.reaction``, ``send.limited``, ``decrypt_failure``,
    ``lagged``); ``data`` its JSON payload
    (the raw text when it is not JSON); ``id`` its sequence number, or
    ``None`` for the snapshot a fresh stream starts with.
    """

    event: str
    data: Any
    id: Optional[str] = None


@dataclass
class Call:
    """One API call, planned: method, path, body and headers, and whether it
    may be sent again after a failure without doing the work twice."""

    method: str
    path: str
    json_body: Optional[Dict[str, Any]] = None
    params: Optional[Dict[str, Any]] = None
    headers: Dict[str, str] = field(default_factory=dict)
    retry_safe: bool = False
    #: Statuses that are answers, not errors, for this call.
    ok: Tuple[int, ...] = (200, 201, 202)


def org_path(org_id: OrgId, *rest: str) -> str:
    if isinstance(org_id, bool) or not isinstance(org_id, (str, int)):
        raise TypeError(f"org_id must be a str or int, not {type(org_id).__name__}")
    tail = "".join("/" + r for r in rest)
    return f"/v1/orgs/{quote(str(org_id), safe='')}{tail}"


def new_idempotency_key() -> str:
    return "py-" + uuid.uuid4().hex


def when_value(when: When, name: str) -> Union[str, int]:
    """``send_at``/``send_before`` as the API reads them: an aware datetime
    becomes RFC 3339 with its offset; a naive one is refused, because the
    server cannot know which clock it meant."""
    if isinstance(when, _dt.datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(
                f"{name} is a naive datetime; give it a time zone "
                "(e.g. datetime(..., tzinfo=ZoneInfo('America/Bogota')))"
            )
        return when.isoformat()
    if isinstance(when, int) and not isinstance(when, bool):
        return when
    raise TypeError(f"{name} must be a timezone-aware datetime or Unix milliseconds (int)")


def send_call(
    org_id: OrgId,
    phone: Phone,
    text: str,
    idempotency_key: Optional[str],
    send_at: Optional[When] = None,
    send_before: Optional[When] = None,
) -> Call:
    key = idempotency_key if idempotency_key is not None else new_idempotency_key()
    body: Dict[str, Any] = {"to": str(phone), "text": text}
    if send_at is not None:
        body["send_at"] = when_value(send_at, "send_at")
    if send_before is not None:
        body["send_before"] = when_value(send_before, "send_before")
    return Call(
        "POST",
        org_path(org_id, "messages"),
        json_body=body,
        headers={"Idempotency-Key": key},
        # The key makes a repeat return the first message instead of a second.
        retry_safe=True,
    )


class SendingPolicy(TypedDict, total=False):
    """``GET /v1/orgs/{org}/sending-policy``: how the org's number paces its sends."""

    min_gap_ms: int
    max_gap_ms: int
    hourly_cap: Optional[int]
    daily_cap: Optional[int]
    new_contacts_per_day: Optional[int]
    quiet_hours: Optional[Dict[str, str]]
    timezone: str
    typing: bool
    typing_ms_per_char: int
    typing_max_ms: int


class Contact(TypedDict):
    """``GET /v1/orgs/{org}/contacts/{phone}``: whether a number is on WhatsApp."""

    phone: str
    on_whatsapp: bool
    jid: Optional[str]
    checked_at: str
    #: Answered from the org's 7-day cache (no question to WhatsApp).
    cached: bool


def contact_call(org_id: OrgId, phone: Phone) -> Call:
    if isinstance(phone, bool) or not isinstance(phone, (str, int)) or not str(phone).strip():
        raise ValueError("phone must be a non-empty number")
    return Call("GET", org_path(org_id, "contacts", quote(str(phone), safe="")), retry_safe=True)


def webhook_create_call(
    org_id: OrgId, url: str, events: Optional[List[str]], secret: Optional[str]
) -> Call:
    body: Dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = list(events)
    if secret is not None:
        body["secret"] = secret
    # Each POST adds an endpoint: never repeated by the client.
    return Call("POST", org_path(org_id, "webhooks"), json_body=body)


def webhook_path(org_id: OrgId, webhook_id: str, *rest: str) -> str:
    if not webhook_id:
        raise ValueError("webhook_id is empty")
    return org_path(org_id, "webhooks", quote(webhook_id, safe=""), *rest)


def webhooks_call(org_id: OrgId) -> Call:
    return Call("GET", org_path(org_id, "webhooks"), retry_safe=True)


def webhook_delete_call(org_id: OrgId, webhook_id: str) -> Call:
    return Call("DELETE", webhook_path(org_id, webhook_id), retry_safe=True)


def rotate_secret_call(org_id: OrgId, webhook_id: str) -> Call:
    # Each rotation makes a new secret: never repeated by the client.
    return Call("POST", webhook_path(org_id, webhook_id, "rotate-secret"))


def deliveries_call(org_id: OrgId, webhook_id: str, status: Optional[str], limit: int) -> Call:
    params: Dict[str, Any] = {"limit": limit}
    if status is not None:
        params["status"] = status
    return Call("GET", webhook_path(org_id, webhook_id, "deliveries"), params=params, retry_safe=True)


def retry_delivery_call(org_id: OrgId, webhook_id: str, delivery_id: str) -> Call:
    if not delivery_id:
        raise ValueError("delivery_id is empty")
    path = webhook_path(org_id, webhook_id, "deliveries", quote(delivery_id, safe=""), "retry")
    return Call("POST", path, retry_safe=True)


def replay_call(org_id: OrgId, webhook_id: str, since: When) -> Call:
    body = {"since": when_value(since, "since")}
    return Call("POST", webhook_path(org_id, webhook_id, "replay"), json_body=body, retry_safe=True)


def policy_call(org_id: OrgId) -> Call:
    return Call("GET", org_path(org_id, "sending-policy"), retry_safe=True)


def set_policy_call(org_id: OrgId, changes: Mapping[str, Any]) -> Call:
    if not changes:
        raise ValueError("give at least one field to change")
    # The same change twice leaves the same policy: safe to repeat.
    return Call("PUT", org_path(org_id, "sending-policy"), json_body=dict(changes), retry_safe=True)


def cancel_call(org_id: OrgId, message_id: str) -> Call:
    if not message_id:
        raise ValueError("message_id is empty")
    # Not repeated: a second try after a cancel that went through is a 409.
    return Call("DELETE", org_path(org_id, "messages", quote(message_id, safe="")))


def reschedule_call(
    org_id: OrgId, message_id: str, send_at: Optional[When], send_before: Optional[When]
) -> Call:
    if not message_id:
        raise ValueError("message_id is empty")
    if send_at is None and send_before is None:
        raise ValueError("give send_at, send_before or both")
    body: Dict[str, Any] = {}
    if send_at is not None:
        body["send_at"] = when_value(send_at, "send_at")
    if send_before is not None:
        body["send_before"] = when_value(send_before, "send_before")
    # Setting the same times again changes nothing: safe to repeat.
    return Call(
        "PATCH",
        org_path(org_id, "messages", quote(message_id, safe="")),
        json_body=body,
        retry_safe=True,
    )


def list_params(**kw: Any) -> Dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def connect_call(org_id: OrgId, phone_number: Optional[Phone]) -> Call:
    body = None if phone_number is None else {"phone_number": str(phone_number)}
    return Call("POST", org_path(org_id, "session", "connect"), json_body=body)


def auth_headers(token: str) -> Dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "User-Agent": "wagate-python/0.1",
    }


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def error_for(
    status: int, text: str, method: str, path: str, retry_after: Optional[str] = None
) -> errors.ApiError:
    """The exception for an error answer, with the server's code and
    sentence when it sent them (``{"error": {"code", "message"}}``)."""
    body = _json(text)
    code, message = "http_error", f"{method} {path} failed with HTTP {status}"
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        code = str(body["error"].get("code", code))
        message = str(body["error"].get("message", message))
    return errors.for_status(
        status, code, message, body if body is not None else text[:500], retry_after
    )


def decode(status: int, text: str, call: Call) -> Any:
    """The JSON value of an answer, or the matching exception."""
    if status not in call.ok:
        raise error_for(status, text, call.method, call.path)
    body = _json(text)
    if body is None and text:
        raise errors.TransportError(
            f"{call.method} {call.path}: the answer was not JSON",
            code="bad_response",
            status=status,
            body=text[:200],
        )
    return body


def should_retry(call: Call, status: Optional[int], attempt: int, retries: int) -> bool:
    """Whether to send ``call`` again after attempt ``attempt`` (0-based)
    ended with ``status`` (``None``: no answer at all)."""
    if not call.retry_safe or attempt >= retries:
        return False
    return status is None or status in RETRY_STATUSES


def retry_delay(attempt: int, retry_after: Optional[str]) -> float:
    """Seconds to wait before retry number ``attempt + 1``: the server's
    ``Retry-After`` when it gave one (at most 30 s), else 0.25 s doubling,
    with jitter."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), 30.0)
        except ValueError:
            pass
    return min(0.25 * 2.0**attempt, 8.0) * random.uniform(0.8, 1.2)


class SseParser:
    """Turns the text of an event stream, line by line, into events (the
    WHATWG rules: ``event``/``data``/``id`` fields, comments ignored, a blank
    line ends an event)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: List[str] = []
        self._id: Optional[str] = None
        self.last_id: Optional[str] = None

    def feed(self, line: str) -> Optional[Event]:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> Optional[Event]:
        if not self._data and not self._event:
            self._id = None
            return None
        raw = "\n".join(self._data)
        try:
            data: Any = json.loads(raw)
        except ValueError:
            data = raw
        ev = Event(event=self._event or "message", data=data, id=self._id)
        if self._id is not None:
            self.last_id = self._id
        self._event, self._data, self._id = "", [], None
        return ev


def stream_headers(token: str, last_event_id: Optional[str]) -> Dict[str, str]:
    h = auth_headers(token)
    h["Accept"] = "text/event-stream"
    h["Cache-Control"] = "no-cache"
    if last_event_id is not None:
        h["Last-Event-ID"] = last_event_id
    return h


def stream_fatal(status: int) -> bool:
    """An event-stream answer that reconnecting cannot fix (bad token, no
    such org …): raise it instead of retrying."""
    return 400 <= status < 500 and status not in (408, 429)


def next_stream_delay(delay: float) -> float:
    return min(delay * 2, STREAM_BACKOFF_MAX)


# -- every call, planned once for both clients ------------------------------


def status_call(org_id: OrgId) -> Call:
    return Call("GET", org_path(org_id, "session"), retry_safe=True)


def qr_call(org_id: OrgId, image_format: Optional[str] = None) -> Call:
    params = None if image_format is None else {"format": image_format}
    return Call("GET", org_path(org_id, "session", "qr"), params=params, retry_safe=True)


def session_action_call(org_id: OrgId, action: str) -> Call:
    # logout and reset are not repeated: a second reset would throw away the
    # fresh pairing the first one started.
    return Call("POST", org_path(org_id, "session", action))


def history_call(org_id: OrgId) -> Call:
    return Call("GET", org_path(org_id, "session", "history"), retry_safe=True)


def message_call(org_id: OrgId, message_id: str) -> Call:
    if not message_id:
        raise ValueError("message_id is empty")
    return Call("GET", org_path(org_id, "messages", quote(message_id, safe="")), retry_safe=True)


def list_call(
    org_id: OrgId, what: str, *, status: Optional[str], limit: Optional[int], cursor: Optional[str]
) -> Call:
    params = list_params(status=status, limit=limit, cursor=cursor)
    return Call("GET", org_path(org_id, what), params=params, retry_safe=True)


def create_org_call(org_id: OrgId, name: Optional[str], default_country_code: Optional[str]) -> Call:
    body: Dict[str, Any] = {"id": str(org_id)}
    if name is not None:
        body["name"] = name
    if default_country_code is not None:
        body["default_country_code"] = default_country_code
    return Call("POST", "/v1/orgs", json_body=body)


def list_orgs_call() -> Call:
    return Call("GET", "/v1/orgs", retry_safe=True)


def delete_org_call(org_id: OrgId) -> Call:
    return Call("DELETE", org_path(org_id))


def transport_error(e: httpx.TransportError, method: str, path: str) -> errors.TransportError:
    """The exception for a request that got no answer."""
    if isinstance(e, httpx.TimeoutException):
        return errors.TimeoutError(f"{method} {path}: no answer in time", code="timeout")
    return errors.TransportError(
        f"{method} {path}: could not reach the gateway ({type(e).__name__}: {e})",
        code="connection_failed",
    )

