"""fti-serve with one Redis against fti-serve with a Redis Cluster (3 primaries), same run.

    bash loadtest/compare/run.sh --cluster [--fti-serve target/release/fti-serve]
                                           [--loadtest target/release/fti-loadtest]

run.sh runs this with loadtest/compare/.venv (for check_golden.py; this file itself is
standard library only). Same set-up as run.py where it can be (base = run.py):

1. a throwaway redis-server (base.start_redis) and a Redis Cluster of --primaries (3)
   cluster-enabled redis-servers on free loopback ports (no password, no replicas; each
   node's cluster bus on a port of its own, --cluster-port), joined with
   `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, then waited for
   until every node says cluster_state:ok (bounded);
2. the example's two feature groups loaded into both with `fti-serve materialize`
   (base.materialize; the cluster through its `redis+cluster://` URL);
3. checks that the cluster holds as many keys as the single Redis, spread over every
   node (DBSIZE > 0 on each), and counts the cards whose two keys (`fti:card_profile:<cc>`
   and `fti:card_activity:<cc>`) hash to slots of different nodes;
4. fti-serve (loadtest/compare/fti-serve.toml: feature cache off; only --redis-url differs)
   against the single Redis, then against the cluster, then both again (A B A B, so that
   drift between the rounds shows), each started afresh, waited for (/health/ready),
   checked against the 30 golden rows (check_golden.py: a server that disagrees is not
   measured) and then measured with fti-loadtest (http target, golden corpus, uniform keys
   over examples/fraud/data/features/card_profile.csv):
   (a) saturated, closed loop, --concurrency (16: fti-serve's admission limit is 16 in
       flight per core, and it has one), and
   (b) open loop at --rate (2,000 req/s): p50 / p99 / p99.9,
   each --warmup (2 s) then --duration (10 s); the server's CPU seconds (its process tree)
   and the Redis side's (every redis-server of the store in use) over each measured window;
5. pinning: fti-serve on --server-cpus (0); fti-loadtest and every redis-server, the
   cluster's nodes too, on --client-cpus (1);
6. writes --out (loadtest/compare/cluster.md) and cluster.json beside it (every raw number,
   the commands and the load tool's summaries), and prints the table.

Every process started here is stopped in `finally` (and on SIGTERM/SIGINT); every wait is
bounded. Logs, the cluster nodes' directories and raw load summaries go to --work-dir.
"""

import argparse
import csv
import datetime
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import run as base
from fmt import fmt_err, fmt_ms, fmt_rps, mean

HERE = base.HERE
REPO = base.REPO
STORES = ("single", "cluster")
STORE_TITLE = {"single": "single Redis", "cluster": "Redis Cluster"}
CLUSTER_READY_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 10.0


# ----------------------------------------------------------------------------- Redis side

def redis_cli(args, port: int, *command: str, timeout: float = CLI_TIMEOUT_S) -> str:
    return base.run_checked([args.redis_cli, "-h", "127.0.0.1", "-p", str(port), *command],
                            f"redis-cli -p {port} {' '.join(command)}", timeout=timeout)


def fresh_ports(count: int, taken: set[int]) -> list[int]:
    """`count` free loopback ports, distinct from each other and from `taken`."""
    ports: list[int] = []
    for _ in range(count * 20):
        port = base.free_port()
        if port not in taken and port not in ports:
            ports.append(port)
            if len(ports) == count:
                return ports
    raise base.RunError(f"could not find {count} distinct free ports")


