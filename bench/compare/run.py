#!/usr/bin/env python3
"""Side-by-side benchmark: wagate against the stack it replaces (the seed's
Node + Baileys server, rebuilt small in seed-server.mjs), both against the same
wa-sim build, on this machine, in one run.

    python3 bench/compare/run.py                 # the full run (about 25 minutes)
    python3 bench/compare/run.py --quick         # a smoke run (2 and 5 orgs, short windows)

For each system, on a fresh data dir and a fresh wa-sim:
  1. idle cost: link N organizations (a simulated phone scans each QR), let them
     settle, then sample the process's RSS and CPU time over an idle window, at
     every N in --sizes;
  2. restore: SIGKILL the process with N linked, start it again, time until
     all N say connected;
  3. sends (with the largest N linked): one org, then 50 orgs: --messages sends
     posted by --clients concurrent HTTP clients, latency from the POST to the
     server's ack and to the recipient's delivery receipt, as recorded by the
     gateway; and --sequential sends one at a time on an idle queue.

Writes bench/compare/results/<time>.json, bench/compare/memory-vs-n.png and the
results section of BENCHMARKS.md (between its markers). Installs what it needs
when missing: matplotlib (pip), Baileys (npm ci), the release binaries (cargo).
Talks only to loopback.
"""

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PATIENT = "573009990000"
ADMIN = "bench-admin-token-0123456789abcdef"
CLK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- set-up


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("installing matplotlib 3.9.2 for the plot (pip)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib==3.9.2"], check=True)


def ensure_node_modules():
    if not shutil.which("node") or not shutil.which("npm"):
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        log("installing Debian's nodejs and npm (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "nodejs", "npm"], check=True, env=env)
    lock = HERE / "package-lock.json"
    stamp = HERE / "node_modules" / ".installed-lock"
    if not stamp.exists() or stamp.read_bytes() != lock.read_bytes():
        log("npm ci in bench/compare (Baileys, pinned)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True)
        shutil.copyfile(lock, stamp)


def build_binaries(target):
    log(f"cargo build --release -p wagate -p wa-sim --features wagate/sim (target dir {target}; "
        "a first release build takes about 10 minutes on 2 cores)")
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    subprocess.run(
        ["cargo", "build", "--release", "-p", "wagate", "-p", "wa-sim", "--features", "wagate/sim"],
        cwd=ROOT, check=True, env=env)
    return target / "release" / "wagate", target / "release" / "wa-sim"


def cmd_out(args, cwd=None):
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine_facts():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem_kb = int(line.split()[1])
    baileys = json.loads((HERE / "node_modules" / "baileys" / "package.json").read_text())["version"]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "rustc": cmd_out(["rustc", "--version"]),
        "node": cmd_out(["node", "--version"]),
        "baileys": baileys,
        "wagate_commit": cmd_out(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT),
        "whatsapp_rust": whatsapp_rust_version(),
        "python": platform.python_version(),
    }


def whatsapp_rust_version():
    text = (ROOT / "Cargo.lock").read_text()
    block = text.split('name = "whatsapp-rust"\n', 1)
    return block[1].split("\n", 1)[0].split('"')[1] if len(block) == 2 else "?"


# ---------------------------------------------------------------- helpers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout) as e:
        return 0, str(e)


def wait_until(pred, timeout, what, step=0.1):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise RuntimeError(f"{what}: not within {timeout} s")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round((len(s) - 1) * p))]


