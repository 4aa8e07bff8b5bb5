"""Fixtures of the MLflow registry-source test: a real `mlflow server` (pinned in
requirements.txt, SQLite backend store, local artifact store behind the server's artifact
proxy) on a free loopback port, versions registered with the example's
examples/fraud/register_mlflow.py, and fti-serve (FTI_SERVE_BIN, default
target/debug/fti-serve) serving from it with the embedded feature store. An MlflowServer
can also run as `mlflow server --app-name basic-auth` (the mlflow[auth] extra), its
registrations and client calls then made with its admin credentials. Every process
started here is stopped by its fixture's finalizer."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BINARY = Path(os.environ.get("FTI_SERVE_BIN", REPO / "target" / "debug" / "fti-serve"))
REGISTER = REPO / "examples" / "fraud" / "register_mlflow.py"
ADMIN_TOKEN = "mlflow-test-admin-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, limit=4000):
    try:
        return Path(path).read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def wait_for(predicate, timeout, what):
    """Polls predicate (an event, not a sleep) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def http(method, url, body=None, headers=None, timeout=10):
    """(status, parsed JSON or text) of one request; never raises on an HTTP status."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class MlflowServer:
    """`mlflow server` in its own process group, restartable on the same port and store.
    With `basic_auth=(user, password)` it runs as `--app-name basic-auth`, that user its
    admin (its user store, auth.db, and ini in the work directory)."""

    def __init__(self, work, basic_auth=None):
        self.work = Path(work)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.starts = 0
        self.basic_auth = basic_auth

    def credentials_env(self):
        """The mlflow client's environment variables for this server's credentials."""
        if not self.basic_auth:
            return {}
        user, password = self.basic_auth
        return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}

    def start(self, timeout=120):
        self.starts += 1
        log = self.work / f"server-{self.starts}.log"
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        auth_args = []
        if self.basic_auth:
            user, password = self.basic_auth
            ini = self.work / "basic_auth.ini"
            ini.write_text(f"""[mlflow]
default_permission = READ
database_uri = sqlite:///{self.work}/auth.db
admin_username = {user}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
""")
            env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_AUTH_ADMIN_PASSWORD=password,
                       MLFLOW_FLASK_SERVER_SECRET_KEY="fti-serve-mlflow-test-secret")
            auth_args = ["--app-name", "basic-auth"]
        mlflow = Path(sys.executable).parent / "mlflow"
        self.proc = subprocess.Popen(
            [str(mlflow), "server",
             "--backend-store-uri", f"sqlite:///{self.work}/db.sqlite",
             "--artifacts-destination", str(self.work / "artifacts"),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1", *auth_args],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, cwd=self.work,
            start_new_session=True)

        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited {self.proc.returncode}:\n{tail(log)}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(healthy, timeout, "mlflow server /health")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # The port is closed once the group is gone.
        wait_for(lambda: not port_open(self.port), 20, "mlflow's port to close")

    @contextlib.contextmanager
    def credentials(self):
        """This server's credentials in the mlflow client's environment (read per request),
        for the duration of the block only."""
        env = self.credentials_env()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def client(self):
        from mlflow import MlflowClient
        return MlflowClient(self.url)

    def alias(self, model, alias):
        with self.credentials():
            return int(self.client().get_model_version_by_alias(model, alias).version)

    def set_alias(self, model, alias, version):
        with self.credentials():
            self.client().set_registered_model_alias(model, alias, str(version))


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def register(server, model, version_dir, alias=None):
    """Registers a version directory with the example's script; returns MLflow's number."""
    args = [sys.executable, str(REGISTER), "--tracking-uri", server.url, "--model-name", model,
            str(version_dir)]
    if alias:
        args += ["--alias", alias]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, **server.credentials_env()))
    return int(out.stdout.strip().splitlines()[-1])


def write_config(path, cache, mlflow_url, models, aliases=None, poll_ms=200, mlflow_extra=(),
                 store_keys=None):
    """An fti-serve config with the embedded feature store and MLflow as the registry;
    mlflow_extra: more lines of its [registry.mlflow] table (credentials); store_keys: the
    feature files' key columns, needed when no model is loaded at start (an empty cache)."""
    data = REPO / "examples" / "fraud" / "data" / "features"
    alias_table = ""
    if aliases:
        alias_table = "aliases = { " + ", ".join(f'{k} = "{v}"' for k, v in aliases.items()) + " }\n"
    extra = "".join(f"{line}\n" for line in mlflow_extra)
    keys = f"keys = {json.dumps(store_keys)}" if store_keys else ""
    http_port, grpc_port = free_port(), free_port()
    path.write_text(f"""
[server]
http_addr = "127.0.0.1:{http_port}"
grpc_addr = "127.0.0.1:{grpc_port}"
drain_grace_ms = 0
[registry]
path = "{cache}"
models = {json.dumps(models)}
keep_latest = 0
[registry.mlflow]
tracking_uri = "{mlflow_url}"
poll_interval_ms = {poll_ms}
timeout_ms = 2000
{alias_table}{extra}
[admin]
token = "{ADMIN_TOKEN}"
[store]
kind = "memory"
[[store.memory.files]]
group = "card_profile"
path = "{data / 'card_profile.parquet'}"
{keys}
[[store.memory.files]]
group = "card_activity"
path = "{data / 'card_activity.parquet'}"
{keys}
""")
    return f"http://127.0.0.1:{http_port}"


