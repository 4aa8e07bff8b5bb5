"""fti-serve reading Feast's Redis online store, against Feast's own feature server.

    bash loadtest/compare/run.sh --feast [--fti-serve target/release/fti-serve]
                                         [--loadtest target/release/fti-loadtest]

run.sh runs this with the Python of .venv-feast (Feast 0.67.0, tests/feast/requirements.txt).
(This file is named feast.py and so shadows the `feast` package in its own process: it
never imports Feast, only runs its CLI.)
One run, one machine, same set-up as run.py where it can be (base = run.py):

1. a throwaway redis-server (base.start_redis);
2. a Feast repository in --work-dir (project `fraud`, entity `card`, join key `cc_num`
   INT64, views `card_profile` and `card_activity`, ttl 1 day) whose sources are the
   example's feature files with an `event_timestamp` an hour old; `feast apply` and
   `feast materialize` (the CLI) write them into that Redis in Feast's layout;
3. the same files natively with `fti-serve materialize` (keys `fti:<group>:<cc_num>`);
4. a copy of models/ in which fraud version 3 is version 2 with its two groups read from
   Feast's layout (`card_profile_feast`, `card_activity_feast`; a group name has one layout
   across the versions of a registry); before any load, versions 2 and 3 must answer the
   30 golden requests identically (and as golden.jsonl says), and what feast serve returns
   for every card is compared with what fti-serve reads (reported, not required);
5. fti-serve (release binary, cache off) and `feast serve` (2 gunicorn/uvicorn workers),
   both on --server-cpus; Redis and the load tool on --client-cpus;
6. fti-loadtest phases:
   (a) fti-serve saturated (closed loop), v2 native and v3 Feast alternated twice
       -> the Feast/native throughput ratio (target >= 0.90);
   (b) feast serve saturated (closed loop, 32 connections) beside fti-serve v3's figure
       from (a) -> the throughput ratio (target >= 20x) and CPU s per 1,000 requests;
   (c) one open-loop rate both sustain (--rate-share of feast serve's saturated rate)
       -> p50 / p99 / p99.9 and the p99 ratio (target: fti-serve's p99 >= 10x lower).
   feast serve only fetches features (POST /get-online-features, the 12 features of one
   card); fti-serve fetches the same features, computes 16 on-demand features, runs the
   model and answers (POST /v1/models/fraud/versions/3/predict).
7. writes --out (loadtest/compare/feast.md) and feast.json beside it, prints the table.

Every process started here is stopped in `finally` (and on SIGTERM/SIGINT); every wait is
bounded. Logs, raw load summaries and the Feast repository go to --work-dir.
"""

import argparse
import datetime
import http.client
import importlib.metadata
import json
import math
import os
import re
import shlex
import shutil
import signal
import sys
import time
import tomllib
from pathlib import Path

import run as base
from fmt import fmt_err, fmt_ms, fmt_rps, mean

HERE = base.HERE
REPO = base.REPO
FEAST_BIN = Path(sys.executable).parent / "feast"
PROJECT = "fraud"
VIEWS = {
    "card_profile": [("home_lat", "Float64"), ("home_lon", "Float64"), ("card_created_ts", "Float64"),
                     ("credit_limit", "Float64")],
    "card_activity": [("txn_count_1h", "Int64"), ("txn_count_24h", "Int64"), ("amount_sum_24h", "Float64"),
                      ("amount_avg_30d", "Float64"), ("amount_std_30d", "Float64"), ("last_txn_ts", "Float64"),
                      ("last_lat", "Float64"), ("last_lon", "Float64")],
}
FEAST_GROUP = {view: f"{view}_feast" for view in VIEWS}  # Feast view -> the fti-serve group (version 3) that reads it
FEATURE_REFS = [f"{view}:{f}" for view, features in VIEWS.items() for f, _ in features]
TTL_MS = 86_400_000
FEAST_READY_TIMEOUT_S = 120.0
FEAST_CLI_TIMEOUT_S = 300.0
TARGETS = {"feast_over_native": 0.90, "fti_over_feast_throughput": 20.0, "feast_over_fti_p99": 10.0}

FEATURES_PY = '''"""Feast repository of loadtest/compare/feast.py (generated): the example's card features."""
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

DATA = Path(__file__).resolve().parent / "data"

card = Entity(name="card", join_keys=["cc_num"], value_type=ValueType.INT64)


def view(name, schema):
    source = FileSource(name=name, path=str(DATA / f"{name}.parquet"), timestamp_field="event_timestamp")
    return FeatureView(name=name, entities=[card], ttl=timedelta(days=1),
                       schema=[Field(name=f, dtype=t) for f, t in schema], source=source, online=True)


'''


class Timer:
    def __init__(self, into: dict, name: str):
        self.into, self.name = into, name

    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.into[self.name] = round(time.monotonic() - self.start, 2)


# ----------------------------------------------------------------------------- load tool