class WaSim:
    def __init__(self, binary, work):
        self.ws_port, self.ctl_port = free_port(), free_port()
        self.ctl = f"http://127.0.0.1:{self.ctl_port}"
        self.ws = f"ws://127.0.0.1:{self.ws_port}/ws/chat"
        self.log = open(work / "wa-sim.log", "w")
        self.proc = subprocess.Popen(
            [str(binary), "--listen", f"127.0.0.1:{self.ws_port}", "--control", f"127.0.0.1:{self.ctl_port}",
             "--state", str(work / "wa-sim")],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="warn"))
        wait_until(lambda: http("GET", f"{self.ctl}/control/devices")[0] == 200, 30, "wa-sim start")
        st, _ = http("POST", f"{self.ctl}/control/phones", {"phone": PATIENT, "name": "Paciente"})
        if st not in (200, 201):
            raise RuntimeError(f"wa-sim: creating the patient's phone answered {st}")

    def phone(self, number, name):
        st, body = http("POST", f"{self.ctl}/control/phones", {"phone": number, "name": name})
        if st not in (200, 201, 409):
            raise RuntimeError(f"wa-sim: creating phone {number}: {st} {body}")

    def scan(self, number, qr):
        st, body = http("POST", f"{self.ctl}/control/phones/{number}/scan", {"qr": qr})
        if st != 200:
            raise RuntimeError(f"wa-sim: scan for {number}: {st} {body}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# ---------------------------------------------------------------- the two systems


class Wagate:
    name = "wagate"

    def __init__(self, binary, work, sim):
        self.binary, self.work, self.sim = binary, work, sim
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = work / "data"
        self.tokens = {}
        self.proc = None

    def start(self):
        self.logf = open(self.work / "wagate.log", "a")
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}",
             "--admin-token", ADMIN, "--wa-url", self.sim.ws, "--unpaced"],
            stdout=self.logf, stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="warn"))
        wait_until(lambda: http("GET", f"{self.base}/healthz")[0] == 200, 60, "wagate start")

    def org_id(self, i):
        return f"c{i:04d}"

    def link(self, i, phone):
        org = self.org_id(i)
        st, body = http("POST", f"{self.base}/v1/orgs",
                        {"id": org, "name": f"Clinica {i}", "default_country_code": "57"}, ADMIN)
        if st != 201:
            raise RuntimeError(f"create org {org}: {st} {body}")
        tok = body["token"]
        self.tokens[org] = tok
        st, body = http("POST", f"{self.base}/v1/orgs/{org}/session/connect", None, tok)
        if st >= 300:
            raise RuntimeError(f"connect {org}: {st} {body}")

        def qr():
            st, b = http("GET", f"{self.base}/v1/orgs/{org}/session/qr", None, tok)
            return b.get("qr") if st == 200 and isinstance(b, dict) else None

        self.sim.scan(phone, wait_until(qr, 60, f"QR of {org}"))
        wait_until(lambda: self.state(org) == "connected", 120, f"{org} connected")

    def state(self, org):
        st, b = http("GET", f"{self.base}/v1/orgs/{org}/session", None, self.tokens[org])
        return b.get("state") if st == 200 and isinstance(b, dict) else None

    def connected_count(self):
        st, b = http("GET", f"{self.base}/v1/orgs", None, ADMIN)
        if st != 200 or not isinstance(b, dict):
            return 0
        return sum(1 for o in b["orgs"] if o["state"] == "connected")

    def send(self, i, text):
        org = self.org_id(i)
        st, b = http("POST", f"{self.base}/v1/orgs/{org}/messages", {"to": PATIENT, "text": text}, self.tokens[org])
        return b["id"] if st == 202 else None

    def diagnosis(self):
        return {}

    def acks(self):
        """message id → (ack_ms, delivered_ms) from the gateway's event log."""
        out = {}
        db = sqlite3.connect(f"file:{self.data / 'wagate.db'}?mode=ro", uri=True, timeout=30)
        try:
            rows = db.execute(
                "SELECT json_extract(data, '$.id'), json_extract(data, '$.status'), ts_ms FROM events "
                "WHERE kind = 'message.status'").fetchall()
        finally:
            db.close()
        for mid, status, ts in rows:
            a = out.setdefault(mid, [None, None])
            if status == "sent" and a[0] is None:
                a[0] = ts
            if status in ("delivered", "read") and a[1] is None:
                a[1] = ts
                if a[0] is None:
                    a[0] = ts  # the ack's event can fold into delivered
        return out

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.logf.close()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.logf.close()


