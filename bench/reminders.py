#!/usr/bin/env python3
"""Reminder benchmark: the scheduler and the paced dispatchers at scale.
Prints figures and writes bench/results/reminders-<time>.json; asserts nothing.

    python3 bench/reminders.py                # the full run (about 10 minutes after the build)
    python3 bench/reminders.py --quick        # a smoke run (20 orgs, 2,000 scheduled, short windows)

Part A — idle cost of a long schedule: one gateway with --idle-orgs organizations
(not linked), its CPU over an idle window with nothing scheduled, then again with
--scheduled messages scheduled a day ahead (the one timer sleeps until the first
is due: no task and no poll per message).

Part B — a burst that is due at once: --orgs organizations linked through
wa-sim, each with a sending policy (a random 2–4 s between two messages,
"typing…" for up to 1 s), each given --per-org reminders to 10 patients, all due
in the same second. Measured from that second: how late each org's first
message left, when the last was handed to WhatsApp and acked, the gateway's CPU
over the burst, and whether any two messages of one number left closer than the
policy's minimum.

The release binaries (sim build) come from bench/compare/run.py's builder; the
gateway runs as its own process (CPU and RSS from /proc), wa-sim as another.
Talks only to loopback.
"""

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "compare"))
import run as common  # noqa: E402  (the side-by-side benchmark's helpers)

PATIENTS = [f"5730055{i:05d}" for i in range(10)]
MIN_GAP_MS, MAX_GAP_MS = 2_000, 4_000


def log(msg):
    common.log(msg)


def post_all(gw, jobs, clients):
    """POST each (org, body); returns (seconds, failures)."""
    t0 = time.monotonic()

    def one(job):
        org, body = job
        st, b = common.http("POST", f"{gw.base}/v1/orgs/{org}/messages", body, gw.tokens[org])
        return st == 202

    with cf.ThreadPoolExecutor(clients) as ex:
        ok = sum(ex.map(one, jobs, chunksize=64))
    return time.monotonic() - t0, len(jobs) - ok


def create_orgs(gw, n):
    for i in range(n):
        org = gw.org_id(i)
        st, body = common.http("POST", f"{gw.base}/v1/orgs",
                               {"id": org, "name": f"Clinica {i}", "default_country_code": "57"}, common.ADMIN)
        if st != 201:
            raise RuntimeError(f"create {org}: {st} {body}")
        gw.tokens[org] = body["token"]


def part_a(args, wagate_bin, sim_bin, work):
    log(f"A: {args.idle_orgs} orgs, idle, then {args.scheduled:,} messages scheduled a day ahead")
    sim = common.WaSim(sim_bin, work)
    gw = common.Wagate(wagate_bin, work, sim)
    gw.start()
    try:
        create_orgs(gw, args.idle_orgs)
        time.sleep(args.settle)
        before = common.idle_window(gw.proc.pid, args.window)
        log(f"  nothing scheduled: {before['cpu_s_per_min']} s CPU/min, {before['rss_mb']} MB")
        at = int(time.time() * 1000) + 24 * 3_600_000
        jobs = [(gw.org_id(k % args.idle_orgs),
                 {"to": PATIENTS[k % len(PATIENTS)], "text": f"Recordatorio {k}", "send_at": at + k})
                for k in range(args.scheduled)]
        secs, failed = post_all(gw, jobs, args.clients)
        log(f"  scheduled {args.scheduled - failed:,} in {secs:.1f} s ({(args.scheduled - failed) / secs:,.0f}/s), "
            f"{failed} refused")
        time.sleep(args.settle)
        after = common.idle_window(gw.proc.pid, args.window)
        log(f"  {args.scheduled:,} scheduled: {after['cpu_s_per_min']} s CPU/min, {after['rss_mb']} MB")
        db_mb = sum(p.stat().st_size for p in gw.data.glob("wagate.db*")) / 1e6
        return {"orgs": args.idle_orgs, "scheduled": args.scheduled - failed, "schedule_s": round(secs, 1),
                "idle_none": before, "idle_scheduled": after, "db_mb": round(db_mb, 1),
                "window_s": args.window}
    finally:
        gw.stop()
        sim.stop()


def handed(gw):
    db = sqlite3.connect(f"file:{gw.data / 'wagate.db'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(
            "SELECT o.id, m.handed_ms, m.status FROM messages m JOIN orgs o ON o.inc = m.inc").fetchall()
    finally:
        db.close()


def acked_ms(gw):
    """Per message, when the server first took it: its `sent` event, or its
    `delivered`/`read` one when the receipt overtook the ack (no `sent` then)."""
    db = sqlite3.connect(f"file:{gw.data / 'wagate.db'}?mode=ro", uri=True, timeout=30)
    try:
        return [r[0] for r in db.execute(
            "SELECT MIN(ts_ms) FROM events WHERE kind = 'message.status' "
            "AND json_extract(data, '$.status') IN ('sent', 'delivered', 'read') "
            "GROUP BY json_extract(data, '$.id')")]
    finally:
        db.close()


