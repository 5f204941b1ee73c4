#!/usr/bin/env python3
"""Webhook benchmark: how fast events reach a receiver, and that a slow receiver
does not slow WhatsApp sends. Prints figures and writes
bench/results/webhooks-<time>.json; asserts nothing.

    python3 bench/webhooks.py              # 3 rounds of 4,800 sends per run (over 10,000 events each)
    python3 bench/webhooks.py --sends 300 --rounds 1  # a smoke run

Three kinds of run, repeated --rounds times in turn (none, fast, slow, none, …)
so that a slow minute of the machine does not fall on one kind only, and the
median of each kind is printed at the end. Each run is on a fresh wa-sim and gateway (release sim build, its own
process) with one org linked through wa-sim and `--unpaced`: no webhook; a
webhook to a loopback receiver that answers at once; a webhook to one that
takes --slow-s per request. Each posts --sends messages to one patient and
measures how fast the gateway got them server-acked (sends per second). With a
receiver, every `message.status` event is delivered to it: deliveries per
second and event → delivery latency (the receiver's arrival time minus the
event's `created_at`, one clock).

On a machine with two or more cores the gateway runs alone on core 0 and
everything else (wa-sim, the load generator, the receiver) on core 1
(--no-pin to turn it off), so that the receiver's own CPU does not count
against the gateway and a change in sends per second is the gateway's.
"""

import argparse
import datetime as dt
import http.server
import json
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "compare"))
import run as common  # noqa: E402  (the side-by-side benchmark's helpers)


class Receiver:
    """A loopback receiver; records (event id, created_at ms, arrival ms)."""

    def __init__(self, delay_s):
        self.got = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if delay_s:
                    time.sleep(delay_s)
                now = time.time() * 1000
                try:
                    ev = json.loads(body)
                    created = dt.datetime.fromisoformat(ev["created_at"].replace("Z", "+00:00")).timestamp() * 1000
                    with outer.lock:
                        outer.got.append((ev["id"], created, now))
                except (ValueError, KeyError):
                    pass
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()


PIN = []  # the command prefix that pins the gateway to its core


class Gateway(common.Wagate):
    """The side-by-side benchmark's wagate, allowed to post to loopback."""

    def start(self):
        self.logf = open(self.work / "wagate.log", "a")
        self.proc = common.subprocess.Popen(
            PIN + [str(self.binary), "serve", "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}",
             "--admin-token", common.ADMIN, "--wa-url", self.sim.ws, "--unpaced", "--webhook-allow", "127.0.0.1"],
            stdout=self.logf, stderr=common.subprocess.STDOUT, env=dict(common.os.environ, RUST_LOG="warn"))
        common.wait_until(lambda: common.http("GET", f"{self.base}/healthz")[0] == 200, 60, "wagate start")


def acked(gw):
    db = sqlite3.connect(f"file:{gw.data / 'wagate.db'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM messages WHERE status IN ('sent', 'delivered', 'read')").fetchone()[0]
    finally:
        db.close()


def one_run(mode, args, wagate_bin, sim_bin, work):
    sim = common.WaSim(sim_bin, work)
    gw = Gateway(wagate_bin, work, sim)
    gw.start()
    rec = None
    try:
        sim.phone("573110000001", "Clinica")
        gw.link(1, "573110000001")
        org, tok = gw.org_id(1), gw.tokens[gw.org_id(1)]
        if mode != "none":
            rec = Receiver(args.slow_s if mode == "slow" else 0)
            st, b = common.http("POST", f"{gw.base}/v1/orgs/{org}/webhooks",
                                {"url": rec.url, "events": ["message.status"]}, tok)
            if st != 201:
                raise RuntimeError(f"webhook: {st} {b}")
        t0, c0, s0 = time.monotonic(), common.cpu_s(gw.proc.pid), common.cpu_s(sim.proc.pid)
        secs, failed = post_sends(gw, org, args)
        common.wait_until(lambda: acked(gw) >= args.sends - failed, 600, "every send acked", step=0.2)
        send_s = time.monotonic() - t0
        res = {"mode": mode, "sends": args.sends - failed, "accept_s": round(secs, 2),
               "acked_per_s": round((args.sends - failed) / send_s, 1),
               "gateway_cpu_s": round(common.cpu_s(gw.proc.pid) - c0, 1),
               "wa_sim_cpu_s": round(common.cpu_s(sim.proc.pid) - s0, 1)}
        common.log(f"  {mode}: {args.sends - failed} sends acked in {send_s:.1f} s ({res['acked_per_s']}/s); "
                   f"CPU gateway {res['gateway_cpu_s']} s, wa-sim {res['wa_sim_cpu_s']} s")
        if rec is not None:
            window = args.slow_window if mode == "slow" else 300
            db = sqlite3.connect(f"file:{gw.data / 'wagate.db'}?mode=ro", uri=True, timeout=30)
            events = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
            db.close()
            t1 = time.monotonic()
            while time.monotonic() - t1 < window and len(rec.got) < events:
                time.sleep(0.2)
            with rec.lock:
                got = list(rec.got)
            lat = sorted(a - c for _, c, a in got)
            span = (max(a for _, _, a in got) - min(c for _, c, _ in got)) / 1000 if got else 0
            res.update({
                "events": events, "delivered": len(got),
                "distinct": len({i for i, _, _ in got}),
                "deliveries_per_s": round(len(got) / span, 1) if span else None,
                "latency_ms": {"p50": round(common.pct(lat, 0.5)), "p99": round(common.pct(lat, 0.99)),
                               "max": round(max(lat))} if lat else None,
                "waited_s": round(time.monotonic() - t1, 1),
            })
            common.log(f"  {mode}: {len(got)}/{events} events delivered; {res['deliveries_per_s']}/s; "
                       f"latency {res['latency_ms']} ms")
        return res
    finally:
        if rec:
            rec.stop()
        gw.stop()
        sim.stop()


