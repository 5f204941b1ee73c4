"""wagate.Client against a real gateway and wa-sim: status, sends, the
idempotent retry, error codes, and the event stream."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest

import wagate
from conftest import Gateway, Linked, wait_for


def wait_message(c: wagate.Client, org: str, mid: str, status: str, within: float = 30) -> wagate.Message:
    holder: Dict[str, wagate.Message] = {}

    def done() -> bool:
        holder["m"] = c.get_message(org, mid)
        return holder["m"]["status"] == status

    wait_for(done, within, f"message {mid} {status}")
    return holder["m"]


def test_status_of_a_linked_org(gateway: Gateway, linked: Linked) -> None:
    with gateway.client(linked.token) as c:
        s = c.get_status(linked.org)
    assert s["state"] == "connected"
    assert s["connected"] is True
    assert s["phone_number"] == linked.phone
    assert isinstance(s["detail"], str) and s["detail"]


def test_status_of_a_new_org(gateway: Gateway) -> None:
    org, token = gateway.new_org()
    with gateway.client(token) as c:
        s = c.get_status(org)
    assert s["state"] == "new"
    assert s["connected"] is False
    assert s["phone_number"] is None


def test_send_reaches_the_patient_and_reports_delivery(
    gateway: Gateway, linked: Linked, recipient: str
) -> None:
    with gateway.client(linked.token) as c:
        m = c.send_message(linked.org, recipient, "Le recordamos su cita mañana a las 10:00")
        assert m["status"] == "queued"
        assert m["id"]
        assert m["idempotency_key"], "every send carries an idempotency key"
        read = wait_message(c, linked.org, m["id"], "read")
        assert read["to"] == recipient
    inbox = gateway.sim.inbox(recipient)
    assert [x["text"] for x in inbox] == ["Le recordamos su cita mañana a las 10:00"]


def test_retry_with_the_same_idempotency_key_returns_the_first_message(
    gateway: Gateway, linked: Linked, recipient: str
) -> None:
    with gateway.client(linked.token) as c:
        first = c.send_message(linked.org, recipient, "cita 123", idempotency_key="appointment-123")
        again = c.send_message(linked.org, recipient, "cita 123", idempotency_key="appointment-123")
        assert again["id"] == first["id"]
        other = c.send_message(linked.org, recipient, "cita 124", idempotency_key="appointment-124")
        assert other["id"] != first["id"]
        wait_message(c, linked.org, other["id"], "read")
    texts = [x["text"] for x in gateway.sim.inbox(recipient)]
    assert texts == ["cita 123", "cita 124"]


class LoseFirstAnswer(httpx.BaseTransport):
    """Lets every request reach the server but throws away the answer to the
    first POST, as a connection dropped at the worst moment would."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.posts: List[Optional[str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        r = self.inner.handle_request(request)
        if request.method == "POST":
            self.posts.append(request.headers.get("idempotency-key"))
            if len(self.posts) == 1:
                r.read()
                r.close()
                raise httpx.ReadError("connection reset (test)", request=request)
        return r

    def close(self) -> None:
        self.inner.close()


def test_a_send_whose_answer_was_lost_is_retried_once_not_doubled(
    gateway: Gateway, linked: Linked, recipient: str
) -> None:
    t = LoseFirstAnswer()
    with gateway.client(linked.token, transport=t) as c:
        m = c.send_message(linked.org, recipient, "solo una vez")
        assert len(t.posts) == 2, "the client retried the send"
        assert t.posts[0] == t.posts[1] and t.posts[0], "with the same generated key"
        wait_message(c, linked.org, m["id"], "read")
    with gateway.client(linked.token) as c:
        mine = [x for x in c.iter_messages(linked.org) if x["to"] == recipient]
    assert [x["id"] for x in mine] == [m["id"]]
    assert [x["text"] for x in gateway.sim.inbox(recipient)] == ["solo una vez"]


def test_logout_is_not_retried_after_a_lost_answer(gateway: Gateway) -> None:
    org, token = gateway.new_org()
    t = LoseFirstAnswer()
    with gateway.client(token, transport=t) as c, pytest.raises(wagate.TransportError) as e:
        c.logout(org)
    assert e.value.code == "connection_failed"
    assert len(t.posts) == 1


