"""Side-by-side benchmark of fti-serve and a hand-built Python predictor (issue #7).

One command, one run, one machine (run it through run.sh, which prepares the venv):

    bash loadtest/compare/run.sh [--fti-serve target/release/fti-serve]
                                 [--loadtest target/release/fti-loadtest] [--skip-load]

1. starts a throwaway redis-server on a free loopback port and loads the example's feature
   files into it with `fti-serve materialize`;
2. measures the floors: one Redis HMGET round trip (redis-benchmark, one connection) and
   one onnxruntime run of the model (in-process, one row); the third floor, a trivial HTTP
   GET (fti-serve's /health/live) through the same load tool at each fixed rate, is measured
   on fti-serve before its load phases, and the table sets each p50 against the sum;
3. for fti-serve (fti-serve.toml: Redis, feature cache off) and then the baseline
   (baseline/app.py: FastAPI + uvicorn + onnxruntime + redis.asyncio, --baseline-workers
   processes): starts it on free loopback ports, waits for /health/ready, checks the 30
   golden rows (check_golden.py; a server that disagrees is not measured), then runs the
   load phases with fti-loadtest: saturation (closed loop, --concurrency) and each fixed
   --rates, sampling the server's CPU seconds (utime+stime, summed over its process tree)
   over each measured window and its RSS (VmRSS, VmHWM summed over the tree) after it;
4. writes a markdown table (--out, default loadtest/compare/results.md) and every raw
   number as JSON beside it, and prints the table.

--server-cpus and --client-cpus (taskset lists) pin the server under test apart from Redis
and the load tool; the baseline then gets one worker per server CPU. The Redis and model
floors are measured from the server's CPUs, where its Redis client and its model run.

Servers, Redis and the load tool are killed in `finally` (and on SIGTERM/SIGINT), every
wait is bounded. Raw load-tool summaries and server logs go to loadtest/compare/out/.
Standard library only. FTI__*, FTI_REDIS_URL and RUST_LOG are removed from fti-serve's
environment so that fti-serve.toml alone decides its configuration.

Everything that depends on fti-loadtest's command line and summary JSON is in
`loadtest_command` and `read_summary`.
"""

import argparse
import csv
import datetime
import http.client
import io
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV_PYTHON = HERE / ".venv" / "bin" / "python"
GOLDEN = REPO / "models" / "fraud" / "2" / "golden.jsonl"
MODEL = REPO / "models" / "fraud" / "2" / "model.onnx"
FEATURE_FILES = {
    "card_profile": REPO / "examples/fraud/data/features/card_profile.parquet",
    "card_activity": REPO / "examples/fraud/data/features/card_activity.parquet",
}
# The committed profile file lists every card once (cc_num first); it is the same file as
# the generated examples/fraud/build/cards.csv, which a fresh clone does not have.
DEFAULT_ENTITIES = REPO / "examples/fraud/data/features/card_profile.csv"
FLOOR_ENTITY = "4111000000000001"
ACTIVITY_FIELDS = ["txn_count_1h", "txn_count_24h", "amount_sum_24h", "amount_avg_30d",
                   "amount_std_30d", "last_txn_ts", "last_lat", "last_lon"]

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
STEP_TIMEOUT_S = 180.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVERS = ("fti-serve", "baseline")


class RunError(Exception):
    """A step failed; the message says which and why."""


# ----------------------------------------------------------------------------- load tool

def loadtest_command(args, url: str, phase: dict, summary: Path, plot: Path | None) -> list[str]:
    """fti-loadtest's command line for one phase (its contract; adjust here)."""
    if phase.get("target") == "get":
        cmd = [str(args.loadtest), "--url", url, "--target", "get", "--path", phase["path"]]
    else:
        cmd = [
            str(args.loadtest), "--url", url, "--target", phase.get("target", "http"), "--model", "fraud",
            "--corpus", str(GOLDEN), "--entities", str(args.entities), "--keys", args.keys,
        ]
    if phase["mode"] == "concurrency":
        cmd += ["--concurrency", str(phase["value"])]
    else:
        cmd += ["--rate", str(phase["value"])]
    cmd += ["--duration", args.duration, "--warmup", args.warmup, "--summary", str(summary)]
    if plot is not None:
        cmd += ["--plot", str(plot)]
    cmd += getattr(args, "loadtest_extra", [])
    return pinned(getattr(args, "client_cpus", None), cmd)


