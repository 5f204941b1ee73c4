#!/usr/bin/env python3
"""Cost per organization: what a linked number and a never-linked org cost the
gateway, and how fast a thousand come back. Prints figures, writes
bench/results/orgs-<time>.json and bench/results/orgs-<time>.png (RSS against
N); asserts nothing.

    python3 bench/orgs.py                       # N = 100, 250, 500, 1,000 linked; 2,000 never linked
    python3 bench/orgs.py --sizes 20 50 --never 200 --idle 20   # a smoke run

At each size, wa-sim's count of the keep-alive pings and frames it read gives
pings and frames per org per minute over the idle window.

Run A (never linked): a fresh gateway with no org, then --never orgs created
and left alone: RSS and open descriptors before and after.

Run B (linked): a fresh wa-sim and gateway; orgs are linked by QR through
wa-sim up to each of --sizes in turn, in one process, so the ratio between
sizes is honest. At each size, after --settle seconds: RSS (median of the last
quarter of a --idle window sampled every second), idle CPU per minute over
that window, open descriptors, and the size of devices.db. At the largest
size, wa-sim goes silent for five of the orgs (a network death that closes
nothing): the time until each one's status leaves `connected`; then the
gateway is SIGKILLed and started again: the time until every org is
connected, and the order they came back in.

Both runs use the release sim build (bench/compare/run.py builds it) as their
own processes; CPU, RSS and descriptors come from /proc. Talks only to
loopback.
"""

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "compare"))
import run as common  # noqa: E402  (the side-by-side benchmark's helpers)


def log(msg):
    common.log(msg)


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def sim_traffic(gw):
    """(live connections, pings, frames) wa-sim has read from the gateway."""
    st, body = common.http("GET", f"{gw.sim.ctl}/control/devices")
    devs = body.get("devices", []) if st == 200 and isinstance(body, dict) else []
    return len(devs), sum(d.get("pings", 0) for d in devs), sum(d.get("frames_in", 0) for d in devs)


def measure(gw, args, data):
    time.sleep(args.settle)
    conns, p0, f0 = sim_traffic(gw)
    t0 = time.monotonic()
    m = common.idle_window(gw.proc.pid, args.idle)
    _, p1, f1 = sim_traffic(gw)
    if conns:
        per_min = 60 / (time.monotonic() - t0) / conns
        m["pings_per_org_min"] = round((p1 - p0) * per_min, 2)
        m["frames_per_org_min"] = round((f1 - f0) * per_min, 2)
    m["fds"] = fds(gw.proc.pid)
    db = data / "devices.db"
    m["devices_db_kb"] = round(sum(p.stat().st_size for p in data.glob("devices.db*")) / 1024) if db.exists() else 0
    return m


def run_never(args, wagate_bin, sim_bin, work):
    sim = common.WaSim(sim_bin, work)
    gw = common.Wagate(wagate_bin, work, sim)
    try:
        gw.start()
        base = measure(gw, args, gw.data)
        log(f"never linked: empty gateway {base}")
        t0 = time.monotonic()
        for i in range(args.never):
            org = gw.org_id(i)
            st, body = common.http("POST", f"{gw.base}/v1/orgs", {"id": org, "name": f"Clinica {i}"}, common.ADMIN)
            if st != 201:
                raise RuntimeError(f"create {org}: {st} {body}")
            if (i + 1) % 500 == 0:
                log(f"  {i + 1}/{args.never} created")
        created_s = time.monotonic() - t0
        after = measure(gw, args, gw.data)
        log(f"never linked: {args.never} orgs {after}")
        return {
            "orgs": args.never, "created_s": round(created_s, 1), "empty": base, "with_orgs": after,
            "rss_added_mb": round(after["rss_mb"] - base["rss_mb"], 1),
            "fds_added": (after["fds"] or 0) - (base["fds"] or 0),
        }
    finally:
        if gw.proc and gw.proc.poll() is None:
            gw.stop()
        sim.stop()


