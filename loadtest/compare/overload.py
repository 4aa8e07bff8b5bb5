"""Overload benchmark: fti-serve and the Python baseline offered twice what they can serve.

    bash loadtest/compare/run.sh --overload [--fti-serve target/release/fti-serve]
                                            [--loadtest target/release/fti-loadtest]

Same set-up as run.py (a throwaway Redis loaded by `fti-serve materialize`, the same
model, the golden check), then for each server, in one run:

1. saturation: closed loop, --concurrency connections -> its saturated rate S;
2. unloaded: open loop at a moderate rate (--moderate, default S/4) -> the reference
   latency;
3. overload: open loop at --factor x S (default 2) for --overload-duration (20 s), with
   the server's RSS sampled every 250 ms -> admitted throughput and latency, refusals
   (fti-serve answers 429 beyond server.max_in_flight) and how fast they come, errors,
   peak RSS;
4. recovery: --recovery-pause (1 s) after the overload stops, the moderate rate again for
   5 s -> is latency back to the unloaded figure?

`--server-cpu-quota F` holds each server to F of a core with a CFS quota (cgroup v1, as
root; a Kubernetes CPU limit does the same), so that the load tool, on its own core, can
offer twice the server's rate without lagging; `--client-connections N` sets the load
tool's connections (64).

Writes loadtest/compare/overload.md and overload.json (every raw number, the commands and
the load tool's summaries), and prints the table. fti-serve's checks: admitted p99 within
3x the unloaded p99, the p99 of a refusal under 1 ms, and recovery p99 within 1.5x the
unloaded p99.
"""

import argparse
import datetime
import json
import sys
import threading
import time
from pathlib import Path

import run as base

HERE = base.HERE


def measure(args, procs, server, name: str, port: int, phase: dict, sample_rss: bool = False) -> dict:
    """One fti-loadtest phase; with `sample_rss`, the server's peak RSS while it ran."""
    peak = {"rss_mib": 0.0}
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            peak["rss_mib"] = max(peak["rss_mib"], base.memory_mib(server.pid)["rss_mib"])
            stop.wait(0.25)

    thread = threading.Thread(target=sampler, daemon=True) if sample_rss else None
    if thread:
        thread.start()
    saved = args.duration
    args.duration = phase.get("duration", saved)
    try:
        result = base.run_phase(args, procs, server, name, port, phase)
    finally:
        args.duration = saved
        stop.set()
        if thread:
            thread.join()
    if sample_rss:
        result["peak_rss_mib"] = round(peak["rss_mib"], 1)
    return result


CGROUP = Path("/sys/fs/cgroup/cpu/fti-overload")


def limit_cpu(pid: int, share: float) -> None:
    """Puts the server under a CFS quota of `share` of a core (cgroup v1), as a Kubernetes
    CPU limit does, with a 2 ms period so that a throttled server waits at most ~1 ms."""
    CGROUP.mkdir(exist_ok=True)
    period = 2000
    (CGROUP / "cpu.cfs_period_us").write_text(str(period))
    (CGROUP / "cpu.cfs_quota_us").write_text(str(max(1000, round(share * period))))
    (CGROUP / "cgroup.procs").write_text(str(pid))


def cpu_count(cpus: str | None) -> int:
    """How many CPUs a taskset list names ("0", "0,1", "0-3"); all of them when None."""
    if not cpus:
        return base.os.cpu_count() or 1
    count = 0
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi) - int(lo) + 1 if hi else 1
    return count


def summary(result: dict) -> dict:
    s = result.get("summary") or {}
    lat = s.get("latency_us", {})
    refusals = (s.get("error_latency_us") or {}).get("http_429:overloaded", {})
    return {
        "throughput_rps": s.get("throughput_rps"),
        "requests": s.get("requests"),
        "ok": s.get("ok"),
        "errors": s.get("errors", {}),
        "p50_us": lat.get("p50"),
        "p99_us": lat.get("p99"),
        "refusal_p50_us": refusals.get("p50"),
        "refusal_p99_us": refusals.get("p99"),
        "client_lag_p99_us": (s.get("client_lag_us") or {}).get("p99"),
        "peak_rss_mib": result.get("peak_rss_mib"),
        "error": result.get("error"),
    }


