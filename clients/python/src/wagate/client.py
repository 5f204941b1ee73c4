"""The blocking client: ``wagate.Client(base_url, token)``, one method per API
call, plus ``events()``, a generator over the org's event stream that
reconnects by itself."""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator, List, Optional, Union, cast

import httpx

from . import _core
from ._core import (
    Call,
    Contact,
    Event,
    InboundPage,
    Message,
    MessagePage,
    Org,
    OrgId,
    PairCode,
    Phone,
    QrCode,
    SendingPolicy,
    SessionStatus,
    StateChange,
    When,
)


class Client:
    """A connection to one wagate server with one token.

    ``token`` is an organization's token (it reaches that organization only)
    or the admin token (every organization). ``timeout`` is in seconds for
    each request; ``retries`` is how many times a request that is safe to
    repeat (reads, and sends, which always carry an idempotency key) is sent
    again after a network failure or a 502/503/504. ``transport`` is handed
    to httpx (tests, proxies, custom TLS).

    Use it as a context manager, or call ``close()``, to release the
    connection pool.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = _core.DEFAULT_TIMEOUT,
        retries: int = _core.DEFAULT_RETRIES,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        if not token:
            raise ValueError("a token is required (an org token or the admin token)")
        self.base_url = base_url.rstrip("/")
        self.retries = max(0, retries)
        self._token = token
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_core.auth_headers(token),
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        # Never the token.
        return f"wagate.Client({self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the link ---------------------------------------------------------

    def get_status(self, org_id: OrgId) -> SessionStatus:
        """Where the org's WhatsApp link stands: ``state``, ``connected``,
        ``phone_number``, ``detail`` (a sentence for people) …"""
        return cast(SessionStatus, self._run(_core.status_call(org_id)))

    def connect(
        self, org_id: OrgId, phone_number: Optional[Phone] = None
    ) -> Union[SessionStatus, PairCode]:
        """Start pairing (a QR code, see ``get_qr``) or reconnect now. With
        ``phone_number``, ask for an 8-character pairing code instead: the
        answer is ``{"pair_code", "expires_in_ms"}``."""
        call = _core.connect_call(org_id, phone_number)
        return cast(Union[SessionStatus, PairCode], self._run(call))

    def get_qr(self, org_id: OrgId) -> QrCode:
        """The QR code on offer as a string (``qr``) and its remaining life.
        Raises ``ConflictError`` (code ``no_qr``) when none is on offer."""
        return cast(QrCode, self._run(_core.qr_call(org_id)))

    def get_qr_image(self, org_id: OrgId, image_format: str = "svg") -> bytes:
        """The QR code on offer as an ``svg`` or ``png`` image."""
        return self._send(_core.qr_call(org_id, image_format)).content

    def logout(self, org_id: OrgId) -> SessionStatus:
        """Unlink the number from the phone; the credentials are moved aside."""
        return cast(SessionStatus, self._run(_core.session_action_call(org_id, "logout")))

    def reset(self, org_id: OrgId) -> SessionStatus:
        """The old "clean session": credentials moved aside, fresh pairing."""
        return cast(SessionStatus, self._run(_core.session_action_call(org_id, "reset")))

    def history(self, org_id: OrgId) -> List[StateChange]:
        """The last 50 state changes with their reasons, newest first."""
        return cast(List[StateChange], self._run(_core.history_call(org_id))["changes"])

    # -- messages ---------------------------------------------------------

    def send_message(
        self,
        org_id: OrgId,
        phone: Phone,
        text: str,
        *,
        idempotency_key: Optional[str] = None,
        send_at: Optional[When] = None,
        send_before: Optional[When] = None,
    ) -> Message:
        """Queue a message; the answer (``status: "queued"``, or
        ``"scheduled"`` with a future ``send_at``, and ``id``) comes once it
        is stored durably. ``send_at``/``send_before`` are timezone-aware
        datetimes or Unix milliseconds (a naive datetime raises
        ``ValueError``); past ``send_before`` the message is never sent.
        Every send carries an idempotency key (a fresh one unless given), so
        the client's own retries never send it twice; pass your own key
        (e.g. the appointment id) to make your retries safe across
        processes too."""
        call = _core.send_call(org_id, phone, text, idempotency_key, send_at, send_before)
        return cast(Message, self._run(call))

    def check_contact(self, org_id: OrgId, phone: Phone) -> Contact:
        """Whether ``phone`` is on WhatsApp (``on_whatsapp``, ``jid``), from the
        org's 7-day cache or by asking WhatsApp through the org's number. Look-ups
        are rate-limited per org (bulk look-ups get numbers banned):
        ``RateLimitError`` with ``retry_after`` when asked too often."""
        return cast(Contact, self._run(_core.contact_call(org_id, phone)))

    def create_webhook(
        self,
        org_id: OrgId,
        url: str,
        *,
        events: Optional[List[str]] = None,
        secret: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Add a webhook endpoint; the answer carries its ``secret`` (shown
        only here). ``events``: the kinds to send (``None``: all)."""
        return cast(Dict[str, Any], self._run(_core.webhook_create_call(org_id, url, events, secret)))

    def list_webhooks(self, org_id: OrgId) -> List[Dict[str, Any]]:
        """The org's endpoints with their delivery counts."""
        body = self._run(_core.webhooks_call(org_id))
        return cast(List[Dict[str, Any]], body["webhooks"])

    def delete_webhook(self, org_id: OrgId, webhook_id: str) -> None:
        """Remove an endpoint and its deliveries."""
        self._run(_core.webhook_delete_call(org_id, webhook_id))

    def rotate_webhook_secret(self, org_id: OrgId, webhook_id: str) -> Dict[str, Any]:
        """A new ``secret`` (shown once); the old one signs too for 24 h."""
        return cast(Dict[str, Any], self._run(_core.rotate_secret_call(org_id, webhook_id)))

    def list_deliveries(
        self, org_id: OrgId, webhook_id: str, *, status: Optional[str] = None, limit: int = 100
    ) -> List[Dict[str, Any]]:
        """An endpoint's newest deliveries (``status``: pending, delivered, failed)."""
        call = _core.deliveries_call(org_id, webhook_id, status, limit)
        return cast(List[Dict[str, Any]], (self._run(call))["deliveries"])

    def retry_delivery(self, org_id: OrgId, webhook_id: str, delivery_id: str) -> None:
        """Send one delivery again now."""
        self._run(_core.retry_delivery_call(org_id, webhook_id, delivery_id))

    def replay_webhook(self, org_id: OrgId, webhook_id: str, since: When) -> int:
        """Send again every delivery made since ``since``; how many."""
        return int((self._run(_core.replay_call(org_id, webhook_id, since)))["queued"])

    def get_sending_policy(self, org_id: OrgId) -> SendingPolicy:
        """How the org's number paces its sends (gap, caps, quiet hours …)."""
        return cast(SendingPolicy, self._run(_core.policy_call(org_id)))

    def set_sending_policy(self, org_id: OrgId, **changes: Any) -> SendingPolicy:
        """Change some fields of the policy (``quiet_hours=None`` turns them
        off); the rest keep their values. Returns the whole new policy."""
        return cast(SendingPolicy, self._run(_core.set_policy_call(org_id, changes)))

    def cancel_message(self, org_id: OrgId, message_id: str) -> Message:
        """Cancel a scheduled message, or a queued one not yet handed to
        WhatsApp; ``ConflictError`` (``not_cancelable``) once it was."""
        return cast(Message, self._run(_core.cancel_call(org_id, message_id)))

    def reschedule_message(
        self,
        org_id: OrgId,
        message_id: str,
        *,
        send_at: Optional[When] = None,
        send_before: Optional[When] = None,
    ) -> Message:
        """Move a scheduled message (what is not given is kept);
        ``ConflictError`` (``not_reschedulable``) once it is no longer
        scheduled."""
        call = _core.reschedule_call(org_id, message_id, send_at, send_before)
        return cast(Message, self._run(call))

    def get_message(self, org_id: OrgId, message_id: str) -> Message:
        return cast(Message, self._run(_core.message_call(org_id, message_id)))

    def list_messages(
        self,
        org_id: OrgId,
        *,
        status: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> MessagePage:
        """One page of messages, oldest first; pass ``next_cursor`` back as
        ``cursor`` for the next page (``None`` at the end)."""
        call = _core.list_call(org_id, "messages", status=status, limit=limit, cursor=cursor)
        return cast(MessagePage, self._run(call))

    def iter_messages(
        self, org_id: OrgId, *, status: Optional[str] = None, page_size: int = 100
    ) -> Iterator[Message]:
        """Every message, oldest first, page by page."""
        cursor: Optional[str] = None
        while True:
            page = self.list_messages(org_id, status=status, limit=page_size, cursor=cursor)
            yield from page["messages"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def list_inbound(
        self, org_id: OrgId, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> InboundPage:
        """Messages patients sent to the org, oldest first."""
        call = _core.list_call(org_id, "inbound", status=None, limit=limit, cursor=cursor)
        return cast(InboundPage, self._run(call))

    # -- organizations (admin token) --------------------------------------

    def create_org(
        self,
        org_id: OrgId,
        name: Optional[str] = None,
        *,
        default_country_code: Optional[str] = None,
    ) -> Org:
        """Create an organization; the answer's ``token`` is shown only once."""
        call = _core.create_org_call(org_id, name, default_country_code)
        return cast(Org, self._run(call))

    def list_orgs(self) -> List[Org]:
        return cast(List[Org], self._run(_core.list_orgs_call())["orgs"])

    def delete_org(self, org_id: OrgId) -> None:
        self._run(_core.delete_org_call(org_id))

    # -- events -----------------------------------------------------------

    def events(
        self,
        org_id: OrgId,
        *,
        last_event_id: Optional[str] = None,
        reconnect: bool = True,
    ) -> Iterator[Event]:
        """Events of one org as they happen, forever (``break`` to stop).

        A fresh stream starts with a ``status`` snapshot. When the connection
        drops (or stays silent past the server's keep-alive), the generator
        reconnects after 1 s, 2 s … 30 s, sending ``Last-Event-ID`` so that
        the server replays what was missed: no event is lost or repeated.
        With ``last_event_id``, start after that event. A bad token or an
        unknown org raises instead of retrying; so does any failure when
        ``reconnect`` is false.
        """
        path = _core.org_path(org_id, "events")
        parser = _core.SseParser()
        parser.last_id = last_event_id
        delay = _core.STREAM_BACKOFF_START
        timeout = httpx.Timeout(self._http.timeout.connect, read=_core.STREAM_READ_TIMEOUT)
        while True:
            try:
                headers = _core.stream_headers(self._token, parser.last_id)
                with self._http.stream("GET", path, headers=headers, timeout=timeout) as r:
                    if r.status_code != 200:
                        text = r.read().decode("utf-8", "replace")
                        err = _core.error_for(r.status_code, text, "GET", path)
                        if _core.stream_fatal(r.status_code) or not reconnect:
                            raise err
                    else:
                        delay = _core.STREAM_BACKOFF_START
                        for line in r.iter_lines():
                            ev = parser.feed(line)
                            if ev is not None:
                                yield ev
                        if not reconnect:
                            return
            except httpx.TransportError as e:
                if not reconnect:
                    raise _core.transport_error(e, "GET", path) from e
            time.sleep(delay)
            delay = _core.next_stream_delay(delay)

    # -- plumbing ---------------------------------------------------------

    def _run(self, call: Call) -> Any:
        r = self._send(call)
        return _core.decode(r.status_code, r.text, call)

    def _send(self, call: Call) -> httpx.Response:
        """Send ``call``, again while ``should_retry`` allows; the answer
        when its status is one of ``call.ok``, else the matching exception."""
        attempt = 0
        while True:
            try:
                r = self._http.request(
                    call.method, call.path, json=call.json_body, params=call.params, headers=call.headers
                )
            except httpx.TransportError as e:
                if not _core.should_retry(call, None, attempt, self.retries):
                    raise _core.transport_error(e, call.method, call.path) from e
                time.sleep(_core.retry_delay(attempt, None))
                attempt += 1
                continue
            if r.status_code in call.ok:
                return r
            if not _core.should_retry(call, r.status_code, attempt, self.retries):
                raise _core.error_for(
                    r.status_code, r.text, call.method, call.path, r.headers.get("retry-after")
                )
            time.sleep(_core.retry_delay(attempt, r.headers.get("retry-after")))
            attempt += 1