class FtiServe:
    def __init__(self, config, url, log):
        self.config, self.url, self.log = config, url, log
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "--config", str(config)],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
            env=dict(os.environ, RUST_LOG="info"))

    def ready(self):
        def answered():
            if self.proc.poll() is not None:
                raise RuntimeError(f"fti-serve exited {self.proc.returncode}:\n{tail(self.log)}")
            try:
                return http("GET", f"{self.url}/health/ready", timeout=2)
            except OSError:
                return None
        return wait_for(answered, 60, "fti-serve to answer /health/ready")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def predict(self, request, model="fraud"):
        return http("POST", f"{self.url}/v1/models/{model}/predict", request)

    def cli(self, *args):
        return subprocess.run([str(BINARY), "models", "--config", str(self.config), *args],
                              capture_output=True, text=True, timeout=300)


@pytest.fixture
def fti_serve(tmp_path):
    """Starts fti-serve processes on demand; stops them all at the end."""
    started = []

    def start(mlflow_url, models, aliases=None, cache=None, mlflow_extra=(), store_keys=None):
        cache = cache or tmp_path / "cache"
        config = tmp_path / f"fti-{len(started)}.toml"
        url = write_config(config, cache, mlflow_url, models, aliases, mlflow_extra=mlflow_extra,
                           store_keys=store_keys)
        server = FtiServe(config, url, tmp_path / f"fti-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def serving(server, model, version):
    """A predict answered by `version` (polled: the move lands within the poll interval)."""
    request = {"entities": {"cc_num": "4111000000000001"},
               "features": {"amount": 12.5, "lat": 59.3, "lon": 18.0, "ts": 1764000000,
                            "merchant_category": "online"}}

    def answered():
        status, body = server.predict(request, model)
        return status == 200 and body["version"] == version
    wait_for(answered, 30, f"{model} to be served by version {version}")


def golden(version):
    lines = (REPO / "models" / "fraud" / str(version) / "golden.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def assert_goldens(server, version, served_as, model="fraud", tolerance=1e-5):
    """Every golden request of the example's `version` answers as it should, served as
    version `served_as`."""
    for case in golden(version):
        status, body = server.predict(case["request"], model)
        assert status == 200, body
        assert body["version"] == served_as, body
        for name, want in case["outputs"].items():
            got = body["outputs"][name]
            assert abs(got - want) <= tolerance * max(1.0, abs(want)), (name, got, want)


class Load:
    """Predict requests from `threads` keep-alive connections until stopped, bounded in
    count and time; counts answers by status and by serving version."""

    def __init__(self, server, model="fraud", threads=2, max_requests=200_000, max_seconds=300):
        import threading
        self.server, self.model = server, model
        self.cases = [c["request"] for c in golden(1)]
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.statuses, self.versions, self.errors = {}, {}, []
        self.sent = 0
        self.max_requests, self.deadline = max_requests, time.monotonic() + max_seconds
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        import http.client
        host, port = self.server.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        i = 0
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if self.sent >= self.max_requests:
                    break
                self.sent += 1
            body = json.dumps(self.cases[i % len(self.cases)])
            i += 1
            try:
                conn.request("POST", f"/v1/models/{self.model}/predict", body,
                             {"Content-Type": "application/json"})
                response = conn.getresponse()
                raw = response.read()
                status = response.status
                version = json.loads(raw).get("version") if status == 200 else None
            except (OSError, http.client.HTTPException, ValueError) as e:
                status, version = f"exception {type(e).__name__}", None
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if version is not None:
                    self.versions[version] = self.versions.get(version, 0) + 1
                elif len(self.errors) < 5:
                    self.errors.append((status, raw[:300] if isinstance(status, int) else ""))
        conn.close()

    def served(self):
        with self.lock:
            return sum(self.versions.values())

    def finish(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(30)
        return self.statuses, self.versions, self.errors
