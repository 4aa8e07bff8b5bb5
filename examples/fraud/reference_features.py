#!/usr/bin/env python3
"""Independent reference for the fraud example's model input vectors.

`train.py` writes models/fraud/<N>/golden.jsonl with input vectors produced by
`fti-serve transform`, i.e. by the code under test. This module recomputes those vectors
from the raw data WITHOUT fti-serve: the precomputed group features are read from the
feature pipeline's snapshot (data/features/<group>.csv, the same rows as the .parquet
files the server loads), request values and defaults are applied as the feature view
declares them, and every on-demand feature is written out by hand in Python below, from
the documented semantics of the expression language (docs/feature-views.md):

* numbers are f64, NaN means missing and propagates through arithmetic (IEEE: x/0 = inf);
* comparisons with NaN are false; a bool feature is 1.0 / 0.0 in the input vector;
* max(a, b, ...) skips NaN arguments (all NaN gives NaN);
* clamp(x, lo, hi) keeps a NaN x as NaN;
* coalesce(a, b) is the first non-NaN argument; if(c, a, b) picks a branch;
* haversine is the great-circle distance in km with Earth radius 6371.0088 km;
* hour_of_day / day_of_week are UTC (0 = Monday), from unix seconds;
* bucketize(x, [b0, ...]) counts the boundaries <= x; NaN stays NaN;
* one_hot(s, [...]) is 1.0 at the matching category, all zeros for an unknown one.

It does NOT parse or interpret the expression strings. `EXPRESSIONS` records, per view,
the expression each hand-written feature implements, so that a change to a view that the
reference has not followed is caught (tests/example/test_reference_features.py).

Entry points:
    reference_input(version, request)    -> {column name: value (f64)}, in model input order
                                            (a one_hot feature `f` expands to `f.<category>`)
    reference_missing(version, request)  -> names of the features that took their default
    reference_vector(version, request)   -> np.float32 array, what the model is fed

`request` is a golden record's "request": {"entities": {...}, "features": {...}}.

Run as a script to print the reference vectors next to the goldens:
    python3 examples/fraud/reference_features.py [version ...]
"""

from __future__ import annotations

import bisect
import csv
import datetime as _dt
import json
import math
import sys
import tomllib
from functools import lru_cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MODELS = REPO / "models" / "fraud"
VIEWS = HERE / "feature_views"
FEATURE_DIR = HERE / "data" / "features"

NAN = math.nan
EARTH_RADIUS_KM = 6371.0088  # fixed by the expression-language spec
DAY_S = 86400.0

# ----------------------------------------------------------------------------- semantics
# Small helpers with the expression language's IEEE semantics. Python's own operators
# raise on x/0 and log1p(-1), and builtin max()/min() are order-dependent with NaN, so
# none of those are used directly on feature values.


def is_nan(x: float) -> bool:
    return x != x


def div(a: float, b: float) -> float:
    with np.errstate(all="ignore"):
        return float(np.float64(a) / np.float64(b))


def log1p(x: float) -> float:
    with np.errstate(all="ignore"):
        return float(np.log1p(np.float64(x)))


def nan_max(*xs: float) -> float:
    """max() of the language: NaN arguments are skipped; all NaN gives NaN."""
    present = [x for x in xs if not is_nan(x)]
    if not present:
        return NAN
    best = present[0]
    for x in present[1:]:
        if x > best:
            best = x
    return best


def clamp(x: float, lo: float, hi: float) -> float:
    if is_nan(x):
        return NAN
    if x < lo:
        x = lo
    if x > hi:
        x = hi
    return x


def coalesce(*xs: float) -> float:
    for x in xs:
        if not is_nan(x):
            return x
    return NAN