class Seed:
    name = "seed (Node + Baileys)"

    def __init__(self, work, sim):
        self.work, self.sim = work, sim
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.logf = open(self.work / "seed.log", "a")
        env = dict(os.environ, SEED_PORT=str(self.port), SEED_AUTH_DIR=str(self.work / "auth_sessions"),
                   WA_SIM_WS=self.sim.ws)
        self.proc = subprocess.Popen(["node", str(HERE / "seed-server.mjs")], cwd=HERE, env=env,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        wait_until(lambda: http("GET", f"{self.base}/bench/summary")[0] == 200, 60, "seed start")

    def org_id(self, i):
        return str(i)

    def link(self, i, phone):
        org = self.org_id(i)
        st, body = http("POST", f"{self.base}/api/connect", {"org_id": org})
        if st != 200:
            raise RuntimeError(f"connect {org}: {st} {body}")

        def qr():
            st, b = http("GET", f"{self.base}/api/qr?org_id={org}")
            return b.get("qr") if st == 200 and isinstance(b, dict) else None

        self.sim.scan(phone, wait_until(qr, 60, f"QR of {org}"))
        wait_until(lambda: self.state(org) == "connected", 120, f"{org} connected")

    def state(self, org):
        st, b = http("GET", f"{self.base}/api/status?org_id={org}")
        return b.get("status") if st == 200 and isinstance(b, dict) else None

    def connected_count(self):
        st, b = http("GET", f"{self.base}/bench/summary")
        return b["by_status"].get("connected", 0) if st == 200 and isinstance(b, dict) else 0

    def send(self, i, text):
        st, b = http("POST", f"{self.base}/api/send-message",
                     {"org_id": self.org_id(i), "phone": PATIENT, "message": text})
        return b.get("message_id") if st == 200 and isinstance(b, dict) else None

    def diagnosis(self):
        st, b = http("GET", f"{self.base}/bench/summary")
        return b if st == 200 else {}

    def acks(self):
        st, b = http("GET", f"{self.base}/bench/acks", timeout=120)
        if st != 200:
            return {}
        return {k: [v.get("ack_ms"), v.get("delivered_ms")] for k, v in b["acks"].items()}

    kill = Wagate.kill
    stop = Wagate.stop


# ---------------------------------------------------------------- measurements


def idle_window(pid, seconds):
    """RSS sampled every second and CPU seconds used over an idle window."""
    c0, t0 = cpu_s(pid), time.monotonic()
    samples = []
    while time.monotonic() - t0 < seconds:
        samples.append(rss_kb(pid))
        time.sleep(1)
    used = cpu_s(pid) - c0
    wall = time.monotonic() - t0
    return {
        "rss_mb": round(statistics.median(samples[-max(1, len(samples) // 4):]) / 1024, 1),
        "rss_max_mb": round(max(samples) / 1024, 1),
        "cpu_s_per_min": round(used / wall * 60, 3),
    }


def link_up_to(system, linked, n, phone_base, workers):
    """Link orgs linked+1..n; returns (seconds, error or None)."""
    t0 = time.monotonic()
    todo = list(range(linked + 1, n + 1))
    done, errors = 0, []

    def one(i):
        phone = f"{phone_base + i}"
        system.sim.phone(phone, f"Clinica {i}")
        system.link(i, phone)

    with cf.ThreadPoolExecutor(workers) as ex:
        for f in cf.as_completed([ex.submit(one, i) for i in todo]):
            try:
                f.result()
                done += 1
            except Exception as e:  # noqa: BLE001 — recorded, the run goes on
                errors.append(str(e))
            if (done + len(errors)) % 50 == 0 or done + len(errors) == len(todo):
                log(f"  {system.name}: linked {linked + done}/{n} ({len(errors)} failed)")
    err = None
    if errors:
        err = f"{len(errors)} of {len(todo)} orgs did not link (first: {errors[0]})"
    return time.monotonic() - t0, err


def restore(system, n, timeout):
    system.kill()
    t0 = time.monotonic()
    system.start()
    wait_until(lambda: system.connected_count() >= n, timeout, f"{system.name}: {n} orgs connected after restart",
               step=0.05)
    return time.monotonic() - t0


def sends(system, orgs, messages, clients, tag):
    """Post `messages` sends spread over orgs 1..orgs with `clients` threads;
    return latency figures from the gateway's own records."""
    posted = {}  # id → post start ms
    lock = threading.Lock()
    failed = [0]
    t_first = time.time() * 1000

    def worker(c):
        for k in range(c, messages, clients):
            i = 1 + k % orgs
            start = time.time() * 1000
            mid = system.send(i, f"{tag} {k}: Le recordamos su cita mañana a las 10:00")
            with lock:
                if mid:
                    posted[mid] = start
                else:
                    failed[0] += 1

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_accepted = time.time() * 1000

    def all_delivered():
        a = system.acks()
        missing = [m for m in posted if a.get(m, [None, None])[1] is None]
        return a if not missing else None

    try:
        acks = wait_until(all_delivered, 300, f"{tag}: delivery receipts", step=1)
    except RuntimeError:
        acks = system.acks()
    ack_lat = [acks[m][0] - t for m, t in posted.items() if m in acks and acks[m][0] is not None]
    del_lat = [acks[m][1] - t for m, t in posted.items() if m in acks and acks[m][1] is not None]
    last_ack = max((acks[m][0] for m in posted if m in acks and acks[m][0]), default=t_first)
    last_del = max((acks[m][1] for m in posted if m in acks and acks[m][1]), default=t_first)
    return {
        "messages": messages,
        "orgs": orgs,
        "clients": clients,
        "accepted": len(posted),
        "refused": failed[0],
        "acked": len(ack_lat),
        "delivered": len(del_lat),
        "accept_per_s": round(len(posted) / max(1e-9, (t_accepted - t_first) / 1000), 1),
        "acked_per_s": round(len(ack_lat) / max(1e-9, (last_ack - t_first) / 1000), 1),
        "delivered_per_s": round(len(del_lat) / max(1e-9, (last_del - t_first) / 1000), 1),
        "ack_ms": {"p50": pct(ack_lat, 0.5), "p99": pct(ack_lat, 0.99), "max": pct(ack_lat, 1.0)},
        "delivered_ms": {"p50": pct(del_lat, 0.5), "p99": pct(del_lat, 0.99), "max": pct(del_lat, 1.0)},
    }


def sequential(system, count):
    """One send at a time on an idle queue, each waiting for its server ack."""
    lat = []
    for k in range(count):
        start = time.time() * 1000
        mid = system.send(1, f"seq {k}")
        if not mid:
            continue
        a = wait_until(lambda: (system.acks().get(mid) or [None])[0], 30, "sequential ack", step=0.002)
        lat.append(a - start)
    return {"count": len(lat), "ack_ms": {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "max": pct(lat, 1.0)}}


def run_system(system_name, args, wagate_bin, sim_bin, root_work):
    work = root_work / system_name
    work.mkdir(parents=True)
    sim = WaSim(sim_bin, work)
    system = Wagate(wagate_bin, work, sim) if system_name == "wagate" else Seed(work, sim)
    phone_base = 573010000000 if system_name == "wagate" else 573020000000
    res = {"system": system.name, "sizes": {}}
    try:
        system.start()
        log(f"{system.name}: started (pid {system.proc.pid}); idle window with no org")
        time.sleep(args.settle)
        res["empty"] = idle_window(system.proc.pid, args.idle)
        log(f"  empty: {res['empty']}")
        linked = 0
        for n in args.sizes:
            took, err = link_up_to(system, linked, n, phone_base, args.link_workers)
            if err:
                connected = system.connected_count()
                log(f"{system.name}: could not hold {n} linked sessions: {err}; {connected} connected")
                res["failed_at"] = {"n": n, "error": err, "connected": connected,
                                    "link_s": round(took, 1), "rss_mb": round(rss_kb(system.proc.pid) / 1024, 1),
                                    "diagnosis": system.diagnosis()}
                break
            linked = n
            log(f"{system.name}: {n} linked ({took:.1f} s); settling {args.settle} s, then {args.idle} s idle window")
            time.sleep(args.settle)
            m = idle_window(system.proc.pid, args.idle)
            m["link_s"] = round(took, 1)
            log(f"  idle at N={n}: {m}")
            t = restore(system, n, args.restore_timeout)
            m["restore_s"] = round(t, 2)
            time.sleep(args.settle)
            m["rss_after_restore_mb"] = round(rss_kb(system.proc.pid) / 1024, 1)
            log(f"  SIGKILL → all {n} connected again in {t:.2f} s; RSS {m['rss_after_restore_mb']} MB after")
            res["sizes"][str(n)] = m
        if linked == 0:
            return res
        # Sends with the orgs that stayed connected.
        alive = wait_until(lambda: system.connected_count() or None, 60, "connected orgs", step=1)
        linked = min(linked, alive)
        log(f"{system.name}: sends")
        res["sequential"] = sequential(system, args.sequential)
        log(f"  sequential: {res['sequential']}")
        res["one_org"] = sends(system, 1, args.messages, args.clients, "one")
        log(f"  one org: {res['one_org']}")
        many = min(50, linked)
        res["many_orgs"] = sends(system, many, args.messages, args.clients, "many")
        log(f"  {many} orgs: {res['many_orgs']}")
    finally:
        if system.proc and system.proc.poll() is None:
            system.stop()
        sim.stop()
    return res


# ---------------------------------------------------------------- report


def fmt(v, unit="", nd=1):
    if v is None:
        return "—"
    return f"{v:,.{nd}f}{unit}"


def size(res, n):
    return res.get("sizes", {}).get(str(n))


def cell(res, n, key, unit="", nd=1):
    m = size(res, n)
    if m is None:
        f = res.get("failed_at")
        return f"could not hold {f['n']}" if f and f["n"] <= n else "—"
    return fmt(m.get(key), unit, nd)


def rss_cell(res, n):
    m = size(res, n)
    if m is None:
        return cell(res, n, "rss_mb")
    per = (m["rss_mb"] - res["empty"]["rss_mb"]) / n
    return f"{fmt(m['rss_mb'], ' MB')} ({fmt(per, ' MB', 2)}/session)"


def lat(x, key, nd=0):
    if not x:
        return "—"
    return f"{fmt(x[key]['p50'], ' ms', nd)} / {fmt(x[key]['p99'], ' ms', nd)}"


def report(results, facts, args, png_rel):
    w, s = results["wagate"], results["seed"]
    lines = []
    lines.append(f"Run {results['when']} with `{results['command']}` (total {results['total_s'] / 60:.1f} min).\n")
    lines.append(f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['memory_gib']} GiB, {facts['os']}, "
                 f"Linux {facts['kernel']}. Versions: wagate {facts['wagate_commit']} (release, `sim` feature), "
                 f"whatsapp-rust {facts['whatsapp_rust']}, {facts['rustc']}; Node {facts['node']}, "
                 f"Baileys {facts['baileys']}.\n")
    lines.append("| | wagate | seed (Node + Baileys) |")
    lines.append("|---|---|---|")
    lines.append(f"| process RSS, no org | {fmt(w['empty']['rss_mb'], ' MB')} | {fmt(s['empty']['rss_mb'], ' MB')} |")
    for n in args.sizes:
        lines.append(f"| RSS, {n} idle linked | {rss_cell(w, n)} | {rss_cell(s, n)} |")
    for n in args.sizes:
        lines.append(f"| CPU, {n} idle linked (s per minute) | {cell(w, n, 'cpu_s_per_min', '', 3)} "
                     f"| {cell(s, n, 'cpu_s_per_min', '', 3)} |")
    for n in args.sizes:
        lines.append(f"| SIGKILL → all {n} connected again | {cell(w, n, 'restore_s', ' s', 2)} "
                     f"| {cell(s, n, 'restore_s', ' s', 2)} |")
    for n in args.sizes:
        lines.append(f"| RSS, {n} linked, {args.settle:.0f} s after that restart "
                     f"| {cell(w, n, 'rss_after_restore_mb', ' MB')} | {cell(s, n, 'rss_after_restore_mb', ' MB')} |")
    sw, ss = w.get("sequential"), s.get("sequential")
    lines.append(f"| send → server ack, {(sw or ss or {}).get('count', 0)} sequential sends, p50 / p99 | "
                 f"{lat(sw, 'ack_ms', 1)} | {lat(ss, 'ack_ms', 1)} |")
    for key in ("one_org", "many_orgs"):
        x, y = w.get(key), s.get(key)
        ref = x or y
        if not ref:
            continue
        label = "1 org" if key == "one_org" else "{} orgs".format(
            " / ".join(str(r["orgs"]) for r in (x, y) if r) if x and y and x["orgs"] != y["orgs"] else ref["orgs"])
        g = lambda r, k, nd=0: fmt(r[k], "", nd) if r else "—"  # noqa: E731
        lines.append(f"| {label}, {ref['messages']:,} sends by {ref['clients']} clients: accepted per s "
                     f"| {g(x, 'accept_per_s')} | {g(y, 'accept_per_s')} |")
        lines.append(f"| {label}: server-acked per s (first POST → last ack) | {g(x, 'acked_per_s')} "
                     f"| {g(y, 'acked_per_s')} |")
        lines.append(f"| {label}: send → server ack p50 / p99 | {lat(x, 'ack_ms')} | {lat(y, 'ack_ms')} |")
        lines.append(f"| {label}: send → delivery receipt p50 / p99 | {lat(x, 'delivered_ms')} "
                     f"| {lat(y, 'delivered_ms')} |")
        dd = lambda r: f"{r['delivered']:,} / {r['accepted']:,} / {r['refused']:,}" if r else "—"  # noqa: E731
        lines.append(f"| {label}: delivered / accepted / refused | {dd(x)} | {dd(y)} |")
    for r in (w, s):
        f = r.get("failed_at")
        if f:
            lines.append(f"\n**{r['system']} could not hold {f['n']} linked sessions**: {f['error']}; "
                         f"{f['connected']} were connected then, process RSS {f['rss_mb']} MB. Why sockets "
                         f"closed (code and message → count): `{json.dumps(f.get('diagnosis', {}).get('closes', {}))}`.")
    lines.append(f"\n![Process RSS against idle linked sessions]({png_rel})\n")
    return "\n".join(lines)


def plot(results, args, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for key, style in (("wagate", "o-"), ("seed", "s--")):
        r = results[key]
        ns = [n for n in args.sizes if size(r, n)]
        xs = [0] + ns
        ys = [r["empty"]["rss_mb"]] + [size(r, n)["rss_mb"] for n in ns]
        ax.plot(xs, ys, style, label=f"{r['system']}, linked in this process")
        if ns:
            ax.plot(ns, [size(r, n)["rss_after_restore_mb"] for n in ns], style[0] + ":", alpha=0.6,
                    label=f"{r['system']}, after SIGKILL + restart")
        f = r.get("failed_at")
        if f:
            ax.plot([f["n"]], [f["rss_mb"]], "x", color="red", markersize=10,
                    label=f"{r['system']}: could not hold {f['n']}")
    ax.set_xlabel("idle linked sessions (N)")
    ax.set_ylabel("process RSS (MB)")
    ax.set_title("Memory against linked sessions, same wa-sim, same machine")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def write_benchmarks_md(section):
    md = ROOT / "BENCHMARKS.md"
    begin, end = "<!-- results:begin (written by bench/compare/run.py) -->", "<!-- results:end -->"
    text = md.read_text() if md.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    md.write_text(f"{head}{begin}\n{section}\n{end}{tail}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,500", help="idle linked sessions to measure at (default 10,100,500)")
    p.add_argument("--idle", type=float, default=60, help="seconds of each idle window (default 60)")
    p.add_argument("--settle", type=float, default=20, help="seconds to wait before each window (default 20)")
    p.add_argument("--messages", type=int, default=2000, help="sends per throughput run (default 2000)")
    p.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients for sends (default 8)")
    p.add_argument("--sequential", type=int, default=100, help="sequential sends for latency (default 100)")
    p.add_argument("--link-workers", type=int, default=2, help="orgs linked at once (default 2)")
    p.add_argument("--restore-timeout", type=float, default=300)
    p.add_argument("--only", choices=["wagate", "seed"], help="run one system (no report written)")
    p.add_argument("--quick", action="store_true", help="smoke run: sizes 2,5, short windows, 100 sends")
    p.add_argument("--no-write", action="store_true", help="print, but leave BENCHMARKS.md and the plot alone")
    p.add_argument("--report", metavar="JSON", help="only rewrite BENCHMARKS.md and the plot from a saved run")
    args = p.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        for k, v in saved["args"].items():
            if k not in ("report", "no_write"):
                setattr(args, k, v)
        png = HERE / "memory-vs-n.png"
        plot(saved, args, png)
        section = report(saved, saved["facts"], args, png.relative_to(ROOT).as_posix())
        print(section)
        if not args.no_write:
            write_benchmarks_md(section)
        return
    if args.quick:
        args.sizes, args.idle, args.settle, args.messages, args.sequential = "2,5", 5, 2, 100, 10
    try:
        args.sizes = sorted({int(x) for x in str(args.sizes).split(",") if x.strip()})
    except ValueError:
        p.error("--sizes: comma-separated whole numbers, e.g. 10,100,500")
    if not args.sizes or args.sizes[0] < 1:
        p.error("--sizes: at least one size of 1 or more")

    t_start = time.monotonic()
    ensure_node_modules()
    ensure_matplotlib()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    wagate_bin, sim_bin = build_binaries(target)
    facts = machine_facts()
    log(f"machine: {facts}")
    results = {"when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "command": "python3 bench/compare/run.py" + (" --quick" if args.quick else ""),
               "facts": facts, "args": {k: v for k, v in vars(args).items()}}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="wagate-compare-") as tmp:
        for name in (["wagate", "seed"] if not args.only else [args.only]):
            results[name] = run_system(name, args, wagate_bin, sim_bin, Path(tmp))
            results["total_s"] = time.monotonic() - t_start
            (out / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    log(f"raw results: {out / f'{stamp}.json'}")
    if args.only:
        return
    png = out / "memory-vs-n-quick.png" if args.quick else HERE / "memory-vs-n.png"
    plot(results, args, png)
    section = report(results, facts, args, png.relative_to(ROOT).as_posix())
    print(section)
    if not args.no_write and not args.quick:
        write_benchmarks_md(section)
        log(f"BENCHMARKS.md and {png.relative_to(ROOT)} written")


if __name__ == "__main__":
    main()