def test_bad_phone_is_a_bad_request_with_its_code(gateway: Gateway, linked: Linked) -> None:
    with gateway.client(linked.token) as c, pytest.raises(wagate.BadRequestError) as e:
        c.send_message(linked.org, "12ab", "hola")
    assert e.value.status == 422
    assert e.value.code == "invalid_phone"
    assert e.value.status_code == 422
    assert isinstance(e.value, wagate.WagateError) and isinstance(e.value, wagate.ApiError)
    assert "phone" in e.value.message.lower() or "number" in e.value.message.lower()


def test_empty_text_is_refused(gateway: Gateway, linked: Linked) -> None:
    with gateway.client(linked.token) as c, pytest.raises(wagate.BadRequestError) as e:
        c.send_message(linked.org, "3001112233", "   ")
    assert e.value.code == "empty_text"


def test_wrong_token_is_an_authentication_error(gateway: Gateway, linked: Linked) -> None:
    with gateway.client("wgo_not_a_real_token") as c, pytest.raises(wagate.AuthenticationError) as e:
        c.get_status(linked.org)
    assert e.value.status == 401
    assert e.value.code == "unauthorized"
    assert "wgo_not_a_real_token" not in str(e.value)


def test_another_orgs_token_is_refused(gateway: Gateway, linked: Linked) -> None:
    _, other_token = gateway.new_org()
    with gateway.client(other_token) as c:
        with pytest.raises(wagate.PermissionDeniedError) as e:
            c.get_status(linked.org)
        assert e.value.code == "forbidden"
        with pytest.raises(wagate.PermissionDeniedError):
            c.send_message(linked.org, "3001112233", "no")


def test_unknown_message_and_no_qr(gateway: Gateway, linked: Linked) -> None:
    with gateway.client(linked.token) as c:
        with pytest.raises(wagate.NotFoundError) as nf:
            c.get_message(linked.org, "no-such-message")
        assert nf.value.status == 404
        with pytest.raises(wagate.ConflictError) as cf:
            c.get_qr(linked.org)
        assert cf.value.code == "no_qr"


def test_unreachable_gateway_is_a_transport_error_after_retries() -> None:
    # Port 9 on loopback: nothing listens there.
    with wagate.Client("http://127.0.0.1:9", "wgo_x", retries=1, timeout=2) as c:
        t0 = time.monotonic()
        with pytest.raises(wagate.TransportError) as e:
            c.get_status("4")
        assert e.value.code == "connection_failed"
        assert time.monotonic() - t0 < 5


def test_pairing_code_instead_of_qr(gateway: Gateway) -> None:
    org, token = gateway.new_org()
    with gateway.client(token) as c:
        pc = c.connect(org, phone_number="573019999999")
        assert "pair_code" in pc
        code = pc["pair_code"]  # type: ignore[typeddict-item]
        assert len(code.replace("-", "")) == 8
        assert c.get_status(org)["state"] == "pairing"


def test_events_see_a_state_change(gateway: Gateway, linked: Linked) -> None:
    """The generator starts with a status snapshot, then sees the link drop
    (a wa-sim fault) and come back."""
    seen: List[wagate.Event] = []
    done = threading.Event()

    def follow() -> None:
        with gateway.client(linked.token) as c:
            for ev in c.events(linked.org):
                seen.append(ev)
                states = [e.data.get("state") for e in seen if e.event == "state"]
                if "connected" in states and any(s != "connected" for s in states):
                    break
        done.set()

    threading.Thread(target=follow, daemon=True).start()
    wait_for(lambda: len(seen) >= 1, 10, "the first event")
    assert seen[0].event == "status" and seen[0].data["state"] == "connected"
    st, v = gateway.sim.control(
        "POST", "/control/faults", {"kind": "drop", "device": f"{linked.phone}:1@s.whatsapp.net"}
    )
    assert st == 200, v
    assert done.wait(60), f"no drop-and-back seen: {[(e.event, e.data) for e in seen]}"
    states = [e.data["state"] for e in seen if e.event == "state"]
    assert states[0] != "connected" and states[-1] == "connected", states
    assert all(e.id for e in seen[1:]), "live events carry their sequence number"