def boolean(b: bool) -> float:
    return 1.0 if b else 0.0


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance. Written in the atan2 form (the server uses asin); the two are
    the same function, and agree to ~1e-15 relative away from antipodes."""
    if any(is_nan(v) for v in (lat1, lon1, lat2, lon2)):
        return NAN
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    a = min(max(a, 0.0), 1.0)
    return EARTH_RADIUS_KM * 2.0 * math.atan2(math.sqrt(a), math.sqrt(1.0 - a))


def _utc(ts: float) -> _dt.datetime | None:
    if is_nan(ts) or math.isinf(ts):
        return None
    # Hours and days change on whole seconds, so the second that contains ts has the same
    # hour and weekday as ts (and timedelta would round a sub-microsecond offset away).
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=math.floor(ts))


def hour_of_day(ts: float) -> float:
    t = _utc(ts)
    return NAN if t is None else float(t.hour)


def day_of_week(ts: float) -> float:
    """0 = Monday ... 6 = Sunday, UTC."""
    t = _utc(ts)
    return NAN if t is None else float(t.weekday())


def bucketize(x: float, bounds: list[float]) -> float:
    if is_nan(x):
        return NAN
    return float(bisect.bisect_right(bounds, x))


def one_hot(s: str, categories: list[str]) -> list[float]:
    return [1.0 if s == c else 0.0 for c in categories]


# ----------------------------------------------------------------------------- features

CATEGORIES = ["grocery", "restaurant", "travel", "online", "electronics", "gas"]
AMOUNT_BUCKETS = [5.0, 20.0, 50.0, 150.0, 500.0, 1500.0]


def on_demand_v1(v: dict) -> dict:
    """fraud_v1 (logistic regression): finite defaults; timestamps of 0 mean "unknown"."""
    out: dict = {}
    amount, lat, lon, ts = v["amount"], v["lat"], v["lon"], v["ts"]
    avg, std = v["amount_avg_30d"], v["amount_std_30d"]

    out["log_amount"] = log1p(amount)
    out["log_amount_ratio_30d"] = log1p(div(amount, nan_max(avg, 1.0)))
    out["amount_z_30d"] = clamp(div(amount - avg, nan_max(std, 0.5 * avg, 1.0)), -5.0, 20.0)
    out["amount_to_limit"] = clamp(div(amount, nan_max(v["credit_limit"], 100.0)), 0.0, 2.0)
    out["log_spend_24h"] = log1p(v["amount_sum_24h"] + amount)
    known_card = v["card_created_ts"] > 0
    has_history = v["last_txn_ts"] > 0
    out["known_card"] = boolean(known_card)
    out["has_history"] = boolean(has_history)
    km_home = haversine_km(v["home_lat"], v["home_lon"], lat, lon) if known_card else 0.0
    out["km_from_home"] = km_home
    out["log_km_from_home"] = log1p(km_home)
    km_last = haversine_km(v["last_lat"], v["last_lon"], lat, lon) if has_history else 0.0
    out["km_from_last"] = km_last
    out["log_km_from_last"] = log1p(km_last)
    secs = ts - v["last_txn_ts"]
    out["seconds_since_last"] = secs
    out["log_minutes_since_last"] = log1p(clamp(div(secs, 60.0), 0.0, 43200.0))
    if has_history:
        speed = clamp(div(km_last, nan_max(div(secs, 3600.0), 0.25)), 0.0, 2000.0)
    else:
        speed = 0.0
    out["speed_kmh"] = speed
    out["log_speed_kmh"] = log1p(speed)
    hour = hour_of_day(ts)
    out["hour"] = hour
    out["is_night"] = boolean(hour < 6)
    new_card = (not known_card) or (ts - v["card_created_ts"] < 30 * DAY_S)
    out["is_new_card"] = boolean(new_card)
    out["category"] = one_hot(v["merchant_category"], CATEGORIES)
    return out


def on_demand_v2(v: dict) -> dict:
    """fraud_v2 (LightGBM): NaN defaults, and NaN flows through to the model."""
    out: dict = {}
    amount, lat, lon, ts = v["amount"], v["lat"], v["lon"], v["ts"]
    avg, std, limit = v["amount_avg_30d"], v["amount_std_30d"], v["credit_limit"]

    out["log_amount"] = log1p(amount)
    out["amount_ratio_30d"] = NAN if is_nan(avg) else div(amount, nan_max(avg, 1.0))
    out["amount_z_30d"] = div(amount - avg, nan_max(std, 0.5 * avg, 1.0))
    out["amount_to_limit"] = div(amount, limit) if limit > 0 else NAN
    out["amount_bucket"] = bucketize(amount, AMOUNT_BUCKETS)
    out["spend_24h"] = v["amount_sum_24h"] + amount
    out["km_from_home"] = haversine_km(v["home_lat"], v["home_lon"], lat, lon)
    prev_ts = coalesce(v["last_txn_ts"], v["card_created_ts"])
    out["prev_ts"] = prev_ts
    km_last = haversine_km(coalesce(v["last_lat"], v["home_lat"]),
                           coalesce(v["last_lon"], v["home_lon"]), lat, lon)
    out["km_from_last"] = km_last
    secs = ts - prev_ts
    out["seconds_since_last"] = secs
    if is_nan(prev_ts):
        out["speed_kmh"] = NAN
    else:
        out["speed_kmh"] = clamp(div(km_last, nan_max(div(secs, 3600.0), 0.25)), 0.0, 2000.0)
    out["card_age_days"] = div(ts - v["card_created_ts"], DAY_S)
    hour = hour_of_day(ts)
    out["hour"] = hour
    out["weekday"] = day_of_week(ts)
    out["is_night"] = boolean(hour < 6)
    out["category"] = one_hot(v["merchant_category"], CATEGORIES)
    return out


ON_DEMAND = {"fraud_v1": on_demand_v1, "fraud_v2": on_demand_v2}

# The expression each hand-written feature above implements, per view, in definition
# order. Only compared with the view (to catch a view that changed under the reference),
# never evaluated.
_ONE_HOT = "one_hot(merchant_category, ['grocery', 'restaurant', 'travel', 'online', 'electronics', 'gas'])"
EXPRESSIONS = {
    "fraud_v1": {
        "log_amount": "log1p(amount)",
        "log_amount_ratio_30d": "log1p(amount / max(amount_avg_30d, 1))",
        "amount_z_30d": "clamp((amount - amount_avg_30d) / max(amount_std_30d, 0.5 * amount_avg_30d, 1), -5, 20)",
        "amount_to_limit": "clamp(amount / max(credit_limit, 100), 0, 2)",
        "log_spend_24h": "log1p(amount_sum_24h + amount)",
        "known_card": "card_created_ts > 0",
        "has_history": "last_txn_ts > 0",
        "km_from_home": "if(known_card, haversine(home_lat, home_lon, lat, lon), 0)",
        "log_km_from_home": "log1p(km_from_home)",
        "km_from_last": "if(has_history, haversine(last_lat, last_lon, lat, lon), 0)",
        "log_km_from_last": "log1p(km_from_last)",
        "seconds_since_last": "seconds_between(last_txn_ts, ts)",
        "log_minutes_since_last": "log1p(clamp(seconds_since_last / 60, 0, 43200))",
        "speed_kmh": "if(has_history, clamp(km_from_last / max(seconds_since_last / 3600, 0.25), 0, 2000), 0)",
        "log_speed_kmh": "log1p(speed_kmh)",
        "hour": "hour_of_day(ts)",
        "is_night": "hour < 6",
        "is_new_card": "not known_card or seconds_between(card_created_ts, ts) < 30 * 86400",
        "category": _ONE_HOT,
    },
    "fraud_v2": {
        "log_amount": "log1p(amount)",
        "amount_ratio_30d": "if(is_missing(amount_avg_30d), nan, amount / max(amount_avg_30d, 1))",
        "amount_z_30d": "(amount - amount_avg_30d) / max(amount_std_30d, 0.5 * amount_avg_30d, 1)",
        "amount_to_limit": "if(credit_limit > 0, amount / credit_limit, nan)",
        "amount_bucket": "bucketize(amount, [5, 20, 50, 150, 500, 1500])",
        "spend_24h": "amount_sum_24h + amount",
        "km_from_home": "haversine(home_lat, home_lon, lat, lon)",
        "prev_ts": "coalesce(last_txn_ts, card_created_ts)",
        "km_from_last": "haversine(coalesce(last_lat, home_lat), coalesce(last_lon, home_lon), lat, lon)",
        "seconds_since_last": "seconds_between(prev_ts, ts)",
        "speed_kmh": "if(is_missing(prev_ts), nan, clamp(km_from_last / max(seconds_since_last / 3600, 0.25), 0, 2000))",
        "card_age_days": "seconds_between(card_created_ts, ts) / 86400",
        "hour": "hour_of_day(ts)",
        "weekday": "day_of_week(ts)",
        "is_night": "hour < 6",
        "category": _ONE_HOT,
    },
}
VECTOR_LABELS = {"category": CATEGORIES}  # on-demand features that are one_hot vectors

# ----------------------------------------------------------------------------- inputs


@lru_cache(maxsize=None)
def load_view(version: int) -> dict:
    """The feature view a model version is served with: its manifest's [feature_view]."""
    with open(MODELS / str(version) / "manifest.toml", "rb") as f:
        return tomllib.load(f)["feature_view"]


