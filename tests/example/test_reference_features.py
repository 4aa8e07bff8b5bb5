"""The committed golden input vectors (models/fraud/<N>/golden.jsonl) against an
independent reference.

The goldens' "input" vectors are written by train.py from `fti-serve transform`, the code
that serving shares, so the Rust tests that compare serving with them show only that
serving equals the CLI. Here every vector is recomputed from the raw feature snapshot and
the request by examples/fraud/reference_features.py, a hand-written Python/numpy
implementation of each on-demand feature that never runs fti-serve, and compared column
by column. The features that took their defaults ("missing_features") are compared too.
"""
import math
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

# The reference lives next to the example. No conftest.py for this: tests/oip imports
# `golden` from its own conftest by module name, which a second conftest.py would shadow
# when both folders run in one pytest session.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fraud"))
import reference_features as rf  # noqa: E402

# Tolerance. The model input is float32: the goldens hold the f32 rounding of the f64
# values the Rust code computed. The reference does the same arithmetic in f64 but with a
# different libm and, for haversine, a different (atan2) form of the formula, so its f64
# results may differ from Rust's by a few ulps; after both are rounded to f32 that can
# move a value by at most one f32 ulp (about 6e-8 relative). rel 1e-6 leaves margin for
# that and is far below any real feature change. Features that are exactly 0 are 0 in
# both (same points give a = 0 in either haversine form), so the absolute tolerance only
# guards values at the f32 noise floor around zero.
REL_TOL = 1e-6
ABS_TOL = 1e-9

VERSIONS = rf.versions()
RECORDS = [(v, i, rec) for v in VERSIONS for i, rec in enumerate(rf.golden_records(v))]


def _golden_vector(rec) -> np.ndarray:
    # JSON has no NaN: null = NaN (a missing value, v2 only)
    return np.array([math.nan if x is None else x for x in rec["input"]], dtype=np.float32)


def mismatches(names, ref: np.ndarray, golden: np.ndarray) -> list[str]:
    """Every column where the reference and the golden disagree (NaN only equals NaN)."""
    if len(ref) != len(golden) or len(names) != len(golden):
        return [f"width: reference {len(ref)} ({len(names)} names), golden {len(golden)}"]
    bad = []
    for name, r, g in zip(names, ref.astype(np.float64), golden.astype(np.float64)):
        if math.isnan(r) or math.isnan(g):
            ok = math.isnan(r) and math.isnan(g)
        else:
            ok = abs(r - g) <= ABS_TOL + REL_TOL * abs(g)
        if not ok:
            bad.append(f"{name}: reference {r!r}, golden {g!r}")
    return bad


