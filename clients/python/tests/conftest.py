"""The test session's real servers: a wa-sim and a wagate (sim build) on
loopback, started from the binaries cargo built, plus helpers to link an
organization by having a simulated phone scan the gateway's QR code.

Binaries: ``WAGATE_BIN`` and ``WA_SIM_BIN``, else ``$CARGO_TARGET_DIR`` (or
the repository's ``target/``) ``/debug/``. Build them with
``cargo build --workspace --features wagate/sim``."""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import httpx
import pytest

import wagate

ADMIN = "wga_pytest_admin_token_0123456789abcdef"
REPO = Path(__file__).resolve().parents[3]


def _binary(env: str, name: str) -> Path:
    explicit = os.environ.get(env)
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    path = target / "debug" / name
    if not path.exists():
        pytest.exit(
            f"{path} not found: build it with `cargo build --workspace --features wagate/sim` "
            f"or point {env} at it",
            returncode=2,
        )
    return path


class Proc:
    """A child process whose stdout is read until a line announces its
    address, then drained (kept in ``lines``) so it never blocks."""

    def __init__(self, args: List[str], env: Dict[str, str], ready_prefix: str) -> None:
        self.p = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: List[str] = []
        deadline = time.monotonic() + 60
        assert self.p.stdout is not None
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(f"{args[0]} exited early:\n" + "".join(self.lines[-30:]))
            self.lines.append(line)
            if line.startswith(ready_prefix):
                self.ready_line = line[len(ready_prefix) :].strip()
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


@dataclass
class Sim:
    ws_url: str
    control_url: str

    def control(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Tuple[int, Any]:
        r = httpx.request(method, self.control_url + path, json=body, timeout=30)
        return r.status_code, (r.json() if r.content else None)

    def add_phone(self, phone: str, **extra: Any) -> None:
        st, v = self.control("POST", "/control/phones", {"phone": phone, "name": f"Phone {phone}", **extra})
        assert st in (201, 409), v

    def inbox(self, phone: str) -> List[Dict[str, Any]]:
        st, v = self.control("GET", f"/control/phones/{phone}/inbox")
        assert st == 200, v
        return list(v["messages"])


@dataclass
class Gateway:
    url: str
    sim: Sim
    admin: wagate.Client
    proc: Proc

    def client(self, token: str, **kw: Any) -> wagate.Client:
        return wagate.Client(self.url, token, **kw)

    def new_org(self, prefix: str = "org") -> Tuple[str, str]:
        org = f"{prefix}{next(_ids)}"
        made = self.admin.create_org(org, f"Clinic {org}", default_country_code="57")
        return org, made["token"]

    def link(self, org: str, token: str, phone: str) -> wagate.SessionStatus:
        """Pair ``org`` with the simulated ``phone`` by QR; wait until connected."""
        self.sim.add_phone(phone)
        with self.client(token) as c:
            c.connect(org)
            wait_for(lambda: c.get_status(org).get("qr_available") is True, 30, "a QR on offer")
            qr = c.get_qr(org)["qr"]
            st, v = self.sim.control("POST", f"/control/phones/{phone}/scan", {"qr": qr})
            assert st == 200, v
            wait_for(lambda: c.get_status(org)["state"] == "connected", 60, f"{org} connected")
            return c.get_status(org)


_ids = itertools.count(1)
_phones = itertools.count(1)


def new_phone() -> str:
    return f"57301{next(_phones):07d}"


def wait_for(pred: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    quiet = {"WA_SIM_LOG": os.environ.get("WA_SIM_LOG", "warn")}
    sim_proc = Proc(
        [
            str(_binary("WA_SIM_BIN", "wa-sim")),
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--state",
            str(tmp_path_factory.mktemp("wa-sim")),
        ],
        quiet,
        "wa-sim listening on ",
    )
    # "ws://127.0.0.1:P/ws/chat (control http://127.0.0.1:Q)"
    ws_url, _, rest = sim_proc.ready_line.partition(" (control ")
    sim = Sim(ws_url=ws_url, control_url=rest.rstrip(")"))
    gw_proc = Proc(
        [
            str(_binary("WAGATE_BIN", "wagate")),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            str(tmp_path_factory.mktemp("wagate")),
            "--wa-url",
            ws_url,
            # No pacing unless a test sets a sending policy.
            "--unpaced",
            # Webhooks to a receiver the tests run on loopback.
            "--webhook-allow",
            "127.0.0.1",
        ],
        {"WAGATE_ADMIN_TOKEN": ADMIN, "WAGATE_LOG": os.environ.get("WAGATE_LOG", "warn")},
        "wagate listening on ",
    )
    url = gw_proc.ready_line.split()[0]
    admin = wagate.Client(url, ADMIN)
    try:
        yield Gateway(url=url, sim=sim, admin=admin, proc=gw_proc)
    finally:
        admin.close()
        gw_proc.stop()
        sim_proc.stop()


@dataclass
class Linked:
    org: str
    token: str
    phone: str


@pytest.fixture(scope="session")
def linked(gateway: Gateway) -> Linked:
    """One organization linked to a simulated phone for the whole session."""
    org, token = gateway.new_org("linked")
    phone = new_phone()
    gateway.link(org, token, phone)
    return Linked(org, token, phone)


@pytest.fixture
def recipient(gateway: Gateway) -> str:
    """A simulated patient's phone that reads what it receives after 200 ms."""
    phone = new_phone()
    gateway.sim.add_phone(phone, read_after_ms=200)
    return phone
