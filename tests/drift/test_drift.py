"""Drift monitoring and the prediction log (docs/prediction-log.md) end to end: a live
fti-serve serves model `drift` (tests/fixtures/make_drift_model.py), the test sends rows
drawn from the manifest's training distributions (phase 1) and then, to a second server
with a fresh window, rows with x2 and x3 shifted (phase 2). The drift gauges must equal
an independent numpy computation of the doc's PSI over the records of the prediction log,
and the log must hold exactly what was served."""
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from drift_server import (FEATURES, MANIFEST, Server, close, draw, gauges, psi, served,
                          wait_for, window_shares)

BATCHES, BATCH_ROWS = 30, 100
ROWS = BATCHES * BATCH_ROWS
THRESHOLD = 0.2
X4_DEFAULT = next(f["default"] for f in MANIFEST["feature_view"]["request"] if f["name"] == "x4")
REFERENCE = MANIFEST["reference"]
MODEL = {"model": "drift", "version": 1}


def send(server, rng, tag, shift=None):
    """BATCHES batch requests of BATCH_ROWS rows, 10 % of rows without x4 and 3 % with x1
    exactly on one of its reference edges (float32 values: the bin boundary rule); every
    third request names its own x-request-id. Returns what was sent and answered."""
    rows = draw(rng, ROWS, shift)
    omit = rng.random(ROWS) < 0.1
    edges = REFERENCE["features"]["x1"]["edges"]
    for i in np.flatnonzero(rng.random(ROWS) < 0.03):
        rows[i]["x1"] = edges[rng.integers(len(edges))]
    requests = []
    for k in range(BATCHES):
        span = range(k * BATCH_ROWS, (k + 1) * BATCH_ROWS)
        body = {"rows": [{"entities": {"id": f"{tag}-{i}"},
                          "features": {f: v for f, v in rows[i].items() if not (f == "x4" and omit[i])}}
                         for i in span]}
        own = f"drift-{tag}-{k:03d}" if k % 3 == 0 else None
        status, headers, raw = server.request("POST", "/v1/models/drift/predict", body,
                                              {"x-request-id": own} if own else None)
        assert status == 200, raw
        rid = headers.get("x-request-id")
        if own:
            assert rid == own, "the caller's x-request-id must be echoed"
        else:
            assert rid and re.fullmatch(r"[0-9a-f]{32}", rid), f"generated request id {rid!r}"
        answer = json.loads(raw)
        assert answer["model"] == "drift" and answer["version"] == 1
        predictions = answer["predictions"]
        assert len(predictions) == BATCH_ROWS
        for i, p in zip(span, predictions):
            assert p["missing_features"] == (["x4"] if omit[i] else []), p
        requests.append(SimpleNamespace(id=rid, body=body["rows"], rows=[rows[i] for i in span],
                                        omit=[bool(omit[i]) for i in span],
                                        probability=[p["outputs"]["probability"] for p in predictions]))
    assert len({r.id for r in requests}) == BATCHES, "request ids must be unique"
    return SimpleNamespace(requests=requests, omitted=int(omit.sum()))


def run_phase(tmp_path_factory, name, seed, shift=None):
    """Starts a server with a fresh window, sends the traffic, waits until the drift window
    and the prediction log hold every row; yields them and stops the server."""
    server = Server(tmp_path_factory.mktemp(name))

    def window_rows():
        rows = gauges(server.metrics(), "fti_drift_window_rows", "model", **MODEL).get("drift")
        return rows if rows is not None and rows >= ROWS else None

    def all_records():
        records = server.log_records()
        return records if len(records) >= ROWS else None

    try:
        server.start()
        traffic = send(server, np.random.default_rng(seed), name, shift)
        rows = wait_for("fti_drift_window_rows to reach the rows sent", window_rows, 60)
        assert rows == ROWS, f"fti_drift_window_rows {rows}, sent {ROWS}"
        records = wait_for("the prediction log to hold every row", all_records, 60)
    except BaseException:
        print(f"fti-serve in {server.root}:\n{server.tail()}")
        server.stop()
        raise
    try:
        yield SimpleNamespace(server=server, traffic=traffic, records=records)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def phase1(tmp_path_factory):
    yield from run_phase(tmp_path_factory, "unshifted", 1001)


@pytest.fixture(scope="module")
def phase2(tmp_path_factory):
    sd = MANIFEST["training"]["distributions"]["x2"]["scale"]
    # x2 moves by 3 sd, which empties its lowest bins: the 1e-4 floor counts.
    shift = {"x2": lambda v: v + 3 * sd, "x3": lambda v: v * 2.0}
    yield from run_phase(tmp_path_factory, "shifted", 2002, shift)


def reference_psi(records):
    """PSI per feature and per output, computed with numpy from the log's records."""
    out = {}
    for f in FEATURES:
        values = served([r["features"][f] for r in records])
        out[f] = psi(values, **REFERENCE["features"][f])
    for o in REFERENCE["outputs"]:
        values = served([r["outputs"][o] for r in records])
        out["output:" + o] = psi(values, **REFERENCE["outputs"][o])
    return out


def scraped_psi(samples):
    out = dict(gauges(samples, "fti_drift_psi", "feature", **MODEL))
    for o, v in gauges(samples, "fti_drift_output_psi", "output", **MODEL).items():
        out["output:" + o] = v
    return out


