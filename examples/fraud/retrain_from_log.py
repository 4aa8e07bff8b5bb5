#!/usr/bin/env python3
"""The FTI loop on served traffic: train the next fraud version from the prediction log.

    retrain_from_log.py --url http://127.0.0.1:8080 --log-dir prediction-log \\
        --registry /tmp/registry [-n 2000] [--work build/loop]

Against a running fti-serve that serves model `fraud` with the prediction log written to
files (`[prediction_log.files] dir`, docs/prediction-log.md):

1. traffic: sends N predict requests, one per held-out transaction of the example's data
   (build/transactions.csv from generate.py: the last 6 days, which no committed version
   trained on), each with `x-request-id: txn-<txn_id>`. Their `ts` is moved 6 days on, so
   they happen after the online store's snapshot (2025-11-23), as live traffic would.
2. export: `fti-serve log export --files DIR --model fraud --out served.parquet`: what was
   served, with the exact input vector the model saw (`feature.<name>` columns).
3. delayed labels: the true `is_fraud` of a transaction is not known when it is scored; it
   arrives later (a chargeback, or the chargeback window closing), here 1 to 5 days after
   the prediction (seeded). A point-in-time join on `request_id` keeps, as of a cutoff
   (default: 2 days after the last request), only the predictions whose label had arrived
   by then; the rest are pending and left out. Times are the requests' event time `ts`
   (the replay sends 6 days of transactions in seconds; the log's `time` is wall clock).
4. training: a logistic regression (train.py's v1 recipe; NaN inputs take the training
   median through an ONNX Imputer, as the served view's defaults may be NaN) on the
   `feature.<name>` columns in the served version's input order, evaluated on a time-based
   holdout (the last 20% of labelled rows). It is written as <registry>/fraud/<next>/
   {model.onnx, manifest.toml}: the served version's feature view and outputs, [training]
   saying it came from the prediction log, and a [reference] of the served data. No alias
   moves: promote it with `fti-serve models promote` (or a canary) when satisfied.

Intermediate files go to --work: sent.csv, served.parquet, labels.csv, labelled.csv (the
rows trained and evaluated on), summary.json. `--offline` skips steps 1-2 and reads
sent.csv and served.parquet from --work. Needs only examples/fraud/requirements.txt and
FTI_SERVE_BIN (default target/debug/fti-serve) for the export.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
import tomllib
import warnings
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

import train  # the example's training pipeline: matrix layout, model recipe, manifest

DAY = train.DAY
SPLIT_TS = train.END_TS - (30 - train.TRAIN_DAYS) * DAY  # held-out transactions start here
SHIFT_S = train.END_TS - SPLIT_TS  # replayed after the snapshot
HOLDOUT = 0.2


def iso(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------- 1. traffic

def held_out(build: Path, n: int, seed: int) -> pd.DataFrame:
    """n held-out transactions (seeded sample, in time order), ts moved past the snapshot."""
    tx = pd.read_csv(build / "transactions.csv", dtype={"txn_id": str, "cc_num": str})
    tx = tx[tx["ts"] >= SPLIT_TS]
    if n < len(tx):
        tx = tx.sample(n=n, random_state=seed)
    tx = tx.sort_values(["ts", "txn_id"]).reset_index(drop=True)
    tx["event_ts"] = tx["ts"] + SHIFT_S
    tx["request_id"] = "txn-" + tx["txn_id"]
    return tx


def send_traffic(url: str, model: str, tx: pd.DataFrame) -> pd.DataFrame:
    """One predict request per transaction over one keep-alive connection."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
    path = f"{u.path.rstrip('/')}/v1/models/{model}/predict"
    versions, probs, sent_at = [], [], []
    for r in tx.itertuples():
        body = json.dumps({
            "entities": {"cc_num": r.cc_num},
            "features": {"amount": float(r.amount), "lat": float(r.lat), "lon": float(r.lon),
                         "ts": int(r.event_ts), "merchant_category": r.merchant_category},
        })
        sent_at.append(time.time())
        conn.request("POST", path, body=body, headers={
            "content-type": "application/json", "x-request-id": r.request_id})
        resp = conn.getresponse()
        text = resp.read().decode()
        if resp.status != 200:
            sys.exit(f"retrain: {r.request_id}: {resp.status} {text}")
        echoed = resp.getheader("x-request-id")
        if echoed != r.request_id:
            sys.exit(f"retrain: sent x-request-id {r.request_id}, the answer carries {echoed!r}")
        answer = json.loads(text)
        versions.append(int(answer["version"]))
        probs.append(float(answer["outputs"]["probability"]))
    conn.close()
    out = tx[["request_id", "txn_id", "cc_num", "event_ts", "is_fraud"]].copy()
    out["sent_at"], out["served_version"], out["probability"] = sent_at, versions, probs
    return out


