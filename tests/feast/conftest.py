"""Fixtures of the Feast end-to-end test: a redis-server on a free loopback port, a Feast
repository (tests/feast/repo + generated parquet files) applied and materialized into it
with the real `feast` CLI, an fti-serve registry whose models read Feast's layout, and
fti-serve itself (FTI_SERVE_BIN, default target/debug/fti-serve). Every process started
here is stopped by the fixture's finalizer."""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

import feast_e2e as e2e

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BINARY = Path(os.environ.get("FTI_SERVE_BIN", REPO / "target" / "debug" / "fti-serve"))
FEAST = Path(sys.executable).parent / "feast"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, limit=4000):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory):
    import redis

    work = tmp_path_factory.mktemp("redis")
    port = free_port()
    log = work / "redis.log"
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work),
         "--save", "", "--appendonly", "no", "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.time() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{tail(log)}")
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        stop(proc)


def run_feast(args, cwd):
    """Runs the feast CLI; on failure the assertion shows the end of its output."""
    r = subprocess.run([str(FEAST), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"feast {' '.join(args)} failed ({r.returncode}):\n{(r.stdout + r.stderr)[-4000:]}"
    return r


@pytest.fixture(scope="session")
def feast_repo(tmp_path_factory, redis_port):
    """The Feast repository, applied and materialized (CLI). Yields (path, now, store)."""
    from feast import FeatureStore

    repo = tmp_path_factory.mktemp("feast") / "repo"
    shutil.copytree(HERE / "repo", repo, ignore=shutil.ignore_patterns("__pycache__", "data", "*.yaml"))
    (repo / "data").mkdir()
    now = e2e.now_utc()
    for view, df in e2e.dataframes(now).items():
        df.to_parquet(repo / "data" / f"{view}.parquet", index=False)
    (repo / "feature_store.yaml").write_text(
        f"project: {e2e.PROJECT}\n"
        f"registry: {repo / 'data' / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n  type: file\n"
        "online_store:\n  type: redis\n"
        f"  connection_string: \"127.0.0.1:{redis_port}\"\n"
        "entity_key_serialization_version: 3\n"
    )
    run_feast(["apply"], repo)
    fmt = "%Y-%m-%dT%H:%M:%S"
    start, end = now - timedelta(days=30), now + timedelta(minutes=1)
    run_feast(["materialize", start.strftime(fmt), end.strftime(fmt)], repo)
    store = FeatureStore(repo_path=str(repo))
    yield repo, now, store


@pytest.fixture(scope="session")
def redis_client(redis_port):
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_port)
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """models/<name>/1/{manifest.toml, model.onnx} and state.toml (production = 1) for the
    checked model and the negative control."""
    root = tmp_path_factory.mktemp("registry")
    onnx = (HERE / "model.onnx").read_bytes()
    sha = hashlib.sha256(onnx).hexdigest()
    for name, overrides in [(e2e.MODEL, None), (e2e.CONTROL_MODEL, e2e.CONTROL_OVERRIDES)]:
        version = root / name / "1"
        version.mkdir(parents=True)
        (version / "model.onnx").write_bytes(onnx)
        (version / "manifest.toml").write_text(e2e.manifest(name, sha, overrides))
        (root / name / "state.toml").write_text("[aliases]\nproduction = 1\n")
    return root


@pytest.fixture(scope="session")
def server(tmp_path_factory, feast_repo, redis_port, registry):
    """fti-serve over the Redis that Feast wrote. Yields its HTTP base URL."""
    assert BINARY.is_file(), f"no fti-serve binary at {BINARY} (build it, or set FTI_SERVE_BIN)"
    work = tmp_path_factory.mktemp("fti")
    config = work / "config.toml"
    config.write_text(
        "[registry]\n"
        f"path = {json.dumps(str(registry))}\n"
        f"models = {json.dumps([e2e.MODEL, e2e.CONTROL_MODEL])}\n"
        "[store]\n"
        'kind = "redis"\n'
        'on_error = "fail"\n'
        "[store.redis]\n"
        f'url = "redis://127.0.0.1:{redis_port}"\n'
        "timeout_ms = 2000\n"
        "[cache]\n"
        "default_ttl_ms = 0\n"
        "[inference]\n"
        'backend = "tract"\n'
        "[log]\n"
        'level = "warn"\n'
    )
    http, grpc = free_port(), free_port()
    log = work / "fti-serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BINARY), "serve", "--config", str(config),
             "--http-addr", f"127.0.0.1:{http}", "--grpc-addr", f"127.0.0.1:{grpc}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"fti-serve did not become ready (exit {proc.poll()}):\n{tail(log)}")
            time.sleep(0.1)
        yield base
    finally:
        stop(proc)
        # The server's log, bounded, in the report of a failing test.
        print(f"--- fti-serve log (end) ---\n{tail(log, 3000)}")