def start_cluster(args, procs: base.Processes, redis_pids: dict) -> dict:
    """--primaries cluster-enabled redis-servers on --client-cpus, joined into one cluster
    that covers every slot; returns its ports, bus ports, URL and commands."""
    root = args.work_dir / "cluster"
    if root.exists():
        shutil.rmtree(root)  # nodes.conf of an earlier run would make a node rejoin its old cluster
    ports = fresh_ports(2 * args.primaries, set(args.taken_ports))
    nodes, commands = [], []
    for i in range(args.primaries):
        port, bus = ports[2 * i], ports[2 * i + 1]
        node_dir = root / f"node-{i}"
        node_dir.mkdir(parents=True)
        cmd = [args.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(node_dir), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
               "--cluster-port", str(bus)]
        name = f"redis-cluster-{i}"
        proc = procs.start(name, base.pinned(args.client_cpus, cmd), cwd=node_dir)
        base.wait_until(lambda p=port: base.redis_ping(p), name, 10.0, proc, args.work_dir / f"{name}.log")
        redis_pids["cluster"].append(proc.pid)
        nodes.append({"port": port, "bus_port": bus, "dir": base.rel(node_dir), "pid": proc.pid})
        commands.append(base.show(cmd))
    create = [args.redis_cli, "--cluster", "create", *(f"127.0.0.1:{n['port']}" for n in nodes),
              "--cluster-replicas", "0", "--cluster-yes"]
    base.run_checked(create, "redis-cli --cluster create", timeout=60.0)
    deadline = time.monotonic() + CLUSTER_READY_TIMEOUT_S
    while True:
        states = {}
        for n in nodes:
            try:
                info = redis_cli(args, n["port"], "CLUSTER", "INFO")
            except base.RunError as e:
                info = str(e)
            states[n["port"]] = next((line.strip() for line in info.splitlines()
                                      if line.startswith("cluster_state:")), "no answer")
        if all(s == "cluster_state:ok" for s in states.values()):
            break
        if time.monotonic() > deadline:
            raise base.RunError(f"the cluster did not reach cluster_state:ok within "
                                f"{CLUSTER_READY_TIMEOUT_S:.0f} s: {states}")
        time.sleep(0.1)
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{n['port']}" for n in nodes)
    return {"nodes": nodes, "url": url, "commands": commands, "create": base.show(create)}


def slot_owners(args, port: int) -> dict[int, list[tuple[int, int]]]:
    """primary port -> its slot ranges, from CLUSTER NODES."""
    owners: dict[int, list[tuple[int, int]]] = {}
    for line in redis_cli(args, port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if len(fields) < 8 or "master" not in fields[2]:
            continue
        node_port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        ranges = []
        for part in fields[8:]:
            if part.startswith("["):  # a slot being migrated or imported
                continue
            lo, _, hi = part.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        owners[node_port] = ranges
    return owners


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), Redis Cluster's key hash."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The hash slot of a key (with Redis's {hash tag} rule)."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    return crc16(data) % 16384


def cards(args) -> list[str]:
    with open(args.entities, newline="") as f:
        return [row["cc_num"] for row in csv.DictReader(f)]


def key_spread(args, single_port: int, cluster: dict) -> dict:
    """Keys per node against the single Redis's, and where each card's two keys live."""
    single = int(redis_cli(args, single_port, "DBSIZE").strip())
    per_node = {n["port"]: int(redis_cli(args, n["port"], "DBSIZE").strip()) for n in cluster["nodes"]}
    owners = slot_owners(args, cluster["nodes"][0]["port"])

    def owner(slot: int) -> int | None:
        return next((port for port, ranges in owners.items() if any(lo <= slot <= hi for lo, hi in ranges)), None)

    # Our slot computation against the cluster's own, on a few keys.
    ids = cards(args)
    for cc in ids[:5]:
        key = f"fti:card_activity:{cc}"
        theirs = int(redis_cli(args, cluster["nodes"][0]["port"], "CLUSTER", "KEYSLOT", key).strip())
        if theirs != key_slot(key):
            raise base.RunError(f"CLUSTER KEYSLOT {key} = {theirs}, computed {key_slot(key)}")
    apart = sum(1 for cc in ids
                if owner(key_slot(f"fti:card_profile:{cc}")) != owner(key_slot(f"fti:card_activity:{cc}")))
    return {"single_dbsize": single, "cluster_dbsize": per_node, "cluster_total": sum(per_node.values()),
            "slots": {p: r for p, r in owners.items()}, "cards": len(ids),
            "cards_with_keys_on_two_nodes": apart}