def read_summary(path: Path) -> dict:
    """The numbers this script uses from an fti-loadtest --summary file (its contract)."""
    raw = json.loads(path.read_text())
    latency = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "ok": raw["ok"],
        "errors": raw.get("errors", {}),
        "error_rate": raw["error_rate"],
        "throughput_rps": raw["throughput_rps"],
        "latency_us": {k: latency.get(k) for k in ("p50", "p90", "p99", "p99_9", "max", "mean")},
        # how late the client itself sent (open loop); large values mean the client, not the
        # server, was the bottleneck
        "client_lag_us": raw.get("client_lag_us"),
        # latency of the error answers, per kind (how fast a refusal such as a 429 comes)
        "error_latency_us": raw.get("error_latency_us", {}),
    }


# ----------------------------------------------------------------------------- helpers

def parse_seconds(text: str) -> float:
    """`10s`, `500ms`, `2m` or a bare number of seconds."""
    text = text.strip()
    for suffix, scale in (("ms", 1e-3), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rel(path) -> str:
    """A path as the markdown shows it: relative to the repository when inside it."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(REPO))
    except ValueError:
        return str(path)


def show(cmd: list[str]) -> str:
    return shlex.join(rel(c) if os.path.isabs(c) else c for c in cmd)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def http_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def run_checked(cmd: list[str], what: str, timeout: float = STEP_TIMEOUT_S, **kwargs) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as e:
        raise RunError(f"{what}: no answer within {timeout:.0f} s: {show(cmd)}") from e
    except OSError as e:
        raise RunError(f"{what}: cannot run {cmd[0]}: {e}") from e
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise RunError(f"{what} failed (exit {done.returncode}): {show(cmd)}\n{output[-3000:]}")
    return done.stdout


# ----------------------------------------------------------------------------- /proc

def steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests (all CPUs, /proc/stat `steal`)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def stage_totals(port: int) -> dict[str, tuple[float, float]]:
    """stage -> (sum of seconds, count) of fti-serve's fti_request_stage_seconds histogram,
    summed over models and versions (GET /metrics, Prometheus text format)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
    totals: dict[str, list[float]] = {}
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return {}
    finally:
        conn.close()
    for line in text.splitlines():
        for suffix, slot in (("_sum{", 0), ("_count{", 1)):
            prefix = "fti_request_stage_seconds" + suffix
            if line.startswith(prefix):
                labels, value = line[len(prefix):].rsplit("} ", 1)
                stage = next((part.split("=", 1)[1].strip('"') for part in labels.split(",")
                              if part.startswith("stage=")), "?")
                totals.setdefault(stage, [0.0, 0.0])[slot] += float(value)
    return {k: (v[0], v[1]) for k, v in totals.items()}


def stage_means(before: dict, after: dict) -> dict[str, float]:
    """Mean microseconds per request of each stage between two scrapes."""
    means = {}
    for stage, (total, count) in after.items():
        total0, count0 = before.get(stage, (0.0, 0.0))
        if count > count0:
            means[stage] = round((total - total0) / (count - count0) * 1e6, 1)
    return means


def process_tree(root: int) -> dict[int, list[str]]:
    """pid -> fields of /proc/<pid>/stat after the command name, for root and its descendants."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        stats[int(entry)] = text[text.rindex(")") + 2:].split()
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in stats and pid not in tree:
            tree[pid] = stats[pid]
            frontier += [p for p, f in stats.items() if int(f[1]) == pid]
    return tree


def cpu_seconds(root: int) -> float:
    """utime+stime of the live tree, plus cutime+cstime (children that already exited)."""
    ticks = 0
    for fields in process_tree(root).values():
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / CLK_TCK


def memory_mib(root: int) -> dict:
    """VmRSS (now) and VmHWM (each process's peak) summed over the tree, in MiB, and the
    RSS of each process."""
    total = {"VmRSS": 0, "VmHWM": 0}
    each = {}
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        for key in total:
            total[key] += int(fields.get(key, "0 kB").split()[0])
        each[pid] = {"name": fields.get("Name", "?").strip(),
                     "rss_mib": int(fields.get("VmRSS", "0 kB").split()[0]) / 1024}
    return {"rss_mib": total["VmRSS"] / 1024, "hwm_mib": total["VmHWM"] / 1024, "processes": each}


# ----------------------------------------------------------------------------- processes

class Processes:
    """Everything this run starts, each in a session of its own so that a server and its
    workers stop together; stopped in reverse order."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], **kwargs) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, **kwargs)
        except OSError as e:
            raise RunError(f"cannot start {name} ({cmd[0]}): {e}") from e
        finally:
            log.close()
        self.running.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)  # the session this run created for it
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.running = [(n, p) for n, p in self.running if p is not proc]

    def stop_all(self) -> None:
        for _, proc in reversed(list(self.running)):
            self.stop(proc)


def wait_until(check, what: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"{what}: the process exited with {proc.returncode}\n{tail(log)}")
        if check():
            return
        time.sleep(0.1)
    raise RunError(f"{what}: not ready within {timeout:.0f} s\n{tail(log)}")


# ----------------------------------------------------------------------------- steps

def start_redis(args, procs: Processes) -> int:
    port = free_port()
    cmd = pinned(getattr(args, "client_cpus", None),
                 [args.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no"])
    proc = procs.start("redis", cmd)
    wait_until(lambda: redis_ping(port), "redis-server", 10.0, proc, procs.log_dir / "redis.log")
    return port


def materialize(args, redis_url: str) -> list[str]:
    commands = []
    for group, path in FEATURE_FILES.items():
        cmd = [str(args.fti_serve), "materialize", "--config", str(HERE / "fti-serve.toml"),
               "--redis-url", redis_url, "--group", group, "--file", str(path)]
        run_checked(cmd, f"materialize {group}", env=fti_env())
        commands.append(show(cmd))
    return commands


ONNX_FLOOR = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from baseline.app import load_session
session = load_session(sys.argv[2])
row = json.loads(open(sys.argv[3]).readline())["input"]
x = np.array([[float("nan") if v is None else v for v in row]], dtype=np.float32)
name = session.get_inputs()[0].name
for _ in range(500):
    session.run(["probabilities"], {name: x})
times = []
for _ in range(int(sys.argv[4])):
    t = time.perf_counter_ns()
    session.run(["probabilities"], {name: x})
    times.append(time.perf_counter_ns() - t)
times.sort()
print(json.dumps({"runs": len(times), "p50_us": times[len(times) // 2] / 1000,
                  "p99_us": times[int(len(times) * 0.99)] / 1000}))
"""


def measure_floors(args, redis_port: int) -> dict:
    floors = {}
    key = f"fti:card_activity:{FLOOR_ENTITY}"
    # The floors stand where the server's work runs: redis-benchmark in the place of the
    # server's Redis client, the model on the server's CPUs. Pinned, a round trip from the
    # server's CPU to Redis on another is about twice one on Redis's own CPU here.
    cmd = pinned(getattr(args, "server_cpus", None),
                 [args.redis_benchmark, "-p", str(redis_port), "-c", "1", "-n", "20000", "--csv",
                  "HMGET", key, *ACTIVITY_FIELDS])
    out = run_checked(cmd, "redis-benchmark")
    rows = list(csv.DictReader(io.StringIO(out)))
    if not rows or "p50_latency_ms" not in rows[-1]:
        raise RunError(f"redis-benchmark: unexpected output\n{out[-1000:]}")
    row = rows[-1]
    floors["redis_hmget"] = {
        "command": show(cmd),
        "rps": float(row["rps"]),
        "p50_us": float(row["p50_latency_ms"]) * 1000,
        "p99_us": float(row["p99_latency_ms"]) * 1000,
        "what": "one HMGET of the 8 card_activity fields, one connection, no pipelining",
    }
    cmd = pinned(getattr(args, "server_cpus", None),
                 [str(VENV_PYTHON), "-c", ONNX_FLOOR, str(HERE), str(MODEL), str(GOLDEN), "20000"])
    out = run_checked(cmd, "onnxruntime floor")
    floors["onnxruntime_run"] = dict(json.loads(out.strip().splitlines()[-1]),
                                     what="onnxruntime 1 row of model v2, in-process, 1 thread")
    return floors


def fti_env() -> dict:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("FTI__") and k not in ("FTI_REDIS_URL", "RUST_LOG")}


def cpu_list(text: str) -> list[int]:
    """taskset's list syntax (`0`, `1-3`, `0,2`) as CPU numbers."""
    cpus = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return cpus


def pinned(cpus: str | None, cmd: list[str]) -> list[str]:
    """`cmd` on the given CPUs (taskset's list syntax), or as it is."""
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


def server_command(args, name: str, port: int, grpc_port: int, redis_url: str) -> tuple[list[str], dict, Path]:
    """(argv, environment, working directory) of one server."""
    cpus = getattr(args, "server_cpus", None)
    if name == "fti-serve":
        cmd = [str(args.fti_serve), "serve", "--config", str(HERE / "fti-serve.toml"),
               "--redis-url", redis_url, "--http-addr", f"127.0.0.1:{port}",
               "--grpc-addr", f"127.0.0.1:{grpc_port}"]
        return pinned(cpus, cmd), fti_env(), REPO
    cmd = [str(VENV_PYTHON), "-m", "uvicorn", "baseline.app:app", "--app-dir", str(HERE),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.baseline_workers),
           "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"]
    env = dict(os.environ, REDIS_URL=redis_url, MODEL_PATH=str(MODEL))
    return pinned(cpus, cmd), env, REPO


def run_phase(args, procs: Processes, server: subprocess.Popen, name: str, port: int,
              phase: dict, metrics_port: int | None = None) -> dict:
    """One load phase. The CPU window opens when the tool's warm-up should be over and
    closes when the tool exits, so CPU per request uses the measured requests only."""
    stem = f"{name}-{phase['name']}"
    summary = args.work_dir / f"{stem}.json"
    summary.unlink(missing_ok=True)
    plot = args.work_dir / f"{stem}.svg" if args.plots else None
    cmd = loadtest_command(args, f"http://127.0.0.1:{port}", phase, summary, plot)
    warmup, duration = parse_seconds(args.warmup), parse_seconds(args.duration)
    result = {"phase": phase, "command": show(cmd)}
    print(f"   {phase['name']}: {show(cmd)}", flush=True)
    tool = procs.start(f"loadtest-{stem}", cmd, cwd=REPO)
    try:
        started = time.monotonic()
        try:
            tool.wait(timeout=warmup)
        except subprocess.TimeoutExpired:
            pass
        cpu_start, window_start, steal_start = cpu_seconds(server.pid), time.monotonic(), steal_seconds()
        stages_start = stage_totals(metrics_port) if metrics_port else None
        try:
            tool.wait(timeout=warmup + duration + 60.0 - (time.monotonic() - started))
        except subprocess.TimeoutExpired:
            result["error"] = f"fti-loadtest did not finish within {warmup + duration + 60:.0f} s"
    finally:
        procs.stop(tool)
    result["cpu_s"] = cpu_seconds(server.pid) - cpu_start
    result["steal_s"] = round(steal_seconds() - steal_start, 2)
    if stages_start is not None:
        result["server_stages_mean_us"] = stage_means(stages_start, stage_totals(metrics_port))
    result["cpu_window_s"] = time.monotonic() - window_start
    result["memory"] = memory_mib(server.pid)
    result["exit_code"] = tool.returncode
    if "error" not in result and tool.returncode != 0:
        result["error"] = f"fti-loadtest exit {tool.returncode}"
    if server.poll() is not None:
        result["error"] = f"the server exited with {server.returncode} during the phase"
    try:
        result["summary"] = read_summary(summary)
    except (OSError, ValueError, KeyError, TypeError) as e:
        result.setdefault("error", f"no usable summary {rel(summary)}: {e!r}")
    if "error" in result:
        result["log_tail"] = tail(args.work_dir / f"loadtest-{stem}.log")
        print(f"   {phase['name']}: {result['error']}\n{result['log_tail']}", file=sys.stderr)
    else:
        s = result["summary"]
        latency = s["latency_us"]
        print(f"   {phase['name']}: {s['throughput_rps']:.0f} req/s, p50 {fmt_ms(latency['p50'])} ms, "
              f"p99 {fmt_ms(latency['p99'])} ms, errors {s['error_rate']:.2%}, "
              f"server CPU {result['cpu_s']:.2f} s", flush=True)
    return result


def measure_server(args, procs: Processes, name: str, redis_url: str) -> dict:
    port, grpc_port = free_port(), free_port()
    cmd, env, cwd = server_command(args, name, port, grpc_port, redis_url)
    shown = show(cmd)
    if name == "baseline":
        shown = f"REDIS_URL={redis_url} {shown}"
    result: dict = {"command": shown, "port": port}
    print(f"== {name}: {shown}", flush=True)
    server = procs.start(name, cmd, env=env, cwd=cwd)
    try:
        ready = lambda: http_status(port, "/health/ready") == 200  # noqa: E731
        started = time.monotonic()
        wait_until(ready, f"{name} /health/ready", READY_TIMEOUT_S, server, args.work_dir / f"{name}.log")
        result["ready_after_s"] = round(time.monotonic() - started, 2)
        check = [str(VENV_PYTHON), str(HERE / "check_golden.py"), "--url", f"http://127.0.0.1:{port}"]
        result["golden"] = run_checked(check, f"{name}: golden check").strip()
        print(f"   {result['golden']}", flush=True)
        result["idle_memory"] = memory_mib(server.pid)
        result["phases"] = []
        if not args.skip_load:
            for phase in phases(args, name):
                phase_port = grpc_port if phase.get("target") == "grpc" else port
                stages = name == "fti-serve" and phase.get("target") != "get"
                result["phases"].append(run_phase(args, procs, server, name, phase_port, phase,
                                                  metrics_port=port if stages else None))
        result["final_memory"] = memory_mib(server.pid)
    finally:
        procs.stop(server)
    return result


FLOOR_PATH = "/health/live"


def phases(args, server: str = "fti-serve") -> list[dict]:
    out = [{"name": f"saturation-c{args.concurrency}", "mode": "concurrency", "value": args.concurrency}]
    if server == "fti-serve":
        # The HTTP floor: a trivial GET through the same load tool at the same rates.
        out += [{"name": f"floor-get-{r}", "mode": "rate", "value": r, "target": "get", "path": FLOOR_PATH}
                for r in args.rates]
    out += [{"name": f"rate-{r}", "mode": "rate", "value": r} for r in args.rates]
    if server == "fti-serve":
        # The same rates over fti.v1.PredictionService/Predict (the baseline has no gRPC).
        out += [{"name": f"grpc-rate-{r}", "mode": "rate", "value": r, "target": "grpc"} for r in args.rates]
    return out


# ----------------------------------------------------------------------------- report

def fmt_ms(us) -> str:
    if us is None:
        return "—"
    ms = us / 1000
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def ratio(a, b, higher_is_better: bool) -> str:
    if a is None or b is None or a <= 0 or b <= 0:
        return "—"
    r = a / b if higher_is_better else b / a
    return f"{r:.1f}×" if r >= 10 or r < 1 else f"{r:.2f}×"


def table_rows(results: dict, args) -> list[dict]:
    """Metric rows: the number per server (None when not measured), what the table shows,
    and fti-serve's better-by factor."""
    def value(server, name, get):
        for p in results["servers"].get(server, {}).get("phases", []):
            if p["phase"]["name"] == name and "summary" in p:
                try:
                    return get(p)
                except (KeyError, TypeError, ZeroDivisionError):
                    return None
        return None

    def row(label, values, fmt, higher_is_better=None):
        shown = {s: (fmt(s) if values[s] is not None else "—") for s in SERVERS}
        better = "—" if higher_is_better is None else ratio(values["fti-serve"], values["baseline"],
                                                             higher_is_better)
        return {"metric": label, "values": values, "shown": shown, "better_by": better}

    def metric(name, get):
        return {s: value(s, name, get) for s in SERVERS}

    def latency(k):
        return lambda p: p["summary"]["latency_us"][k]

    def throughput(p):
        return p["summary"]["throughput_rps"]

    def errors(p):
        return p["summary"]["error_rate"]

    def cpu_per_1k(p):
        return p["cpu_s"] / p["summary"]["requests"] * 1000

    rows = []
    sat = phases(args)[0]["name"]
    v = metric(sat, throughput)
    rows.append(row(f"saturation throughput, {args.concurrency} connections (req/s)", v,
                    lambda s: f"{v[s]:,.0f}", True))
    todo = [("saturation", sat, None)] + [(f"at {r} req/s", f"rate-{r}", r) for r in args.rates]
    for where, name, rate in todo:
        p50, p99 = metric(name, latency("p50")), metric(name, latency("p99"))
        rows.append(row(f"p50 {where} (ms)", p50, lambda s: fmt_ms(p50[s]), False))
        rows.append(row(f"p99 {where} (ms)", p99, lambda s: fmt_ms(p99[s]), False))
        err, got = metric(name, errors), metric(name, throughput)
        label = f"errors {where}" + (" (achieved req/s)" if rate else "")
        rows.append(row(label, err, lambda s: f"{err[s] * 100:.2f} %"
                        + (f" ({got[s]:,.0f})" if rate and got[s] is not None else "")))
        cpu = metric(name, cpu_per_1k)
        rows.append(row(f"CPU s per 1,000 requests {where}", cpu, lambda s: f"{cpu[s]:.3f}", False))
    f = results.get("floors", {})
    hmget = f.get("redis_hmget", {}).get("p50_us")
    model = f.get("onnxruntime_run", {}).get("p50_us")
    for r in args.rates:
        get = value("fti-serve", f"floor-get-{r}", latency("p50"))
        floor = get + hmget + model if None not in (get, hmget, model) else None
        rows.append(row(f"floor at {r} req/s: p50 of GET {FLOOR_PATH} through the same tool (ms)",
                        {"fti-serve": get, "baseline": None}, lambda s, g=get: fmt_ms(g)))
        rows.append(row(f"floor at {r} req/s: that GET + Redis HMGET p50 + model p50 (ms)",
                        {"fti-serve": floor, "baseline": None}, lambda s, x=floor: fmt_ms(x)))
        p50 = metric(f"rate-{r}", latency("p50"))
        over = {s: (p50[s] / floor if floor and p50[s] else None) for s in SERVERS}
        rows.append(row(f"p50 at {r} req/s / that floor", over, lambda s, o=over: f"{o[s]:.2f}×"))
    for r in args.rates:
        name = f"grpc-rate-{r}"
        for k in ("p50", "p99"):
            got = metric(name, latency(k))
            rows.append(row(f"{k} at {r} req/s over gRPC, fti.v1 Predict (ms)", got, lambda s, g=got: fmt_ms(g[s])))
    peak = {s: results["servers"].get(s, {}).get("final_memory", {}).get("hwm_mib") for s in SERVERS}
    rows.append(row("peak RSS, whole process tree (MiB)", peak, lambda s: f"{peak[s]:.1f}", False))
    return rows


def pinning_text(args) -> str:
    server, client = getattr(args, "server_cpus", None), getattr(args, "client_cpus", None)
    if not server and not client:
        return "The load tool runs on the same machine and shares its cores with the server."
    return (f"Pinned with taskset: the server under test, and redis-benchmark and the model for "
            f"the floors, on CPU {server or 'any'}; Redis and the load tool on CPU {client or 'any'}.")


def render(results: dict, args) -> str:
    m = results["machine"]
    lines = [
        "# fti-serve vs a hand-built Python predictor (issue #7)",
        "",
        f"Run {results['date']} on {m['nproc']} CPUs (nproc; {m['cpu']}), {m['memory_gib']:.0f} GiB, "
        f"{m['system']}. Model fraud v2 (LightGBM, 50 trees, 24 inputs), both feature groups "
        f"from Redis {m['redis']} on loopback in one pipelined round trip per request, no feature "
        "cache. " + pinning_text(args),
        "",
        "Commands (`bash loadtest/compare/run.sh` runs all of this):",
        "",
        f"- Redis: `{results['commands']['redis']}`, loaded with "
        + " and ".join(f"`{c}`" for c in results["commands"]["materialize"]),
    ]
    for s in SERVERS:
        if s in results["servers"]:
            lines.append(f"- {s}: `{results['servers'][s]['command']}`")
    if "baseline" in results["servers"]:
        lines.append(f"  (baseline: FastAPI + uvicorn[standard] with {args.baseline_workers} worker "
                     f"processes on {len(cpu_list(args.server_cpus)) if args.server_cpus else m['nproc']} CPUs, onnxruntime with intra_op_num_threads=1 and "
                     "inter_op_num_threads=1, redis.asyncio + hiredis; packages pinned in "
                     "loadtest/compare/requirements.txt)")
    if args.skip_load:
        lines.append("- load: skipped (--skip-load)")
    else:
        example = next((p["command"] for s in results["servers"].values() for p in s.get("phases", [])), "")
        lines.append(f"- load, per phase (fti-loadtest): `{example}`; saturation is a closed loop with "
                     f"{args.concurrency} connections, then fixed rates {', '.join(map(str, args.rates))} "
                     f"req/s; {args.duration} measured after {args.warmup} warm-up each")
    lines += ["", "Golden check before any load (models/fraud/2/golden.jsonl, 30 rows):", ""]
    for s, data in results["servers"].items():
        lines.append(f"- {s}: {data.get('golden', 'not run')}")
    lines += ["", "| | fti-serve | baseline | fti-serve better by |", "|---|---:|---:|---:|"]
    for row in results["rows"]:
        if args.skip_load and all(v is None for v in row["values"].values()):
            continue
        lines.append(f"| {row['metric']} | {row['shown']['fti-serve']} | {row['shown']['baseline']} "
                     f"| {row['better_by']} |")
    idle = {s: d.get("idle_memory", {}).get("rss_mib") for s, d in results["servers"].items()}
    lines += [
        "",
        "CPU seconds are utime+stime of the server's whole process tree (uvicorn's supervisor "
        "and workers) over each phase's measured window; requests are the load tool's measured "
        "requests. Peak RSS is VmHWM summed over the tree. Idle RSS after start-up: "
        + ", ".join(f"{s} {v:.1f} MiB" for s, v in idle.items() if v is not None) + ".",
        "",
    ]
    stolen = [f"{s} {p['phase']['name']} {p['steal_s']:.1f} s" for s, d in results["servers"].items()
              for p in d.get("phases", []) if "steal_s" in p]
    if stolen:
        lines += ["", "CPU time the hypervisor gave to other guests during each measured window (both "
                  "CPUs; more than a few tenths of a second means a noisy neighbour): " + ", ".join(stolen) + "."]
    stages = [(p["phase"]["name"], p["server_stages_mean_us"], p["summary"]["latency_us"])
              for p in results["servers"].get("fti-serve", {}).get("phases", [])
              if p.get("server_stages_mean_us") and "summary" in p]
    if stages:
        lines += ["", "Where fti-serve's time goes, per phase: mean µs per request of each server-side stage "
                  "(its `fti_request_stage_seconds` histogram, scraped before and after the measured window) "
                  "beside the client's mean latency:", "",
                  "| phase | client mean | server total | features (Redis) | transform | inference |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, m, lat in stages:
            lines.append(f"| {name} | {lat['mean']:.0f} | {m.get('total', 0):.0f} | {m.get('features', 0):.0f} "
                         f"| {m.get('transform', 0):.1f} | {m.get('inference', 0):.1f} |")
    lines += [
        "",
        "Floors, same run, before the servers start:",
        "",
    ]
    f = results["floors"]
    if "redis_hmget" in f:
        r = f["redis_hmget"]
        lines.append(f"- Redis round trip: p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs "
                     f"({r['what']}; `{r['command']}`)")
    if "onnxruntime_run" in f:
        o = f["onnxruntime_run"]
        lines.append(f"- Model: p50 {o['p50_us']:.1f} µs, p99 {o['p99_us']:.1f} µs ({o['what']}, "
                     f"{o['runs']} runs)")
    failed = [(s, p["phase"]["name"], p["error"]) for s, d in results["servers"].items()
              for p in d.get("phases", []) if "error" in p]
    if failed:
        lines += ["", "Phases that failed:", ""]
        lines += [f"- {s} {name}: {err}" for s, name, err in failed]
    return "\n".join(lines) + "\n"


def machine() -> dict:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": mem_kib / 2**20,
            "system": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fti-serve", type=Path, default=REPO / "target/release/fti-serve")
    p.add_argument("--loadtest", type=Path, default=REPO / "target/release/fti-loadtest")
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument("--redis-benchmark", default="redis-benchmark")
    p.add_argument("--baseline-workers", type=int, default=None,
                   help="uvicorn worker processes (default: one per CPU of --server-cpus, else 2, "
                        "one per core on the project's machine)")
    p.add_argument("--server-cpus", default=None,
                   help="taskset CPU list for the server under test (e.g. 1 or 2-3)")
    p.add_argument("--client-cpus", default=None,
                   help="taskset CPU list for Redis, redis-benchmark and the load tool (e.g. 0)")
    p.add_argument("--servers", default=",".join(SERVERS), help="which to measure, comma-separated")
    p.add_argument("--concurrency", type=int, default=32, help="connections of the saturation phase")
    p.add_argument("--rates", default="500,1000,2000", help="fixed request rates, req/s, comma-separated")
    p.add_argument("--duration", default="10s", help="measured time per phase")
    p.add_argument("--warmup", default="2s", help="warm-up per phase, not measured")
    p.add_argument("--keys", default="uniform", help="entity key distribution (fti-loadtest --keys)")
    p.add_argument("--entities", type=Path, default=DEFAULT_ENTITIES, help="CSV of cc_num values")
    p.add_argument("--plots", action="store_true", help="also write an SVG per phase (fti-loadtest --plot)")
    p.add_argument("--skip-load", action="store_true",
                   help="start, golden-check and measure idle memory only; no load phases")
    p.add_argument("--out", type=Path, default=HERE / "results.md", help="markdown table; JSON beside it")
    p.add_argument("--work-dir", type=Path, default=HERE / "out", help="logs and raw load summaries")
    args = p.parse_args(argv)
    args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    if args.baseline_workers is None:
        args.baseline_workers = len(cpu_list(args.server_cpus)) if args.server_cpus else 2
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        p.error(f"--servers: unknown {unknown}, expected some of {list(SERVERS)}")
    parse_seconds(args.duration), parse_seconds(args.warmup)
    return args


def preflight(args) -> None:
    problems = []
    if not os.access(args.fti_serve, os.X_OK):
        problems.append(f"--fti-serve {args.fti_serve}: not an executable (cargo build --release?)")
    if not args.skip_load and not os.access(args.loadtest, os.X_OK):
        problems.append(f"--loadtest {args.loadtest}: not an executable (or pass --skip-load)")
    for tool in (args.redis_server, args.redis_benchmark):
        if shutil.which(tool) is None:
            problems.append(f"{tool}: not found (apt-get install redis-server)")
    if not VENV_PYTHON.exists():
        problems.append(f"{rel(VENV_PYTHON)} missing: run loadtest/compare/run.sh, which creates it")
    if not args.entities.is_file():
        problems.append(f"--entities {args.entities}: no such file")
    if problems:
        raise RunError("cannot start:\n  " + "\n  ".join(problems))


def main(argv=None) -> int:
    args = parse_args(argv)
    args.fti_serve, args.loadtest = args.fti_serve.resolve(), args.loadtest.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(args.work_dir)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        preflight(args)
        results = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "servers": {},
        }
        version = run_checked([args.redis_server, "--version"], "redis-server --version")
        versions = [w.split("=", 1)[1] for w in version.split() if w.startswith("v=")]
        results["machine"]["redis"] = versions[0] if versions else "?"
        redis_port = start_redis(args, procs)
        redis_url = f"redis://127.0.0.1:{redis_port}"
        results["commands"] = {
            "redis": f"redis-server --port {redis_port} --bind 127.0.0.1 --save '' --appendonly no",
            "materialize": materialize(args, redis_url),
        }
        print(f"== redis on {redis_port}, features loaded; floors", flush=True)
        results["floors"] = measure_floors(args, redis_port)
        for name in args.servers:
            results["servers"][name] = measure_server(args, procs, name, redis_url)
        results["rows"] = table_rows(results, args)
        markdown = render(results, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print()
        print(markdown)
        print(f"wrote {rel(args.out)} and {rel(args.out.with_suffix('.json'))}")
        failed = any("error" in p for d in results["servers"].values() for p in d.get("phases", []))
        return 1 if failed else 0
    except RunError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