def loadtest_command(args, url: str, phase: dict, summary: Path, plot: Path | None) -> list[str]:
    """fti-loadtest's command line for one phase of this benchmark. base.run_phase calls
    base.loadtest_command; main() points it here, because these phases differ in target,
    corpus and version, which the phase dict carries."""
    cmd = [str(args.loadtest), "--url", url, "--target", phase["target"], "--corpus", str(phase["corpus"]),
           "--entities", str(args.entities), "--keys", args.keys]
    if phase["target"] == "post":
        cmd += ["--path", "/get-online-features", "--entity-key", "cc_num"]
    else:
        cmd += ["--model", "fraud", "--version", str(phase["version"])]
    if phase["mode"] == "concurrency":
        cmd += ["--concurrency", str(phase["value"])]
    else:
        cmd += ["--rate", str(phase["value"])]
    cmd += ["--duration", phase.get("duration", args.duration), "--warmup", args.warmup,
            "--summary", str(summary), "--threads", str(args.client_threads), "--timeout", args.client_timeout,
            "--quiet"]
    return base.pinned(args.client_cpus, cmd)


def run_phase(args, procs, server, name: str, port: int, phase: dict, metrics_port=None) -> dict:
    saved = args.duration
    args.duration = phase.get("duration", saved)  # base.run_phase's CPU window uses args.duration
    try:
        return base.run_phase(args, procs, server, name, port, phase, metrics_port=metrics_port)
    finally:
        args.duration = saved


# ----------------------------------------------------------------------------- Feast side

def feast_env() -> dict:
    return dict(os.environ, FEAST_USAGE="False", PYTHONUNBUFFERED="1")


def feast_cli(args, cli_args: list[str], what: str) -> str:
    return base.run_checked([str(FEAST_BIN), *cli_args], what, timeout=FEAST_CLI_TIMEOUT_S,
                            cwd=args.feast_repo, env=feast_env())


def write_feast_repo(args, redis_port: int, now: datetime.datetime) -> dict:
    """The repository: features.py, feature_store.yaml and data/<view>.parquet (the
    example's files, cc_num as int64, ints as nullable Int64, floats as float64, and an
    `event_timestamp` an hour old). Returns what each source holds."""
    import pandas as pd

    repo = args.feast_repo
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "data").mkdir(parents=True)
    sources = {}
    event_time = pd.Timestamp(now - datetime.timedelta(hours=1))
    for view, features in VIEWS.items():
        df = pd.read_parquet(base.FEATURE_FILES[view])
        expected = ["cc_num"] + [f for f, _ in features]
        if list(df.columns) != expected:
            raise base.RunError(f"{base.rel(base.FEATURE_FILES[view])}: columns {list(df.columns)}, "
                                f"expected {expected}")
        before = {c: str(t) for c, t in df.dtypes.items()}
        df["cc_num"] = pd.to_numeric(df["cc_num"], errors="raise").astype("int64")
        for f, feast_type in features:
            # Int columns as nullable Int64 (a null stays a null); floats as float64 (NaN = null).
            df[f] = pd.to_numeric(df[f]).astype("Int64" if feast_type == "Int64" else "float64")
        df["event_timestamp"] = event_time
        df.to_parquet(repo / "data" / f"{view}.parquet", index=False)
        sources[view] = {"rows": len(df), "dtypes_before": before,
                         "dtypes_after": {c: str(t) for c, t in df.dtypes.items()},
                         "nulls": {c: int(n) for c, n in df.isna().sum().items() if n}}
    views = "".join(
        f'{view} = view("{view}", [' + ", ".join(f'("{f}", {t})' for f, t in features) + "])\n"
        for view, features in VIEWS.items())
    (repo / "features.py").write_text(FEATURES_PY + views)
    (repo / "feature_store.yaml").write_text(
        f"project: {PROJECT}\n"
        f"registry: {repo / 'data' / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n  type: file\n"
        "online_store:\n  type: redis\n"
        f'  connection_string: "127.0.0.1:{redis_port}"\n'
        "entity_key_serialization_version: 3\n")
    return sources


def feast_materialize(args, now: datetime.datetime, timings: dict) -> list[str]:
    fmt = "%Y-%m-%dT%H:%M:%S"
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(minutes=1)
    commands = []
    for step, cli in (("feast_apply", ["apply"]),
                      ("feast_materialize", ["materialize", start.strftime(fmt), end.strftime(fmt)])):
        with Timer(timings, step):
            feast_cli(args, cli, f"feast {cli[0]}")
        commands.append(f"(cd {base.rel(args.feast_repo)} && feast {shlex.join(cli)})")
    return commands


def feast_serve_command(args, port: int) -> list[str]:
    cmd = [str(FEAST_BIN), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(args.feast_workers), "--no-access-log",
           "--max-requests", str(args.feast_max_requests)]
    return base.pinned(args.server_cpus, cmd)


def http_json(port: int, method: str, path: str, body=None, timeout: float = 10.0) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        return 0, f"request failed: {e!r}"
    finally:
        conn.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def feast_body(cc_nums: list[int]) -> dict:
    return {"features": FEATURE_REFS, "entities": {"cc_num": cc_nums}}


def feast_values(port: int, cc_nums: list[int]) -> dict[int, dict]:
    """cc_num -> {feature: value} as feast serve answers (one request for them all)."""
    status, answer = http_json(port, "POST", "/get-online-features", feast_body(cc_nums), timeout=60.0)
    if status != 200 or not isinstance(answer, dict):
        raise base.RunError(f"feast serve /get-online-features: HTTP {status}: {str(answer)[:500]}")
    names = answer["metadata"]["feature_names"]
    out = {c: {} for c in cc_nums}
    for name, column in zip(names, answer["results"]):
        for c, value in zip(cc_nums, column["values"]):
            out[c][name] = value
    return out


