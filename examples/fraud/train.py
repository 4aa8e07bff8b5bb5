#!/usr/bin/env python3
"""Training pipeline: fraud model versions 1 (logistic regression) and 2 (LightGBM).

On-demand features are computed by the server's own code, `fti-serve transform`, so
training and serving cannot drift apart:

    $FTI_SERVE_BIN transform --feature-view feature_views/fraud_vN.toml \
        --input build/training_base.csv --output build/train_vN.csv \
        --model-input --keep txn_id,is_fraud

Each version is written to the model registry as models/fraud/<N>/{model.onnx,
manifest.toml, golden.jsonl}; models/fraud/state.toml points the production alias at
version 2. golden.jsonl holds requests against the committed feature snapshot, the model
input vector the server must assemble for them and the reference outputs from
onnxruntime. Each manifest ends with a [reference]: deciles of the training rows per model
input column and per output, which the server's drift monitor compares what it serves
with (docs/prediction-log.md, "Drift").
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_BIN = REPO / "target" / "debug" / "fti-serve"
MODELS = REPO / "models" / "fraud"
END_TS = 1763856000  # snapshot time, 2025-11-23 00:00:00 UTC
DAY = 86400
TRAIN_DAYS = 24  # of 30: train on the first 80% of days, evaluate on the rest
CREATED_AT = "2026-11-27T00:00:00Z"  # fixed for reproducible manifests
SEED = 7
UNKNOWN_CARD = "4999000000000000"  # not in the online store
NEW_CARD = "4111000000000500"  # issued just before the snapshot, no transactions
CATEGORIES = ["grocery", "restaurant", "travel", "online", "electronics", "gas"]


# ----------------------------------------------------------------------------- transform

def fti_serve_bin() -> str:
    return os.environ.get("FTI_SERVE_BIN", str(DEFAULT_BIN))


def run_transform(view: Path, inp: Path, out: Path, keep: list[str]) -> pd.DataFrame:
    """Run `fti-serve transform --model-input` and return its output table.

    The first len(keep) columns are the kept ones; the rest are exactly the model input
    vector, in order (a vector feature `f` expands to `f.<category>` columns).
    """
    cmd = [fti_serve_bin(), "transform", "--feature-view", str(view), "--input", str(inp),
           "--output", str(out), "--model-input", "--keep", ",".join(keep)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"train: `{' '.join(cmd)}` failed ({res.returncode}):\n{res.stderr}")
    df = pd.read_csv(out, dtype={k: str for k in keep}, keep_default_na=False,
                     na_values=["", "nan", "NaN", "NAN"])
    if list(df.columns[: len(keep)]) != keep:
        sys.exit(f"train: {out}: expected kept columns {keep} first, got {list(df.columns)}")
    return df


def expected_columns(view: dict) -> list[str]:
    """Model input columns as the view defines them (for checking the CLI output)."""
    vec = {}
    for od in view.get("on_demand", []):
        expr = od["expr"].strip()
        if expr.startswith("one_hot("):
            inner = expr[expr.index("[") + 1: expr.rindex("]")]
            vec[od["name"]] = [c.strip().strip("'\"") for c in inner.split(",") if c.strip()]
    cols = []
    for name in view["input"]:
        cols += [f"{name}.{c}" for c in vec[name]] if name in vec else [name]
    return cols


def model_matrix(df: pd.DataFrame, keep: list[str], view: dict) -> tuple[np.ndarray, list[str]]:
    cols = list(df.columns[len(keep):])
    exp = expected_columns(view)
    if cols != exp:
        sys.exit(f"train: transform output columns {cols} differ from the view's input {exp}")
    # The model sees float32: train on exactly the values it will be served.
    return df[cols].to_numpy(dtype=np.float64).astype(np.float32), cols


# ----------------------------------------------------------------------------- metrics

def auc_scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score
    return float(roc_auc_score(y, p)), float(average_precision_score(y, p))


def ort_session(path: Path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_probabilities(sess, X: np.ndarray) -> np.ndarray:
    (probs,) = sess.run(["probabilities"], {"input": X.astype(np.float32)})
    return np.asarray(probs)


# ----------------------------------------------------------------------------- models

def train_logreg(Xtr: np.ndarray, ytr: np.ndarray, n: int):
    """Standardise + logistic regression, then fold the scaler into the coefficients."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    X = Xtr.astype(np.float64)
    scaler = StandardScaler().fit(X)
    sigma = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    clf = LogisticRegression(C=1.0, max_iter=5000, random_state=SEED)
    clf.fit((X - scaler.mean_) / sigma, ytr)
    w, b = clf.coef_[0], clf.intercept_[0]
    folded = LogisticRegression()
    folded.classes_ = clf.classes_
    folded.coef_ = (w / sigma).reshape(1, -1)
    folded.intercept_ = np.array([b - np.sum(w * scaler.mean_ / sigma)])
    folded.n_features_in_ = n
    folded.n_iter_ = clf.n_iter_
    # the folded model must agree with scaler + model
    d = np.abs(folded.predict_proba(X)[:, 1] - clf.predict_proba((X - scaler.mean_) / sigma)[:, 1])
    assert d.max() < 1e-9, d.max()
    onx = convert_sklearn(
        folded,
        initial_types=[("input", FloatTensorType([None, n]))],
        options={id(folded): {"zipmap": False}},
        target_opset={"": 13, "ai.onnx.ml": 1},
    )
    return folded, onx