# ----------------------------------------------------------------------------- load

class RedisCpu:
    """Wraps base.cpu_seconds so that each time run_phase samples the server's CPU (at the
    start and the end of its measured window) the Redis side's CPU is sampled too: the
    redis-servers of the store the server under load reads."""

    def __init__(self, redis_pids: dict):
        self.redis_pids = redis_pids
        self.store: str | None = None
        self.samples: list[float] = []
        self.original = base.cpu_seconds

    def __call__(self, root: int) -> float:
        if self.store is not None:
            self.samples.append(sum(self.original(pid) for pid in self.redis_pids[self.store]))
        return self.original(root)

    def window(self) -> float | None:
        return self.samples[-1] - self.samples[-2] if len(self.samples) >= 2 else None


def measure_server(args, procs, store: str, round_no: int, redis_url: str, redis_cpu: RedisCpu) -> dict:
    port, grpc_port = fresh_ports(2, set(args.taken_ports))
    cmd, env, cwd = base.server_command(args, "fti-serve", port, grpc_port, redis_url)
    name = f"fti-serve-{store}-{round_no}"
    out: dict = {"store": store, "round": round_no, "command": base.show(cmd), "phases": {}}
    print(f"== {store} (round {round_no}): {out['command']}", flush=True)
    server = procs.start(name, cmd, env=env, cwd=cwd)
    try:
        started = time.monotonic()
        base.wait_until(lambda: base.http_status(port, "/health/ready") == 200, f"{name} /health/ready",
                        base.READY_TIMEOUT_S, server, args.work_dir / f"{name}.log")
        out["ready_after_s"] = round(time.monotonic() - started, 2)
        check = [str(base.VENV_PYTHON), str(HERE / "check_golden.py"), "--url", f"http://127.0.0.1:{port}"]
        try:
            out["golden"] = base.run_checked(check, f"{name}: golden check").strip()
        except base.RunError as e:
            out["golden"] = f"FAILED: {e}"
            out["error"] = "the golden check failed: not measured"
            print(f"   {out['golden']}", file=sys.stderr, flush=True)
            return out
        print(f"   {out['golden']}", flush=True)
        out["idle_rss_mib"] = round(base.memory_mib(server.pid)["rss_mib"], 1)
        phases = [{"name": f"saturated-{store}-{round_no}", "key": "saturated", "mode": "concurrency",
                   "value": args.concurrency},
                  {"name": f"rate-{args.rate}-{store}-{round_no}", "key": "rate", "mode": "rate",
                   "value": args.rate}]
        for phase in phases:
            redis_cpu.store, redis_cpu.samples = store, []
            try:
                result = base.run_phase(args, procs, server, "fti-serve", port, phase, metrics_port=port)
            finally:
                redis_cpu.store = None
            result["redis_cpu_s"] = redis_cpu.window()
            out["phases"][phase["key"]] = result
        out["final_memory"] = base.memory_mib(server.pid)
    finally:
        procs.stop(server)
    return out


# ----------------------------------------------------------------------------- report