# ----------------------------------------------------------------------------- fti-serve side

def feast_manifest(v2_text: str) -> str:
    """Version 3's manifest: version 2's, with each group renamed `<group>_feast`, read from
    the Feast view of the group's old name (project `fraud`, cc_num int64), and
    max_age_ms = the view's ttl (1 day). Checked against version 2 with tomllib."""
    lines, out = v2_text.splitlines(), []
    header, pending = None, None
    for line in lines:
        if line.startswith("["):
            if pending:  # the group's table ends here: its Feast sub-table goes last
                out += feast_table(pending) + [""]
                pending = None
            header = line.strip()
        m = re.fullmatch(r'name = "(\w+)"', line)
        if header == "[[feature_view.groups]]" and m and m.group(1) in VIEWS:
            out += [f'name = "{FEAST_GROUP[m.group(1)]}"', f"max_age_ms = {TTL_MS}"]
            pending = m.group(1)
            continue
        if header == "[model]" and line.strip() == "version = 2":
            line = "version = 3"
        out.append(line)
    if pending:
        out += [""] + feast_table(pending)
    text = "\n".join(out) + "\n"
    text = re.sub(r"\n\n\n+", "\n\n", text)
    check_feast_manifest(v2_text, text)
    return text


def feast_table(view: str) -> list[str]:
    return ["[feature_view.groups.feast]", f'project = "{PROJECT}"', f'view = "{view}"',
            'key_types = { cc_num = "int64" }']


def check_feast_manifest(v2_text: str, v3_text: str) -> None:
    v2, v3 = tomllib.loads(v2_text), tomllib.loads(v3_text)
    want = tomllib.loads(v2_text)
    want["model"]["version"] = 3
    for group in want["feature_view"]["groups"]:
        view = group["name"]
        group["name"] = FEAST_GROUP[view]
        group["max_age_ms"] = TTL_MS
        group["feast"] = {"project": PROJECT, "view": view, "key_types": {"cc_num": "int64"}}
    if json.dumps(v3, sort_keys=True, default=str) != json.dumps(want, sort_keys=True, default=str):
        raise base.RunError("version 3's manifest is not version 2's with Feast groups (feast_manifest)")
    if [g["name"] for g in v2["feature_view"]["groups"]] != list(VIEWS):
        raise base.RunError(f"models/fraud/2: groups {[g['name'] for g in v2['feature_view']['groups']]}, "
                            f"expected {list(VIEWS)}")


def write_registry(args) -> Path:
    registry = args.work_dir / "models"
    if registry.exists():
        shutil.rmtree(registry)
    shutil.copytree(REPO / "models", registry)
    v3 = registry / "fraud" / "3"
    shutil.copytree(registry / "fraud" / "2", v3)
    (v3 / "manifest.toml").write_text(feast_manifest((registry / "fraud" / "2" / "manifest.toml").read_text()))
    return registry


def write_fti_config(args, registry: Path) -> Path:
    """loadtest/compare/fti-serve.toml with the registry copy."""
    text = (HERE / "fti-serve.toml").read_text()
    text, n = re.subn(r'(?m)^path = "\.\./\.\./models"$', f"path = {json.dumps(str(registry))}", text)
    if n != 1:
        raise base.RunError("loadtest/compare/fti-serve.toml: no `path = \"../../models\"` line to replace")
    if "default_ttl_ms = 0" not in text:
        raise base.RunError("loadtest/compare/fti-serve.toml: the feature cache is not off")
    path = args.work_dir / "fti-serve.toml"
    path.write_text(text)
    return path


def fti_serve_command(args, config: Path, port: int, grpc_port: int, redis_url: str) -> list[str]:
    cmd = [str(args.fti_serve), "serve", "--config", str(config), "--redis-url", redis_url,
           "--http-addr", f"127.0.0.1:{port}", "--grpc-addr", f"127.0.0.1:{grpc_port}"]
    return base.pinned(args.server_cpus, cmd)


def predict(port: int, version: int, request: dict) -> tuple[int, object]:
    return http_json(port, "POST", f"/v1/models/fraud/versions/{version}/predict", request)


