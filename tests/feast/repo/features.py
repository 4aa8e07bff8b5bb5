"""The Feast repository of the end-to-end test (tests/feast/test_feast_online_store.py).

The test copies this directory into a temporary one, writes feature_store.yaml (the
redis-server it started, a temporary registry) and the parquet files under data/ beside
it, then runs `feast apply` and `feast materialize` there.

- `driver` (join key `driver_id`, STRING): two views on it, so both share one Redis hash
  per driver: `driver_stats` (every scalar kind, ttl 1 day) and `driver_extra`.
- `zone` (join key `zone_id`, INT64): `zone_stats`.
- `zone_customer`: composite key `zone_id` (INT64) + `customer_id` (STRING).
"""
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, String

DATA = Path(__file__).resolve().parent / "data"

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.STRING)
zone = Entity(name="zone", join_keys=["zone_id"], value_type=ValueType.INT64)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)


def source(name):
    return FileSource(name=name, path=str(DATA / f"{name}.parquet"), timestamp_field="event_timestamp")


driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float64),
        Field(name="acc_rate", dtype=Float32),
        Field(name="trips", dtype=Int64),
        Field(name="rank", dtype=Int32),
        Field(name="active", dtype=Bool),
        Field(name="name", dtype=String),
    ],
    source=source("driver_stats"),
    online=True,
)

driver_extra = FeatureView(
    name="driver_extra",
    entities=[driver],
    schema=[Field(name="rating", dtype=Float64), Field(name="orders", dtype=Int64)],
    source=source("driver_extra"),
    online=True,
)

zone_stats = FeatureView(
    name="zone_stats",
    entities=[zone],
    schema=[Field(name="demand", dtype=Float64), Field(name="drivers", dtype=Int64)],
    source=source("zone_stats"),
    online=True,
)

zone_customer = FeatureView(
    name="zone_customer",
    entities=[zone, customer],
    schema=[Field(name="amount", dtype=Float64), Field(name="count", dtype=Int64)],
    source=source("zone_customer"),
    online=True,
)
