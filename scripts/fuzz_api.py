#!/usr/bin/env python3
"""Fuzz the HTTP API against its own OpenAPI description.

Starts a wa-sim and a wagate (sim build) on loopback from the binaries cargo
built, gives the gateway something to talk about (an org linked to a
simulated phone, an unlinked one, a message, a webhook with a delivery),
then runs schemathesis (pinned by scripts/test) against /openapi.json with the
admin token. The path parameters are drawn mostly from those real ids (so the
fuzzer reaches past "no such org") and sometimes at random.

Checks: no server error (5xx; a 503/504 is allowed only where the answer
depends on WhatsApp: a contact look-up or a pairing code for an org that is
not connected), every status, content type, header and body as described.
Prints schemathesis's summary, then one line of counts; exits non-zero on any
failure.

Usage: scripts/fuzz_api.py [--max-examples N] [--seed S]
WAGATE_FUZZ_CHECKS=all adds schemathesis's stricter checks (whether every
schema-valid input is accepted and every invalid one refused); they report
rules the document cannot state (a phone number's digits, a cursor's form),
so they are not part of the test command.
Binaries: WAGATE_BIN and WA_SIM_BIN, else $CARGO_TARGET_DIR (or target/)/debug/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx

REPO = Path(__file__).resolve().parents[1]
# The Python client's test fixtures start wa-sim and wagate the same way.
sys.path.insert(0, str(REPO / "clients" / "python" / "tests"))
from conftest import Proc, wait_for  # noqa: E402
ADMIN = "wga_fuzz_admin_token_0123456789abcdef0123"
PHONE = "573009990001"
PATIENT = "573009990002"
CHECKS = os.environ.get("WAGATE_FUZZ_CHECKS") or ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def binary(env: str, name: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    path = target / "debug" / name
    if not path.exists():
        sys.exit(f"{path} not found: build it with `cargo build --workspace --features wagate/sim`")
    return str(path)


def call(c: httpx.Client, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
    r = c.request(method, path, json=body)
    if r.status_code >= 300:
        sys.exit(f"{method} {path}: {r.status_code} {r.text}")
    return r.json()


def seed_data(url: str, control: str) -> Dict[str, List[str]]:
    """Orgs, a link, a message and a webhook delivery for the fuzzer to find."""
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as c, httpx.Client(
        base_url=control, timeout=30
    ) as sim:
        call(c, "POST", "/v1/orgs", {"id": "clinic", "name": "Clínica Central", "default_country_code": "57"})
        call(c, "POST", "/v1/orgs", {"id": "spare", "name": "Spare"})
        for phone in (PHONE, PATIENT):
            r = sim.post("/control/phones", json={"phone": phone, "name": f"Phone {phone}"})
            assert r.status_code in (200, 201), r.text
        call(c, "POST", "/v1/orgs/clinic/session/connect")
        wait_for(lambda: c.get("/v1/orgs/clinic/session").json()["qr_available"] is True, 30, "a QR")
        qr = call(c, "GET", "/v1/orgs/clinic/session/qr")["qr"]
        r = sim.post(f"/control/phones/{PHONE}/scan", json={"qr": qr})
        assert r.status_code == 200, r.text
        wait_for(lambda: c.get("/v1/orgs/clinic/session").json()["state"] == "connected", 60, "connected")
        # A receiver that refuses connections: the delivery stays pending, with an error.
        hook = call(c, "POST", "/v1/orgs/clinic/webhooks", {"url": "http://127.0.0.1:9/hook"})
        msg = call(c, "POST", "/v1/orgs/clinic/messages", {"to": f"+{PATIENT}", "text": "Recordatorio"})
        wait_for(
            lambda: bool(c.get(f"/v1/orgs/clinic/webhooks/{hook['id']}/deliveries").json()["deliveries"]),
            30,
            "a webhook delivery",
        )
        dlv = call(c, "GET", f"/v1/orgs/clinic/webhooks/{hook['id']}/deliveries")["deliveries"][0]["id"]
    return {"orgs": ["clinic", "spare"], "ids": [msg["id"], hook["id"]], "deliveries": [dlv], "phones": [PATIENT]}


def config(data: Dict[str, List[str]]) -> str:
    """schemathesis.toml: real ids most of the time; dangerous calls on `spare` only."""

    def values(xs: List[str]) -> str:
        return "[" + ", ".join(f'"{x}"' for x in xs) + "]"

    lines = [
        f'headers = {{ Authorization = "Bearer {ADMIN}" }}',
        "max-stream-events = 1",
        "",
    ]
    for name, xs in data.items():
        lines += [f"[dictionaries.{name}]", f"values = {values(xs)}", ""]
    lines += [
        "[parameters]",
        '"path.org" = { dictionary = "orgs", probability = 0.8 }',
        '"path.id" = { dictionary = "ids", probability = 0.8 }',
        '"path.delivery" = { dictionary = "deliveries", probability = 0.8 }',
        '"path.phone" = { dictionary = "phones", probability = 0.8 }',
        '"query.org_id" = { dictionary = "orgs", probability = 0.8 }',
        "",
    ]
    # Unlinking, resetting or deleting the linked org would leave the rest of
    # the run talking to an org with nothing to show.
    for op in (
        "DELETE /v1/orgs/{org}",
        "POST /v1/orgs/{org}/session/logout",
        "POST /v1/orgs/{org}/session/reset",
        "POST /v1/orgs/{org}/credentials/restore",
    ):
        lines += [
            "[[operations]]",
            f'include-name = "{op}"',
            'parameters = { "path.org" = "spare" }',
            "",
        ]
    # Answers that depend on WhatsApp: an org that is not connected cannot
    # look a number up (503 not_connected) and a pairing code can fail to
    # come (504 pair_code_timeout). Both are described; any other 5xx fails.
    for op in ("GET /v1/orgs/{org}/contacts/{phone}", "POST /v1/orgs/{org}/session/connect"):
        lines += [
            "[[operations]]",
            f'include-name = "{op}"',
            'checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503", "504"]',
            "",
        ]
    # A stream resumed with `Last-Event-ID` is silent until the next event
    # (15 s between keep-alive comments): read what comes in 2 s.
    lines += [
        "[[operations]]",
        'include-name = "GET /v1/orgs/{org}/events"',
        "request-timeout = 2",
        "",
    ]
    return "\n".join(lines)


def counts(junit: Path) -> Dict[str, int]:
    root = ET.parse(junit).getroot()
    cases = root.iter("testcase")
    out = {"operations": 0, "failed": 0, "server_errors": 0, "non_conforming": 0}
    for case in cases:
        out["operations"] += 1
        for f in list(case.iter("failure")) + list(case.iter("error")):
            out["failed"] += 1
            text = (f.get("message") or "") + (f.text or "")
            if "Server error" in text:
                out["server_errors"] += 1
            else:
                out["non_conforming"] += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-examples", type=int, default=int(os.environ.get("WAGATE_FUZZ_EXAMPLES", "40")))
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wagate-fuzz-"))
    quiet = {"WA_SIM_LOG": "warn"}
    sim = Proc(
        [binary("WA_SIM_BIN", "wa-sim"), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--state", str(work / "sim")],
        quiet,
        "wa-sim listening on ",
    )
    ws_url, _, rest = sim.ready_line.partition(" (control ")
    control = rest.rstrip(")")
    gw = Proc(
        [
            binary("WAGATE_BIN", "wagate"),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            str(work / "data"),
            "--wa-url",
            ws_url,
            "--unpaced",
            "--webhook-allow",
            "127.0.0.1",
        ],
        {"WAGATE_ADMIN_TOKEN": ADMIN, "WAGATE_LOG": "warn"},
        "wagate listening on ",
    )
    url = gw.ready_line.split()[0]
    try:
        t0 = time.monotonic()
        data = seed_data(url, control)
        print(f"seeded in {time.monotonic() - t0:.1f} s: {data}", flush=True)
        cfg = work / "schemathesis.toml"
        cfg.write_text(config(data))
        junit = work / "junit.xml"
        cmd = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(cfg),
            "run",
            f"{url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            str(args.max_examples),
            "--workers",
            "2",
            "--request-timeout",
            "40",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
            "--no-color",
        ]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
        t0 = time.monotonic()
        # In the scratch directory: schemathesis keeps a cache where it runs.
        rc = subprocess.call(cmd, cwd=work)
        took = time.monotonic() - t0
        if gw.p.poll() is not None:
            print("the gateway exited during the run:\n" + "".join(gw.lines[-40:]))
            return 1
        c = counts(junit) if junit.exists() else None
        if c is None:
            print("schemathesis wrote no report")
            return 1
        print(
            f"api fuzz: {c['operations']} operations, {c['server_errors']} server errors, "
            f"{c['non_conforming']} non-conforming, {c['failed']} failures in all, {took:.0f} s"
        )
        return 0 if rc == 0 and c["failed"] == 0 else 1
    finally:
        gw.stop()
        sim.stop()


if __name__ == "__main__":
    sys.exit(main())
