#!/usr/bin/python3
"""High availability on real parts: kill -9 the Patroni-managed PostgreSQL primary under load.

Started by tests/ha/run.sh, which has already started the cluster (deploy/ha/cluster.sh) and
prepared the databases `mqledger` (the load) and `mqledger_leader` (timer leadership). This script:

  * starts two daemons with --clock manual on `mqledger` (the load goes to both, alternating) and
    two daemons with the system clock on `mqledger_leader` (idle: with a manual clock a daemon
    fires its own timers and takes no leader lock, so leadership is observed on these);
  * runs client threads that open accounts, add funds, buy pay-as-you-go hourly Kafka instances,
    deploy them, create topics and stop them, every command with an Idempotency-Key; a request
    with no answer, a 5xx or a 409 contention is retried with the SAME key (to either daemon)
    until it gets a definite answer;
  * moves both manual clocks forward together, so hourly settlements and releases come due;
  * KILLS times: kill -9 the primary node (its patroni, postmaster and backends: a machine
    crash), measures the time to the first acknowledged write sent after the kill, waits for the
    timer leadership among the system-clock daemons to be held by exactly one, restarts the
    killed node's patroni and waits until it is back as a replica;
  * then checks the ledger on the new primary: every acknowledged key is written exactly once
    (and its events carry it), retried-after-no-answer keys once, definitely refused keys never,
    every settlement period once and contiguous, every release once, no timer left due, the chain
    and projections (`mqledger verify`) on the primary and on every replica, replicas at the same
    head as the primary.

Standard library only; /usr/bin/python3.
"""
import argparse
import datetime as dt
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time

START = dt.datetime(2031, 1, 1, 0, 0, 0, tzinfo=dt.timezone.utc)


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Http:
    """One request on a fresh connection (keep-alive would hide nothing here and complicates
    retries after a daemon closed the connection)."""

    @staticmethod
    def call(port, method, path, body=None, headers=None, timeout=15.0):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            h = {"Content-Type": "application/json"} if data is not None else {}
            h.update(headers or {})
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            raw = r.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return r.status, parsed
        finally:
            conn.close()