def post_sends(gw, org, args):
    import concurrent.futures as cf
    tok = gw.tokens[org]
    t0 = time.monotonic()

    def one(i):
        st, _ = common.http("POST", f"{gw.base}/v1/orgs/{org}/messages",
                            {"to": common.PATIENT, "text": f"Recordatorio {i}"}, tok)
        return st == 202

    with cf.ThreadPoolExecutor(args.clients) as ex:
        ok = sum(ex.map(one, range(args.sends), chunksize=32))
    return time.monotonic() - t0, args.sends - ok


def medians(runs):
    """Each kind's median of the figures that compare runs."""
    import statistics
    keys = ("acked_per_s", "gateway_cpu_s", "deliveries_per_s")
    out = {}
    for mode in ("none", "fast", "slow"):
        mine = [r for r in runs if r["mode"] == mode]
        out[mode] = {k: statistics.median(r[k] for r in mine) for k in keys
                     if mine and all(r.get(k) is not None for r in mine)}
        p50 = [r["latency_ms"]["p50"] for r in mine if r.get("latency_ms")]
        p99 = [r["latency_ms"]["p99"] for r in mine if r.get("latency_ms")]
        if p50:
            out[mode]["latency_p50_ms"] = statistics.median(p50)
            out[mode]["latency_p99_ms"] = statistics.median(p99)
        common.log(f"median {mode}: {out[mode]}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sends", type=int, default=4800, help="messages per run (about 2.1 status events each)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="how many times each kind of run is made")
    ap.add_argument("--slow-s", type=float, default=1.0, help="the slow receiver's time per request")
    ap.add_argument("--slow-window", type=int, default=30, help="seconds to watch the slow receiver after the sends")
    ap.add_argument("--no-pin", action="store_true", help="let every process run on every core")
    ap.add_argument("--target", default=common.os.environ.get("CARGO_TARGET_DIR", str(HERE.parent / "target")))
    args = ap.parse_args()
    wagate_bin, sim_bin = common.build_binaries(Path(args.target))
    pinned = not args.no_pin and (common.os.cpu_count() or 1) >= 2
    if pinned:
        # This process's threads and children (wa-sim) on core 1; the
        # gateway is started on core 0 alone.
        common.os.sched_setaffinity(0, {1})
        PIN[:] = ["taskset", "-c", "0"]
        common.log("pinned: the gateway on core 0; wa-sim, the load and the receiver on core 1")
    out = {"when": dt.datetime.now().isoformat(timespec="seconds"), "args": vars(args), "pinned": pinned,
           "runs": []}
    with tempfile.TemporaryDirectory(prefix="wagate-webhooks-") as tmp:
        for r in range(args.rounds):
            for mode in ("none", "fast", "slow"):
                common.log(f"round {r + 1}/{args.rounds}, run: {mode}")
                w = Path(tmp) / f"{mode}-{r}"
                w.mkdir()
                out["runs"].append(one_run(mode, args, wagate_bin, sim_bin, w))
    out["median"] = medians(out["runs"])
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"webhooks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    common.log(f"wrote {path}")


if __name__ == "__main__":
    main()