def same_number(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def check_versions(port: int) -> dict:
    """Versions 2 and 3 on the 30 golden requests: identical outputs and missing_features,
    and both as golden.jsonl says (probability within 1e-5, label exact)."""
    rows = [json.loads(line) for line in base.GOLDEN.read_text().splitlines() if line.strip()]
    problems = []
    for i, golden in enumerate(rows, start=1):
        answers = {}
        for version in (2, 3):
            status, answer = predict(port, version, golden["request"])
            if status != 200 or not isinstance(answer, dict):
                problems.append(f"row {i} v{version}: HTTP {status}: {str(answer)[:300]}")
                continue
            answers[version] = answer
        if len(answers) < 2:
            continue
        a2, a3 = answers[2], answers[3]
        if a2.get("outputs") != a3.get("outputs"):
            problems.append(f"row {i}: outputs v2 {a2.get('outputs')} != v3 {a3.get('outputs')}")
        if a2.get("missing_features") != a3.get("missing_features"):
            problems.append(f"row {i}: missing_features v2 {a2.get('missing_features')} "
                            f"!= v3 {a3.get('missing_features')}")
        want = golden["outputs"]
        got = a3.get("outputs", {})
        if not isinstance(got.get("probability"), (int, float)) or \
                abs(got["probability"] - want["probability"]) > 1e-5 or got.get("label") != want["label"]:
            problems.append(f"row {i}: v3 outputs {got}, golden.jsonl {want}")
    if problems:
        raise base.RunError("versions 2 and 3 disagree; not measuring:\n  " + "\n  ".join(problems[:20]))
    return {"rows": len(rows), "result": f"all {len(rows)} golden rows: v2 and v3 outputs and "
                                         "missing_features identical, and as golden.jsonl says"}


def fti_group_values(port: int, version: int, cc_num: int) -> dict:
    """feature -> value of what each group read for one card (return_features), and the
    status of each group."""
    request = {"entities": {"cc_num": str(cc_num)},
               "features": {"amount": 10.0, "lat": 59.3, "lon": 18.0, "ts": 1764000000,
                            "merchant_category": "online"},
               "return_features": True}
    status, answer = predict(port, version, request)
    if status != 200 or not isinstance(answer, dict):
        raise base.RunError(f"fti-serve v{version} cc_num {cc_num}: HTTP {status}: {str(answer)[:300]}")
    groups = answer.get("groups")
    if groups is None and answer.get("rows"):
        groups = answer["rows"][0].get("groups")
    if not isinstance(groups, dict):
        raise base.RunError(f"fti-serve v{version}: no `groups` in a return_features answer: {str(answer)[:300]}")
    values, statuses = {}, {}
    for name, group in groups.items():
        statuses[name] = group.get("status")
        values.update(group.get("values") or {})
    return {"values": values, "status": statuses}


def compare_with_feast(fti_port: int, feast_port: int, cc_nums: list[int]) -> dict:
    """What feast serve returns for each card against what fti-serve reads from Feast's
    layout (v3) and from its own (v2). Nulls (Feast's None, our null) are equal; numbers
    exactly."""
    feast = feast_values(feast_port, cc_nums)
    mismatches = {"feast_vs_v3": [], "v2_vs_v3": []}
    not_found = []
    for c in cc_nums:
        v3, v2 = fti_group_values(fti_port, 3, c), fti_group_values(fti_port, 2, c)
        if any(s != "found" for s in v3["status"].values()):
            not_found.append({"cc_num": c, "v3": v3["status"], "v2": v2["status"]})
        for view, features in VIEWS.items():
            for f, _ in features:
                ours, theirs, native = v3["values"].get(f), feast[c].get(f), v2["values"].get(f)
                if not same_number(ours, theirs):
                    mismatches["feast_vs_v3"].append({"cc_num": c, "feature": f, "feast": theirs, "v3": ours})
                if not same_number(ours, native):
                    mismatches["v2_vs_v3"].append({"cc_num": c, "feature": f, "v2": native, "v3": ours})
    return {"cards": len(cc_nums), "features_per_card": len(FEATURE_REFS),
            "feast_vs_v3_mismatches": len(mismatches["feast_vs_v3"]),
            "v2_vs_v3_mismatches": len(mismatches["v2_vs_v3"]),
            "examples": {k: v[:10] for k, v in mismatches.items()},
            "groups_not_found": not_found[:20], "groups_not_found_count": len(not_found)}


def all_cc_nums() -> list[int]:
    import csv

    with base.DEFAULT_ENTITIES.open() as f:
        return [int(row["cc_num"]) for row in csv.DictReader(f)]


# ----------------------------------------------------------------------------- report

def summary(result: dict) -> dict:
    s = result.get("summary") or {}
    lat = s.get("latency_us", {})
    requests = s.get("requests") or 0
    return {"throughput_rps": s.get("throughput_rps"), "requests": s.get("requests"), "ok": s.get("ok"),
            "error_rate": s.get("error_rate"), "errors": s.get("errors", {}),
            "p50_us": lat.get("p50"), "p99_us": lat.get("p99"), "p99_9_us": lat.get("p99_9"),
            "max_us": lat.get("max"), "client_lag_p99_us": (s.get("client_lag_us") or {}).get("p99"),
            "cpu_s": result.get("cpu_s"),
            "cpu_s_per_1k": round(result["cpu_s"] / requests * 1000, 4) if requests and "cpu_s" in result else None,
            "features_stage_us": (result.get("server_stages_mean_us") or {}).get("features"),
            "total_stage_us": (result.get("server_stages_mean_us") or {}).get("total"),
            "steal_s": result.get("steal_s"), "error": result.get("error")}


def summaries(results: dict) -> dict:
    """phase name -> summary(); a phase that did not run reads as one with no numbers."""
    p = {k: summary(v) for k, v in results["phases"].items()}
    for k in ("b-feast-saturated", "c-feast-rate", "c-fti-v3-rate"):
        p.setdefault(k, summary({}))
    return p




def verdicts(results: dict) -> dict:
    p = summaries(results)
    native = mean([p[k]["throughput_rps"] for k in p if k.startswith("a-v2-")])
    feast_layout = mean([p[k]["throughput_rps"] for k in p if k.startswith("a-v3-")])
    feast_sat = p["b-feast-saturated"]["throughput_rps"]
    rate_fti, rate_feast = p["c-fti-v3-rate"], p["c-feast-rate"]
    out = {}
    r = feast_layout / native if native and feast_layout else None
    out["a"] = {"what": "fti-serve v3 (Feast layout) / v2 (native) saturated throughput, mean of 2 runs each",
                "value": r, "target": f">= {TARGETS['feast_over_native']:.2f}",
                "met": r is not None and r >= TARGETS["feast_over_native"]}
    r = feast_layout / feast_sat if feast_layout and feast_sat else None
    out["b"] = {"what": "fti-serve v3 saturated throughput / feast serve saturated throughput",
                "value": r, "target": f">= {TARGETS['fti_over_feast_throughput']:.0f}x",
                "met": r is not None and r >= TARGETS["fti_over_feast_throughput"]}
    clean = rate_fti["error_rate"] == 0 and rate_feast["error_rate"] == 0
    r = rate_feast["p99_us"] / rate_fti["p99_us"] if rate_fti["p99_us"] and rate_feast["p99_us"] else None
    out["c"] = {"what": f"p99 at {results.get('rate_rps')} req/s: feast serve / fti-serve v3",
                "value": r, "target": f">= {TARGETS['feast_over_fti_p99']:.0f}x (and no errors)",
                "met": r is not None and r >= TARGETS["feast_over_fti_p99"] and clean}
    return out




def fmt_ratio(r):
    return "—" if r is None else f"{r:.1f}×" if r >= 10 else f"{r:.2f}×" if r >= 1.5 else f"{r:.3f}"


def render(results: dict) -> str:
    a = results["args"]
    p = summaries(results)
    runs = lambda prefix: [p[k] for k in p if k.startswith(prefix)]  # noqa: E731
    v2, v3, fs = runs("a-v2-"), runs("a-v3-"), p["b-feast-saturated"]
    rate = results.get("rate_rps") or 0
    rf, rs = p["c-fti-v3-rate"], p["c-feast-rate"]
    m = results["machine"]
    lines = [
        "# fti-serve reading Feast's Redis online store, against `feast serve`",
        "",
        f"Run {results['date']} on {m['nproc']} CPUs ({m['cpu']}), {m['system']}; "
        f"`bash loadtest/compare/run.sh --feast` ({results['wall_s']:.0f} s in all). Feast "
        f"{results['feast_version']}, Redis {m.get('redis', '?')} on loopback, fti-serve's feature cache off. "
        f"Pinning: both servers on CPU {a['server_cpus']} (one at a time under load), Redis and "
        f"fti-loadtest on CPU {a['client_cpus']}, so that each server has the same single core "
        "and the load tool does not take it.",
        "",
        "What one request does:",
        "",
        "- **feast serve** (`POST /get-online-features`, 12 features of one card, `cc_num` drawn "
        "uniformly from the 500 cards): **features only** — one pipelined Redis round trip "
        "(2 HMGETs), no model.",
        "- **fti-serve** (`POST /v1/models/fraud/versions/{2,3}/predict`, the golden requests "
        "with `cc_num` drawn the same way): the same 12 features in one pipelined round trip, "
        "**plus** 16 on-demand features, the model (LightGBM, 50 trees) and the answer. "
        "v2 reads fti-serve's native layout (`fti:<group>:<cc_num>`, written by `fti-serve "
        "materialize`), v3 reads what `feast materialize` wrote (Feast groups, "
        "`max_age_ms` = the views' ttl of 1 day).",
        "",
        "| | fti-serve v2 (native layout) | fti-serve v3 (Feast layout) | feast serve (features only) |",
        "|---|---:|---:|---:|",
    ]

    def joined(items, f, sep=" / "):
        return sep.join(f(x) for x in items) if items else "—"

    conn_fti, conn_feast = a["fti_concurrency"], a["feast_concurrency"]
    lines += [
        f"| (a, b) saturated, closed loop (req/s; each run) "
        f"| {fmt_rps(mean([x['throughput_rps'] for x in v2]))} ({joined(v2, lambda x: fmt_rps(x['throughput_rps']))}) "
        f"| {fmt_rps(mean([x['throughput_rps'] for x in v3]))} ({joined(v3, lambda x: fmt_rps(x['throughput_rps']))}) "
        f"| {fmt_rps(fs['throughput_rps'])} |",
        f"| connections | {conn_fti} | {conn_fti} | {conn_feast} |",
        f"| saturated p50 / p99 (ms; each run) "
        f"| {joined(v2, lambda x: fmt_ms(x['p50_us']) + ' / ' + fmt_ms(x['p99_us']), '; ')} "
        f"| {joined(v3, lambda x: fmt_ms(x['p50_us']) + ' / ' + fmt_ms(x['p99_us']), '; ')} "
        f"| {fmt_ms(fs['p50_us'])} / {fmt_ms(fs['p99_us'])} |",
        f"| saturated: server CPU s per 1,000 requests | {fmt_num(mean([x['cpu_s_per_1k'] for x in v2]), 3)} "
        f"| {fmt_num(mean([x['cpu_s_per_1k'] for x in v3]), 3)} | {fmt_num(fs['cpu_s_per_1k'], 3)} |",
        f"| saturated: fti-serve's features stage, mean µs | {fmt_num(mean([x['features_stage_us'] for x in v2]), 0)} "
        f"| {fmt_num(mean([x['features_stage_us'] for x in v3]), 0)} | — |",
        f"| saturated: errors | {joined(v2, fmt_err)} | {joined(v3, fmt_err)} | {fmt_err(fs)} |",
        f"| (c) open loop at {rate:,} req/s, {a['rate_duration']}: p50 / p99 / p99.9 (ms) | — "
        f"| {fmt_ms(rf['p50_us'])} / {fmt_ms(rf['p99_us'])} / {fmt_ms(rf['p99_9_us'])} "
        f"| {fmt_ms(rs['p50_us'])} / {fmt_ms(rs['p99_us'])} / {fmt_ms(rs['p99_9_us'])} |",
        f"| (c) achieved req/s, errors | — | {fmt_rps(rf['throughput_rps'])}, {fmt_err(rf)} "
        f"| {fmt_rps(rs['throughput_rps'])}, {fmt_err(rs)} |",
        f"| (c) server CPU s per 1,000 requests | — | {fmt_num(rf['cpu_s_per_1k'], 3)} | {fmt_num(rs['cpu_s_per_1k'], 3)} |",
        f"| idle RSS, whole process tree (MiB) | {results['fti_serve']['idle_rss_mib']} (one process for both) "
        f"| (the same process) | {results['feast_serve']['idle_rss_mib']} |",
        "",
        "Targets:",
        "",
    ]
    for key, v in results["verdicts"].items():
        lines.append(f"- ({key}) {v['what']}: **{fmt_ratio(v['value'])}**, target {v['target']}: "
                     f"**{'met' if v['met'] else 'NOT met'}**")
    lines += [
        "",
        f"Checks before any load: {results['golden']['result']}. {cross_check_text(results['cross_check'])}",
        "",
        "Order: (a) v2, v3, v2, v3, then (b) feast serve, then (c) feast serve and fti-serve v3 "
        f"at the same rate ({a['rate_share']:.0%} of feast serve's saturated rate). Each phase: "
        f"{a['warmup']} warm-up, then {a['duration']} measured ((c): {a['rate_duration']}). fti-serve's "
        f"closed loop uses {conn_fti} connections: its admission limit is 16 in flight per core, "
        "more would measure its refusals. (b) compares feast serve with (a)'s v3 runs. CPU seconds: "
        "utime+stime of the server's process tree (for feast serve, the gunicorn master and its "
        "workers) over the measured window.",
        "",
        "Commands:",
        "",
        f"- Redis: `{results['commands']['redis']}`",
        f"- Feast: {', '.join(f'`{c}`' for c in results['commands']['feast'])} "
        f"(apply {results['timings_s'].get('feast_apply', '?')} s, materialize "
        f"{results['timings_s'].get('feast_materialize', '?')} s)",
        f"- native: {', '.join(f'`{c}`' for c in results['commands']['materialize'])}",
        f"- fti-serve: `{results['fti_serve']['command']}`",
        f"- feast serve: `{results['feast_serve']['command']}` (in {base.rel(a['feast_repo'])}; "
        f"`--max-requests {a['feast_max_requests']}`: "
        + ("gunicorn's worker recycling off: with Feast's default, 1000, each worker restarts "
           "every ~1,000 requests mid-run and resets the load tool's kept-alive connections)"
           if str(a['feast_max_requests']) == "0" else "Feast's worker recycling)"),
        "- load, e.g.: " + " and ".join(f"`{results['phases'][k]['command']}`"
                                       for k in ("b-feast-saturated", "a-v3-1") if k in results["phases"]),
        "",
    ]
    stolen = [f"{k} {v['steal_s']:.2f} s" for k, v in p.items() if v.get("steal_s") is not None]
    if stolen:
        lines += ["CPU time the hypervisor gave to other guests (steal, both CPUs) during each measured "
                  "window; more than a few tenths of a second would mean a noisy neighbour: "
                  + ", ".join(stolen) + ".", ""]
    failed = [f"{k}: {v['error']}" for k, v in p.items() if v.get("error")]
    if failed:
        lines += ["Phases that failed:", ""] + [f"- {f}" for f in failed] + [""]
    return "\n".join(lines)


def cross_check_text(cc: dict) -> str:
    if "error" in cc:
        return f"feast serve against fti-serve: the comparison failed: {cc['error']}"
    text = (f"feast serve against fti-serve for all {cc['cards']} cards × {cc['features_per_card']} features "
            f"(nulls equal nulls, numbers exactly): {cc['feast_vs_v3_mismatches']} values differ between "
            f"Feast's answer and what v3 reads, {cc['v2_vs_v3_mismatches']} between v2 and v3")
    if cc.get("groups_not_found_count"):
        text += f"; {cc['groups_not_found_count']} cards have a v3 group not found"
    return text + "."




def fmt_num(v, digits):
    return "—" if v is None else f"{v:,.{digits}f}"




# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fti-serve", type=Path, default=REPO / "target/release/fti-serve")
    p.add_argument("--loadtest", type=Path, default=REPO / "target/release/fti-loadtest")
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument("--feast-workers", type=int, default=2, help="feast serve --workers")
    p.add_argument("--feast-max-requests", type=int, default=0,
                   help="feast serve --max-requests (0: no worker recycling; Feast's default is 1000)")
    p.add_argument("--fti-concurrency", type=int, default=0,
                   help="fti-serve's closed-loop connections (default 16 per server CPU: its admission limit)")
    p.add_argument("--feast-concurrency", type=int, default=32)
    p.add_argument("--rate-share", type=float, default=0.6,
                   help="(c)'s open-loop rate, as a share of feast serve's saturated rate")
    p.add_argument("--duration", default="10s", help="measured time of (a) and (b)")
    p.add_argument("--rate-duration", default="20s", help="measured time of (c)")
    p.add_argument("--warmup", default="2s")
    p.add_argument("--keys", default="uniform")
    p.add_argument("--entities", type=Path, default=base.DEFAULT_ENTITIES)
    p.add_argument("--server-cpus", default="0", help="CPUs of both servers (taskset list; '' for none)")
    p.add_argument("--client-cpus", default="1", help="CPUs of the load tool and Redis ('' for none)")
    p.add_argument("--client-threads", type=int, default=1, help="fti-loadtest --threads")
    p.add_argument("--client-timeout", default="2s", help="fti-loadtest --timeout")
    p.add_argument("--feast-only", action="store_true",
                   help="the Feast side only: repository, apply, materialize, feast serve, one request")
    p.add_argument("--out", type=Path, default=HERE / "feast.md")
    p.add_argument("--work-dir", type=Path, default=HERE / "out-feast")
    args = p.parse_args(argv)
    args.server_cpus, args.client_cpus = args.server_cpus or None, args.client_cpus or None
    args.fti_serve, args.loadtest = args.fti_serve.resolve(), args.loadtest.resolve()
    args.work_dir = args.work_dir.resolve()
    args.feast_repo = args.work_dir / "feast_repo"
    if not args.fti_concurrency:
        args.fti_concurrency = 16 * count_cpus(args.server_cpus)
    args.plots = False
    return args


def count_cpus(cpus):
    if not cpus:
        return os.cpu_count() or 1
    n = 0
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi) - int(lo) + 1 if hi else 1
    return n


