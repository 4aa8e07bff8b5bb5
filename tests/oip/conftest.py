"""Shared fixtures: a live fti-serve (the debug binary `cargo test` builds, or
FTI_SERVE_BIN) on free loopback ports for HTTP and gRPC, serving the example registry."""
import json
import math
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("FTI_SERVE_BIN", REPO / "target" / "debug" / "fti-serve"))


def golden(version):
    rows = [json.loads(line) for line in (REPO / f"models/fraud/{version}/golden.jsonl").read_text().splitlines()]
    inputs = np.array([[math.nan if v is None else v for v in r["input"]] for r in rows], dtype=np.float32)
    return inputs, rows


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    http, grpc = free_port(), free_port()
    env = dict(os.environ, FTI__LOG__LEVEL="warn")
    proc = subprocess.Popen(
        [
            str(BINARY), "serve", "--config", str(REPO / "config/example.toml"),
            "--http-addr", f"127.0.0.1:{http}", "--grpc-addr", f"127.0.0.1:{grpc}",
        ],
        env=env,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("fti-serve did not become ready")
    yield {"http": f"127.0.0.1:{http}", "grpc": f"127.0.0.1:{grpc}"}
    proc.terminate()
    proc.wait(timeout=10)
