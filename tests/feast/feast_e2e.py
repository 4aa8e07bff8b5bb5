"""What the Feast end-to-end test writes and asks: the source rows of the four Feast views,
the manifests of the fti-serve models that read them (Feast groups), and the entity rows
of the comparison. Shared by conftest.py (fixtures) and test_feast_online_store.py.

Values cover what the Redis layout has to get right: nulls (pandas NA, None and NaN
floats, which Feast stores as empty values), negative numbers in every integer width
(10-byte varints), zero and false (still written: proto3 oneof), int64 beyond 2**53,
float32 values that are not exact in decimal, unicode strings and join keys, negative and
huge int64 join keys, a composite key, rows older than the ttl, and two views sharing one
Redis hash per entity where some entities are written by one view only.
"""
import math
from datetime import datetime, timedelta, timezone

PROJECT = "fti_feast_e2e"
DAY_MS = 86_400_000

# ---------------------------------------------------------------- the fti-serve groups

# (feature, dtype, feast_type or None for the dtype's default, default)
DRIVER_STATS = [
    ("conv_rate", "float", None, -1.0),
    ("acc_rate", "float", "float32", -2.0),
    ("trips", "int", None, -3),
    ("rank", "int", "int32", -4),
    ("active", "bool", None, False),
    ("name", "string", None, ""),
]
DRIVER_EXTRA = [("rating", "float", "float64", -5.0), ("orders", "int", "int64", -6)]
ZONE_STATS = [("demand", "float", None, -7.0), ("drivers", "int", None, -8)]
ZONE_CUSTOMER = [("amount", "float", None, -9.0), ("count", "int", None, -10)]

# Each group reads one Feast view. `entities` lists the composite key out of sorted order
# on purpose: Feast sorts join keys by name, and so must the server.
GROUPS = [
    dict(name="driver_stats", view="driver_stats", entities=["driver_id"], key_types={"driver_id": "string"},
         max_age_ms=DAY_MS, features=DRIVER_STATS),
    dict(name="driver_extra", view="driver_extra", entities=["driver_id"], key_types={"driver_id": "string"},
         max_age_ms=None, features=DRIVER_EXTRA),
    dict(name="zone_stats", view="zone_stats", entities=["zone_id"], key_types={"zone_id": "int64"},
         max_age_ms=None, features=ZONE_STATS),
    dict(name="zone_customer", view="zone_customer", entities=["zone_id", "customer_id"],
         key_types={"zone_id": "int64", "customer_id": "string"}, max_age_ms=None, features=ZONE_CUSTOMER),
]
ENTITIES = ["driver_id", "zone_id", "customer_id"]
# The model input: every numeric feature (the string `name` is read, not fed to the model).
INPUT = [f for g in GROUPS for (f, dtype, _, _) in g["features"] if dtype != "string"]
FEATURE_TYPE = {f: (dtype, feast_type or {"float": "float64", "int": "int64"}.get(dtype, dtype))
                for g in GROUPS for (f, dtype, feast_type, _) in g["features"]}
DEFAULT = {f: default for g in GROUPS for (f, _, _, default) in g["features"]}
GROUP_OF = {f: g["name"] for g in GROUPS for (f, _, _, _) in g["features"]}
FEAST_REFS = [f"{g['view']}:{f}" for g in GROUPS for (f, _, _, _) in g["features"]]

MODEL = "feast_check"
# The negative control: the same model, except that `driver_stats` names a Feast project
# that does not exist and `zone_stats` declares its INT64 join key as int32. Both must
# read nothing for entities Feast did write; the other two groups still find them.
CONTROL_MODEL = "feast_control"
CONTROL_OVERRIDES = {"driver_stats": {"project": "no_such_project"},
                     "zone_stats": {"key_types": {"zone_id": "int32"}}}


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(v)