def measure_server(args, procs, name: str, redis_url: str) -> dict:
    port, grpc_port = base.free_port(), base.free_port()
    cmd, env, cwd = base.server_command(args, name, port, grpc_port, redis_url)
    out = {"command": base.show(cmd)}
    print(f"== {name}: {out['command']}", flush=True)
    server = procs.start(name, cmd, env=env, cwd=cwd)
    if args.server_cpu_quota:
        limit_cpu(server.pid, args.server_cpu_quota)
    try:
        base.wait_until(lambda: base.http_status(port, "/health/ready") == 200, f"{name} /health/ready",
                        base.READY_TIMEOUT_S, server, args.work_dir / f"{name}.log")
        check = [str(base.VENV_PYTHON), str(HERE / "check_golden.py"), "--url", f"http://127.0.0.1:{port}"]
        out["golden"] = base.run_checked(check, f"{name}: golden check").strip()
        out["idle_rss_mib"] = round(base.memory_mib(server.pid)["rss_mib"], 1)
        # fti-serve refuses beyond its admission limit (16 per core by default): a closed
        # loop with more connections than that would measure how fast it refuses, not serves.
        concurrency = args.concurrency if name != "fti-serve" else 16 * cpu_count(args.server_cpus)
        sat = measure(args, procs, server, name, port,
                      {"name": "saturation", "mode": "concurrency", "value": concurrency})
        saturated = (sat.get("summary") or {}).get("throughput_rps") or 0
        if not saturated:
            raise base.RunError(f"{name}: the saturation phase served nothing: {sat.get('error')}")
        moderate = args.moderate or max(100, round(saturated / 4 / 100) * 100)
        offered = round(saturated * args.factor)
        phases = {"saturation": sat}
        phases["unloaded"] = measure(args, procs, server, name, port,
                                     {"name": "unloaded", "mode": "rate", "value": moderate})
        phases["overload"] = measure(args, procs, server, name, port,
                                     {"name": "overload", "mode": "rate", "value": offered,
                                      "duration": args.overload_duration}, sample_rss=True)
        time.sleep(args.recovery_pause)
        phases["recovery"] = measure(args, procs, server, name, port,
                                     {"name": "recovery", "mode": "rate", "value": moderate, "duration": "5s"})
        out.update({"saturated_rps": saturated, "moderate_rps": moderate, "offered_rps": offered,
                    "phases": phases, "final_rss_mib": round(base.memory_mib(server.pid)["rss_mib"], 1)})
    finally:
        procs.stop(server)
    return out


def checks(result: dict) -> dict:
    p = {k: summary(v) for k, v in result["phases"].items()}
    unloaded, overload, recovery = p["unloaded"]["p99_us"], p["overload"], p["recovery"]["p99_us"]
    refused = overload["errors"].get("http_429:overloaded", 0)
    return {
        "admitted p99 <= 3x unloaded p99": bool(unloaded and overload["p99_us"] is not None
                                               and overload["p99_us"] <= 3 * unloaded),
        "p99 of a refusal < 1 ms": bool(refused and overload["refusal_p99_us"] is not None
                                       and overload["refusal_p99_us"] < 1000),
        "recovery p99 <= 1.5x unloaded p99": bool(unloaded and recovery is not None and recovery <= 1.5 * unloaded),
    }


def fmt(us):
    return "—" if us is None else f"{us / 1000:.3f}"