class Ledger:
    """Every keyed request sent and how it ended."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}              # key -> dict
        self.acks = []             # (t_sent_of_attempt, t_answer, key) for 2xx
        self.unexpected = []       # (key, status, body) definite 4xx not planned for

    def add(self, key, rec):
        with self.lock:
            self.ops[key] = rec

    def ack(self, t_sent, t_ans, key):
        with self.lock:
            self.acks.append((t_sent, t_ans, key))

    def first_ack_sent_after(self, t):
        with self.lock:
            c = [a for a in self.acks if a[0] >= t]
        return min((a[1] for a in c), default=None)


class Cluster:
    def __init__(self, script, d):
        self.script, self.dir = script, d

    def run(self, *args, check=True, timeout=300):
        r = subprocess.run(["bash", self.script, args[0], self.dir, *args[1:]], capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
        return r.stdout.strip()

    def primary_name(self):
        try:
            return self.run("primary-name", check=False, timeout=20) or None
        except subprocess.TimeoutExpired:
            return None

    def node_url(self, name, db="mqledger"):
        return self.run("node-url", name, db)


def psql(url, sql, timeout=60):
    r = subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                        url, "-c", sql], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr}")
    return [line.split("\t") for line in r.stdout.splitlines() if line]


class Daemon:
    def __init__(self, name, binary, port, url, workdir, manual):
        self.name, self.port = name, port
        self.log_path = os.path.join(workdir, f"{name}.log")
        args = [binary, "serve", "--database-url", url, "--listen", f"127.0.0.1:{port}", "--insecure-no-auth",
                "--log-format", "json"]
        if manual:
            args += ["--clock", "manual", "--clock-start", iso(START)]
        self.proc = subprocess.Popen(args, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=workdir, start_new_session=True)
        with open(os.path.join(workdir, f"{name}.pid"), "w") as f:
            f.write(str(self.proc.pid))

    def wait_ready(self, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon {self.name} exited {self.proc.returncode}; see {self.log_path}")
            try:
                s, _ = Http.call(self.port, "GET", "/readyz", timeout=2)
                if s == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"daemon {self.name} not ready in {seconds}s")

    def metric(self, name):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client(threading.Thread):
    """One client: its own accounts and instances, requests alternating between the daemons."""

    GIVE_UP = 180.0   # seconds without a definite answer: the test fails
    LOSE_ANSWERS = 0.05   # share of first attempts whose answer the client does not wait for

    def __init__(self, idx, ports, ledger, stop, run_id):
        super().__init__(name=f"client-{idx}", daemon=True)
        self.idx, self.ports, self.ledger, self.stop_ev, self.run_id = idx, ports, ledger, stop, run_id
        self.seq = 0
        self.running = []        # deployed instances, oldest first
        self.failed = None
        self.rng = random.Random(idx)

    def send(self, path, body, expect):
        self.seq += 1
        key = f"{self.run_id}-c{self.idx}-{self.seq}"
        rec = {"key": key, "path": path, "body": body, "attempts": 0, "no_answer": 0, "retried_status": [],
               "status": None, "answer": None, "expect": expect}
        self.ledger.add(key, rec)
        target = (self.idx + self.seq) % 2
        t0 = time.monotonic()
        while True:
            if time.monotonic() - t0 > self.GIVE_UP:
                rec["status"] = "gave_up"
                raise RuntimeError(f"{key} {path}: no definite answer in {self.GIVE_UP}s")
            rec["attempts"] += 1
            port = self.ports[target]
            try:
                # A lost answer: now and then the client gives up on its first attempt after a few
                # milliseconds, while the daemon goes on (and may well write it), and retries.
                lose = rec["attempts"] == 1 and self.rng.random() < self.LOSE_ANSWERS
                t_sent = time.monotonic()
                status, answer = Http.call(port, "POST", path, body,
                                           {"Idempotency-Key": key,
                                            "X-Correlation-Id": f"{key}/{rec['attempts']}"},
                                           timeout=self.rng.uniform(0.002, 0.03) if lose else 20)
            except (OSError, http.client.HTTPException) as e:
                rec["no_answer"] += 1
                rec.setdefault("errors", []).append(type(e).__name__)
                target ^= 1
                time.sleep(0.2)
                continue
            code = answer.get("error", {}).get("code") if isinstance(answer, dict) and isinstance(
                answer.get("error"), dict) else (answer.get("code") if isinstance(answer, dict) else None)
            reason = None
            if isinstance(answer, dict):
                err = answer.get("error") if isinstance(answer.get("error"), dict) else answer
                reason = err.get("reason")
            if status >= 500 or (status == 409 and reason == "contention"):
                rec["retried_status"].append(status)
                target ^= 1
                time.sleep(0.3)
                continue
            rec["status"], rec["answer"] = status, answer
            rec["t_answer"] = time.monotonic()
            if 200 <= status < 300:
                self.ledger.ack(t_sent, rec["t_answer"], key)
            elif status not in expect:
                self.ledger.unexpected.append((key, path, status, answer, code))
            return status, answer

    def run(self):
        try:
            n = 0
            while not self.stop_ev.is_set():
                n += 1
                acc = f"{self.run_id}-a{self.idx}-{n}"
                s, _ = self.send("/v1/accounts", {"account_id": acc, "currency": "CNY"}, ())
                if s != 201:
                    continue
                self.send(f"/v1/accounts/{acc}/funds", {"amount": 100_000_000}, ())
                for k in range(2):
                    inst = f"{acc}-i{k}"
                    s, _ = self.send("/v1/instances", {"instance_id": inst, "account_id": acc, "product": "kafka",
                                                       "billing": "payg", "timezone": "Asia/Shanghai",
                                                       "price": {"hourly": 100 + self.rng.randrange(50)}}, ())
                    if s != 201:
                        continue
                    s, _ = self.send(f"/v1/instances/{inst}/actions/deploy", {}, ())
                    if s == 200:
                        self.running.append(inst)
                        self.send(f"/v1/instances/{inst}/topics", {"name": f"t{n}"}, ())
                self.send(f"/v1/accounts/{acc}/funds", {"amount": 1000, "reference": f"top-up {n}"}, ())
                # Stop the oldest running instance once a few are running: it has been billed a
                # few hours and its release comes due two days later.
                if len(self.running) > 4:
                    inst = self.running.pop(0)
                    self.send(f"/v1/instances/{inst}/actions/stop", {}, ())
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.failed = e


class ClockMover(threading.Thread):
    """Moves both manual clocks to the same absolute time, step by step, while the clients go on;
    a move is retried (same target: idempotent) until both daemons answered 200. For a moment the
    two clocks differ by a step, so a timer unit on one daemon races the other daemon's commands on
    the same account: the store's set check (README "How a write travels") must catch it, and
    verify at the end shows whether it did."""

    def __init__(self, ports, stop, step=dt.timedelta(minutes=20), period=1.0):
        super().__init__(name="clock", daemon=True)
        self.ports, self.stop_ev, self.step, self.period = ports, stop, step, period
        self.now = START
        self.moves = 0
        self.retries = 0
        self.unfired = 0
        self.failed = None
        self.lock = threading.Lock()

    def _move_one(self, port, target, fired_required, give_up):
        """Until the daemon's clock is at `target`: a 503 (or 500) means the clock moved but the
        timers due could not all fire (database unavailable); they fire with the next move."""
        body = {"now": iso(target)}
        t0 = time.monotonic()
        while True:
            try:
                s, ans = Http.call(port, "POST", "/v1/clock", body, timeout=20)
            except (OSError, http.client.HTTPException):
                s, ans = None, None
            if s == 200:
                return
            if s in (500, 503) and not fired_required:
                try:
                    gs, g = Http.call(port, "GET", "/v1/clock", timeout=5)
                except (OSError, http.client.HTTPException):
                    gs, g = None, None
                if gs == 200 and isinstance(g, dict) and g.get("now") == iso(target):
                    with self.lock:
                        self.unfired += 1
                    return
            elif s is not None and s not in (500, 503):
                raise RuntimeError(f"clock move to {iso(target)} on :{port}: {s} {ans}")
            with self.lock:
                self.retries += 1
            if time.monotonic() - t0 > give_up:
                raise RuntimeError(f"clock move to {iso(target)} on :{port} not done in {give_up}s")
            time.sleep(0.3)

    def move_to(self, target, fired_required=False, give_up=180.0):
        errors = []

        def one(port):
            try:
                self._move_one(port, target, fired_required, give_up)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        ts = [threading.Thread(target=one, args=(p,)) for p in self.ports]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]
        with self.lock:
            self.now = target
            self.moves += 1

    def run(self):
        try:
            while not self.stop_ev.wait(self.period):
                self.move_to(self.now + self.step)
        except Exception as e:  # noqa: BLE001
            self.failed = e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--port-base", type=int, required=True)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument("--after", type=float, default=5.0, help="load seconds after the last rejoin")
    args = ap.parse_args()

    cluster = Cluster(args.cluster, args.dir)
    failures = []

    def check(cond, what):
        if cond:
            log("ok:", what)
        else:
            log("FAIL:", what)
            failures.append(what)

    app_url = cluster.run("url", "mqledger")
    leader_url = cluster.run("url", "mqledger_leader")
    log("daemon database URL:", app_url)
    ports = [args.port_base + 30, args.port_base + 31]
    lports = [args.port_base + 32, args.port_base + 33]
    daemons = [Daemon(f"daemon{i}", args.binary, p, app_url, args.dir, True) for i, p in enumerate(ports)]
    leaders = [Daemon(f"leader{i}", args.binary, p, leader_url, args.dir, False) for i, p in enumerate(lports)]
    for d in daemons + leaders:
        d.wait_ready()
    log("daemons ready:", ports, "(manual clock, load)", lports, "(system clock, leadership)")

    def leader_states():
        return [d.metric("mqledger_timer_leader") for d in leaders]

    def wait_one_leader(seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            st = leader_states()
            if st.count(1.0) == 1 and st.count(0.0) == 1:
                return st.index(1.0)
            time.sleep(0.2)
        return None

    first_leader = wait_one_leader()
    check(first_leader is not None, f"exactly one timer leader among the system-clock daemons at start ({leader_states()})")

    run_id = f"r{int(time.time())}"
    ledger = Ledger()
    stop = threading.Event()
    clients = [Client(i, ports, ledger, stop, run_id) for i in range(args.clients)]
    clock = ClockMover(ports, stop)
    for c in clients:
        c.start()
    clock.start()

    results = []
    try:
        time.sleep(args.warmup)
        for k in range(1, args.kills + 1):
            victim = cluster.primary_name()
            if not victim:
                raise RuntimeError("no primary before the kill")
            leader_before = leader_states()
            acked_before = len(ledger.acks)
            out = cluster.run("kill-node", victim)
            # Measured from the return of kill-node (the kill is a few ms earlier): an attempt sent
            # after this cannot have been committed by the dead primary.
            t_kill = time.monotonic()
            log(f"kill {k}: kill -9 of {victim} (the primary): {out}; {acked_before} writes acknowledged so far")
            new_primary, t_promoted = None, None
            t_resumed, t_leader, leader_after = None, None, None
            deadline = t_kill + 120
            while time.monotonic() < deadline and (t_resumed is None or new_primary is None or t_leader is None):
                if new_primary is None:
                    p = cluster.primary_name()
                    if p and p != victim:
                        new_primary, t_promoted = p, time.monotonic()
                if t_resumed is None:
                    t_resumed = ledger.first_ack_sent_after(t_kill)
                if t_leader is None and new_primary is not None:
                    st = leader_states()
                    if st.count(1.0) == 1 and st.count(0.0) == 1:
                        t_leader, leader_after = time.monotonic(), st.index(1.0)
                if any(c.failed for c in clients) or clock.failed:
                    break
                time.sleep(0.1)
            r = {"kill": k, "victim": victim, "new_primary": new_primary,
                 "promoted_s": None if t_promoted is None else round(t_promoted - t_kill, 2),
                 "recovery_s": None if t_resumed is None else round(t_resumed - t_kill, 2),
                 "leader_s": None if t_leader is None else round(t_leader - t_kill, 2),
                 "leader_before": leader_before, "leader_after": leader_after}
            log(f"kill {k}: new primary {new_primary} after {r['promoted_s']} s; first acknowledged write sent after "
                f"the kill answered after {r['recovery_s']} s; one timer leader (daemon leader{leader_after}) after "
                f"{r['leader_s']} s (before: {leader_before})")
            check(new_primary is not None, f"kill {k}: a new primary was promoted")
            check(t_resumed is not None, f"kill {k}: writes resumed")
            check(t_leader is not None, f"kill {k}: exactly one timer leader after the failover")
            # The killed node comes back (its patroni restarted) and rejoins as a replica.
            t0 = time.monotonic()
            cluster.run("start-node", victim)
            ok = subprocess.run(["bash", args.cluster, "wait-healthy", args.dir, "180"]).returncode == 0
            r["rejoin_s"] = round(time.monotonic() - t0, 2)
            check(ok, f"kill {k}: {victim} rejoined as a replica, cluster healthy again ({r['rejoin_s']} s)")
            results.append(r)
            if not ok:
                break
            time.sleep(args.after if k == args.kills else 3.0)
    finally:
        stop.set()
        log("stopping the load; waiting for every request to get a definite answer")
        for c in clients:
            c.join(240)
        clock.join(240)

    for c in clients:
        check(c.failed is None and not c.is_alive(), f"client {c.idx} finished ({c.failed or 'ok'})")
    check(clock.failed is None, f"clock mover ({clock.failed or 'ok'}; {clock.moves} moves, {clock.retries} retries, "
                                    f"{clock.unfired} moves answered 503: moved, timers left for the next move)")

    # Everything due fires: move both clocks 3 days on (releases are 08:00 local two days after a
    # stop), twice, so a timer a first move's fire left behind (an append conflict between the two
    # daemons firing) is caught by the second.
    final = clock.now + dt.timedelta(days=3)
    clock.move_to(final, fired_required=True)
    clock.move_to(final + dt.timedelta(seconds=1), fired_required=True)
    log("final clock:", iso(final))

    # ---- the checks, on the primary now
    primary = cluster.primary_name()
    admin = cluster.node_url(primary)
    log("checking on the primary", primary)
    ops = ledger.ops
    acked = {k for k, r in ops.items() if isinstance(r["status"], int) and 200 <= r["status"] < 300}
    refused = {k for k, r in ops.items() if isinstance(r["status"], int) and r["status"] >= 400}
    unanswered_acked = {k for k in acked if ops[k]["no_answer"] > 0}
    retried_acked = {k for k in acked if ops[k]["no_answer"] > 0 or ops[k]["retried_status"]}
    not_final = [k for k, r in ops.items() if not isinstance(r["status"], int)]

    rows = psql(admin, "SELECT idempotency_key, append_count FROM events WHERE idempotency_key IS NOT NULL")
    in_log = {}
    for key, n in rows:
        in_log[key] = in_log.get(key, 0) + 1
    counts = {key: int(n) for key, n in rows}
    meta = {k: int(n) for k, n in psql(admin, "SELECT metadata->>'idempotency_key', count(*) FROM events "
                                               "WHERE metadata ? 'idempotency_key' GROUP BY 1")}
    ours = {k for k in in_log if k.startswith(run_id + "-")}

    check(not not_final, f"every request got a definite answer ({len(not_final)} did not)")
    check(all(in_log.get(k) == 1 for k in acked),
          f"every acknowledged command is in the ledger exactly once ({len(acked)} acknowledged; missing: "
          f"{sorted(k for k in acked if k not in in_log)[:10]})")
    check(all(meta.get(k) == counts.get(k) for k in acked),
          "the events of every acknowledged command carry its key, as many as its append wrote")
    # Which attempt wrote each key: the correlation id is "key/attempt".
    writer = {k: c for k, c in psql(admin, "SELECT idempotency_key, metadata->>'correlation_id' FROM events "
                                           "WHERE idempotency_key IS NOT NULL")}
    by_lost = {k for k in unanswered_acked if writer.get(k, "").endswith("/1") and ops[k]["attempts"] > 1}
    by_retry = {k for k in retried_acked if not writer.get(k, "").endswith("/1")}
    check(all(in_log.get(k) == 1 for k in unanswered_acked),
          f"every request that got no answer and was retried with its key is written once "
          f"({len(unanswered_acked)} such, {len(by_lost)} of them written by the attempt whose answer was lost "
          f"and answered from it on the retry; {len(retried_acked)} retried for any reason, "
          f"{len(by_retry)} written by a retry)")
    check(not (refused & set(in_log)), f"no definitely refused command is in the ledger ({len(refused)} refused)")
    check(ours <= acked, f"the ledger has no keyed append nobody was told about ({len(ours - acked)} extra)")
    if ledger.unexpected:
        log(f"note: {len(ledger.unexpected)} definite refusals:",
            [(k, p, s, c) for k, p, s, _a, c in ledger.unexpected[:10]])

    dup_settled = psql(admin, "SELECT stream, data->>'cycle_start', count(*) FROM events WHERE type = 'instance.settled' "
                              "GROUP BY 1, 2 HAVING count(*) > 1")
    check(not dup_settled, f"every hourly settlement period is settled once (duplicates: {dup_settled[:5]})")
    settled = psql(admin, "SELECT stream, data->>'cycle_start', data->>'cycle_end' FROM events "
                          "WHERE type = 'instance.settled' ORDER BY stream, position")
    gaps, prev = [], {}
    for stream, cs, ce in settled:
        if stream in prev and prev[stream] != cs:
            gaps.append((stream, prev[stream], cs))
        prev[stream] = ce
    check(not gaps, f"each instance's settlements are contiguous, no period skipped or overlapping "
                    f"({len(settled)} settlements over {len(prev)} instances; gaps: {gaps[:5]})")
    dup_rel = psql(admin, "SELECT stream, count(*) FROM events WHERE type = 'instance.released' "
                          "GROUP BY 1 HAVING count(*) > 1")
    check(not dup_rel, f"every release fired once (duplicates: {dup_rel[:5]})")
    stopped = {f"instance-{r['path'].split('/')[3]}" for k, r in ops.items()
               if k in acked and r["path"].endswith("/actions/stop")}
    released = {s for (s,) in psql(admin, "SELECT stream FROM events WHERE type = 'instance.released'")}
    check(stopped <= released, f"every stopped instance was released by its timer ({len(stopped)} stopped, "
                               f"{len(stopped & released)} released; missing {sorted(stopped - released)[:5]})")
    deployed = {f"instance-{r['path'].split('/')[3]}" for k, r in ops.items()
                if k in acked and r["path"].endswith("/actions/deploy")}
    # An instance stopped at the very instant it was deployed (both on one manual-clock reading)
    # ran for no time: it has nothing to bill (the core skips an empty running interval).
    never_ran = {s for (s,) in psql(admin, "SELECT d.stream FROM events d JOIN events s ON s.stream = d.stream "
                                           "AND s.type = 'instance.stopped' AND s.effective_at = d.effective_at "
                                           "WHERE d.type = 'instance.deployed'")}
    billable = deployed - never_ran
    check(billable <= set(prev), f"every deployed instance that ran for some time was billed ({len(billable)} ran, "
                                 f"{len(billable & set(prev))} with settlements, {len(never_ran)} stopped at once; "
                                 f"missing {sorted(billable - set(prev))[:5]})")
    overdue = psql(admin, f"SELECT count(*) FROM timers WHERE due_at <= '{iso(final)}'")[0][0]
    check(overdue == "0", f"no timer is left due at the final clock ({overdue} left)")
    types = psql(admin, "SELECT type, count(*) FROM events GROUP BY 1 ORDER BY 1")
    log("events by type:", ", ".join(f"{t}={n}" for t, n in types))

    # The daemons agree with the database's head.
    head = psql(admin, "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")[0]
    for d in daemons:
        try:
            s, h = Http.call(d.port, "GET", "/v1/ledger/head", timeout=10)
        except OSError as e:
            s, h = None, str(e)
        check(s == 200 and isinstance(h, dict) and str(h.get("position")) == head[0] and h.get("hash") == head[1],
              f"{d.name} serves the ledger head {head[0]} ({s} {h if s != 200 else ''})")
        s, _ = Http.call(d.port, "GET", "/readyz", timeout=10)
        check(s == 200, f"{d.name} is ready after the failovers")
    check(wait_one_leader(30) is not None, f"exactly one timer leader at the end ({leader_states()})")

    # Replicas: at the primary's head (synchronous commit: one of them is), then verify on every node.
    nodes = ["node1", "node2", "node3"]
    for n in nodes:
        url = cluster.node_url(n)
        deadline, got = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            try:
                got = psql(url, "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")[0]
            except (RuntimeError, IndexError):
                got = None
            if got == head:
                break
            time.sleep(0.5)
        check(got == head, f"{n} ({'primary' if n == primary else 'replica'}) has the head {head[0]}")
    for n in [primary] + [x for x in nodes if x != primary]:
        t0 = time.monotonic()
        r = subprocess.run([args.binary, "verify", "--database-url", cluster.node_url(n)], capture_output=True,
                           text=True, timeout=300)
        role = "primary" if n == primary else "replica"
        tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
        check(r.returncode == 0, f"mqledger verify on {n} ({role}) passes ({time.monotonic() - t0:.1f} s): "
                                 f"{' | '.join(tail)}")

    for d in daemons + leaders:
        d.stop()

    # ---- figures
    log("=" * 70)
    log(f"{len(ops)} commands sent, {len(acked)} acknowledged, {len(refused)} refused, "
        f"{len(unanswered_acked)} acknowledged after going unanswered, {len(retried_acked)} retried, "
        f"{sum(r['attempts'] for r in ops.values())} attempts; clock moved {clock.moves} times to {iso(final)}")
    for r in results:
        log(f"kill {r['kill']}: {r['victim']} -> {r['new_primary']}: promoted {r['promoted_s']} s, "
            f"writes resumed {r['recovery_s']} s, one timer leader {r['leader_s']} s, rejoined {r['rejoin_s']} s")
    rec = [r["recovery_s"] for r in results if r["recovery_s"] is not None]
    if rec:
        log(f"recovery time (kill -> first acknowledged write): min {min(rec)} s, median "
            f"{statistics.median(rec)} s, max {max(rec)} s over {len(rec)} kill(s)")
    with open(os.path.join(args.dir, "results.json"), "w") as f:
        json.dump({"kills": results, "commands": len(ops), "acknowledged": len(acked), "refused": len(refused),
                   "unanswered_then_acked": len(unanswered_acked), "retried": len(retried_acked),
                   "failures": failures}, f, indent=1)
    if failures:
        log(f"{len(failures)} check(s) failed:")
        for f_ in failures:
            log("  -", f_)
        return 1
    log("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
