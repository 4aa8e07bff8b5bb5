#!/usr/bin/env python3
"""Feature pipeline: card_profile and card_activity, keyed by cc_num.

Reads build/transactions.csv and build/cards.csv (from generate.py) and writes

* build/training_base.csv: one row per transaction with the label, the request-time
  values and every group feature as it was known strictly BEFORE that transaction
  (point-in-time correct, no leakage). Empty cell = missing.
* data/features/card_profile.{csv,parquet} and data/features/card_activity.{csv,parquet}:
  the online snapshot as of the end of the data (2025-11-23 00:00:00 UTC), one row per
  card, which is what gets loaded into the online store.

Feature definitions (as of time t, over the card's transactions with ts < t):
  card_profile:  home_lat, home_lon, card_created_ts (unix s), credit_limit
  card_activity: txn_count_1h, txn_count_24h   transactions in [t-1h, t), [t-24h, t)
                 amount_sum_24h                sum of amounts in [t-24h, t) (0 if none)
                 amount_avg_30d, amount_std_30d mean / sample std (ddof=1) in [t-30d, t);
                                               missing with fewer than 1 / 2 transactions
                 last_txn_ts, last_lat, last_lon  the latest transaction before t; missing
                                               if there is none
Values are rounded (amounts 4 decimals, coordinates 5) identically in the training base
and the snapshot, so training and serving see the same numbers.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
END_TS = 1763856000  # snapshot time: 2025-11-23 00:00:00 UTC

# (name, kind) in publication order; kind: "float" -> double, "int" -> int64
PROFILE_FEATURES = [
    ("home_lat", "float"),
    ("home_lon", "float"),
    ("card_created_ts", "float"),
    ("credit_limit", "float"),
]
ACTIVITY_FEATURES = [
    ("txn_count_1h", "int"),
    ("txn_count_24h", "int"),
    ("amount_sum_24h", "float"),
    ("amount_avg_30d", "float"),
    ("amount_std_30d", "float"),
    ("last_txn_ts", "float"),
    ("last_lat", "float"),
    ("last_lon", "float"),
]
REQUEST_COLUMNS = ["amount", "lat", "lon", "ts", "merchant_category"]


def fmt(v) -> str:
    """Canonical CSV text: empty for missing, integers without '.0', shortest float repr."""
    if v is None:
        return ""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return ""
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def activity_at(ts: np.ndarray, amt: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                i: int, t: float) -> dict:
    """card_activity as of time t, from the first i transactions (all with ts < t)."""
    def since(w: int) -> int:
        return int(np.searchsorted(ts[:i], t - w, side="left"))

    j1, j24, j30 = since(3600), since(86400), since(30 * 86400)
    win30 = amt[j30:i]
    out = {
        "txn_count_1h": i - j1,
        "txn_count_24h": i - j24,
        "amount_sum_24h": round(float(amt[j24:i].sum()), 4) if i > j24 else 0.0,
        "amount_avg_30d": round(float(win30.mean()), 4) if len(win30) >= 1 else None,
        "amount_std_30d": round(float(win30.std(ddof=1)), 4) if len(win30) >= 2 else None,
        "last_txn_ts": float(ts[i - 1]) if i > 0 else None,
        "last_lat": float(lat[i - 1]) if i > 0 else None,
        "last_lon": float(lon[i - 1]) if i > 0 else None,
    }
    return out


def write_group(out_dir: Path, name: str, features: list[tuple[str, str]],
                rows: list[dict]) -> None:
    cols = ["cc_num"] + [f for f, _ in features]
    with open(out_dir / f"{name}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([r["cc_num"]] + [fmt(r[c]) for c, _ in features])
    arrays = [pa.array([r["cc_num"] for r in rows], type=pa.string())]
    fields = [pa.field("cc_num", pa.string(), nullable=False)]
    for c, kind in features:
        typ = pa.int64() if kind == "int" else pa.float64()
        vals = [None if r[c] is None else (int(r[c]) if kind == "int" else float(r[c]))
                for r in rows]
        arrays.append(pa.array(vals, type=typ))
        fields.append(pa.field(c, typ, nullable=True))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    pq.write_table(table, out_dir / f"{name}.parquet", compression="snappy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(HERE / "build"))
    ap.add_argument("--features-out", default=str(HERE / "data" / "features"))
    args = ap.parse_args()
    build = Path(args.build)
    feat_dir = Path(args.features_out)
    feat_dir.mkdir(parents=True, exist_ok=True)

    with open(build / "cards.csv", newline="") as f:
        cards = {r["cc_num"]: r for r in csv.DictReader(f)}
    profiles = {}
    for cc, r in cards.items():
        profiles[cc] = {
            "cc_num": cc,
            "home_lat": float(r["home_lat"]),
            "home_lon": float(r["home_lon"]),
            "card_created_ts": float(r["card_created_ts"]),
            "credit_limit": float(r["credit_limit"]),
        }

    with open(build / "transactions.csv", newline="") as f:
        txns = list(csv.DictReader(f))
    by_card: dict[str, list[dict]] = {cc: [] for cc in cards}
    for r in txns:
        by_card[r["cc_num"]].append(r)

    base_rows: dict[int, list[str]] = {}
    activity_rows = []
    for cc in sorted(cards):
        rs = sorted(by_card[cc], key=lambda r: int(r["ts"]))
        ts = np.array([float(r["ts"]) for r in rs])
        amt = np.array([float(r["amount"]) for r in rs])
        lat = np.array([float(r["lat"]) for r in rs])
        lon = np.array([float(r["lon"]) for r in rs])
        if len(ts) > 1 and np.any(np.diff(ts) <= 0):
            raise SystemExit(f"card {cc}: transactions must have distinct timestamps")
        prof = profiles[cc]
        for i, r in enumerate(rs):
            act = activity_at(ts, amt, lat, lon, i, ts[i])
            row = [r["txn_id"], r["is_fraud"], cc, r["amount"], r["lat"], r["lon"], r["ts"],
                   r["merchant_category"]]
            row += [fmt(prof[c]) for c, _ in PROFILE_FEATURES]
            row += [fmt(act[c]) for c, _ in ACTIVITY_FEATURES]
            base_rows[int(r["txn_id"])] = row
        snap = activity_at(ts, amt, lat, lon, len(ts), float(END_TS))
        snap["cc_num"] = cc
        activity_rows.append(snap)

    header = (["txn_id", "is_fraud", "cc_num"] + REQUEST_COLUMNS
              + [c for c, _ in PROFILE_FEATURES] + [c for c, _ in ACTIVITY_FEATURES])
    with open(build / "training_base.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for k in sorted(base_rows):
            w.writerow(base_rows[k])

    write_group(feat_dir, "card_profile", PROFILE_FEATURES,
                [profiles[cc] for cc in sorted(profiles)])
    write_group(feat_dir, "card_activity", ACTIVITY_FEATURES, activity_rows)
    n_hist = sum(1 for r in activity_rows if r["last_txn_ts"] is not None)
    print(f"features: training_base {len(base_rows)} rows; snapshot as of {END_TS}: "
          f"{len(profiles)} profiles, {len(activity_rows)} activity rows "
          f"({len(activity_rows) - n_hist} without history) -> {feat_dir}")


if __name__ == "__main__":
    main()