def part_b(args, wagate_bin, sim_bin, work):
    total = args.orgs * args.per_org
    log(f"B: {args.orgs} linked orgs × {args.per_org} reminders due in the same second ({total:,})")
    sim = common.WaSim(sim_bin, work)
    for p in PATIENTS:
        sim.phone(p, "Paciente")
    gw = common.Wagate(wagate_bin, work, sim)
    gw.start()
    try:
        link_s, err = common.link_up_to(gw, 0, args.orgs, 573100000000, args.link_workers)
        log(f"  linked {args.orgs} in {link_s:.1f} s" + (f" ({err})" if err else ""))
        gw.tokens = {gw.org_id(i): t for i, t in
                     ((int(o[1:]), t) for o, t in gw.tokens.items())}
        policy = {"min_gap_ms": MIN_GAP_MS, "max_gap_ms": MAX_GAP_MS, "hourly_cap": None, "daily_cap": None,
                  "new_contacts_per_day": None, "quiet_hours": None, "typing": True,
                  "typing_ms_per_char": 20, "typing_max_ms": 1_000}
        for org, tok in gw.tokens.items():
            st, b = common.http("PUT", f"{gw.base}/v1/orgs/{org}/sending-policy", policy, tok)
            if st != 200:
                raise RuntimeError(f"policy {org}: {st} {b}")
        orgs = sorted(gw.tokens)
        # Due on a whole second far enough ahead to post everything first.
        due = (int(time.time()) + args.lead) * 1000
        jobs = [(org, {"to": PATIENTS[k], "text": f"Recordatorio: su cita es mañana a las {8 + k}:00", "send_at": due})
                for org in orgs for k in range(args.per_org)]
        secs, failed = post_all(gw, jobs, args.clients)
        log(f"  scheduled {len(jobs) - failed:,} in {secs:.1f} s; due at {dt.datetime.fromtimestamp(due / 1000)}")
        if time.time() * 1000 > due:
            log("  WARNING: posting took longer than --lead; the burst started while posting")
        common.wait_until(lambda: time.time() * 1000 >= due, args.lead + 5, "the due second")
        c0 = common.cpu_s(gw.proc.pid)
        rss = []

        def all_out():
            rss.append(common.rss_kb(gw.proc.pid))
            rows = handed(gw)
            return all(h is not None for _, h, _ in rows) and \
                all(s in ("sent", "delivered", "read") for _, _, s in rows)

        common.wait_until(all_out, args.per_org * MAX_GAP_MS / 1000 * 3 + 120, "every reminder out", step=1)
        cpu = common.cpu_s(gw.proc.pid) - c0
        rows = handed(gw)
        by_org = {}
        for org, h, _ in rows:
            by_org.setdefault(org, []).append(h)
        first_late = [min(v) - due for v in by_org.values()]
        spans = [max(v) - min(v) for v in by_org.values()]
        gaps = [b - a for v in by_org.values() for a, b in zip(sorted(v), sorted(v)[1:])]
        under = sum(1 for g in gaps if g < MIN_GAP_MS)
        last_handed = max(h for _, h, _ in rows) - due
        last_ack = max(acked_ms(gw)) - due
        res = {
            "orgs": args.orgs, "per_org": args.per_org, "messages": len(rows), "link_s": round(link_s, 1),
            "schedule_s": round(secs, 1),
            "first_late_ms": {"p50": common.pct(first_late, 0.5), "p99": common.pct(first_late, 0.99),
                              "max": max(first_late)},
            "org_span_s": {"p50": round(common.pct(spans, 0.5) / 1000, 1), "max": round(max(spans) / 1000, 1)},
            "last_handed_s": round(last_handed / 1000, 1), "last_ack_s": round(last_ack / 1000, 1),
            "gap_ms": {"min": min(gaps), "p50": common.pct(gaps, 0.5), "max": max(gaps)},
            "gaps_under_policy": under, "cpu_s": round(cpu, 1),
            "rss_max_mb": round(max(rss) / 1024, 1),
        }
        log(f"  first message per org: {res['first_late_ms']} ms after the due second")
        log(f"  last handed to WhatsApp {res['last_handed_s']} s after, last acked {res['last_ack_s']} s after; "
            f"gaps {res['gap_ms']} ms ({under} under {MIN_GAP_MS} ms); CPU {cpu:.1f} s; RSS max {res['rss_max_mb']} MB")
        return res
    finally:
        gw.stop()
        sim.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--orgs", type=int, default=1000)
    ap.add_argument("--per-org", type=int, default=10)
    ap.add_argument("--idle-orgs", type=int, default=100)
    ap.add_argument("--scheduled", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=60, help="idle window, seconds")
    ap.add_argument("--settle", type=int, default=10)
    ap.add_argument("--lead", type=int, default=90, help="seconds from scheduling to the due second")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--link-workers", type=int, default=8)
    ap.add_argument("--target", default=os.environ.get("CARGO_TARGET_DIR", str(HERE.parent / "target")),
                    help="cargo target dir for the release build (default: $CARGO_TARGET_DIR, else ./target)")
    ap.add_argument("--skip", choices=["a", "b"], help="leave one part out")
    args = ap.parse_args()
    if args.quick:
        args.orgs, args.idle_orgs, args.scheduled, args.window, args.settle, args.lead = 20, 10, 2_000, 10, 2, 20
    wagate_bin, sim_bin = common.build_binaries(Path(args.target))
    try:
        facts = common.machine_facts()
    except (OSError, ValueError):  # no Baileys installed for the side-by-side run: facts without it
        facts = {"cores": os.cpu_count()}
    out = {"when": dt.datetime.now().isoformat(timespec="seconds"), "machine": facts, "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="wagate-reminders-") as tmp:
        if args.skip != "a":
            w = Path(tmp) / "a"
            w.mkdir()
            out["idle"] = part_a(args, wagate_bin, sim_bin, w)
        if args.skip != "b":
            w = Path(tmp) / "b"
            w.mkdir()
            out["burst"] = part_b(args, wagate_bin, sim_bin, w)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"reminders-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
