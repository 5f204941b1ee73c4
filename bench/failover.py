#!/usr/bin/env python3
"""Failover time with several gateways on one PostgreSQL: how long a killed
node's orgs take to be connected on the other nodes. Prints figures, writes
bench/results/failover-<time>.json; asserts nothing.

    python3 bench/failover.py                  # 3 nodes, 30 orgs, 10 kills
    python3 bench/failover.py --kills 3        # a smoke run

A throwaway PostgreSQL (initdb in a temp dir, a Unix socket only), one
wa-sim and --nodes gateways (the release sim build, each its own process
with its own --node-id) start; --orgs orgs are linked by QR through the
nodes in turn and spread evenly by lease. Then, --kills times: a node
chosen in turn is SIGKILLed; the clock runs from the kill until every
device of the orgs it owned has logged in to wa-sim again (WhatsApp's view,
polled every 50 ms), and until each of those orgs is listed `connected` on
another node (the API's view through a surviving node, polled every 100
ms; it lags by up to one renewal, when the nodes re-read who owns what). The killed node is started again under the same id (it
waits until its old heartbeat is stale, then takes its share back) before
the next kill. wa-sim's count of logins that found another live connection
for the same device is reported (it must stay 0: a device is never
connected from two places).

Talks only to loopback and the Unix socket.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "compare"))
import run as common  # noqa: E402  (the side-by-side benchmark's helpers)

ADMIN = common.ADMIN


def log(msg):
    common.log(msg)


class Postgres:
    """A throwaway cluster: initdb in `work`, a Unix socket only."""

    def __init__(self, work):
        initdb = shutil.which("initdb") or sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1]
        bindir = Path(os.path.realpath(initdb)).parent
        self.dir = work / "pg"
        self.dir.mkdir()
        (self.dir / "sock").mkdir()
        as_pg = []
        if os.geteuid() == 0:
            # The server runs as postgres: it must reach its directory.
            os.chmod(work, 0o755)
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.dir)], check=True)
            as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        subprocess.run(as_pg + [str(bindir / "initdb"), "-D", str(self.dir / "data"), "-U", "wagate",
                                "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL)
        self.log = open(work / "postgres.log", "w")
        self.proc = subprocess.Popen(
            as_pg + [str(bindir / "postgres"), "-D", str(self.dir / "data"), "-k", str(self.dir / "sock"),
                     "-c", "listen_addresses="],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"host={self.dir / 'sock'} user=wagate dbname=wagate"
        psql = bindir / "psql"
        common.wait_until(
            lambda: subprocess.run([str(psql), "-h", str(self.dir / "sock"), "-U", "wagate", "-d", "postgres",
                                    "-c", "CREATE DATABASE wagate"], capture_output=True).returncode == 0,
            30, "PostgreSQL start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Node(common.Wagate):
    """One gateway of several on the database."""

    def __init__(self, binary, work, sim, db, node_id):
        work.mkdir()
        super().__init__(binary, work, sim)
        self.db, self.id = db, node_id

    def start(self):
        self.logf = open(self.work / "wagate.log", "a")
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}",
             "--admin-token", ADMIN, "--wa-url", self.sim.ws, "--unpaced", "--database", self.db,
             "--node-id", self.id],
            stdout=self.logf, stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="warn"))
        common.wait_until(lambda: common.http("GET", f"{self.base}/healthz")[0] == 200, 60, f"{self.id} start")

    def owners(self):
        """org → (state, owning node), as this node lists them."""
        st, b = common.http("GET", f"{self.base}/v1/orgs", None, ADMIN, timeout=10)
        if st != 200 or not isinstance(b, dict):
            return {}
        return {o["id"]: (o["state"], o.get("node")) for o in b["orgs"]}


def overlaps(sim):
    st, b = common.http("GET", f"{sim.ctl}/control/devices")
    if st != 200 or not isinstance(b, dict):
        return None
    return sum(v.get("overlaps", 0) for v in b.get("logins", {}).values())


def relinked(sim, phones, since_ms):
    """Whether each phone's device has a connection to wa-sim opened after `since_ms`."""
    st, b = common.http("GET", f"{sim.ctl}/control/devices")
    if st != 200 or not isinstance(b, dict):
        return False
    fresh = {(d.get("jid") or "").split(":")[0].split("@")[0]
             for d in b.get("devices", []) if d.get("connected_ms", 0) >= since_ms}
    return all(p in fresh for p in phones)