def summary(result: dict | None) -> dict:
    result = result or {}
    s = result.get("summary") or {}
    lat = s.get("latency_us", {})
    requests = s.get("requests") or 0
    per_1k = lambda v: round(v / requests * 1000, 4) if requests and v is not None else None  # noqa: E731
    return {"throughput_rps": s.get("throughput_rps"), "requests": s.get("requests"), "ok": s.get("ok"),
            "error_rate": s.get("error_rate"), "errors": s.get("errors", {}),
            "p50_us": lat.get("p50"), "p99_us": lat.get("p99"), "p99_9_us": lat.get("p99_9"),
            "max_us": lat.get("max"), "mean_us": lat.get("mean"),
            "client_lag_p99_us": (s.get("client_lag_us") or {}).get("p99"),
            "cpu_s": result.get("cpu_s"), "cpu_s_per_1k": per_1k(result.get("cpu_s")),
            "redis_cpu_s": result.get("redis_cpu_s"), "redis_cpu_s_per_1k": per_1k(result.get("redis_cpu_s")),
            "features_stage_us": (result.get("server_stages_mean_us") or {}).get("features"),
            "total_stage_us": (result.get("server_stages_mean_us") or {}).get("total"),
            "steal_s": result.get("steal_s"), "error": result.get("error")}








def fmt_num(v, digits):
    return "—" if v is None else f"{v:.{digits}f}"




def fmt_ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def table(results: dict) -> list[dict]:
    """The rows: per store the mean of the rounds and each round, and cluster/single."""
    runs = {st: [r for r in results["runs"] if r["store"] == st] for st in STORES}
    summ = {st: {k: [summary(r["phases"].get(k)) for r in runs[st]] for k in ("saturated", "rate")}
            for st in STORES}
    rows = []

    def add(label, phase, fields, fmt, each=True):
        """One row; several fields show as `a / b / c` (and their ratios likewise)."""
        cells, means = {}, {}
        for st in STORES:
            per_run = summ[st][phase]
            means[st] = [mean([s[f] for s in per_run]) for f in fields]
            shown = " / ".join(fmt(m) for m in means[st])
            if each and len(per_run) > 1:
                shown += " (" + "; ".join(" / ".join(fmt(s[f]) for f in fields) for s in per_run) + ")"
            cells[st] = shown
        ratio = " / ".join(fmt_ratio(c, s) for c, s in zip(means["cluster"], means["single"]))
        rows.append({"metric": label, "cells": cells, "ratio": ratio,
                     "means": {st: dict(zip(fields, means[st])) for st in STORES}})

    a = results["args"]
    add(f"saturated, closed loop, {a['concurrency']} connections (req/s)", "saturated", ["throughput_rps"], fmt_rps)
    add("saturated p50 / p99 (ms)", "saturated", ["p50_us", "p99_us"], fmt_ms)
    add("saturated: fti-serve CPU s per 1,000 requests", "saturated", ["cpu_s_per_1k"],
        lambda v: fmt_num(v, 3))
    add("saturated: Redis CPU s per 1,000 requests (all nodes)", "saturated", ["redis_cpu_s_per_1k"],
        lambda v: fmt_num(v, 3))
    add("saturated: features stage, mean µs (server side)", "saturated", ["features_stage_us"],
        lambda v: fmt_num(v, 0))
    rate = a["rate"]
    add(f"open loop {rate:,} req/s: p50 / p99 / p99.9 (ms)", "rate", ["p50_us", "p99_us", "p99_9_us"], fmt_ms)
    add(f"{rate:,} req/s: achieved (req/s)", "rate", ["throughput_rps"], fmt_rps)
    add(f"{rate:,} req/s: fti-serve CPU s per 1,000 requests", "rate", ["cpu_s_per_1k"], lambda v: fmt_num(v, 3))
    add(f"{rate:,} req/s: Redis CPU s per 1,000 requests (all nodes)", "rate", ["redis_cpu_s_per_1k"],
        lambda v: fmt_num(v, 3))
    add(f"{rate:,} req/s: features stage, mean µs (server side)", "rate", ["features_stage_us"],
        lambda v: fmt_num(v, 0))
    for phase, label in (("saturated", "saturated"), ("rate", f"{rate:,} req/s")):
        rows.append({"metric": f"{label}: errors",
                     "cells": {st: "; ".join(fmt_err(s) for s in summ[st][phase]) or "—" for st in STORES},
                     "ratio": "—"})
    idle = {st: mean([r.get("idle_rss_mib") for r in runs[st]]) for st in STORES}
    rows.append({"metric": "fti-serve idle RSS (MiB)", "cells": {st: fmt_num(idle[st], 1) for st in STORES},
                 "ratio": fmt_ratio(idle["cluster"], idle["single"])})
    return rows


