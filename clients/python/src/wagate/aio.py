"""The asyncio client: ``wagate.AsyncClient``, the same methods as
``wagate.Client`` as coroutines, and ``events()`` as an async generator."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, AsyncIterator, List, Optional, Union, cast

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


class AsyncClient:
    """``wagate.Client`` for asyncio: same arguments, same methods (each a
    coroutine), same retry rules; ``events()`` is an async generator. Use
    ``async with``, or ``await aclose()``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = _core.DEFAULT_TIMEOUT,
        retries: int = _core.DEFAULT_RETRIES,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        if not token:
            raise ValueError("a token is required (an org token or the admin token)")
        self.base_url = base_url.rstrip("/")
        self.retries = max(0, retries)
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_core.auth_headers(token),
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"wagate.AsyncClient({self.base_url!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the link (see wagate.Client for each call's meaning) --------------

    async def get_status(self, org_id: OrgId) -> SessionStatus:
        return cast(SessionStatus, await self._run(_core.status_call(org_id)))

    async def connect(
        self, org_id: OrgId, phone_number: Optional[Phone] = None
    ) -> Union[SessionStatus, PairCode]:
        call = _core.connect_call(org_id, phone_number)
        return cast(Union[SessionStatus, PairCode], await self._run(call))

    async def get_qr(self, org_id: OrgId) -> QrCode:
        return cast(QrCode, await self._run(_core.qr_call(org_id)))

    async def get_qr_image(self, org_id: OrgId, image_format: str = "svg") -> bytes:
        return (await self._send(_core.qr_call(org_id, image_format))).content

    async def logout(self, org_id: OrgId) -> SessionStatus:
        return cast(SessionStatus, await self._run(_core.session_action_call(org_id, "logout")))

    async def reset(self, org_id: OrgId) -> SessionStatus:
        return cast(SessionStatus, await self._run(_core.session_action_call(org_id, "reset")))

    async def history(self, org_id: OrgId) -> List[StateChange]:
        return cast(List[StateChange], (await self._run(_core.history_call(org_id)))["changes"])

    # -- messages -----------------------------------------------------------

    async def send_message(
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
        return cast(Message, await self._run(call))

    async def check_contact(self, org_id: OrgId, phone: Phone) -> Contact:
        """Whether ``phone`` is on WhatsApp (``on_whatsapp``, ``jid``), from the
        org's 7-day cache or by asking WhatsApp through the org's number. Look-ups
        are rate-limited per org (bulk look-ups get numbers banned):
        ``RateLimitError`` with ``retry_after`` when asked too often."""
        return cast(Contact, await self._run(_core.contact_call(org_id, phone)))

    async def create_webhook(
        self,
        org_id: OrgId,
        url: str,
        *,
        events: Optional[List[str]] = None,
        secret: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Add a webhook endpoint; the answer carries its ``secret`` (shown
        only here). ``events``: the kinds to send (``None``: all)."""
        return cast(Dict[str, Any], await self._run(_core.webhook_create_call(org_id, url, events, secret)))

    async def list_webhooks(self, org_id: OrgId) -> List[Dict[str, Any]]:
        """The org's endpoints with their delivery counts."""
        body = await self._run(_core.webhooks_call(org_id))
        return cast(List[Dict[str, Any]], body["webhooks"])

    async def delete_webhook(self, org_id: OrgId, webhook_id: str) -> None:
        """Remove an endpoint and its deliveries."""
        await self._run(_core.webhook_delete_call(org_id, webhook_id))

    async def rotate_webhook_secret(self, org_id: OrgId, webhook_id: str) -> Dict[str, Any]:
        """A new ``secret`` (shown once); the old one signs too for 24 h."""
        return cast(Dict[str, Any], await self._run(_core.rotate_secret_call(org_id, webhook_id)))

    async def list_deliveries(
        self, org_id: OrgId, webhook_id: str, *, status: Optional[str] = None, limit: int = 100
    ) -> List[Dict[str, Any]]:
        """An endpoint's newest deliveries (``status``: pending, delivered, failed)."""
        call = _core.deliveries_call(org_id, webhook_id, status, limit)
        return cast(List[Dict[str, Any]], (await self._run(call))["deliveries"])

    async def retry_delivery(self, org_id: OrgId, webhook_id: str, delivery_id: str) -> None:
        """Send one delivery again now."""
        await self._run(_core.retry_delivery_call(org_id, webhook_id, delivery_id))

    async def replay_webhook(self, org_id: OrgId, webhook_id: str, since: When) -> int:
        """Send again every delivery made since ``since``; how many."""
        return int((await self._run(_core.replay_call(org_id, webhook_id, since)))["queued"])

    async def get_sending_policy(self, org_id: OrgId) -> SendingPolicy:
        """How the org's number paces its sends (gap, caps, quiet hours …)."""
        return cast(SendingPolicy, await self._run(_core.policy_call(org_id)))

    async def set_sending_policy(self, org_id: OrgId, **changes: Any) -> SendingPolicy:
        """Change some fields of the policy (``quiet_hours=None`` turns them
        off); the rest keep their values. Returns the whole new policy."""
        return cast(SendingPolicy, await self._run(_core.set_policy_call(org_id, changes)))

    async def cancel_message(self, org_id: OrgId, message_id: str) -> Message:
        """Cancel a scheduled message, or a queued one not yet handed to
        WhatsApp; ``ConflictError`` (``not_cancelable``) once it was."""
        return cast(Message, await self._run(_core.cancel_call(org_id, message_id)))

    async def reschedule_message(
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
        return cast(Message, await self._run(call))

    async def get_message(self, org_id: OrgId, message_id: str) -> Message:
        return cast(Message, await self._run(_core.message_call(org_id, message_id)))

    async def list_messages(
        self,
        org_id: OrgId,
        *,
        status: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> MessagePage:
        call = _core.list_call(org_id, "messages", status=status, limit=limit, cursor=cursor)
        return cast(MessagePage, await self._run(call))

    async def iter_messages(
        self, org_id: OrgId, *, status: Optional[str] = None, page_size: int = 100
    ) -> AsyncIterator[Message]:
        cursor: Optional[str] = None
        while True:
            page = await self.list_messages(org_id, status=status, limit=page_size, cursor=cursor)
            for m in page["messages"]:
                yield m
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def list_inbound(
        self, org_id: OrgId, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> InboundPage:
        call = _core.list_call(org_id, "inbound", status=None, limit=limit, cursor=cursor)
        return cast(InboundPage, await self._run(call))

    # -- organizations (admin token) ----------------------------------------

    async def create_org(
        self,
        org_id: OrgId,
        name: Optional[str] = None,
        *,
        default_country_code: Optional[str] = None,
    ) -> Org:
        call = _core.create_org_call(org_id, name, default_country_code)
        return cast(Org, await self._run(call))

    async def list_orgs(self) -> List[Org]:
        return cast(List[Org], (await self._run(_core.list_orgs_call()))["orgs"])

    async def delete_org(self, org_id: OrgId) -> None:
        await self._run(_core.delete_org_call(org_id))

    # -- events -------------------------------------------------------------

    async def events(
        self,
        org_id: OrgId,
        *,
        last_event_id: Optional[str] = None,
        reconnect: bool = True,
    ) -> AsyncIterator[Event]:
        """See ``wagate.Client.events``."""
        path = _core.org_path(org_id, "events")
        parser = _core.SseParser()
        parser.last_id = last_event_id
        delay = _core.STREAM_BACKOFF_START
        timeout = httpx.Timeout(self._http.timeout.connect, read=_core.STREAM_READ_TIMEOUT)
        while True:
            try:
                headers = _core.stream_headers(self._token, parser.last_id)
                async with self._http.stream("GET", path, headers=headers, timeout=timeout) as r:
                    if r.status_code != 200:
                        text = (await r.aread()).decode("utf-8", "replace")
                        err = _core.error_for(r.status_code, text, "GET", path)
                        if _core.stream_fatal(r.status_code) or not reconnect:
                            raise err
                    else:
                        delay = _core.STREAM_BACKOFF_START
                        async for line in r.aiter_lines():
                            ev = parser.feed(line)
                            if ev is not None:
                                yield ev
                        if not reconnect:
                            return
            except httpx.TransportError as e:
                if not reconnect:
                    raise _core.transport_error(e, "GET", path) from e
            await asyncio.sleep(delay)
            delay = _core.next_stream_delay(delay)

    # -- plumbing -----------------------------------------------------------

    async def _run(self, call: Call) -> Any:
        r = await self._send(call)
        return _core.decode(r.status_code, r.text, call)

    async def _send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            try:
                r = await self._http.request(
                    call.method, call.path, json=call.json_body, params=call.params, headers=call.headers
                )
            except httpx.TransportError as e:
                if not _core.should_retry(call, None, attempt, self.retries):
                    raise _core.transport_error(e, call.method, call.path) from e
                await asyncio.sleep(_core.retry_delay(attempt, None))
                attempt += 1
                continue
            if r.status_code in call.ok:
                return r
            if not _core.should_retry(call, r.status_code, attempt, self.retries):
                raise _core.error_for(
                    r.status_code, r.text, call.method, call.path, r.headers.get("retry-after")
                )
            await asyncio.sleep(_core.retry_delay(attempt, r.headers.get("retry-after")))
            attempt += 1