def wait_for_log(log_dir: Path, ids: set[str], timeout_s: float) -> int:
    """Until every sent request id is in a complete line of the log files (the writer
    batches), or the timeout; returns how many were found."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = set()
        for f in sorted(log_dir.glob("predictions-*.jsonl")):
            for line in f.read_text().splitlines(keepends=True):
                if line.endswith("\n"):
                    rid = json.loads(line).get("request_id")
                    if rid in ids:
                        seen.add(rid)
        if len(seen) == len(ids) or time.monotonic() > deadline:
            return len(seen)
        time.sleep(0.2)


# ----------------------------------------------------------------------------- 2. export

def export_log(log_dir: Path, model: str, out: Path) -> pd.DataFrame:
    cmd = [train.fti_serve_bin(), "log", "export", "--files", str(log_dir), "--model", model,
           "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"retrain: `{' '.join(cmd)}` failed ({res.returncode}):\n{res.stderr}")
    return pd.read_parquet(out)


# ----------------------------------------------------------------------------- 3. labels

def delayed_labels(sent: pd.DataFrame, seed: int, min_days: float = 1.0,
                   max_days: float = 5.0) -> pd.DataFrame:
    """Each transaction's true label and when it becomes known: event time + 1-5 days."""
    rng = np.random.default_rng(seed)
    delay = rng.uniform(min_days * DAY, max_days * DAY, size=len(sent)).round()
    return pd.DataFrame({"request_id": sent["request_id"], "is_fraud": sent["is_fraud"],
                         "event_ts": sent["event_ts"], "label_ts": sent["event_ts"] + delay})