def render(results: dict) -> str:
    a, m, sp = results["args"], results["machine"], results["spread"]
    c = results["cluster"]
    lines = [
        "# fti-serve: one Redis against a Redis Cluster of 3 primaries",
        "",
        f"Run {results['date']} on {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']:.0f} GiB, {m['system']}; "
        f"`bash loadtest/compare/run.sh --cluster` ({results['wall_s']:.0f} s in all). Redis {m.get('redis', '?')} "
        "on loopback, no password; the cluster has "
        f"{a['primaries']} primaries and no replicas. fti-serve with loadtest/compare/fti-serve.toml "
        "(feature cache off, store timeout 1 s), the same binary and config against both; only "
        "`--redis-url` differs. Pinning: fti-serve on CPU "
        f"{a['server_cpus']}; fti-loadtest and every redis-server (the single one and the "
        f"cluster's {a['primaries']} nodes) on CPU {a['client_cpus']}.",
        "",
        "What a request does differently: the model reads two feature groups, so a request "
        "looks up two keys, `fti:card_profile:<cc_num>` and `fti:card_activity:<cc_num>`. On the "
        "single Redis both HMGETs go out as one pipelined round trip to the one server; on the "
        "cluster each key belongs to the primary that owns its hash slot, and for "
        f"{sp['cards_with_keys_on_two_nodes']} of the {sp['cards']} cards the two keys sit on "
        "different nodes, so the request makes two round trips, one to each node, in parallel "
        "(over one multiplexed connection per node); for the others both HMGETs go to one node "
        "together.",
        "",
        f"| | {STORE_TITLE['single']} | {STORE_TITLE['cluster']} ({a['primaries']} primaries) | cluster / single |",
        "|---|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(f"| {row['metric']} | {row['cells']['single']} | {row['cells']['cluster']} | {row['ratio']} |")
    order = " ".join("A" if r["store"] == "single" else "B" for r in results["runs"])
    lines += [
        "",
        f"Each cell: the mean of the {a['rounds']} runs, then each run in brackets, in order. Order of "
        f"the runs: {order} (A single, B cluster), fti-serve started afresh for each; per run the "
        f"saturated phase, then {a['rate']:,} req/s, each {a['warmup']} warm-up then {a['duration']} measured. "
        f"{a['concurrency']} connections in the closed loop: fti-serve's admission limit is 16 in flight "
        "per core, and it has one core; more would measure its refusals. Open loop: latency from each "
        "request's scheduled time. CPU seconds: utime+stime over the measured window, of fti-serve's "
        "process tree, and of every redis-server of the store in use (the single Redis, or the "
        "cluster's nodes together), per 1,000 measured requests. The features stage is fti-serve's "
        "`fti_request_stage_seconds{stage=\"features\"}` mean over the window.",
        "",
        "Before any load:",
        "",
        f"- keys: single Redis {sp['single_dbsize']:,}; cluster {sp['cluster_total']:,} = "
        + " + ".join(f"{v:,} (127.0.0.1:{p})" for p, v in sp["cluster_dbsize"].items())
        + f" (every node > 0: {'yes' if all(v > 0 for v in sp['cluster_dbsize'].values()) else 'NO'})",
        "- golden rows (check_golden.py, 30 rows), each run: "
        + "; ".join(f"{r['store']} {r['round']}: {r.get('golden', 'not run')}" for r in results["runs"]),
        "",
        "Commands:",
        "",
        f"- single Redis: `{results['commands']['redis']}`",
        "- cluster nodes: " + ", ".join(f"`{x}`" for x in c["commands"]) + f"; then `{c['create']}`",
        "- materialize: " + ", ".join(f"`{x}`" for x in results["commands"]["materialize_single"] +
                                      results["commands"]["materialize_cluster"]),
        "- fti-serve: " + ", ".join(f"`{x}`" for x in dict.fromkeys(
            r["command"].rsplit(" --http-addr", 1)[0] for r in results["runs"]))
        + " (and `--http-addr`/`--grpc-addr` on free loopback ports)",
    ]
    example = [r["phases"][k]["command"] for r in results["runs"][:1] for k in ("saturated", "rate")
               if k in r.get("phases", {})]
    if example:
        lines.append("- load: " + " and ".join(f"`{x}`" for x in example))
    lines.append("")
    stolen = [f"{p['phase']['name']} {p['steal_s']:.2f} s" for r in results["runs"]
              for p in r.get("phases", {}).values() if p.get("steal_s") is not None]
    if stolen:
        lines += ["CPU time the hypervisor gave to other guests (steal, both CPUs) during each measured "
                  "window; more than a few tenths of a second would mean a noisy neighbour: "
                  + ", ".join(stolen) + ".", ""]
    failed = [f"{r['store']} {r['round']}: {r['error']}" for r in results["runs"] if r.get("error")]
    failed += [f"{p['phase']['name']}: {p['error']}" for r in results["runs"]
               for p in r.get("phases", {}).values() if p.get("error")]
    if failed:
        lines += ["Failed:", ""] + [f"- {f}" for f in failed] + [""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fti-serve", type=Path, default=REPO / "target/release/fti-serve")
    p.add_argument("--loadtest", type=Path, default=REPO / "target/release/fti-loadtest")
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument("--redis-cli", default="redis-cli")
    p.add_argument("--redis-benchmark", default="redis-benchmark", help=argparse.SUPPRESS)  # base.preflight
    p.add_argument("--primaries", type=int, default=3, help="primaries of the cluster (no replicas)")
    p.add_argument("--rounds", type=int, default=2, help="single, cluster, single, cluster, ...")
    p.add_argument("--concurrency", type=int, default=16,
                   help="closed-loop connections (fti-serve admits 16 in flight per core)")
    p.add_argument("--rate", type=int, default=2000, help="open-loop rate, req/s")
    p.add_argument("--duration", default="10s", help="measured time per phase")
    p.add_argument("--warmup", default="2s", help="warm-up per phase, not measured")
    p.add_argument("--keys", default="uniform", help="entity key distribution (fti-loadtest --keys)")
    p.add_argument("--entities", type=Path, default=base.DEFAULT_ENTITIES, help="CSV of cc_num values")
    p.add_argument("--server-cpus", default="0", help="CPUs of fti-serve (taskset list; '' for none)")
    p.add_argument("--client-cpus", default="1", help="CPUs of fti-loadtest and every redis-server")
    p.add_argument("--client-threads", type=int, default=1, help="fti-loadtest --threads")
    p.add_argument("--client-timeout", default="2s", help="fti-loadtest --timeout")
    p.add_argument("--out", type=Path, default=HERE / "cluster.md", help="markdown; JSON beside it")
    p.add_argument("--work-dir", type=Path, default=HERE / "out-cluster", help="logs, node dirs, summaries")
    args = p.parse_args(argv)
    if args.primaries < 3:
        p.error("--primaries: a Redis Cluster needs at least 3")
    args.server_cpus, args.client_cpus = args.server_cpus or None, args.client_cpus or None
    args.loadtest_extra = ["--threads", str(args.client_threads), "--timeout", args.client_timeout, "--quiet"]
    args.plots, args.skip_load, args.rates = False, False, []
    args.fti_serve, args.loadtest = args.fti_serve.resolve(), args.loadtest.resolve()
    args.out, args.work_dir = args.out.resolve(), args.work_dir.resolve()
    args.taken_ports = []
    base.parse_seconds(args.duration), base.parse_seconds(args.warmup)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    procs = base.Processes(args.work_dir)
    redis_pids: dict = {"single": [], "cluster": []}
    redis_cpu = RedisCpu(redis_pids)
    base.cpu_seconds = redis_cpu  # run_phase samples the Redis side with the server (see RedisCpu)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    results: dict = {}
    try:
        base.preflight(args)
        if shutil.which(args.redis_cli) is None:
            raise base.RunError(f"{args.redis_cli}: not found (apt-get install redis-tools)")
        results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   "machine": base.machine(),
                   "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "commands": {}, "runs": []}
        version = base.run_checked([args.redis_server, "--version"], "redis-server --version")
        results["machine"]["redis"] = next((w[2:] for w in version.split() if w.startswith("v=")), "?")

        single_port = base.start_redis(args, procs)
        redis_pids["single"] = [p.pid for n, p in procs.running if n == "redis"]
        args.taken_ports.append(single_port)
        single_url = f"redis://127.0.0.1:{single_port}"
        results["commands"]["redis"] = (f"redis-server --port {single_port} --bind 127.0.0.1 --save '' "
                                        "--appendonly no")
        cluster = start_cluster(args, procs, redis_pids)
        args.taken_ports += [p for n in cluster["nodes"] for p in (n["port"], n["bus_port"])]
        results["cluster"] = cluster
        print(f"== single Redis on {single_port}; cluster {cluster['url']} (cluster_state:ok)", flush=True)

        started = time.monotonic()
        results["commands"]["materialize_single"] = base.materialize(args, single_url)
        results["commands"]["materialize_cluster"] = base.materialize(args, cluster["url"])
        results["materialize_s"] = round(time.monotonic() - started, 2)
        spread = key_spread(args, single_port, cluster)
        results["spread"] = spread
        print(f"   keys: single {spread['single_dbsize']}, cluster "
              + " + ".join(f"{v} (:{p})" for p, v in spread["cluster_dbsize"].items())
              + f" = {spread['cluster_total']}; {spread['cards_with_keys_on_two_nodes']} of {spread['cards']} "
              "cards have their two keys on different nodes", flush=True)
        if not all(v > 0 for v in spread["cluster_dbsize"].values()):
            raise base.RunError(f"the cluster's keys are not spread over every node: {spread['cluster_dbsize']}")
        if spread["cluster_total"] != spread["single_dbsize"]:
            raise base.RunError(f"the cluster holds {spread['cluster_total']} keys, the single Redis "
                                f"{spread['single_dbsize']}")

        urls = {"single": single_url, "cluster": cluster["url"]}
        for round_no in range(1, args.rounds + 1):
            for store in STORES:
                results["runs"].append(measure_server(args, procs, store, round_no, urls[store], redis_cpu))
        for r in results["runs"]:
            r["summaries"] = {k: summary(v) for k, v in r.get("phases", {}).items()}
        results["rows"] = table(results)
        results["wall_s"] = round(time.monotonic() - t0, 1)
        markdown = render(results)
        args.out.write_text(markdown)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print()
        print(markdown)
        print(f"wrote {base.rel(args.out)} and {base.rel(args.out.with_suffix('.json'))} "
              f"({results['wall_s']:.0f} s)")
        failed = any(r.get("error") for r in results["runs"]) or any(
            "error" in p for r in results["runs"] for p in r.get("phases", {}).values())
        return 1 if failed else 0
    except base.RunError as e:
        print(f"cluster: {e}", file=sys.stderr)
        if results:  # what ran before the failure, for the post-mortem
            partial = args.work_dir / "cluster-partial.json"
            partial.write_text(json.dumps(dict(results, error=str(e)), indent=2, default=str) + "\n")
            print(f"cluster: what ran is in {base.rel(partial)}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
