"""wagate.compat.whatsapp_baileys_client: the old client's calls and return
shapes, configured from the environment, against a real gateway."""

from __future__ import annotations

import importlib

import pytest

import wagate.compat
from conftest import ADMIN, Gateway, Linked, wait_for
from wagate.compat import WhatsAppBaileysClient


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, gateway: Gateway) -> pytest.MonkeyPatch:
    for k in ("WAGATE_URL", "WAGATE_TOKEN", "WAGATE_TIMEOUT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WAGATE_URL", gateway.url)
    return monkeypatch


def test_the_module_object_is_configured_from_the_environment(
    env: pytest.MonkeyPatch, linked: Linked
) -> None:
    env.setenv("WAGATE_TOKEN", linked.token)
    # A fresh import, as the Django app would do at start-up.
    mod = importlib.reload(wagate.compat)
    s = mod.whatsapp_baileys_client.get_status(linked.org)
    assert s == {
        "status": "connected",
        "connected": True,
        "phone_number": linked.phone,
        "phone": linked.phone,
    }


def test_send_message_shape(env: pytest.MonkeyPatch, gateway: Gateway, linked: Linked, recipient: str) -> None:
    env.setenv("WAGATE_TOKEN", ADMIN)  # one admin token for every clinic
    r = WhatsAppBaileysClient().send_message(linked.org, recipient, "Hola desde OpticaApp!")
    assert set(r) == {"success", "message_id", "status"}
    assert r["success"] is True and r["status"] == "queued" and r["message_id"]
    with gateway.client(linked.token) as c:
        assert r["message_id"] is not None
        wait_for(lambda: c.get_message(linked.org, r["message_id"] or "")["status"] == "read", 30, "read")
    assert [m["text"] for m in gateway.sim.inbox(recipient)] == ["Hola desde OpticaApp!"]


def test_integer_org_ids_like_the_old_app(env: pytest.MonkeyPatch, gateway: Gateway) -> None:
    org = 4000 + len(gateway.admin.list_orgs())
    gateway.admin.create_org(org, "Oceano Optico", default_country_code="57")
    env.setenv("WAGATE_TOKEN", ADMIN)
    s = WhatsAppBaileysClient().get_status(org)
    assert s == {"status": "new", "connected": False, "phone_number": None, "phone": None}
    r = WhatsAppBaileysClient().send_message(org, 3001234567, "queda en cola hasta vincular")
    assert r["success"] is True and r["status"] == "queued"


def test_a_per_org_token_variable_wins(env: pytest.MonkeyPatch, gateway: Gateway, linked: Linked) -> None:
    env.setenv("WAGATE_TOKEN", "wgo_wrong")
    env.setenv(f"WAGATE_TOKEN_{linked.org.upper()}", linked.token)
    assert WhatsAppBaileysClient().get_status(linked.org)["connected"] is True


def test_refused_send_shape(env: pytest.MonkeyPatch, linked: Linked) -> None:
    env.setenv("WAGATE_TOKEN", linked.token)
    r = WhatsAppBaileysClient().send_message(linked.org, "12ab", "hola")
    assert set(r) == {"success", "message_id", "status", "error"}
    assert r["success"] is False and r["message_id"] is None and r["status"] == "error"
    assert "invalid_phone" in r["error"]


def test_wrong_token_shapes(env: pytest.MonkeyPatch, linked: Linked) -> None:
    env.setenv("WAGATE_TOKEN", "wgo_not_a_token")
    c = WhatsAppBaileysClient()
    s = c.get_status(linked.org)
    assert set(s) == {"status", "connected", "phone_number", "phone", "error"}
    assert s["status"] == "error" and s["connected"] is False
    assert "unauthorized" in s["error"] and "wgo_not_a_token" not in s["error"]
    r = c.send_message(linked.org, "3001112233", "hola")
    assert r["success"] is False and "unauthorized" in r["error"]


def test_missing_token_and_unreachable_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAGATE_TOKEN", raising=False)
    monkeypatch.setenv("WAGATE_URL", "http://127.0.0.1:9")
    s = WhatsAppBaileysClient().get_status("nada")
    assert s["connected"] is False and "WAGATE_TOKEN" in s["error"]
    monkeypatch.setenv("WAGATE_TOKEN", "wgo_x")
    monkeypatch.setenv("WAGATE_TIMEOUT", "2")
    r = WhatsAppBaileysClient().send_message("nada", "3001112233", "hola")
    assert r["success"] is False and r["status"] == "error"
    assert "could not reach" in r["error"]