def preflight(args) -> None:
    problems = []
    if not FEAST_BIN.exists():
        problems.append(f"{FEAST_BIN}: no feast CLI beside this Python (run through loadtest/compare/run.sh --feast)")
    if shutil.which(args.redis_server) is None:
        problems.append(f"{args.redis_server}: not found (apt-get install redis-server)")
    if not args.feast_only:
        for flag, path in (("--fti-serve", args.fti_serve), ("--loadtest", args.loadtest)):
            if not os.access(path, os.X_OK):
                problems.append(f"{flag} {path}: not an executable (cargo build --release)")
    if not args.entities.is_file():
        problems.append(f"--entities {args.entities}: no such file")
    if problems:
        raise base.RunError("cannot start:\n  " + "\n  ".join(problems))


def start_feast_serve(args, procs, results) -> tuple:
    port = base.free_port()
    cmd = feast_serve_command(args, port)
    results["feast_serve"] = {"command": base.show(cmd), "port": port}
    print(f"== feast serve: {results['feast_serve']['command']}", flush=True)
    started = time.monotonic()
    proc = procs.start("feast-serve", cmd, cwd=args.feast_repo, env=feast_env())
    base.wait_until(lambda: base.http_status(port, "/health") == 200, "feast serve /health",
                    FEAST_READY_TIMEOUT_S, proc, args.work_dir / "feast-serve.log")
    results["timings_s"]["feast_serve_ready"] = round(time.monotonic() - started, 2)
    # one answer (and every worker's first answer) before anything is measured
    with Timer(results["timings_s"], "feast_serve_first_answer"):
        for _ in range(4):
            status, answer = http_json(port, "POST", "/get-online-features",
                                       feast_body([int(base.FLOOR_ENTITY)]), timeout=60.0)
            if status != 200:
                raise base.RunError(f"feast serve /get-online-features: HTTP {status}: {str(answer)[:500]}")
    results["feast_serve"]["example_answer"] = answer
    results["feast_serve"]["idle_rss_mib"] = round(base.memory_mib(proc.pid)["rss_mib"], 1)
    return proc, port


