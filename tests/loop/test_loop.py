#!/usr/bin/env python3
"""Checks after tests/loop/run.sh ran examples/fraud/retrain_from_log.py: the export, the
point-in-time label join, the new version's files, and that the server logged the
exact input vectors, keeps drift gauges and loads and answers with the new version.

Environment: LOOP_WORK, LOOP_REGISTRY, LOOP_LOG_DIR, LOOP_URL
(no server: the export came from tests/loop/fake_export.py), FTI_SERVE_BIN. Runs as a
script (`python test_loop.py`, no pytest in the example's venv) or under pytest.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fraud"))
import train  # noqa: E402

WORK = Path(os.environ.get("LOOP_WORK", "."))
REGISTRY = Path(os.environ.get("LOOP_REGISTRY", "."))
LOG_DIR = Path(os.environ.get("LOOP_LOG_DIR", "."))
URL = os.environ.get("LOOP_URL", "")
DAY = 86400


def sent() -> pd.DataFrame:
    return pd.read_csv(WORK / "sent.csv", dtype={"request_id": str, "txn_id": str, "cc_num": str})


def served() -> pd.DataFrame:
    return pd.read_parquet(WORK / "served.parquet")


def summary() -> dict:
    return json.loads((WORK / "summary.json").read_text())


def manifest(version: int) -> dict:
    with open(REGISTRY / "fraud" / str(version) / "manifest.toml", "rb") as f:
        return tomllib.load(f)


def served_columns() -> list[str]:
    return train.expected_columns(manifest(summary()["served_version"])["feature_view"])


def same_f32(a, b) -> bool:
    """Equal as float32, NaN (or null) equal to NaN."""
    a = math.nan if a is None else float(a)
    b = math.nan if b is None else float(b)
    return (math.isnan(a) and math.isnan(b)) or np.float32(a) == np.float32(b)


def post(path: str, body: dict) -> tuple[int, dict]:
    u = urlsplit(URL)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    return resp.status, (json.loads(text) if text.startswith("{") else {"text": text})


# ----------------------------------------------------------------------------- export

def test_export_has_one_row_per_request():
    s, e = sent(), served()
    assert len(e) == len(s), (len(e), len(s))
    assert sorted(e["request_id"]) == sorted(s["request_id"])
    assert (e["row"] == 0).all() and (e["model"] == "fraud").all()
    m = e.merge(s, on="request_id")
    assert (m["version"] == m["served_version"]).all()
    assert np.allclose(m["output.probability"], m["probability"], rtol=1e-6, atol=1e-9)
    assert (m["request.ts"] == m["event_ts"]).all() and (m["entity.cc_num"] == m["cc_num"]).all()


def test_feature_columns_are_the_served_input():
    cols = [c for c in served().columns if c.startswith("feature.")]
    assert sorted(cols) == sorted(f"feature.{n}" for n in served_columns()), cols


def test_features_equal_the_logged_records():
    names = served_columns()
    records = {}
    for f in sorted(LOG_DIR.glob("predictions-*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            records[r["request_id"]] = r
    e = served().sort_values("request_id").reset_index(drop=True)
    for i in list(range(5)) + list(range(len(e) - 5, len(e))):
        row = e.iloc[i]
        rec = records[row["request_id"]]
        assert list(rec["features"]) == names, list(rec["features"])
        for n in names:
            v = row[f"feature.{n}"]
            assert same_f32(rec["features"][n], None if pd.isna(v) else v), (row["request_id"], n)
        assert same_f32(rec["outputs"]["probability"], row["output.probability"])


# ----------------------------------------------------------------------------- labels

def test_join_keeps_only_arrived_labels():
    labels = pd.read_csv(WORK / "labels.csv", dtype={"request_id": str})
    kept = pd.read_csv(WORK / "labelled.csv", dtype={"request_id": str})
    cutoff = summary()["cutoff"]
    delay = labels["label_ts"] - labels["event_ts"]
    assert ((delay >= DAY) & (delay <= 5 * DAY)).all()
    assert (kept["label_ts"] <= cutoff).all()
    arrived = labels[(labels["label_ts"] <= cutoff) & labels["request_id"].isin(set(served()["request_id"]))]
    assert sorted(kept["request_id"]) == sorted(arrived["request_id"])
    assert 0 < len(kept) < len(labels), "the cutoff should leave some labels pending"
    m = kept.merge(labels, on="request_id", suffixes=("", "_true"))
    assert (m["is_fraud"] == m["is_fraud_true"]).all()
    assert summary()["labelled_rows"] == len(kept)
    assert summary()["labels_pending"] == len(served()) - len(kept)


# ----------------------------------------------------------------------------- new version

def test_new_version_files():
    s = summary()
    v, old = s["version"], s["served_version"]
    existing = [int(p.name) for p in (REGISTRY / "fraud").iterdir() if p.name.isdigit()]
    assert v == max(existing) and v == max(x for x in existing if x != v) + 1
    m, prev = manifest(v), manifest(old)
    data = (REGISTRY / "fraud" / str(v) / "model.onnx").read_bytes()
    assert m["model"]["version"] == v and m["model"]["sha256"] == hashlib.sha256(data).hexdigest()
    dump = lambda x: json.dumps(x, sort_keys=True)  # noqa: E731 (NaN defaults compare as text)
    assert dump(m["feature_view"]) == dump(prev["feature_view"])
    assert m["outputs"] == prev["outputs"]
    t = m["training"]
    assert t["served_version"] == old and t["train_rows"] + t["test_rows"] == t["labelled_rows"]
    ref = m["reference"]
    assert ref["rows"] == t["train_rows"]
    assert set(ref["features"]) <= set(served_columns()) and ref["features"]
    assert set(ref["outputs"]) == {"probability", "label"}
    for b in list(ref["features"].values()) + list(ref["outputs"].values()):
        e = b["edges"]
        assert len(b["shares"]) == len(e) + 1 and all(x < y for x, y in zip(e, e[1:]))
        assert abs(sum(b["shares"]) - 1) < 1e-9


def test_new_version_validates():
    """`fti-serve models promote` loads and validates a version first (checksum, feature
    view, graph, warm-up); on a copy, so the run's registry keeps its aliases."""
    v = summary()["version"]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(REGISTRY, Path(tmp) / "r")
        res = subprocess.run([os.environ["FTI_SERVE_BIN"], "models", "--registry", str(Path(tmp) / "r"),
                              "promote", "fraud", str(v), "--alias", "staging"],
                             capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_server_answers_with_the_new_version():
    v = summary()["version"]
    row = served().iloc[0]
    body = {"entities": {"cc_num": row["entity.cc_num"]},
            "features": {k: (row[f"request.{k}"] if k == "merchant_category" else float(row[f"request.{k}"]))
                         for k in ("amount", "lat", "lon", "ts", "merchant_category")}}
    deadline = time.monotonic() + 30
    while True:  # the server picks the new directory up from the registry it watches
        status, answer = post(f"/v1/models/fraud/versions/{v}/predict", body)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert status == 200 and answer["version"] == v, (status, answer)
    X = np.array([[row[f"feature.{n}"] for n in served_columns()]], dtype=np.float64).astype(np.float32)
    sess = train.ort_session(REGISTRY / "fraud" / str(v) / "model.onnx")
    p = float(train.ort_probabilities(sess, X)[0, 1])
    assert abs(answer["outputs"]["probability"] - p) < 1e-5, (answer, p)


def test_drift_gauges_for_the_served_version():
    u = urlsplit(URL)
    version = f'version="{summary()["served_version"]}"'
    deadline = time.monotonic() + 10
    while True:  # refreshed every second
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        psi = [ln for ln in text.splitlines() if ln.startswith("fti_drift_psi{") and version in ln]
        out = [ln for ln in text.splitlines()
               if ln.startswith("fti_drift_output_psi{") and version in ln and 'output="probability"' in ln]
        if (psi and out) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert psi and out, "no fti_drift_psi / fti_drift_output_psi gauges for the served version"


if __name__ == "__main__":
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print(f"ok   {name}")
            except Exception as e:  # noqa: BLE001 (report every check, then fail)
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)