@lru_cache(maxsize=None)
def load_group(name: str) -> dict[str, dict[str, str]]:
    """The online snapshot of one group: entity key -> {feature: raw cell}. An empty cell
    is a missing value (features.py writes NaN/None as empty; Parquet has null there)."""
    with open(FEATURE_DIR / f"{name}.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {row[0]: dict(zip(header[1:], row[1:])) for row in body}


def _stored(raw: str, dtype: str) -> float:
    if dtype == "int":
        return float(int(raw)) if raw.lstrip("-").isdigit() else _integral(float(raw))
    if dtype == "float":
        return float(raw)
    raise ValueError(f"unsupported stored dtype {dtype}")


def _integral(x: float) -> float:
    if not x.is_integer():
        raise ValueError(f"expected an integer, got {x}")
    return x


def _default(field: dict):
    if "default" not in field:
        return None
    d = field["default"]
    if field["dtype"] in ("float", "int"):
        return float(d)
    return d


def _request_value(value, dtype: str):
    if dtype == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if dtype == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return float(value)
    if dtype == "string":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    if dtype == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected a bool, got {value!r}")
        return boolean(value)
    raise ValueError(f"unknown dtype {dtype}")


def gather_inputs(view: dict, request: dict) -> tuple[dict, list[str]]:
    """Request and group feature values, defaults applied, and the names that took their
    default (request features first, then group features in view order)."""
    values: dict = {}
    missing: list[str] = []
    given = request.get("features", {})
    for field in view["request"]:
        name = field["name"]
        if given.get(name) is None:
            d = _default(field)
            if d is None:
                raise KeyError(f"request feature {name} is required")
            values[name] = d
            missing.append(name)
        else:
            values[name] = _request_value(given[name], field["dtype"])
    entities = request["entities"]
    for group in view["groups"]:
        key = ":".join(str(entities[e]) for e in group["entities"])
        row = load_group(group["name"]).get(key)
        if row is None and group.get("on_missing", "default") == "error":
            raise KeyError(f"{group['name']}: entity {key} not found")
        for field in group["features"]:
            name = field["name"]
            raw = "" if row is None else row.get(name, "")
            if raw == "":
                d = _default(field)
                if d is None:
                    raise KeyError(f"{group['name']}.{name} missing for {key} and has no default")
                values[name] = d
                missing.append(name)
            else:
                values[name] = _stored(raw, field["dtype"])
    return values, missing


def input_names(view: dict) -> list[str]:
    cols = []
    for name in view["input"]:
        if name in VECTOR_LABELS:
            cols += [f"{name}.{c}" for c in VECTOR_LABELS[name]]
        else:
            cols.append(name)
    return cols


def reference_input(version: int, request: dict) -> dict[str, float]:
    """The model input vector by column name, in order, as f64."""
    view = load_view(version)
    values, _ = gather_inputs(view, request)
    computed = ON_DEMAND[view["name"]](values)
    everything = {**values, **computed}
    out: dict[str, float] = {}
    for name in view["input"]:
        v = everything[name]
        if name in VECTOR_LABELS:
            for label, x in zip(VECTOR_LABELS[name], v, strict=True):
                out[f"{name}.{label}"] = float(x)
        else:
            if isinstance(v, str):
                raise TypeError(f"{name} is a string; it cannot feed the model")
            out[name] = float(v)
    return out


def reference_missing(version: int, request: dict) -> list[str]:
    return gather_inputs(load_view(version), request)[1]


def reference_vector(version: int, request: dict) -> np.ndarray:
    """What the model is fed: the input vector as float32."""
    return np.array(list(reference_input(version, request).values()), dtype=np.float64).astype(np.float32)


def golden_records(version: int) -> list[dict]:
    text = (MODELS / str(version) / "golden.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def versions() -> list[int]:
    return sorted(int(p.parent.name) for p in MODELS.glob("*/golden.jsonl"))


def main(argv: list[str]) -> None:
    for version in [int(a) for a in argv] or versions():
        for i, rec in enumerate(golden_records(version)):
            ref = reference_input(version, rec["request"])
            print(f"v{version} #{i} {rec['request']['entities']}")
            for (name, r), g in zip(ref.items(), rec["input"], strict=True):
                g = NAN if g is None else g
                print(f"    {name:28s} ref {np.float32(r)!s:>14}  golden {np.float32(g)!s:>14}")


if __name__ == "__main__":
    main(sys.argv[1:])
