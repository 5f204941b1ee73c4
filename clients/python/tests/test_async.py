"""wagate.AsyncClient against the same real gateway: the calls and the async
event generator."""

from __future__ import annotations

import asyncio
from typing import List

import pytest

import wagate
from conftest import Gateway, Linked


def run(coro: "asyncio.Future[None] | object") -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_async_status_send_and_idempotent_retry(gateway: Gateway, linked: Linked, recipient: str) -> None:
    async def go() -> None:
        async with wagate.AsyncClient(gateway.url, linked.token) as c:
            s = await c.get_status(linked.org)
            assert s["state"] == "connected" and s["phone_number"] == linked.phone
            a, b = await asyncio.gather(
                c.send_message(linked.org, recipient, "async", idempotency_key="async-1"),
                c.send_message(linked.org, recipient, "async", idempotency_key="async-1"),
            )
            assert a["id"] == b["id"]
            for _ in range(300):
                if (await c.get_message(linked.org, a["id"]))["status"] == "read":
                    break
                await asyncio.sleep(0.1)
            assert (await c.get_message(linked.org, a["id"]))["status"] == "read"
            seen = [m async for m in c.iter_messages(linked.org) if m["to"] == recipient]
            assert [m["id"] for m in seen] == [a["id"]]

    run(go())
    assert [m["text"] for m in gateway.sim.inbox(recipient)] == ["async"]


def test_async_error_codes(gateway: Gateway, linked: Linked) -> None:
    async def go() -> None:
        async with wagate.AsyncClient(gateway.url, linked.token) as c:
            with pytest.raises(wagate.BadRequestError) as e:
                await c.send_message(linked.org, "+57 (300) 12", "hola")
            assert e.value.code == "invalid_phone"
        async with wagate.AsyncClient(gateway.url, "wgo_wrong") as bad:
            with pytest.raises(wagate.AuthenticationError) as a:
                await bad.get_status(linked.org)
            assert a.value.code == "unauthorized"

    run(go())


def test_async_check_contact(gateway: Gateway, linked: Linked, recipient: str) -> None:
    async def go() -> None:
        async with wagate.AsyncClient(gateway.url, linked.token) as c:
            found = await c.check_contact(linked.org, recipient)
            assert found["on_whatsapp"] is True and found["cached"] is False
            again = await c.check_contact(linked.org, recipient)
            assert again["cached"] is True and again["jid"] == found["jid"]

    run(go())


def test_async_events_see_a_state_change(gateway: Gateway) -> None:
    org, token = gateway.new_org("async")

    async def go() -> List[str]:
        states: List[str] = []
        async with wagate.AsyncClient(gateway.url, token) as c:
            stream = c.events(org)
            first = await stream.__anext__()
            assert first.event == "status" and first.data["state"] == "new"
            await c.connect(org)
            async for ev in stream:
                if ev.event == "state":
                    states.append(ev.data["state"])
                if "pairing" in states:
                    break
            await stream.aclose()
        return states

    states = asyncio.run(asyncio.wait_for(go(), 30))
    assert "pairing" in states, states
