"""fti-serve reads the Redis online store that real Feast (0.67.0) wrote, feature by
feature, as Feast's own `get_online_features` does.

Feast answers None both for a null value and for an entity it never wrote (status
PRESENT either way), and does not apply a view's ttl on reads; fti-serve tells them apart
("found" / "not_found" / "stale"). So the expected status comes from the `_ts:<view>`
field that Feast stored (read raw from Redis at Feast's own key, `_redis_key`), and the
expected values from Feast. Values are compared by feature name, Float64 exactly, Float32
as float32, integers as the server carries numbers (f64: exact to 2**53), event timestamps
to the microsecond.
"""
import json
import math
import re
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import numpy as np
import pytest

import feast_e2e as e2e

FORMAT_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MAX_SHOWN = 40  # mismatches listed in one failure message
STALE_METRIC = "fti_feature_stale_reads_total"
VALUE_ERRORS_METRIC = "fti_stored_value_errors_total"


# ---------------------------------------------------------------- helpers


def feast_key(project, group, key_values, key_types=None):
    """Feast's Redis key for `group`'s entity (its own serializer)."""
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key_types = key_types or group["key_types"]
    values = []
    for name, v in zip(group["entities"], key_values):
        kind = key_types[name]
        values.append(Value(string_val=v) if kind == "string" else Value(int64_val=v) if kind == "int64"
                      else Value(int32_val=v))
    return _redis_key(project, EntityKey(join_keys=list(group["entities"]), entity_values=values), 3)


def stored_ts(redis_client, group, key_values):
    """The (seconds, nanos) of `_ts:<view>` Feast stored for the entity, or None."""
    from google.protobuf.timestamp_pb2 import Timestamp

    raw = redis_client.hget(feast_key(e2e.PROJECT, group, key_values), f"_ts:{group['view']}")
    if raw is None:
        return None
    ts = Timestamp()
    ts.ParseFromString(raw)
    return ts.seconds, ts.nanos


def rfc3339(ts):
    seconds, nanos = ts
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"


def micros(dt):
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def feast_online(store, rows):
    """Feast's answer per entity row: {feature: value} (to_dict, by feature name)."""
    d = store.get_online_features(features=e2e.FEAST_REFS, entity_rows=rows).to_dict()
    return [{f: d[f][i] for f in e2e.FEATURE_TYPE} for i in range(len(rows))]


def describe(row):
    return f"driver_id={row['driver_id']!r} zone_id={row['zone_id']} customer_id={row['customer_id']!r}"


def request_entities(row):
    return {"driver_id": row["driver_id"], "zone_id": str(row["zone_id"]), "customer_id": row["customer_id"]}


def predict(base, model, row):
    body = json.dumps({"entities": request_entities(row), "features": {}, "return_features": True}).encode()
    req = urllib.request.Request(f"{base}/v1/models/{model}/predict", data=body,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:2000].decode(errors="replace")


