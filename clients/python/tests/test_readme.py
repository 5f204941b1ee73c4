"""The Python examples of the READMEs, run as pasted against a real gateway:
only the gateway's URL and the org's token are put in (and the org's id, so
each example has an org of its own)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

from conftest import Gateway

ROOT = Path(__file__).resolve().parents[3]


def python_blocks(readme: Path) -> List[str]:
    return re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)


def run(block: str, gateway: Gateway, org: str, token: str) -> Dict[str, Any]:
    code = (
        block.replace("http://127.0.0.1:8080", gateway.url)
        .replace("<org 4's token>", token)
        .replace('"4"', repr(org))
    )
    scope: Dict[str, Any] = {}
    exec(compile(code, "README example", "exec"), scope)  # noqa: S102 - the README's own code
    return scope


def test_the_readme_quick_start_schedules_a_reminder_for_tomorrow(gateway: Gateway) -> None:
    blocks = [b for b in python_blocks(ROOT / "README.md") if "send_message" in b]
    assert len(blocks) == 1, blocks
    org, token = gateway.new_org("readme")
    scope = run(blocks[0], gateway, org, token)
    m = scope["m"]
    assert m["status"] == "scheduled", m
    sent = gateway.admin.get_message(org, m["id"])
    assert sent["send_at_ms"] > 0 and sent["send_before_ms"] - sent["send_at_ms"] == 3_600_000
    # Run again: the idempotency key returns the same message.
    again = run(blocks[0], gateway, org, token)["m"]
    assert again["id"] == m["id"]
