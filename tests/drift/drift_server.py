"""Helpers of tests/drift/test_drift.py: a live fti-serve on free loopback ports serving a
copy of tests/fixtures/drift with the prediction log and drift monitoring on, HTTP calls,
a Prometheus text parser, the prediction log reader and the numpy PSI reference.
(Not a conftest.py: tests/oip has one, and pytest would take both for one module.)"""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("FTI_SERVE_BIN", REPO / "target" / "debug" / "fti-serve"))
FIXTURE = REPO / "tests" / "fixtures" / "drift"
MANIFEST = tomllib.loads((FIXTURE / "drift" / "1" / "manifest.toml").read_text())
FEATURES = MANIFEST["feature_view"]["input"]
FLOOR = 1e-4

CONFIG = """\
[server]
http_addr = "127.0.0.1:{http}"
grpc_addr = "127.0.0.1:{grpc}"
request_timeout_ms = 10000
drain_grace_ms = 0
drain_timeout_ms = 5000

[registry]
path = "{registry}"
models = ["drift"]
watch = false

[store]
kind = "memory"

[prediction_log]
enabled = true
sample = 1.0
batch = 500

[prediction_log.files]
dir = "{log}"

[drift]
enabled = true
window_s = 600
min_rows = 500
psi_threshold = 0.2

[log]
level = "warn"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout_s, interval_s=0.2):
    """Calls `check` until it returns something truthy (returned) or the time is up."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class Server:
    """One fti-serve process in its own directory `root`: registry copy, config, log."""

    def __init__(self, root: Path):
        self.root = root
        self.registry = root / "registry"
        self.log_dir = root / "prediction-log"
        shutil.copytree(FIXTURE, self.registry)
        self.http_port = free_port()
        self.config = root / "config.toml"
        self.config.write_text(CONFIG.format(http=self.http_port, grpc=free_port(),
                                             registry=self.registry, log=self.log_dir))
        self.output = root / "server.log"
        self.proc = None
        self.base = f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s=120):
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen([str(BINARY), "serve", "--config", str(self.config)],
                                         stdout=out, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"fti-serve exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                return self.get("/health/ready")[0] == 200
            except OSError:
                return False

        wait_for("fti-serve to be ready", ready, timeout_s)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def tail(self, n=4000):
        return self.output.read_text(errors="replace")[-n:] if self.output.exists() else ""

    def request(self, method, path, body=None, headers=None, timeout=30):
        """(status, headers, body bytes); an HTTP error status is returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get(self, path):
        return self.request("GET", path)

    def metrics(self):
        status, _, body = self.get("/metrics")
        assert status == 200, body
        return parse_metrics(body.decode())

    def log_records(self):
        return read_log(self.log_dir)


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] of every sample in Prometheus text format."""
    samples = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m and not line.startswith("#"):
            samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return samples


def gauges(samples, name, key, **labels):
    """{labels[key]: value} of the samples of `name` whose labels include `labels`."""
    return {l.get(key): v for n, l, v in samples
            if n == name and all(l.get(k) == str(w) for k, w in labels.items())}


def read_log(directory: Path):
    """Every complete record of the JSON-lines files (a last line without its newline is
    still being written and skipped)."""
    records = []
    for path in sorted(directory.glob("predictions-*.jsonl")):
        text = path.read_text()
        lines = text.split("\n")
        records += [json.loads(line) for line in lines[:-1] if line]
    return records


def served(values):
    """What a float32 model input holds, as float64 (JSON numbers parse as float64)."""
    return np.asarray(values, dtype=np.float64).astype(np.float32).astype(np.float64)


def window_shares(values, edges):
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    return np.bincount(bins, minlength=len(edges) + 1) / len(values)


def psi(values, edges, shares):
    """The doc's PSI: sum((a - e) * ln(a / e)), both shares at least 1e-4."""
    a = np.maximum(window_shares(values, edges), FLOOR)
    e = np.maximum(np.asarray(shares, dtype=np.float64), FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def draw(rng, n, shift=None):
    """n rows {x1..x4: float64} from the manifest's training distributions; `shift`
    maps a feature to a function applied to its draws."""
    columns = {}
    for name, spec in MANIFEST["training"]["distributions"].items():
        args = {k: v for k, v in spec.items() if k != "method"}
        values = getattr(rng, spec["method"])(size=n, **args)
        columns[name] = (shift or {}).get(name, lambda v: v)(values)
    return [{k: float(columns[k][i]) for k in FEATURES} for i in range(n)]


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-15