def metric_sum(base, name, group):
    """The sum of `name` over its series labelled group="<group>" (0 when absent)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and f'group="{group}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def same_value(feature, ours, theirs):
    """fti-serve's JSON value of a feature against Feast's Python value."""
    dtype, feast_type = e2e.FEATURE_TYPE[feature]
    if theirs is None:
        return ours is None
    if ours is None:
        return False
    if dtype == "bool":
        return isinstance(ours, bool) and ours == theirs
    if dtype == "int":
        # The server carries every number as an f64 (documented): ints are exact to 2**53.
        return type(ours) is int and float(ours) == float(theirs)
    if dtype == "string":
        return isinstance(ours, str) and ours == theirs
    if isinstance(ours, bool) or not isinstance(ours, (int, float)):
        return False
    if feast_type == "float32":
        return np.float32(ours) == np.float32(theirs)
    return float(ours) == float(theirs)


def as_input(feature, value):
    """A feature value as the model input vector holds it (f64; bool 1.0/0.0)."""
    return float(value)


def same_input(feature, ours, expected):
    if ours is None or isinstance(ours, bool) or not isinstance(ours, (int, float)):
        return False
    if e2e.FEATURE_TYPE[feature][1] == "float32":
        return np.float32(ours) == np.float32(expected)
    return float(ours) == expected


def fail_if_any(problems):
    if problems:
        shown = "\n".join(problems[:MAX_SHOWN])
        more = f"\n... and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
        pytest.fail(f"{len(problems)} mismatches:\n{shown}{more}", pytrace=False)


def expectations(feast_repo, redis_client, rows):
    """Per entity row and group: (status, stored (seconds, nanos) or None, Feast's values)."""
    _, _, store = feast_repo
    answers = feast_online(store, rows)
    now_ms = time.time() * 1000
    out = []
    for row, answer in zip(rows, answers):
        per_group = {}
        for g in e2e.GROUPS:
            ts = stored_ts(redis_client, g, e2e.group_key(g, row))
            if ts is None:
                status = "not_found"
            elif g["max_age_ms"] is not None and now_ms - (ts[0] * 1000 + ts[1] / 1e6) > g["max_age_ms"]:
                status = "stale"
            else:
                status = "found"
            values = {f: answer[f] for (f, _, _, _) in g["features"]}
            # Feast answers None for whatever it never wrote: no `_ts`, no value.
            assert ts is not None or all(v is None for v in values.values()), (describe(row), g["name"], values)
            per_group[g["name"]] = (status, ts, values)
        out.append(per_group)
    return out


# ---------------------------------------------------------------- Feast alone


def test_feast_wrote_what_was_generated(feast_repo, redis_client):
    """The fixture itself: Feast's answers and stored timestamps are the generated rows
    (unknown entities: None everywhere and no `_ts`). Needs no fti-serve."""
    _, now, store = feast_repo
    source = e2e.source_values(now)
    rows = e2e.entity_rows()
    answers = feast_online(store, rows)
    problems, lines = [], []
    for row, answer in zip(rows, answers):
        shown = []
        for g in e2e.GROUPS:
            key = e2e.group_key(g, row)
            src = source[g["name"]].get(key)
            ts = stored_ts(redis_client, g, key)
            if src is None:
                if ts is not None:
                    problems.append(f"{describe(row)} {g['name']}: `_ts` stored for an entity never written")
            elif ts is None or ts[0] * 1_000_000 + ts[1] // 1000 != micros(src["_event_timestamp"]):
                problems.append(f"{describe(row)} {g['name']}: `_ts` {ts} is not {src['_event_timestamp']}")
            for (f, _, _, _) in g["features"]:
                want = None if src is None else src[f]
                if not same_value(f, want, answer[f]):
                    problems.append(f"{describe(row)} {g['name']}.{f}: Feast answered {answer[f]!r}, generated {want!r}")
            shown.append(f"{g['name']}[{'-' if ts is None else rfc3339(ts)}] "
                         + " ".join(f"{f}={answer[f]!r}" for (f, _, _, _) in g["features"]))
        lines.append(f"{describe(row)}: " + "; ".join(shown))
    print("Feast's answers:\n" + "\n".join(lines))
    fail_if_any(problems)


# ---------------------------------------------------------------- fti-serve against Feast


def check_row(row, body, expected, problems):
    """Compares one fti-serve answer with the expectation of its entity row."""
    who = describe(row)
    if not isinstance(body, dict):
        problems.append(f"{who}: no JSON answer: {body!r}")
        return
    groups = body.get("groups")
    if not isinstance(groups, dict) or set(groups) != {g["name"] for g in e2e.GROUPS}:
        problems.append(f"{who}: `groups` is {groups!r}, expected one entry per group")
        return
    features = body.get("features") or {}
    if set(features) != set(e2e.INPUT):
        problems.append(f"{who}: `features` names {sorted(features)}, expected {sorted(e2e.INPUT)}")
    missing = body.get("missing_features")
    if not isinstance(missing, list) or len(missing) != len(set(missing)):
        problems.append(f"{who}: `missing_features` is {missing!r}")
        missing = []
    want_missing = set()
    inputs = []
    for g in e2e.GROUPS:
        status, ts, feast_values = expected[g["name"]]
        ours = groups[g["name"]]
        at = f"{who} group {g['name']}"
        if ours.get("status") != status:
            problems.append(f"{at}: status {ours.get('status')!r}, expected {status!r} (stored _ts {ts})")
        want_ts = None if ts is None else rfc3339(ts)
        got_ts = ours.get("event_timestamp")
        if got_ts != want_ts or (got_ts is not None and not FORMAT_TS.match(got_ts)):
            problems.append(f"{at}: event_timestamp {got_ts!r}, expected {want_ts!r}")
        values = ours.get("values") or {}
        if set(values) != {f for (f, _, _, _) in g["features"]}:
            problems.append(f"{at}: `values` names {sorted(values)}")
        for (f, dtype, _, default) in g["features"]:
            theirs = None if status == "not_found" else feast_values[f]
            if f not in values or not same_value(f, values[f], theirs):
                problems.append(f"{at} feature {f}: value {values.get(f, '<absent>')!r}, Feast {theirs!r}")
            defaulted = status != "found" or theirs is None
            if defaulted:
                want_missing.add(f)
            if dtype == "string":
                continue
            want = as_input(f, default if defaulted else theirs)
            inputs.append(want)
            if f in features and not same_input(f, features[f], want):
                problems.append(f"{at} feature {f}: model input {features[f]!r}, expected {want!r}"
                                f" ({'default' if defaulted else 'Feast value'})")
    got_missing = set(missing)
    # `name` (a string, not a model input) may or may not be listed when it defaulted.
    if got_missing - {"name"} != want_missing - {"name"} or ("name" in got_missing and "name" not in want_missing):
        problems.append(f"{who}: missing_features {sorted(got_missing)}, expected {sorted(want_missing)}")
    score = (body.get("outputs") or {}).get("score")
    total = math.fsum(float(np.float32(x)) for x in inputs)
    scale = math.fsum(abs(float(np.float32(x))) for x in inputs)
    if not isinstance(score, (int, float)) or abs(score - total) > 1e-6 * scale + 1e-30:
        problems.append(f"{who}: outputs.score {score!r}, expected the inputs' sum {total!r}")


def test_fti_serve_reads_what_feast_reads(server, feast_repo, redis_client):
    rows = e2e.entity_rows()
    expected = expectations(feast_repo, redis_client, rows)
    statuses = [s for per in expected for (s, _, _) in per.values()]
    # The sample covers what it claims to (a guard on the test itself).
    assert {"found", "stale", "not_found"} <= set(statuses), statuses
    stale_reads = sum(per["driver_stats"][0] == "stale" for per in expected)
    stale_before = metric_sum(server, STALE_METRIC, "driver_stats")
    problems = []
    for row, want in zip(rows, expected):
        code, body = predict(server, e2e.MODEL, row)
        if code != 200:
            problems.append(f"{describe(row)}: HTTP {code}: {body!r}")
            continue
        check_row(row, body, want, problems)
    stale_after = metric_sum(server, STALE_METRIC, "driver_stats")
    if stale_after - stale_before != stale_reads:
        problems.append(f'{STALE_METRIC}{{group="driver_stats"}} went from {stale_before} to '
                        f"{stale_after}; {stale_reads} stale reads were made")
    fail_if_any(problems)


def test_negative_control_wrong_project_and_key_type(server, feast_repo, redis_client):
    """A group naming a project Feast never wrote, or declaring an INT64 join key as
    int32 (other key bytes), finds nothing even for entities Feast wrote, while the other
    groups of the same model still find theirs: the comparison above can fail."""
    # zone_id within int32, so that the int32 key type can hold every request's zone_id.
    rows = [r for r in e2e.entity_rows() if -(2**31) <= r["zone_id"] < 2**31]
    expected = expectations(feast_repo, redis_client, rows)
    assert any(per["driver_stats"][0] == "found" for per in expected)
    assert any(per["zone_stats"][0] == "found" for per in expected)
    problems = []
    for row, want in zip(rows, expected):
        code, body = predict(server, e2e.CONTROL_MODEL, row)
        if code != 200:
            problems.append(f"{describe(row)}: HTTP {code}: {body!r}")
            continue
        for g in ("driver_stats", "zone_stats"):
            _, _, feast_values = want[g]
            want[g] = ("not_found", None, feast_values)
        check_row(row, body, want, problems)
    fail_if_any(problems)


def test_stored_value_of_the_wrong_kind(server, feast_repo, redis_client):
    """A string Value stored under the Float64 feature conv_rate (Feast does not check
    types on read and answers the string): fti-serve reads null, the model gets the
    default, and fti_stored_value_errors_total{group} counts it."""
    from feast.infra.online_stores.helpers import _mmh3
    from feast.protos.feast.types.Value_pb2 import Value

    _, now, store = feast_repo
    group = e2e.GROUPS[0]
    row = {"driver_id": e2e.CORRUPT_DRIVER, "zone_id": e2e.PAIRS[0][0], "customer_id": e2e.PAIRS[0][1]}
    source = e2e.source_values(now)["driver_stats"][(e2e.CORRUPT_DRIVER,)]
    code, body = predict(server, e2e.MODEL, row)
    assert code == 200, body
    assert body["groups"]["driver_stats"]["values"]["conv_rate"] == source["conv_rate"], body

    key = feast_key(e2e.PROJECT, group, (e2e.CORRUPT_DRIVER,))
    assert redis_client.hset(key, _mmh3("driver_stats:conv_rate"), Value(string_val="a").SerializeToString()) == 0
    assert feast_online(store, [row])[0]["conv_rate"] == "a"
    errors_before = metric_sum(server, VALUE_ERRORS_METRIC, "driver_stats")
    code, body = predict(server, e2e.MODEL, row)
    assert code == 200, body
    expected = expectations(feast_repo, redis_client, [row])[0]
    status, ts, feast_values = expected["driver_stats"]
    expected["driver_stats"] = (status, ts, dict(feast_values, conv_rate=None))
    problems = []
    check_row(row, body, expected, problems)
    errors_after = metric_sum(server, VALUE_ERRORS_METRIC, "driver_stats")
    if errors_after - errors_before != 1:
        problems.append(f'{VALUE_ERRORS_METRIC}{{group="driver_stats"}} went from {errors_before} to '
                        f"{errors_after} after one read of a string under a float feature")
    fail_if_any(problems)


def test_fti_serve_materialize_writes_what_feast_wrote(feast_repo, redis_port, redis_client, registry, tmp_path):
    """`fti-serve materialize` of the same parquet files, into another Redis database,
    holds byte for byte what `feast materialize` wrote: the same keys, and under each key
    the same bytes in every field of the view (the event timestamp and each feature)."""
    from conftest import BINARY
    from feast.infra.online_stores.helpers import _mmh3

    repo, _, _ = feast_repo
    config = tmp_path / "config.toml"
    config.write_text(f"[registry]\npath = {json.dumps(str(registry))}\nmodels = {json.dumps([e2e.MODEL])}\n"
                      '[log]\nlevel = "warn"\n')
    ours = f"redis://127.0.0.1:{redis_port}/1"
    for group in e2e.GROUPS:
        r = subprocess.run(
            [str(BINARY), "materialize", "--config", str(config), "--group", group["name"],
             "--file", str(repo / "data" / f"{group['view']}.parquet"), "--redis-url", ours],
            capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"materialize {group['name']}: {(r.stdout + r.stderr)[-3000:]}"
    import redis

    theirs_db, ours_db = redis_client, redis.Redis(host="127.0.0.1", port=redis_port, db=1)
    try:
        problems, compared = [], 0
        # A key Feast wrote for a view is a key holding its `_ts:<view>`.
        for key in theirs_db.scan_iter(count=1000):
            for group in e2e.GROUPS:
                ts_field = f"_ts:{group['view']}".encode()
                if theirs_db.hget(key, ts_field) is None:
                    continue
                fields = [ts_field] + [_mmh3(f"{group['view']}:{f}") for (f, _, _, _) in group["features"]]
                if group["view"] == "driver_stats" and key == feast_key(e2e.PROJECT, group, (e2e.CORRUPT_DRIVER,)):
                    fields = [f for f in fields if f != _mmh3("driver_stats:conv_rate")]  # altered by another test
                want, got = theirs_db.hmget(key, fields), ours_db.hmget(key, fields)
                compared += 1
                if want != got:
                    problems.append(f"{group['view']} {key!r}: Feast wrote {want!r}, fti-serve wrote {got!r}")
        extra = sum(1 for _ in ours_db.scan_iter(count=1000)) - sum(1 for _ in theirs_db.scan_iter(count=1000))
        if extra:
            problems.append(f"fti-serve wrote {extra} keys more than Feast")
        assert compared >= 40, f"only {compared} (key, view) pairs compared"
        fail_if_any(problems)
    finally:
        ours_db.flushdb()
        ours_db.close()