def check_against_numpy(phase):
    """The PSI gauges equal the numpy reference (polled: the gauges refresh every second)."""
    expected = reference_psi(phase.records)
    assert set(expected) == {*FEATURES, *("output:" + o for o in REFERENCE["outputs"])}

    def matches():
        got = scraped_psi(phase.server.metrics())
        return got if set(got) == set(expected) and all(close(got[k], expected[k]) for k in got) else None

    try:
        got = wait_for("the PSI gauges to equal the numpy reference", matches, 10)
    except AssertionError:
        got = scraped_psi(phase.server.metrics())
    assert set(got) == set(expected), f"gauges {sorted(got)}, expected {sorted(expected)}"
    for k in expected:
        assert close(got[k], expected[k]), f"{k}: gauge {got[k]!r}, numpy {expected[k]!r}"
    return got


def check_output_shares(phase):
    samples = phase.server.metrics()
    for o, ref in REFERENCE["outputs"].items():
        shares = gauges(samples, "fti_drift_output_share", "bin", output=o, **MODEL)
        expected = window_shares(served([r["outputs"][o] for r in phase.records]), ref["edges"])
        assert len(shares) == len(expected), shares
        if all(b.isdigit() for b in shares):
            got = [shares[str(i)] for i in range(len(expected))]
            assert all(close(g, e) for g, e in zip(got, expected)), (got, expected)
        else:  # bins labelled otherwise: compare the values only
            assert all(close(g, e) for g, e in zip(sorted(shares.values()), sorted(expected)))


def check_missing(phase):
    samples = phase.server.metrics()
    ratios = gauges(samples, "fti_drift_missing_ratio", "feature", **MODEL)
    assert "x4" in ratios, ratios
    assert close(ratios["x4"], phase.traffic.omitted / ROWS, 1e-12), (ratios, phase.traffic.omitted)
    for f in ("x1", "x2", "x3"):
        assert ratios.get(f, 0.0) == 0.0, ratios
    dropped = [v for n, _, v in samples if n == "fti_prediction_log_dropped_total"]
    assert all(v == 0 for v in dropped), f"records dropped: {dropped}"


def check_log(phase):
    """Every row sent has exactly one record, keyed by the answer's request id and row,
    holding what was sent, served and answered."""
    by_id = {}
    for r in phase.records:
        assert (r["request_id"], r["row"]) not in by_id, f"duplicate record {r['request_id']} {r['row']}"
        by_id[(r["request_id"], r["row"])] = r
    assert len(phase.records) == ROWS
    for req in phase.traffic.requests:
        for row, (body, sent, omitted, probability) in enumerate(
                zip(req.body, req.rows, req.omit, req.probability)):
            rec = by_id.get((req.id, row))
            assert rec is not None, f"no record for request {req.id} row {row}"
            assert (rec["model"], rec["version"], rec["alias"], rec["arm"]) == \
                ("drift", 1, "production", "stable"), rec
            assert rec["entities"] == body["entities"], rec
            assert rec["request"] == body["features"], rec
            assert list(rec["features"]) == FEATURES, rec
            want = served([X4_DEFAULT if f == "x4" and omitted else sent[f] for f in FEATURES])
            assert np.array_equal(served([rec["features"][f] for f in FEATURES]), want), (rec, sent)
            assert (rec.get("missing") or []) == (["x4"] if omitted else []), rec
            assert served([rec["outputs"]["probability"]]) == served([probability]), rec
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rec["time"]), rec["time"]
            assert rec["latency_ms"] >= 0


def test_unshifted_traffic_is_not_drift(phase1):
    got = check_against_numpy(phase1)
    for f in FEATURES:
        assert got[f] < THRESHOLD, (f, got)
    samples = phase1.server.metrics()
    assert gauges(samples, "fti_drift_features_over_threshold", "model", **MODEL) == {"drift": 0}
    check_output_shares(phase1)
    check_missing(phase1)


def test_unshifted_prediction_log(phase1):
    check_log(phase1)


def test_shifted_x2_x3_drift(phase2):
    values = {f: served([r["features"][f] for r in phase2.records]) for f in FEATURES}
    assert values["x2"].mean() > 10 and values["x3"].mean() > 1.5, "the shift was not applied"
    assert window_shares(values["x2"], REFERENCE["features"]["x2"]["edges"])[0] == 0, \
        "x2's lowest bin should be empty (the share floor)"
    got = check_against_numpy(phase2)
    assert got["x2"] > THRESHOLD and got["x3"] > THRESHOLD, got
    assert got["x1"] < THRESHOLD and got["x4"] < THRESHOLD, got
    samples = phase2.server.metrics()
    assert gauges(samples, "fti_drift_features_over_threshold", "model", **MODEL) == {"drift": 2}
    check_output_shares(phase2)
    check_missing(phase2)


def test_shifted_prediction_log(phase2):
    check_log(phase2)


def test_model_lists_drifted_features(phase2):
    status, _, raw = phase2.server.get("/v1/models/drift")
    assert status == 200, raw

    def find(node):
        if isinstance(node, dict):
            if "drift" in node:
                return node["drift"]
            node = list(node.values())
        if isinstance(node, list):
            return next((d for d in map(find, node) if d is not None), None)
        return None

    drift = find(json.loads(raw))
    assert drift is not None, raw

    def name_lists(node):
        if isinstance(node, list) and all(isinstance(v, str) for v in node):
            yield sorted(node)
        for child in node.values() if isinstance(node, dict) else node if isinstance(node, list) else []:
            yield from name_lists(child)

    # The drifted features are listed (whatever else the object shows, e.g. every PSI).
    assert ["x2", "x3"] in list(name_lists(drift)), json.dumps(drift)


def test_bad_request_id_is_refused(phase2):
    row = {"entities": {"id": "x"}, "features": {"x1": 0.0, "x2": 5.0, "x3": 1.0}}
    status, _, raw = phase2.server.request("POST", "/v1/models/drift/predict", row,
                                           {"x-request-id": "a" * 129})
    assert status == 400, raw
    assert b"x-request-id" in raw, raw