def point_in_time_join(served: pd.DataFrame, labels: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """The served rows whose label had arrived by `cutoff`, with it."""
    arrived = labels[labels["label_ts"] <= cutoff]
    joined = served.merge(arrived, on="request_id", how="inner", validate="many_to_one")
    return joined.sort_values(["event_ts", "request_id", "row"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- 4. training

def prepend_imputer(onx, values: np.ndarray) -> None:
    """Replace NaN in the graph input by `values` (per column) before everything else."""
    import onnx
    from onnx import helper
    name = onx.graph.input[0].name
    imputed = f"{name}_imputed"
    for node in onx.graph.node:
        inputs = [imputed if i == name else i for i in node.input]
        del node.input[:]
        node.input.extend(inputs)
    node = helper.make_node("Imputer", [name], [imputed], domain="ai.onnx.ml", name="impute_nan",
                            imputed_value_floats=[float(v) for v in values],
                            replaced_value_float=float("nan"))
    onx.graph.node.insert(0, node)
    onnx.checker.check_model(onx)


def next_version(model_dir: Path) -> int:
    return max((int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()),
               default=0) + 1


def train_next(data: pd.DataFrame, served: pd.DataFrame, view: dict, served_version: int,
               cutoff: float, registry: Path, model: str, work: Path) -> dict:
    import onnxruntime
    import skl2onnx
    import sklearn

    names = train.expected_columns(view)
    absent = [n for n in names if f"feature.{n}" not in data.columns]
    if absent:
        sys.exit(f"retrain: the export lacks the served input columns {absent}")
    X = data[[f"feature.{n}" for n in names]].to_numpy(dtype=np.float64).astype(np.float32)
    y = data["is_fraud"].astype(int).to_numpy()
    n_hold = int(round(HOLDOUT * len(y)))
    tr, te = slice(0, len(y) - n_hold), slice(len(y) - n_hold, len(y))
    if len(set(y[tr])) < 2:
        sys.exit(f"retrain: the {len(y) - n_hold} training rows hold one class only; "
                 "send more requests (-n) or move the cutoff later")

    with warnings.catch_warnings():  # a column with no value at all: its median is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(X[tr].astype(np.float64), axis=0)
    medians = np.where(np.isfinite(medians), medians, 0.0).astype(np.float32)
    X_imp = np.where(np.isnan(X), medians, X)
    version = next_version(registry / model)
    folded, onx = train.train_logreg(X_imp[tr], y[tr], len(names))
    prepend_imputer(onx, medians)
    train.make_reproducible(onx, version)

    tmp = work / f"model_v{version}.onnx"
    tmp.write_bytes(onx.SerializeToString())
    sess = train.ort_session(tmp)
    probs_tr = train.ort_probabilities(sess, X[tr])
    p_py = folded.predict_proba(X_imp[tr].astype(np.float64))[:, 1]
    gap = float(np.abs(probs_tr[:, 1] - p_py).max())
    if gap > 1e-4:
        sys.exit(f"retrain: the graph (with its Imputer) differs from the model by {gap}")
    metrics = {
        "source": "prediction log (fti-serve log export), labels joined as of the cutoff",
        "served_version": served_version,
        "served_rows": int(len(served)),
        "labelled_rows": int(len(y)),
        "labels_pending": int(len(served) - len(y)),
        "label_cutoff": iso(cutoff),
        "event_time_from": iso(data["event_ts"].min()),
        "event_time_to": iso(data["event_ts"].max()),
        "logged_from": str(served["time"].min()),
        "logged_to": str(served["time"].max()),
        "split": f"time-based: the last {int(HOLDOUT * 100)}% of labelled rows by event time",
        "train_rows": int(len(y) - n_hold),
        "test_rows": int(n_hold),
        "train_fraud_rate": round(float(y[tr].mean()), 4),
        "test_fraud_rate": round(float(y[te].mean()), 4) if n_hold else 0.0,
        "train_auc": round(train.auc_scores(y[tr], probs_tr[:, 1])[0], 4),
        "imputation": "NaN inputs take the training median (ONNX Imputer)",
        "onnxruntime": onnxruntime.__version__,
    }
    if n_hold and len(set(y[te])) == 2:  # AUC needs both classes in the holdout
        auc, pr_auc = train.auc_scores(y[te], train.ort_probabilities(sess, X[te])[:, 1])
        metrics["auc"], metrics["pr_auc"] = round(auc, 4), round(pr_auc, 4)
    reference = train.reference_section(X[tr], names, {"probability": probs_tr[:, 1],
                                                       "label": np.argmax(probs_tr, axis=1)})
    # written beside the versions, then renamed in: a watching server never sees half of it
    staging = registry / model / f".retrain-{os.getpid()}"
    train.write_version(
        version, onx, view,
        f"Logistic regression retrained from the prediction log of version {served_version}",
        f"scikit-learn {sklearn.__version__} + skl2onnx {skl2onnx.__version__}", metrics,
        reference, models=staging,
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    (staging / str(version)).rename(registry / model / str(version))
    staging.rmdir()
    return {"version": version, "dir": str(registry / model / str(version)), **metrics}


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="the running fti-serve, e.g. http://127.0.0.1:8080")
    ap.add_argument("--log-dir", type=Path, help="its [prediction_log.files] dir")
    ap.add_argument("--registry", type=Path, required=True,
                    help="registry to write the new version into (<registry>/<model>/<N>/)")
    ap.add_argument("--model", default="fraud")
    ap.add_argument("-n", "--requests", type=int, default=2000)
    ap.add_argument("--build", type=Path, default=train.HERE / "build",
                    help="generate.py's output (transactions.csv)")
    ap.add_argument("--work", type=Path, default=None, help="intermediate files (default BUILD/loop)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--cutoff", type=float, default=None,
                    help="labels known as of this unix time (default: last request + 2 days)")
    ap.add_argument("--log-wait-s", type=float, default=30.0)
    ap.add_argument("--offline", action="store_true",
                    help="skip traffic and export: use WORK/sent.csv and WORK/served.parquet")
    args = ap.parse_args()
    work = args.work or args.build / "loop"
    work.mkdir(parents=True, exist_ok=True)

    if not args.offline:
        if not args.url or not args.log_dir:
            sys.exit("retrain: --url and --log-dir are needed (or --offline)")
        tx = held_out(args.build, args.requests, args.seed)
        sent = send_traffic(args.url, args.model, tx)
        sent.to_csv(work / "sent.csv", index=False)
        found = wait_for_log(args.log_dir, set(sent["request_id"]), args.log_wait_s)
        print(f"retrain: sent {len(sent)} requests ({int(sent['is_fraud'].sum())} fraud); "
              f"{found} in the log")
        served = export_log(args.log_dir, args.model, work / "served.parquet")
    else:
        sent = pd.read_csv(work / "sent.csv", dtype={"request_id": str, "txn_id": str,
                                                     "cc_num": str})
        served = pd.read_parquet(work / "served.parquet")

    served = served[served["request_id"].isin(set(sent["request_id"]))]
    if served.empty:
        sys.exit("retrain: none of the sent requests is in the export")
    served_version = int(served["version"].value_counts().idxmax())
    served = served[served["version"] == served_version]
    with open(args.registry / args.model / str(served_version) / "manifest.toml", "rb") as f:
        view = tomllib.load(f)["feature_view"]

    labels = delayed_labels(sent, args.seed)
    labels.to_csv(work / "labels.csv", index=False)
    cutoff = args.cutoff if args.cutoff is not None else float(sent["event_ts"].max() + 2 * DAY)
    data = point_in_time_join(served, labels, cutoff)
    data[["request_id", "row", "event_ts", "label_ts", "is_fraud"]].to_csv(
        work / "labelled.csv", index=False)
    print(f"retrain: {len(served)} served rows of version {served_version}; as of {iso(cutoff)} "
          f"{len(data)} have their label ({int(data['is_fraud'].sum())} fraud), "
          f"{len(served) - len(data)} pending")

    summary = train_next(data, served, view, served_version, cutoff, args.registry, args.model,
                         work)
    summary["cutoff"] = cutoff
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    auc = summary.get("auc")
    print(f"retrain: wrote {summary['dir']} (train {summary['train_rows']} rows, holdout "
          f"{summary['test_rows']}, AUC {auc if auc is not None else 'n/a (one class)'})")
    print(f"    promote: fti-serve models --registry {args.registry} promote {args.model} "
          f"{summary['version']} --alias production")


if __name__ == "__main__":
    main()