def render(results: dict) -> str:
    lines = [
        "# Overload: offered twice the saturated rate",
        "",
        f"Run {results['date']} ({results['machine'].get('cpu', '?')}); "
        "`bash loadtest/compare/run.sh --overload`. Open loop: latency from each request's "
        f"scheduled time. The server on CPU {results['args'].get('server_cpus')}, the load tool "
        f"and Redis on CPU {results['args'].get('client_cpus')}, so that the tool can offer "
        "twice what the server serves.",
        "",
    ]
    names = list(results["servers"])
    lines += ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]

    def row(label, get):
        cells = []
        for n in names:
            try:
                cells.append(get(results["servers"][n]))
            except (KeyError, TypeError):
                cells.append("—")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    s = lambda r, ph: summary(r["phases"][ph])  # noqa: E731
    row("saturated (closed loop, req/s)", lambda r: f"{r['saturated_rps']:,.0f}")
    row("unloaded rate (req/s): p50 / p99 (ms)",
        lambda r: f"{r['moderate_rps']:,}: {fmt(s(r, 'unloaded')['p50_us'])} / {fmt(s(r, 'unloaded')['p99_us'])}")
    row("offered in overload (req/s, 20 s)", lambda r: f"{r['offered_rps']:,}")
    row("overload: answered 200 (req/s)", lambda r: f"{s(r, 'overload')['throughput_rps']:,.0f}")
    row("overload: p50 / p99 of the 200s (ms)",
        lambda r: f"{fmt(s(r, 'overload')['p50_us'])} / {fmt(s(r, 'overload')['p99_us'])}")
    row("overload: errors by kind",
        lambda r: ", ".join(f"{k} {v:,}" for k, v in s(r, "overload")["errors"].items()) or "none")
    row("overload: p50 / p99 of a 429 (ms)",
        lambda r: f"{fmt(s(r, 'overload')['refusal_p50_us'])} / {fmt(s(r, 'overload')['refusal_p99_us'])}")
    row("overload: client lag p99 (ms)", lambda r: fmt(s(r, "overload")["client_lag_p99_us"]))
    row("peak RSS in overload (MiB; idle)", lambda r: f"{s(r, 'overload')['peak_rss_mib']} ({r['idle_rss_mib']})")
    row("1 s after: p50 / p99 at the unloaded rate (ms)",
        lambda r: f"{fmt(s(r, 'recovery')['p50_us'])} / {fmt(s(r, 'recovery')['p99_us'])}")
    lines.append("")
    for n in names:
        if "checks" in results["servers"][n]:
            verdicts = ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in results["servers"][n]["checks"].items())
            lines.append(f"- {n}: {verdicts}")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fti-serve", type=Path, default=base.REPO / "target/release/fti-serve")
    p.add_argument("--loadtest", type=Path, default=base.REPO / "target/release/fti-loadtest")
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument("--redis-benchmark", default="redis-benchmark")
    p.add_argument("--baseline-workers", type=int, default=2)
    p.add_argument("--servers", default=",".join(base.SERVERS))
    p.add_argument("--concurrency", type=int, default=32, help="the baseline's saturation connections")
    p.add_argument("--moderate", type=int, default=0, help="the unloaded rate (default: a quarter of saturation)")
    p.add_argument("--factor", type=float, default=2.0, help="offered load in overload, x the saturated rate")
    p.add_argument("--overload-duration", default="20s")
    p.add_argument("--recovery-pause", type=float, default=1.0)
    p.add_argument("--duration", default="10s", help="saturation and unloaded phases")
    p.add_argument("--warmup", default="2s")
    p.add_argument("--keys", default="uniform")
    p.add_argument("--entities", type=Path, default=base.DEFAULT_ENTITIES)
    p.add_argument("--server-cpus", default="0",
                   help="CPUs of the server (taskset list; '' for none): on a 2-core machine the "
                        "load tool can only offer twice a server's saturated rate from a core of its own")
    p.add_argument("--client-cpus", default="1", help="CPUs of the load tool and Redis")
    p.add_argument("--client-threads", type=int, default=1, help="fti-loadtest --threads")
    p.add_argument("--client-connections", type=int, default=64,
                   help="fti-loadtest --connections: at 2 x S a request waits in the tool's pool when "
                        "every connection is busy, where no admission control can see it")
    p.add_argument("--server-cpu-quota", type=float, default=0.0,
                   help="limit each server to this share of a core with a CFS quota (cgroup v1, root), "
                        "so that the load tool can offer twice its saturated rate from one core")
    p.add_argument("--out", type=Path, default=HERE / "overload.md")
    p.add_argument("--work-dir", type=Path, default=HERE / "out-overload")
    args = p.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.server_cpus, args.client_cpus = args.server_cpus or None, args.client_cpus or None
    # Refusals and timeouts are answers too: a request the server refuses must not hold a
    # client slot for long, so the client's own timeout is the server's deadline.
    args.loadtest_extra = ["--threads", str(args.client_threads), "--timeout", "2s",
                           "--connections", str(args.client_connections)]
    args.plots, args.skip_load, args.rates = False, False, []
    args.fti_serve, args.loadtest = args.fti_serve.resolve(), args.loadtest.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    procs = base.Processes(args.work_dir)
    try:
        base.preflight(args)
        results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   "machine": base.machine(), "args": {k: str(v) for k, v in vars(args).items()},
                   "servers": {}}
        redis_url = f"redis://127.0.0.1:{base.start_redis(args, procs)}"
        base.materialize(args, redis_url)
        for name in args.servers:
            results["servers"][name] = measure_server(args, procs, name, redis_url)
            if name == "fti-serve":
                results["servers"][name]["checks"] = checks(results["servers"][name])
        markdown = render(results)
        args.out.write_text(markdown)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print()
        print(markdown)
        print(f"wrote {base.rel(args.out)} and {base.rel(args.out.with_suffix('.json'))}")
        return 0
    except base.RunError as e:
        print(f"overload: {e}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