def restore_order(gw):
    """Org ids in the order they reached `connected` after the last start."""
    import sqlite3
    db = sqlite3.connect(f"file:{gw.data / 'wagate.db'}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute(
            "SELECT o.id, MAX(e.ts_ms) FROM events e JOIN orgs o ON o.inc = e.inc "
            "WHERE e.kind = 'state' AND json_extract(e.data, '$.state') = 'connected' GROUP BY o.id "
            "ORDER BY 2").fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def silent_death(gw, sim, n, count=5):
    """wa-sim stops answering `count` linked orgs' devices (their sockets stay
    open, nothing comes back): seconds until each status leaves `connected`."""
    picks = [1 + i * max(1, n // count) for i in range(count)]
    t0 = time.monotonic()
    for i in picks:
        device = f"{573040000000 + i}:1@s.whatsapp.net"
        st, b = common.http("POST", f"{sim.ctl}/control/faults", {"kind": "blackhole", "device": device})
        if st != 200:
            raise RuntimeError(f"wa-sim fault: {st} {b}")
    took = {}
    while len(took) < len(picks) and time.monotonic() - t0 < 60:
        for i in picks:
            org = gw.org_id(i)
            if org not in took and gw.state(org) != "connected":
                took[org] = round(time.monotonic() - t0, 1)
        time.sleep(0.2)
    common.http("DELETE", f"{sim.ctl}/control/faults")
    return {"orgs": len(picks), "seconds": took, "max_s": max(took.values()) if took else None,
            "all_left_connected": len(took) == len(picks)}


def run_linked(args, wagate_bin, sim_bin, work):
    sim = common.WaSim(sim_bin, work)
    gw = common.Wagate(wagate_bin, work, sim)
    res = {"sizes": {}}
    try:
        gw.start()
        res["empty"] = measure(gw, args, gw.data)
        log(f"linked: empty gateway {res['empty']}")
        linked = 0
        for n in args.sizes:
            took, err = common.link_up_to(gw, linked, n, 573040000000, args.link_workers)
            if err:
                res["failed_at"] = {"n": n, "error": err, "connected": gw.connected_count()}
                log(f"could not link {n}: {err}")
                break
            linked = n
            m = measure(gw, args, gw.data)
            m["link_s"] = round(took, 1)
            m["rss_per_org_mb"] = round((m["rss_mb"] - res["empty"]["rss_mb"]) / n, 3)
            log(f"linked: N={n} {m}")
            res["sizes"][str(n)] = m
        if linked:
            res["silent_death"] = silent_death(gw, sim, linked)
            log(f"silent network death at N={linked}: {res['silent_death']}")
            # The org that was active last should come back first: touch a few.
            recent = [gw.org_id(i) for i in range(linked, max(0, linked - 5), -1)]
            for org in recent:
                common.http("POST", f"{gw.base}/v1/orgs/{org}/messages", {"to": common.PATIENT, "text": "hola"},
                            gw.tokens[org])
            time.sleep(2)
            t = common.restore(gw, linked, args.restore_timeout)
            order = restore_order(gw)
            res["restore"] = {"n": linked, "seconds": round(t, 2),
                              "first_back": order[:5], "most_recent_first": recent}
            log(f"SIGKILL with {linked} linked: all connected again in {t:.2f} s; first back {order[:5]}")
            after = measure(gw, args, gw.data)
            res["after_restore"] = after
            log(f"after the restore: {after}")
    finally:
        if gw.proc and gw.proc.poll() is None:
            gw.stop()
        sim.stop()
    sizes = sorted(int(k) for k in res["sizes"])
    if len(sizes) >= 2:
        lo, hi = res["sizes"][str(sizes[0])], res["sizes"][str(sizes[-1])]
        res["rss_per_idle_session_mb"] = round((hi["rss_mb"] - lo["rss_mb"]) / (sizes[-1] - sizes[0]), 3)
        res["fds_per_session"] = round(((hi["fds"] or 0) - (lo["fds"] or 0)) / (sizes[-1] - sizes[0]), 2)
        res["disk_per_org_kb"] = round((hi["devices_db_kb"] - lo["devices_db_kb"]) / (sizes[-1] - sizes[0]), 1)
    return res


def plot(out, path):
    common.ensure_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = sorted(int(k) for k in out["linked"]["sizes"])
    rss = [out["linked"]["sizes"][str(n)]["rss_mb"] for n in sizes]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([0] + sizes, [out["linked"]["empty"]["rss_mb"]] + rss, marker="o", label="wagate, idle linked orgs")
    after = out["linked"].get("after_restore")
    if after:
        ax.plot([out["linked"]["restore"]["n"]], [after["rss_mb"]], marker="s", linestyle="none",
                label="the same, after SIGKILL and restart")
    ax.set_xlabel("linked organizations (idle)")
    ax.set_ylabel("gateway RSS (MB)")
    ax.set_title("wagate: memory against linked organizations")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 250, 500, 1000])
    ap.add_argument("--never", type=int, default=2000, help="never-linked orgs in run A")
    ap.add_argument("--idle", type=int, default=60, help="seconds of each idle window")
    ap.add_argument("--settle", type=int, default=15, help="seconds before each window")
    ap.add_argument("--link-workers", type=int, default=8)
    ap.add_argument("--restore-timeout", type=int, default=300)
    ap.add_argument("--skip-never", action="store_true")
    ap.add_argument("--target", default=os.environ.get("CARGO_TARGET_DIR", str(HERE.parent / "target")))
    args = ap.parse_args()
    wagate_bin, sim_bin = common.build_binaries(Path(args.target))
    out = {"when": dt.datetime.now().isoformat(timespec="seconds"), "args": vars(args),
           "machine": common.machine_facts()}
    with tempfile.TemporaryDirectory(prefix="wagate-orgs-") as tmp:
        if not args.skip_never:
            w = Path(tmp) / "never"
            w.mkdir()
            out["never_linked"] = run_never(args, wagate_bin, sim_bin, w)
        w = Path(tmp) / "linked"
        w.mkdir()
        out["linked"] = run_linked(args, wagate_bin, sim_bin, w)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = results / f"orgs-{stamp}.json"
    path.write_text(json.dumps(out, indent=2))
    if len(out["linked"]["sizes"]) >= 1:
        plot(out, results / f"orgs-{stamp}.png")
    print(json.dumps(out, indent=2))
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