def _nan_free(x):
    """A TOML value with NaN replaced by a marker, so that equal views compare equal."""
    if isinstance(x, float) and math.isnan(x):
        return "<nan>"
    if isinstance(x, dict):
        return {k: _nan_free(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_free(v) for v in x]
    return x


def test_there_are_goldens_for_both_versions():
    assert VERSIONS == [1, 2]
    assert all(len(rf.golden_records(v)) > 0 for v in VERSIONS)


@pytest.mark.parametrize("version", VERSIONS)
def test_manifest_view_is_the_example_view(version):
    """The reference reads the served view (the manifest's); it must be the example's."""
    with open(rf.VIEWS / f"fraud_v{version}.toml", "rb") as f:
        standalone = tomllib.load(f)
    assert _nan_free(rf.load_view(version)) == _nan_free(standalone)


@pytest.mark.parametrize("version", VERSIONS)
def test_reference_implements_exactly_the_views_expressions(version):
    """A view whose on-demand features changed since the reference was written fails
    here, naming the feature, rather than being compared against stale code."""
    view = rf.load_view(version)
    in_view = [(od["name"], od["expr"].strip()) for od in view["on_demand"]]
    assert in_view == list(rf.EXPRESSIONS[view["name"]].items())
    # ... and the hand-written function computes exactly those features
    computed = rf.ON_DEMAND[view["name"]](rf.gather_inputs(view, RECORDS[0][2]["request"])[0])
    assert list(computed) == [name for name, _ in in_view]
    declared = {f["name"] for g in view["groups"] for f in g["features"]}
    declared |= {r["name"] for r in view["request"]} | set(computed)
    assert set(view["input"]) <= declared


def test_semantics_known_answers():
    # haversine: Stockholm -> Gothenburg (the spec's reference distance), same point, NaN
    assert rf.haversine_km(59.3293, 18.0686, 57.7089, 11.9746) == pytest.approx(396.8929665787369, abs=1e-9)
    assert rf.haversine_km(10.0, 20.0, 10.0, 20.0) == 0.0
    assert rf.haversine_km(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * 6371.0088, abs=1e-6)
    assert math.isnan(rf.haversine_km(math.nan, 0.0, 0.0, 0.0))
    # hour / weekday in UTC (0 = Monday)
    for ts, hour, dow in [(1_764_000_000, 16, 0), (1_700_000_000, 22, 1), (951_782_400, 0, 1),
                          (0, 0, 3), (-1, 23, 2), (-86_400.5, 23, 1), (-1e-9, 23, 2)]:
        assert (rf.hour_of_day(ts), rf.day_of_week(ts)) == (hour, dow), ts
    assert math.isnan(rf.hour_of_day(math.nan)) and math.isnan(rf.day_of_week(math.inf))
    # max skips NaN, clamp keeps NaN, bucketize counts boundaries at or below x
    assert rf.nan_max(math.nan, 3.0, 1.0) == 3.0 and math.isnan(rf.nan_max(math.nan, math.nan))
    assert math.isnan(rf.clamp(math.nan, 0, 1)) and rf.clamp(5.0, 0.0, 1.0) == 1.0
    b = [5.0, 20.0, 50.0, 150.0, 500.0, 1500.0]
    assert [rf.bucketize(x, b) for x in (4.99, 5.0, 19.99, 1500.0, 1e9)] == [0, 1, 1, 6, 6]
    assert math.isnan(rf.bucketize(math.nan, b))
    assert rf.div(1.0, 0.0) == math.inf and math.isnan(rf.div(0.0, 0.0))
    assert rf.one_hot("unknown", rf.CATEGORIES) == [0.0] * 6


@pytest.mark.parametrize("version,index,rec", RECORDS, ids=[f"v{v}-{i}" for v, i, _ in RECORDS])
def test_golden_input_vector_matches_reference(version, index, rec):
    ref = rf.reference_input(version, rec["request"])
    names = list(ref)
    assert names == rf.input_names(rf.load_view(version))
    vec = np.array(list(ref.values()), dtype=np.float64).astype(np.float32)
    bad = mismatches(names, vec, _golden_vector(rec))
    assert not bad, f"v{version} golden #{index} {rec['request']}:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("version,index,rec", RECORDS, ids=[f"v{v}-{i}" for v, i, _ in RECORDS])
def test_golden_missing_features_match_reference(version, index, rec):
    assert rf.reference_missing(version, rec["request"]) == rec["missing_features"]


def test_every_column_of_every_golden_is_compared():
    """Changing any single golden value, numbers and NaN alike, is detected, so the
    comparison above really covers every feature of every record."""
    compared = 0
    for version, _, rec in RECORDS:
        ref = rf.reference_input(version, rec["request"])
        names, vec = list(ref), rf.reference_vector(version, rec["request"])
        golden = _golden_vector(rec)
        assert not mismatches(names, vec, golden)
        for k in range(len(golden)):
            if math.isnan(golden[k]):
                changes = [0.0, 1.0]  # missing -> a value
            else:  # a value -> 10 ppm off (10x the tolerance), or missing
                changes = [golden[k] * 1.00001 + 1e-5, math.nan]
            for value in changes:
                g = golden.copy()
                g[k] = np.float32(value)
                bad = mismatches(names, vec, g)
                assert len(bad) == 1 and bad[0].startswith(names[k] + ":"), (names[k], value, bad)
            compared += 1
    assert compared == sum(len(rec["input"]) for _, _, rec in RECORDS)


@pytest.mark.parametrize("version", VERSIONS)
def test_perturbed_requests_no_longer_match(version):
    """The reference is sensitive to its inputs: a changed request or entity gives a
    vector that fails the same comparison against the golden."""
    rec = rf.golden_records(version)[0]  # the documented example, a card with history
    req = rec["request"]
    golden = _golden_vector(rec)

    def changed(features=None, entity=None):
        r = {"entities": dict(req["entities"]), "features": dict(req["features"])}
        r["features"].update(features or {})
        if entity:
            r["entities"]["cc_num"] = entity
        ref = rf.reference_input(version, r)
        return mismatches(list(ref), rf.reference_vector(version, r), golden)

    f = req["features"]
    assert changed({"amount": f["amount"] * 1.01})
    assert changed({"ts": f["ts"] + 7 * 3600})
    assert changed({"lat": f["lat"] + 0.5})
    assert changed({"merchant_category": "travel"})
    assert changed(entity="4111000000000002")
    assert changed(entity="4999000000000000")  # not in the store: defaults