def manifest(model, sha256, overrides=None):
    """manifest.toml of version 1 of `model`: the MatMul model (tests/feast/model.onnx,
    `score` = the sum of the inputs) over the four Feast groups."""
    overrides = overrides or {}
    lines = [
        "format = 1",
        'outputs = [{ name = "score", tensor = "y" }]',
        "",
        "[model]",
        f'name = "{model}"',
        "version = 1",
        'description = "sum of the Feast features (tests/feast)"',
        'file = "model.onnx"',
        f'sha256 = "{sha256}"',
        "",
        "[model.input]",
        'name = "input"',
        'dtype = "float32"',
        "",
        "[feature_view]",
        f'name = "{model}"',
        f"entities = {_toml_value(ENTITIES)}",
        f"input = {_toml_value(INPUT)}",
        "request = []",
    ]
    for g in GROUPS:
        o = overrides.get(g["name"], {})
        lines += ["", "[[feature_view.groups]]", f'name = "{g["name"]}"',
                  f"entities = {_toml_value(g['entities'])}", 'on_missing = "default"']
        if g["max_age_ms"] is not None:
            lines.append(f"max_age_ms = {g['max_age_ms']}")
        lines.append("features = [")
        for (f, dtype, feast_type, default) in g["features"]:
            ft = f', feast_type = "{feast_type}"' if feast_type else ""
            lines.append(f'  {{ name = "{f}", dtype = "{dtype}"{ft}, default = {_toml_value(default)} }},')
        lines.append("]")
        key_types = o.get("key_types", g["key_types"])
        lines += ["[feature_view.groups.feast]",
                  f'project = "{o.get("project", PROJECT)}"',
                  f'view = "{g["view"]}"',
                  "key_types = { " + ", ".join(f"{k} = \"{v}\"" for k, v in key_types.items()) + " }"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the Feast source rows

NAN = math.nan
NA = None  # a null in a nullable column


def _fresh(now, i):
    """About an hour old, with distinct microseconds (Feast keeps microseconds)."""
    return now - timedelta(hours=1, minutes=i) + timedelta(microseconds=123_456 + 7 * i)


def _stale(now, i):
    """Three days old: past driver_stats' ttl and the group's max_age_ms (1 day)."""
    return now - timedelta(days=3, minutes=i) + timedelta(microseconds=654_321 - 11 * i)


STALE_DRIVERS = {"d03", "d07", "d11", "d15"}
CORRUPT_DRIVER = "d-corrupt"  # its conv_rate is overwritten in Redis with a string Value
STATS_DRIVERS = [f"d{i:02d}" for i in range(18)] + ["dé-ü€", CORRUPT_DRIVER]
EXTRA_ONLY_DRIVERS = [f"x{i:02d}" for i in range(10)]
EXTRA_DRIVERS = [f"d{i:02d}" for i in range(10)] + EXTRA_ONLY_DRIVERS
UNKNOWN_DRIVERS = ["nobody", "D00", "d00 ", "dé-ü"]

ZONES = [0, -1, -(2**63), 2**53 + 1, 2**63 - 1] + list(range(1, 16))
CUSTOMERS = ["c00", "c01", "cü", "c-日本", "c02", "c03", "c04"]
PAIRS = [(ZONES[i], CUSTOMERS[i % len(CUSTOMERS)]) for i in range(19)] + [(99, "cü")]
UNKNOWN_PAIRS = [(ZONES[19], "nobody"), (12345, "c00"), (777777, "nobody"), (2**53, CUSTOMERS[3]),
                 (ZONES[0], "C00")]

NAMES = ["héllo", "", "日本語", "taxi 🚕", 'quote " and \\ backslash', "plain"]
CONV = [0.1 * i - 0.3 for i in range(20)]
CONV[4], CONV[6], CONV[8] = 0.0, 1e30, 5e-324
ACC = [0.1, -2.0, 1e-45, 1.5, 3.0e38, 0.0, 0.3, -0.7]
TRIPS = [1000 * i - 5000 for i in range(20)]
# Feast converts an integer column that has nulls through float64 (materialize), so values
# beyond 2**53 go in zone_stats.drivers, a column without nulls.
TRIPS[1], TRIPS[2], TRIPS[16], TRIPS[17] = 10_000_000_000, -10_000_000_000, -(2**53), 2**53
RANKS = [-3, 2147483647, -2147483648, 0, 1, -1, 42]


def driver_stats_rows(now):
    rows = []
    for i, d in enumerate(STATS_DRIVERS):
        rows.append(dict(
            driver_id=d,
            event_timestamp=_stale(now, i) if d in STALE_DRIVERS else _fresh(now, i),
            conv_rate=CONV[i], acc_rate=ACC[i % len(ACC)], trips=TRIPS[i], rank=RANKS[i % len(RANKS)],
            active=i % 2 == 0, name=NAMES[i % len(NAMES)],
        ))
    by = {r["driver_id"]: r for r in rows}
    # d05: every feature null; d09, d13: some; d15: stale with a null.
    by["d05"].update(conv_rate=NAN, acc_rate=NAN, trips=NA, rank=NA, active=NA, name=NA)
    by["d09"].update(conv_rate=NAN, trips=NA)
    by["d13"].update(acc_rate=NAN, active=NA, name=NA)
    by["d15"].update(rank=NA)
    return rows


def driver_extra_rows(now):
    rows = []
    for i, d in enumerate(EXTRA_DRIVERS):
        # No max_age on this group: a 5-day-old row is found, not stale.
        ts = now - timedelta(days=5) if d == "x03" else _fresh(now, i)
        rows.append(dict(driver_id=d, event_timestamp=ts, rating=4.5 - 0.25 * i, orders=7 - i))
    rows[4].update(rating=NAN)
    rows[12].update(orders=NA)
    rows[13].update(rating=NAN, orders=NA)
    return rows


def zone_stats_rows(now):
    rows = []
    for i, z in enumerate(ZONES):
        rows.append(dict(zone_id=z, event_timestamp=_fresh(now, i), demand=1.0 / (i + 1) - 0.5, drivers=i - 3))
    rows[6].update(demand=NAN)
    # No null in `drivers`: int64 beyond 2**53 stays exact through Feast.
    rows[2].update(drivers=-(2**63))
    rows[3].update(drivers=2**53 + 1)
    rows[4].update(drivers=2**63 - 1)
    return rows


def zone_customer_rows(now):
    rows = []
    for i, (z, c) in enumerate(PAIRS):
        rows.append(dict(zone_id=z, customer_id=c, event_timestamp=_fresh(now, i),
                         amount=12.34 * i - 50.0, count=-(2**40) + i if i == 5 else i))
    rows[3].update(amount=NAN)
    rows[8].update(count=NA)
    return rows


def dataframes(now):
    """The four source tables as pandas DataFrames with Feast's column types."""
    import pandas as pd

    import numpy as np

    def frame(rows, types):
        columns = {}
        for col in rows[0]:
            values = [r[col] for r in rows]
            if col == "event_timestamp":
                columns[col] = pd.to_datetime(values, utc=True).as_unit("us")
            elif types[col].startswith("float"):
                columns[col] = np.array(values, dtype=types[col])
            else:
                columns[col] = pd.array(values, dtype=types[col])
        return pd.DataFrame(columns)

    return {
        "driver_stats": frame(driver_stats_rows(now), {
            "driver_id": "string", "conv_rate": "float64", "acc_rate": "float32", "trips": "Int64",
            "rank": "Int32", "active": "boolean", "name": "string"}),
        "driver_extra": frame(driver_extra_rows(now), {"driver_id": "string", "rating": "float64", "orders": "Int64"}),
        "zone_stats": frame(zone_stats_rows(now), {"zone_id": "int64", "demand": "float64", "drivers": "Int64"}),
        "zone_customer": frame(zone_customer_rows(now), {
            "zone_id": "int64", "customer_id": "string", "amount": "float64", "count": "Int64"}),
    }


def source_values(now):
    """{view: {entity key tuple (join keys in the group's order): {feature: value or None}, plus
    "_event_timestamp"}} as generated (NaN and NA as None, acc_rate rounded to float32)."""
    import numpy as np

    out = {}
    for g, rows in [("driver_stats", driver_stats_rows(now)), ("driver_extra", driver_extra_rows(now)),
                    ("zone_stats", zone_stats_rows(now)), ("zone_customer", zone_customer_rows(now))]:
        group = next(x for x in GROUPS if x["name"] == g)
        table = {}
        for r in rows:
            key = tuple(r[k] for k in group["entities"])
            vals = {}
            for (f, _, _, _) in group["features"]:
                v = r[f]
                if isinstance(v, float) and math.isnan(v):
                    v = None
                if v is not None and FEATURE_TYPE[f][1] == "float32":
                    v = float(np.float32(v))
                vals[f] = v
            vals["_event_timestamp"] = r["event_timestamp"]
            table[key] = vals
        out[g] = table
    return out


def entity_rows():
    """The comparison's entity rows: every known driver (both views, one view, stale, null),
    every zone and composite pair, and unknown ones of each kind; the corrupt driver is left
    out (it has a test of its own)."""
    drivers = [d for d in STATS_DRIVERS if d != CORRUPT_DRIVER] + EXTRA_ONLY_DRIVERS + UNKNOWN_DRIVERS
    pairs = PAIRS + UNKNOWN_PAIRS
    n = max(len(drivers), len(pairs))
    return [{"driver_id": drivers[i % len(drivers)], "zone_id": pairs[i % len(pairs)][0],
             "customer_id": pairs[i % len(pairs)][1]} for i in range(n)]


def group_key(group, row):
    return tuple(row[k] for k in group["entities"])


def now_utc():
    """`now` for the generated timestamps: whole seconds, so microseconds come only from
    the offsets above."""
    return datetime.now(timezone.utc).replace(microsecond=0)