def train_lightgbm(Xtr: np.ndarray, ytr: np.ndarray, n: int):
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    clf = lgb.LGBMClassifier(
        n_estimators=50, num_leaves=15, learning_rate=0.1, min_child_samples=20,
        subsample=1.0, colsample_bytree=1.0, reg_lambda=1.0,
        random_state=SEED, deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1,
    )
    clf.fit(Xtr.astype(np.float64), ytr)
    onx = convert_lightgbm(clf, initial_types=[("input", FloatTensorType([None, n]))],
                           zipmap=False, target_opset=15)
    return clf, onx


def graph_summary(onx) -> dict:
    def shape(vi):
        return [d.dim_param or d.dim_value or None for d in vi.type.tensor_type.shape.dim]
    return {
        "inputs": [(i.name, shape(i)) for i in onx.graph.input],
        "outputs": [(o.name, shape(o)) for o in onx.graph.output],
        "opsets": {o.domain or "ai.onnx": o.version for o in onx.opset_import},
    }


# ----------------------------------------------------------------------------- goldens

def read_snapshot(name: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    with open(HERE / "data" / "features" / f"{name}.csv", newline="") as f:
        r = csv.DictReader(f)
        rows = {row["cc_num"]: row for row in r}
        return list(r.fieldnames or [])[1:], rows


def num(s: str) -> float:
    return float(s) if s != "" else math.nan


def golden_requests() -> list[dict]:
    """~30 deterministic requests after the snapshot time: normal, fraud-looking, edge cases."""
    rng = np.random.default_rng(SEED)
    _, prof = read_snapshot("card_profile")
    _, act = read_snapshot("card_activity")
    complete = sorted(cc for cc in prof if all(v != "" for v in act[cc].values())
                      and all(v != "" for v in prof[cc].values()))
    reqs: list[dict] = [
        dict(cc_num="4111000000000001", amount=120.5, lat=59.33, lon=18.06, ts=1764000000,
             merchant_category="online", kind="documented example"),
    ]

    def pick() -> str:
        while True:
            cc = complete[int(rng.integers(len(complete)))]
            if cc not in {r["cc_num"] for r in reqs}:
                return cc

    def ts_at(hour_lo: int, hour_hi: int) -> int:
        return END_TS + int(rng.integers(0, 2)) * DAY + int(rng.integers(hour_lo, hour_hi)) * 3600 \
            + int(rng.integers(0, 3600))

    for _ in range(14):  # everyday purchases near home, daytime, typical amounts
        cc = pick()
        avg = num(act[cc]["amount_avg_30d"])
        reqs.append(dict(
            cc_num=cc, amount=round(float(avg * rng.uniform(0.3, 1.3)), 2),
            lat=round(num(prof[cc]["home_lat"]) + float(rng.normal(0, 0.03)), 5),
            lon=round(num(prof[cc]["home_lon"]) + float(rng.normal(0, 0.03)), 5),
            ts=ts_at(8, 21), merchant_category=str(rng.choice(["grocery", "restaurant", "gas"])),
            kind="normal"))
    far = [(44.4268, 26.1025), (6.5244, 3.3792), (-23.5558, -46.6396), (-6.2088, 106.8456),
           (34.0522, -118.2437)]
    for k in range(11):  # fraud-looking: far away, large, risky category, often at night
        cc = pick()
        avg = num(act[cc]["amount_avg_30d"])
        city = far[k % len(far)]
        night = k % 3 != 2
        reqs.append(dict(
            cc_num=cc, amount=round(float(max(avg, 20.0) * rng.uniform(6.0, 20.0)), 2),
            lat=round(city[0] + float(rng.normal(0, 0.05)), 5),
            lon=round(city[1] + float(rng.normal(0, 0.05)), 5),
            ts=ts_at(0, 5) if night else ts_at(10, 20),
            merchant_category=str(rng.choice(["electronics", "online"])),
            kind="fraud-looking"))
    cc = pick()  # the caller sends no merchant_category: its default "unknown" applies
    reqs.append(dict(cc_num=cc, amount=42.0, lat=num(prof[cc]["home_lat"]),
                     lon=num(prof[cc]["home_lon"]), ts=ts_at(9, 18), merchant_category=None,
                     kind="no merchant_category"))
    # a known card issued just before the snapshot, never used: its activity fields are
    # empty in the store, so they take their defaults and are reported as missing
    cc = NEW_CARD
    reqs.append(dict(cc_num=cc, amount=250.0, lat=num(prof[cc]["home_lat"]),
                     lon=num(prof[cc]["home_lon"]), ts=ts_at(10, 20),
                     merchant_category="electronics", kind="known card, no history"))
    # a card that is not in the online store: every group feature takes its default
    reqs.append(dict(cc_num=UNKNOWN_CARD, amount=35.0, lat=59.33, lon=18.06, ts=1763900000,
                     merchant_category="grocery", kind="unknown card, normal-looking"))
    reqs.append(dict(cc_num=UNKNOWN_CARD, amount=1899.99, lat=6.52, lon=3.38, ts=1763866800,
                     merchant_category="electronics", kind="unknown card, fraud-looking"))
    return reqs


def fmt_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def write_goldens(version: int, view_path: Path, view: dict, onnx_path: Path,
                  build: Path) -> int:
    reqs = golden_requests()
    pcols, prof = read_snapshot("card_profile")
    acols, act = read_snapshot("card_activity")
    group_cols = {"card_profile": (pcols, prof), "card_activity": (acols, act)}
    group_features = [(g["name"], f["name"]) for g in view["groups"] for f in g["features"]]
    request_names = [r["name"] for r in view["request"]]

    inp = build / f"golden_v{version}_input.csv"
    with open(inp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["req", "cc_num"] + [n for _, n in group_features] + request_names)
        for i, r in enumerate(reqs):
            row = [str(i), r["cc_num"]]
            for g, name in group_features:
                _, rows = group_cols[g]
                row.append(rows[r["cc_num"]][name] if r["cc_num"] in rows else "")
            row += [fmt_value(r[n]) for n in request_names]
            w.writerow(row)
    df = run_transform(view_path, inp, build / f"golden_v{version}_model_input.csv", ["req"])
    X, _ = model_matrix(df, ["req"], view)
    sess = ort_session(onnx_path)
    # one row per run, as a request is served (batched runs can differ in the last bits)
    probs = np.vstack([ort_probabilities(sess, X[i: i + 1]) for i in range(len(X))])

    lines = []
    for i, r in enumerate(reqs):
        features = {n: r[n] for n in request_names if r.get(n) is not None}
        # as the server reports them: request features that took their default, then
        # group features that did (entity not in the store, or an empty field)
        missing = [n for n in request_names if r.get(n) is None]
        missing += [n for g, n in group_features
                    if group_cols[g][1].get(r["cc_num"], {}).get(n, "") == ""]
        p = probs[i]
        lines.append(json.dumps({
            "request": {"entities": {"cc_num": r["cc_num"]}, "features": features},
            # float32 values, exactly; JSON has no NaN: null = NaN (missing, v2 only)
            "input": [None if math.isnan(v) else float(v) for v in X[i]],
            "missing_features": missing,
            "outputs": {"probability": float(p[1]), "label": int(np.argmax(p))},
        }, allow_nan=False))
    (MODELS / str(version) / "golden.jsonl").write_text("\n".join(lines) + "\n")
    kinds = {}
    for r, p in zip(reqs, probs):
        kinds.setdefault(r["kind"], []).append(float(p[1]))
    for k, ps in kinds.items():
        print(f"    golden {k:28s} n={len(ps):2d} p(fraud) "
              + " ".join(f"{x:.3f}" for x in ps[:8]) + (" ..." if len(ps) > 8 else ""))
    return len(lines)


# ----------------------------------------------------------------------------- reference

def decile_bins(values: np.ndarray) -> dict | None:
    """Deciles of the finite values: `edges` (np.quantile at np.linspace(0, 1, 11)[1:-1],
    duplicates removed) and the share of values in each of the len(edges) + 1 bins, bin i holding
    edges[i-1] <= v < edges[i] (np.searchsorted(edges, v, side="right")). None when no
    value is finite."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    return {"edges": [float(e) for e in edges], "shares": [float(c / x.size) for c in counts]}


def reference_section(X: np.ndarray, cols: list[str], outputs: dict[str, np.ndarray]) -> dict:
    """The manifest's [reference]: deciles per model input column (named as the server
    names them: `f.<category>` for a one-hot feature) and per numeric output. X is binned
    as the float32 values the model sees, exactly."""
    X64 = np.asarray(X, dtype=np.float32).astype(np.float64)
    features = {c: b for j, c in enumerate(cols) if (b := decile_bins(X64[:, j])) is not None}
    outs = {name: b for name, v in outputs.items() if (b := decile_bins(v)) is not None}
    return {"rows": int(X.shape[0]), "features": features, "outputs": outs}


def reference_toml(ref: dict) -> str:
    """[reference] as TOML, one line per array (exact floats, shortest round-trip form)."""
    def key(name: str) -> str:
        bare = name.isascii() and name.replace("_", "").replace("-", "").isalnum()
        return name if bare else json.dumps(name)

    def floats(xs: list[float]) -> str:
        return "[" + ", ".join(repr(float(x)) for x in xs) + "]"

    lines = ["[reference]", f"rows = {int(ref['rows'])}"]
    for kind in ("features", "outputs"):
        for name, b in ref[kind].items():
            lines += ["", f"[reference.{kind}.{key(name)}]", f"edges = {floats(b['edges'])}",
                      f"shares = {floats(b['shares'])}"]
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text)["reference"] == ref, "reference does not round-trip"
    return text


# ----------------------------------------------------------------------------- registry

def make_reproducible(onx, version: int) -> None:
    """The converters name the graph with a random UUID and list opsets in set order
    (skl2onnx even lists the default domain twice); fix both so that re-training gives a
    byte-identical model.onnx (and sha256)."""
    onx.graph.name = f"fraud_v{version}"
    opsets: dict[str, int] = {}
    for o in onx.opset_import:
        opsets[o.domain] = max(o.version, opsets.get(o.domain, 0))
    del onx.opset_import[:]
    for domain, ver in sorted(opsets.items()):
        o = onx.opset_import.add()
        o.domain, o.version = domain, ver


def write_version(version: int, onx, view: dict, description: str, framework: str,
                  metrics: dict, reference: dict, models: Path = MODELS,
                  created_at: str = CREATED_AT) -> Path:
    """Write <models>/<version>/{model.onnx,manifest.toml}; the manifest ends with the
    [reference] table."""
    import tomli_w
    vdir = models / str(version)
    vdir.mkdir(parents=True, exist_ok=True)
    data = onx.SerializeToString()
    (vdir / "model.onnx").write_bytes(data)
    outs = [o.name for o in onx.graph.output]
    if "probabilities" not in outs:
        sys.exit(f"train: version {version}: no 'probabilities' output in {outs}")
    manifest = {
        "format": 1,
        "model": {
            "name": "fraud",
            "version": version,
            "description": description,
            "created_at": created_at,
            "framework": framework,
            "file": "model.onnx",
            "sha256": hashlib.sha256(data).hexdigest(),
            "backend": "tract",
            "input": {"name": "input", "dtype": "float32"},
        },
        "outputs": [
            {"name": "probability", "tensor": "probabilities", "column": 1},
            {"name": "label", "tensor": "probabilities", "argmax": True},
        ],
        "training": metrics,
        "feature_view": view,
    }
    (vdir / "manifest.toml").write_text(tomli_w.dumps(manifest) + "\n" + reference_toml(reference))
    return vdir / "model.onnx"


def write_state(production: int) -> None:
    (MODELS / "state.toml").write_text(
        "# Which version each alias serves. Written by the registry tooling; history is "
        "append-only.\n[aliases]\nproduction = %d\n" % production)


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(HERE / "build"))
    args = ap.parse_args()
    build = Path(args.build)
    binary = fti_serve_bin()
    if shutil.which(binary) is None and not Path(binary).is_file():
        sys.exit(f"train: fti-serve binary not found at {binary} (set FTI_SERVE_BIN)")

    import lightgbm
    import onnxmltools
    import onnxruntime
    import skl2onnx
    import sklearn

    base = pd.read_csv(build / "training_base.csv", usecols=["txn_id", "ts"],
                       dtype={"txn_id": str})
    ts_of = dict(zip(base["txn_id"], base["ts"]))
    split_ts = END_TS - (30 - TRAIN_DAYS) * DAY

    specs = {
        1: dict(train=train_logreg,
                description="Logistic regression card-fraud classifier "
                            "(standardisation folded into the coefficients)",
                framework=f"scikit-learn {sklearn.__version__} + skl2onnx {skl2onnx.__version__}"),
        2: dict(train=train_lightgbm,
                description="LightGBM card-fraud classifier, 50 trees",
                framework=f"lightgbm {lightgbm.__version__} + onnxmltools {onnxmltools.__version__}"),
    }
    keep = ["txn_id", "is_fraud"]
    for version, spec in specs.items():
        view_path = HERE / "feature_views" / f"fraud_v{version}.toml"
        with open(view_path, "rb") as f:
            view = tomllib.load(f)
        df = run_transform(view_path, build / "training_base.csv", build / f"train_v{version}.csv",
                           keep)
        X, cols = model_matrix(df, keep, view)
        y = df["is_fraud"].astype(int).to_numpy()
        ts = df["txn_id"].map(ts_of).to_numpy()
        tr, te = ts < split_ts, ts >= split_ts
        if version == 1 and not np.isfinite(X).all():
            bad = [c for c, ok in zip(cols, np.isfinite(X).all(axis=0)) if not ok]
            sys.exit(f"train: v1 input has non-finite values in {bad}")
        model, onx = spec["train"](X[tr], y[tr], X.shape[1])
        make_reproducible(onx, version)

        # Evaluate the exported graph itself (what will be served), not the Python model.
        tmp = build / f"model_v{version}.onnx"
        tmp.write_bytes(onx.SerializeToString())
        sess = ort_session(tmp)
        p_te = ort_probabilities(sess, X[te])[:, 1]
        p_py = model.predict_proba(X[te].astype(np.float64))[:, 1]
        auc, pr_auc = auc_scores(y[te], p_te)
        probs_tr = ort_probabilities(sess, X[tr])
        tr_auc, _ = auc_scores(y[tr], probs_tr[:, 1])
        metrics = {
            "auc": round(auc, 4),
            "pr_auc": round(pr_auc, 4),
            "train_auc": round(tr_auc, 4),
            "train_rows": int(tr.sum()),
            "test_rows": int(te.sum()),
            "train_fraud_rate": round(float(y[tr].mean()), 4),
            "test_fraud_rate": round(float(y[te].mean()), 4),
            "split": f"train on transactions before {split_ts} (first {TRAIN_DAYS} of 30 days)",
            "onnxruntime": onnxruntime.__version__,
        }
        reference = reference_section(X[tr], cols, {"probability": probs_tr[:, 1],
                                                    "label": np.argmax(probs_tr, axis=1)})
        path = write_version(version, onx, view, spec["description"], spec["framework"], metrics,
                             reference)
        g = graph_summary(onx)
        print(f"train v{version}: {len(cols)} inputs, train {tr.sum()} rows "
              f"({y[tr].sum()} fraud), test {te.sum()} rows ({y[te].sum()} fraud)")
        print(f"    AUC {auc:.4f}  PR-AUC {pr_auc:.4f}  (train AUC {tr_auc:.4f}); "
              f"max |onnx - python| {np.abs(p_te - p_py).max():.2e}")
        print(f"    graph inputs {g['inputs']} outputs {g['outputs']} opsets {g['opsets']}")
        n = write_goldens(version, view_path, view, path, build)
        print(f"    wrote {path.parent} ({path.stat().st_size} bytes model, {n} goldens)")
    write_state(production=2)


if __name__ == "__main__":
    main()