class CutStreams(httpx.BaseTransport):
    """Ends the first event stream with a network error after ``cut_after``
    events; later streams run untouched. Records each stream's
    Last-Event-ID."""

    def __init__(self, cut_after: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.cut_after = cut_after
        self.last_ids: List[Optional[str]] = []
        #: The id of the last event the first stream let through.
        self.passed_id: Optional[str] = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        r = self.inner.handle_request(request)
        if not request.url.path.endswith("/events"):
            return r
        self.last_ids.append(request.headers.get("last-event-id"))
        if len(self.last_ids) > 1:
            return r
        cut_after = self.cut_after
        outer = self

        class Cut(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                events = 0
                for chunk in r.stream:  # type: ignore[union-attr]
                    yield chunk
                    for line in chunk.decode().splitlines():
                        if line.startswith("id:"):
                            outer.passed_id = line[3:].strip()
                    events += chunk.count(b"\n\n")
                    if events >= cut_after:
                        r.close()
                        raise httpx.RemoteProtocolError("stream cut (test)", request=request)

        return httpx.Response(r.status_code, headers=r.headers, stream=Cut(), request=request)


def test_events_reconnect_with_last_event_id_and_miss_nothing(
    gateway: Gateway, linked: Linked, recipient: str
) -> None:
    # The snapshot, then the first message's "queued" event; then the cut.
    t = CutStreams(cut_after=2)
    sent: List[str] = []
    seen: List[wagate.Event] = []
    with gateway.client(linked.token, transport=t) as c, gateway.client(linked.token) as sender:
        for ev in c.events(linked.org):
            seen.append(ev)
            if ev.event == "status" and not sent:
                sent += [sender.send_message(linked.org, recipient, f"#{i}")["id"] for i in range(3)]
            read = {e.data["id"] for e in seen if e.event == "message.status" and e.data["status"] == "read"}
            if read >= set(sent):
                break
    assert len(t.last_ids) == 2, t.last_ids
    assert t.last_ids[0] is None
    assert t.passed_id is not None
    assert t.last_ids[1] == t.passed_id, "reconnected after the last event it had"
    ids = [e.id for e in seen if e.id]
    assert len(ids) == len(set(ids)), "no event twice"
    order = ["queued", "sent", "delivered", "read"]
    for mid in sent:
        statuses = [e.data["status"] for e in seen if e.event == "message.status" and e.data["id"] == mid]
        # "sent" is skipped when the delivery receipt is applied before the
        # server ack; a status never moves backwards.
        assert statuses[0] == "queued" and statuses[-1] == "read", (mid, statuses)
        assert [order.index(x) for x in statuses] == sorted({order.index(x) for x in statuses}), statuses
    # Exactly what the server's event log holds: replay it from the first
    # live event and compare.
    replay: List[str] = []
    with gateway.client(linked.token) as c:
        for ev in c.events(linked.org, last_event_id=ids[0], reconnect=False):
            replay.append(ev.id or "")
            if len(replay) == len(ids) - 1:
                break
    assert replay == ids[1:]


def test_events_for_a_bad_token_raise_instead_of_retrying(gateway: Gateway, linked: Linked) -> None:
    with gateway.client("wgo_nope") as c, pytest.raises(wagate.AuthenticationError):
        next(iter(c.events(linked.org)))


def test_list_messages_pages(gateway: Gateway, linked: Linked, recipient: str) -> None:
    with gateway.client(linked.token) as c:
        ids = [c.send_message(linked.org, recipient, f"p{i}")["id"] for i in range(5)]
        pages: List[List[str]] = []
        cursor: Optional[str] = None
        while True:
            page = c.list_messages(linked.org, limit=2, cursor=cursor)
            pages.append([m["id"] for m in page["messages"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        everything = [i for p in pages for i in p]
        assert everything[-5:] == ids
        assert all(len(p) <= 2 for p in pages)
        with pytest.raises(wagate.BadRequestError) as e:
            c.list_messages(linked.org, limit=0)
        assert e.value.code == "invalid_limit"


def test_repr_does_not_show_the_token(gateway: Gateway, linked: Linked) -> None:
    c: Any = gateway.client(linked.token)
    assert linked.token not in repr(c)
    c.close()


def test_a_scheduled_reminder_arrives_after_send_at_and_a_canceled_one_never(
    gateway: Gateway, linked: Linked, recipient: str
) -> None:
    import datetime as dt

    bogota = dt.timezone(dt.timedelta(hours=-5))
    at = dt.datetime.now(bogota) + dt.timedelta(seconds=2)
    with gateway.client(linked.token) as c:
        m = c.send_message(linked.org, recipient, "cita programada", send_at=at)
        assert m["status"] == "scheduled"
        assert m["send_at_ms"] == int(at.timestamp() * 1000)
        gone = c.send_message(linked.org, recipient, "cancelada", send_at=at)
        assert c.cancel_message(linked.org, gone["id"])["status"] == "canceled"
        with pytest.raises(wagate.ConflictError) as e:
            c.cancel_message(linked.org, gone["id"])
        assert e.value.code == "not_cancelable"
        later = c.send_message(
            linked.org, recipient, "movida", send_at=int(at.timestamp() * 1000) + 3_600_000
        )
        page = c.list_messages(linked.org, status="scheduled")
        assert [x["id"] for x in page["messages"]] == [m["id"], later["id"]], "by due time"
        moved = c.reschedule_message(linked.org, later["id"], send_at=at + dt.timedelta(seconds=1))
        assert moved["send_at_ms"] == int(at.timestamp() * 1000) + 1000
        wait_message(c, linked.org, m["id"], "read")
        wait_message(c, linked.org, later["id"], "read")
        with pytest.raises(wagate.ConflictError) as e:
            c.reschedule_message(linked.org, m["id"], send_at=at)
        assert e.value.code == "not_reschedulable"
    texts = [x["text"] for x in gateway.sim.inbox(recipient)]
    assert sorted(texts) == ["cita programada", "movida"], texts
    arrived = min(x["t"] for x in gateway.sim.inbox(recipient))
    assert arrived >= int(at.timestamp() * 1000), "not before send_at"


def test_naive_datetimes_and_bad_times_are_refused(gateway: Gateway, linked: Linked) -> None:
    import datetime as dt

    with gateway.client(linked.token) as c:
        with pytest.raises(ValueError, match="naive"):
            c.send_message(linked.org, "3001112233", "x", send_at=dt.datetime.now())
        with pytest.raises(TypeError):
            c.send_message(linked.org, "3001112233", "x", send_at="mañana")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            c.reschedule_message(linked.org, "msg_x")
        soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
        with pytest.raises(wagate.BadRequestError) as e:
            c.send_message(
                linked.org, "3001112233", "x", send_at=soon, send_before=soon - dt.timedelta(minutes=1)
            )
        assert e.value.code == "invalid_send_before"


def test_sending_policy_is_read_and_changed_field_by_field(gateway: Gateway) -> None:
    org, token = gateway.new_org("policy")
    with gateway.client(token) as c:
        p = c.get_sending_policy(org)
        assert p["min_gap_ms"] == 0, "the test gateway runs --unpaced"
        p = c.set_sending_policy(
            org,
            min_gap_ms=30_000,
            max_gap_ms=60_000,
            quiet_hours={"start": "21:00", "end": "08:00"},
            timezone="America/Bogota",
        )
        assert p["quiet_hours"] == {"start": "21:00", "end": "08:00"}
        assert p["timezone"] == "America/Bogota"
        p = c.set_sending_policy(org, quiet_hours=None)
        assert p["quiet_hours"] is None
        assert p["min_gap_ms"] == 30_000, "kept"
        with pytest.raises(wagate.BadRequestError) as e:
            c.set_sending_policy(org, timezone="Mars/Olympus")
        assert e.value.code == "invalid_policy"
        assert "timezone" in e.value.message
        with pytest.raises(ValueError):
            c.set_sending_policy(org)


def test_check_contact_is_cached_and_rate_limited(gateway: Gateway, linked: Linked, recipient: str) -> None:
    with gateway.client(linked.token) as c:
        found = c.check_contact(linked.org, "+" + recipient)
        assert found["on_whatsapp"] is True
        assert found["phone"] == recipient
        assert found["jid"] and found["jid"].startswith(recipient)
        assert c.check_contact(linked.org, recipient)["cached"] is True
        # Fresh numbers each ask WhatsApp: a few at once, then 429.
        answers = []
        with pytest.raises(wagate.RateLimitError) as e:
            for i in range(10):
                answers.append(c.check_contact(linked.org, f"5730077{i:05d}"))
        assert all(a["on_whatsapp"] is False for a in answers)
        assert 1 <= len(answers) <= 5
        assert e.value.code == "rate_limited"
        assert e.value.status == 429
        assert e.value.retry_after is not None and 1 <= e.value.retry_after <= 6
        with pytest.raises(wagate.BadRequestError) as bad:
            c.check_contact(linked.org, "hola")
        assert bad.value.code == "invalid_phone"
        with pytest.raises(ValueError):
            c.check_contact(linked.org, "")


def test_a_number_not_on_whatsapp_ends_failed_and_is_never_sent(gateway: Gateway, linked: Linked) -> None:
    with gateway.client(linked.token) as c:
        m = c.send_message(linked.org, "573009876543", "Recordatorio")
        deadline = time.monotonic() + 15
        while m["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.1)
            m = c.get_message(linked.org, m["id"])
        assert m["status"] == "failed"
        assert m["error"] == "not_on_whatsapp"
        assert m.get("held_reason") is None
        s = c.get_status(linked.org)
        assert s["held_messages"] == 0
        assert s["reachout_timelock_until"] is None


def test_webhooks_arrive_signed_and_verify(gateway: Gateway, linked: Linked, recipient: str) -> None:
    import http.server
    import json as _json

    from wagate.webhooks import InvalidSignature, sign, verify

    got: List[Dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"body": body, "sig": self.headers["Wagate-Signature"], "id": self.headers["Wagate-Event-Id"]})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with gateway.client(linked.token) as c:
            hook = c.create_webhook(
                linked.org, f"http://127.0.0.1:{srv.server_address[1]}/hook",
                events=["message.status", "message.received"],
            )
            secret = hook["secret"]
            assert [w["id"] for w in c.list_webhooks(linked.org)].count(hook["id"]) == 1
            m = c.send_message(linked.org, recipient, "Recordatorio con webhook")
            wait_for(lambda: any(_json.loads(g["body"])["data"].get("status") == "read"
                                 and _json.loads(g["body"])["data"]["id"] == m["id"] for g in got), 30,
                     "the read status by webhook")
            # The patient answers "SÍ", quoting the reminder, addressed by LID.
            wa_id = c.get_message(linked.org, m["id"])["wa_id"]
            st, v = gateway.sim.control("POST", f"/control/phones/{recipient}/send",
                                        {"to": linked.phone, "text": "SÍ", "quote": wa_id, "as_lid": True})
            assert st == 200, v
            wait_for(lambda: any(_json.loads(g["body"])["type"] == "message.received" for g in got), 30,
                     "the reply by webhook")
            for g in got:
                event = verify(g["body"], g["sig"], secret)
                assert event["id"] == g["id"] and event["type"] in ("message.status", "message.received")
            reply = next(verify(g["body"], g["sig"], secret) for g in got
                         if _json.loads(g["body"])["type"] == "message.received")
            assert reply["data"]["text"] == "SÍ"
            assert reply["data"]["from"] == recipient and reply["data"]["from_lid"] not in (None, recipient)
            assert reply["data"]["in_reply_to"] == m["id"]
            first = got[0]
            with pytest.raises(InvalidSignature):
                verify(first["body"] + b" ", first["sig"], secret)
            with pytest.raises(InvalidSignature):
                verify(first["body"], first["sig"], "whsec_wrong")
            t = int(first["sig"].split(",")[0][2:])
            with pytest.raises(InvalidSignature):
                verify(first["body"], first["sig"], secret, now=t + 301)
            assert verify(first["body"], f"t={t},v1=00,v1={sign(first['body'], secret, t)}", secret)
            ds = c.list_deliveries(linked.org, hook["id"], status="delivered")
            assert len(ds) == len(got)
            before = len(got)
            c.retry_delivery(linked.org, hook["id"], ds[-1]["id"])
            wait_for(lambda: len(got) == before + 1, 15, "the retried delivery")
            assert c.replay_webhook(linked.org, hook["id"], 0) == len(ds)
            with pytest.raises(wagate.BadRequestError) as e:
                c.create_webhook(linked.org, "http://10.0.0.1/hook")
            assert e.value.code == "invalid_webhook_url"
            c.delete_webhook(linked.org, hook["id"])
            assert all(w["id"] != hook["id"] for w in c.list_webhooks(linked.org))
    finally:
        srv.shutdown()