def balanced(nodes, orgs, via):
    o = via.owners()
    if len(o) != orgs or any(s != "connected" for s, _ in o.values()):
        return False
    counts = [sum(1 for _, n in o.values() if n == x.id) for x in nodes]
    return max(counts) - min(counts) <= 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--orgs", type=int, default=30)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--target", default=os.environ.get("CARGO_TARGET_DIR", str(HERE.parent / "target")))
    args = ap.parse_args()
    wagate_bin, sim_bin = common.build_binaries(Path(args.target))
    out = {"when": dt.datetime.now().isoformat(timespec="seconds"), "args": vars(args),
           "machine": common.machine_facts(), "kills": []}
    with tempfile.TemporaryDirectory(prefix="wagate-failover-") as tmp:
        work = Path(tmp)
        pg = Postgres(work)
        sim = common.WaSim(sim_bin, work)
        nodes = [Node(wagate_bin, work / f"node-{i}", sim, pg.url, f"node-{chr(97 + i)}")
                 for i in range(args.nodes)]
        try:
            for n in nodes:
                n.start()
            t0 = time.monotonic()
            phone_of = {}
            for i in range(args.orgs):
                node = nodes[i % len(nodes)]
                phone = f"{573050000000 + i}"
                sim.phone(phone, f"Clinica {i}")
                node.link(i, phone)
                phone_of[node.org_id(i)] = phone
                for other in nodes:
                    other.tokens.update(node.tokens)
            common.wait_until(lambda: balanced(nodes, args.orgs, nodes[0]), 120, "orgs spread over the nodes")
            log(f"{args.orgs} orgs linked and spread over {len(nodes)} nodes in {time.monotonic() - t0:.1f} s")
            for k in range(args.kills):
                victim = nodes[k % len(nodes)]
                survivor = nodes[(k + 1) % len(nodes)]
                before = survivor.owners()
                theirs = [o for o, (_, n) in before.items() if n == victim.id]
                phones = [phone_of[o] for o in theirs]
                since_ms = int(time.time() * 1000)
                victim.kill()
                killed = time.monotonic()
                # WhatsApp's view: each device logged in again (from another node).
                common.wait_until(lambda: relinked(sim, phones, since_ms), 120,
                                  f"kill {k + 1}: {victim.id}'s devices connected again", step=0.05)
                sim_s = time.monotonic() - killed
                # The API's view: listed `connected` on another node.
                common.wait_until(
                    lambda: all(survivor.owners().get(o, ("", ""))[0] == "connected"
                                and survivor.owners().get(o, ("", ""))[1] not in (None, victim.id)
                                for o in theirs),
                    120, f"kill {k + 1}: {victim.id}'s orgs connected elsewhere", step=0.1)
                api_s = time.monotonic() - killed
                ov = overlaps(sim)
                out["kills"].append({"node": victim.id, "orgs": len(theirs), "seconds": round(sim_s, 2),
                                     "api_seconds": round(api_s, 2), "overlaps": ov})
                log(f"kill {k + 1}: {victim.id} with {len(theirs)} orgs → devices connected again in "
                    f"{sim_s:.2f} s, listed connected elsewhere in {api_s:.2f} s "
                    f"(wa-sim overlapping logins so far: {ov})")
                t1 = time.monotonic()
                victim.start()
                common.wait_until(lambda: balanced(nodes, args.orgs, survivor), 120, f"{victim.id} back")
                log(f"  {victim.id} back with its share in {time.monotonic() - t1:.1f} s")
        finally:
            for n in nodes:
                if n.proc and n.proc.poll() is None:
                    n.stop()
            sim.stop()
            pg.stop()
    secs = [k["seconds"] for k in out["kills"]]
    if secs:
        api = [k["api_seconds"] for k in out["kills"]]
        out["summary"] = {"kills": len(secs), "median_s": round(statistics.median(secs), 2),
                          "min_s": min(secs), "max_s": max(secs),
                          "api_median_s": round(statistics.median(api), 2), "api_max_s": max(api),
                          "overlapping_logins": out["kills"][-1]["overlaps"]}
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"failover-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out.get("summary", {}), indent=2))
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