def main(argv=None) -> int:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    base.loadtest_command = loadtest_command  # see loadtest_command's docstring
    procs = base.Processes(args.work_dir)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    results: dict = {}
    try:
        preflight(args)
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        results = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "machine": base.machine(),
                   "feast_version": importlib.metadata.version("feast"),
                   "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "targets": TARGETS, "timings_s": {}, "commands": {}, "phases": {}}
        version = base.run_checked([args.redis_server, "--version"], "redis-server --version")
        results["machine"]["redis"] = next((w[2:] for w in version.split() if w.startswith("v=")), "?")

        with Timer(results["timings_s"], "redis_start"):
            redis_port = base.start_redis(args, procs)
        redis_url = f"redis://127.0.0.1:{redis_port}"
        results["commands"]["redis"] = (f"redis-server --port {redis_port} --bind 127.0.0.1 --save '' "
                                        "--appendonly no")
        print(f"== redis on {redis_port}; Feast repository in {base.rel(args.feast_repo)}", flush=True)
        with Timer(results["timings_s"], "feast_repo"):
            results["feast_sources"] = write_feast_repo(args, redis_port, now)
        results["commands"]["feast"] = feast_materialize(args, now, results["timings_s"])
        print(f"   feast apply {results['timings_s']['feast_apply']} s, "
              f"materialize {results['timings_s']['feast_materialize']} s", flush=True)

        if args.feast_only:
            proc, port = start_feast_serve(args, procs, results)
            print(json.dumps(results["timings_s"]))
            print(json.dumps(results["feast_serve"]["example_answer"])[:2000])
            print(json.dumps(feast_values(port, all_cc_nums()[:3])))
            return 0

        with Timer(results["timings_s"], "native_materialize"):
            results["commands"]["materialize"] = base.materialize(args, redis_url)
        registry = write_registry(args)
        config = write_fti_config(args, registry)
        results["registry"] = {"path": base.rel(registry),
                               "v3_manifest": (registry / "fraud/3/manifest.toml").read_text()}

        port, grpc_port = base.free_port(), base.free_port()
        cmd = fti_serve_command(args, config, port, grpc_port, redis_url)
        results["fti_serve"] = {"command": base.show(cmd), "port": port}
        print(f"== fti-serve: {results['fti_serve']['command']}", flush=True)
        started = time.monotonic()
        fti = procs.start("fti-serve", cmd, env=base.fti_env(), cwd=REPO)
        base.wait_until(lambda: base.http_status(port, "/health/ready") == 200, "fti-serve /health/ready",
                        base.READY_TIMEOUT_S, fti, args.work_dir / "fti-serve.log")
        results["timings_s"]["fti_serve_ready"] = round(time.monotonic() - started, 2)
        results["golden"] = check_versions(port)
        print(f"   {results['golden']['result']}", flush=True)
        results["fti_serve"]["idle_rss_mib"] = round(base.memory_mib(fti.pid)["rss_mib"], 1)

        feast_proc, feast_port = start_feast_serve(args, procs, results)
        with Timer(results["timings_s"], "cross_check"):
            try:  # reported, not required: a failure here does not stop the measurement
                results["cross_check"] = compare_with_feast(port, feast_port, all_cc_nums())
            except base.RunError as e:
                results["cross_check"] = {"error": str(e)}
        print(f"   cross-check: {cross_check_text(results['cross_check'])}", flush=True)

        corpus = args.work_dir / "feast-bodies.jsonl"
        corpus.write_text(json.dumps(feast_body([int(base.FLOOR_ENTITY)])) + "\n")
        fti_phase = lambda name, version, **kw: dict(  # noqa: E731
            name=name, target="http", corpus=base.GOLDEN, version=version, **kw)
        feast_phase = lambda name, **kw: dict(name=name, target="post", corpus=corpus, **kw)  # noqa: E731

        print("== (a) fti-serve saturated, v2 native and v3 Feast alternated", flush=True)
        with Timer(results["timings_s"], "load"):
            for i in (1, 2):
                for v in (2, 3):
                    phase = fti_phase(f"a-v{v}-{i}", v, mode="concurrency", value=args.fti_concurrency)
                    results["phases"][phase["name"]] = run_phase(args, procs, fti, "fti-serve", port, phase,
                                                                 metrics_port=port)
            print("== (b) feast serve saturated", flush=True)
            phase = feast_phase("b-feast-saturated", mode="concurrency", value=args.feast_concurrency)
            results["phases"][phase["name"]] = run_phase(args, procs, feast_proc, "feast-serve", feast_port, phase)
            saturated = (results["phases"][phase["name"]].get("summary") or {}).get("throughput_rps")
            if saturated:
                rate = max(10, int(round(saturated * args.rate_share / 10) * 10))
                results["rate_rps"] = rate
                print(f"== (c) open loop at {rate} req/s ({args.rate_share:.0%} of {saturated:.0f})", flush=True)
                phase = feast_phase("c-feast-rate", mode="rate", value=rate, duration=args.rate_duration)
                results["phases"][phase["name"]] = run_phase(args, procs, feast_proc, "feast-serve", feast_port,
                                                             phase)
                phase = fti_phase("c-fti-v3-rate", 3, mode="rate", value=rate, duration=args.rate_duration)
                results["phases"][phase["name"]] = run_phase(args, procs, fti, "fti-serve", port, phase,
                                                             metrics_port=port)
            else:
                print("== (c) skipped: feast serve's saturation phase served nothing", file=sys.stderr)
        results["fti_serve"]["final_memory"] = base.memory_mib(fti.pid)
        results["feast_serve"]["final_memory"] = base.memory_mib(feast_proc.pid)
        results["summaries"] = {k: summary(v) for k, v in results["phases"].items()}
        results["verdicts"] = verdicts(results)
        results["wall_s"] = round(time.monotonic() - t0, 1)
        markdown = render(results)
        args.out.write_text(markdown)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        print()
        print(markdown)
        print(f"wrote {base.rel(args.out)} and {base.rel(args.out.with_suffix('.json'))} "
              f"({results['wall_s']:.0f} s)")
        failed = any("error" in p for p in results["phases"].values())
        return 1 if failed else 0
    except base.RunError as e:
        print(f"feast: {e}", file=sys.stderr)
        if results:  # what was measured before the failure, for the post-mortem
            partial = args.work_dir / "feast-partial.json"
            partial.write_text(json.dumps(dict(results, error=str(e)), indent=2, default=str) + "\n")
            print(f"feast: what ran is in {base.rel(partial)}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
