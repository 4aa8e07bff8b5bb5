"""The baseline for issue #7: the fraud model served the way a team would hand-build it
today, FastAPI + uvicorn + onnxruntime + redis.asyncio, with the feature logic written
out in Python.

It serves the same model (models/fraud/2/model.onnx) from the same Redis layout with the
same feature semantics as fti-serve's feature view `fraud_v2` (models/fraud/2/manifest.toml)
and speaks the same HTTP contract, so one load tool drives both and
loadtest/compare/check_golden.py checks both against models/fraud/2/golden.jsonl:

    POST /v1/models/fraud/predict
         {"entities": {"cc_num": "..."}, "features": {"amount", "lat", "lon", "ts",
                                                      "merchant_category"}}
      -> {"model": "fraud", "version": 2, "outputs": {"probability", "label"},
          "missing_features": [...]}
    GET  /health/ready, /health/live

Single rows only (no `rows` batches; `return_features` must be false). Run from
loadtest/compare:

    REDIS_URL=redis://127.0.0.1:6379 uvicorn baseline.app:app --workers 2

Environment: REDIS_URL, MODEL_PATH (default: the repository's models/fraud/2/model.onnx),
FEATURE_PREFIX (default `fti:`), REDIS_TIMEOUT_S, REDIS_MAX_CONNECTIONS.
"""

import math
import os
from bisect import bisect_right
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr
from redis.exceptions import RedisError

REPO = Path(__file__).resolve().parents[3]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
MODEL_PATH = os.environ.get("MODEL_PATH", str(REPO / "models/fraud/2/model.onnx"))
PREFIX = os.environ.get("FEATURE_PREFIX", "fti:")
# fti-serve's run.py config uses the same 1 s deadline for its Redis round trip.
REDIS_TIMEOUT_S = float(os.environ.get("REDIS_TIMEOUT_S", "1.0"))
REDIS_MAX_CONNECTIONS = int(os.environ.get("REDIS_MAX_CONNECTIONS", "64"))

MODEL_NAME = "fraud"
MODEL_VERSION = 2

NAN = float("nan")

# Feature groups as the feature pipeline writes them: one Redis hash per card at
# `fti:<group>:<cc_num>`. (field, is_int, default when the hash or the field is absent)
CARD_PROFILE = (
    ("home_lat", False, NAN),
    ("home_lon", False, NAN),
    ("card_created_ts", False, NAN),
    ("credit_limit", False, NAN),
)
CARD_ACTIVITY = (
    ("txn_count_1h", True, 0.0),
    ("txn_count_24h", True, 0.0),
    ("amount_sum_24h", False, 0.0),
    ("amount_avg_30d", False, NAN),
    ("amount_std_30d", False, NAN),
    ("last_txn_ts", False, NAN),
    ("last_lat", False, NAN),
    ("last_lon", False, NAN),
)
PROFILE_FIELDS = [name for name, _, _ in CARD_PROFILE]
ACTIVITY_FIELDS = [name for name, _, _ in CARD_ACTIVITY]

AMOUNT_BUCKETS = (5.0, 20.0, 50.0, 150.0, 500.0, 1500.0)
CATEGORIES = ("grocery", "restaurant", "travel", "online", "electronics", "gas")
EARTH_RADIUS_KM = 6371.0088
DEFAULT_CATEGORY = "unknown"


# ----------------------------------------------------------------------------- features
# Missing numbers are NaN, as in training. Python's builtin max() and math.log1p do not
# treat NaN (or log1p's domain) the way training did, hence the small helpers.

def nanmax(*xs: float) -> float:
    """Largest value, skipping NaN; NaN when all are NaN."""
    best = NAN
    for x in xs:
        if math.isnan(best) or x > best:
            best = x
    return best


def coalesce(*xs: float) -> float:
    for x in xs:
        if not math.isnan(x):
            return x
    return NAN


def log1p(x: float) -> float:
    if x > -1.0:
        return math.log1p(x)
    return -math.inf if x == -1.0 else NAN


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle km; NaN when a coordinate is missing (math.sin raises on inf)."""
    if not (math.isfinite(lat1) and math.isfinite(lon1) and math.isfinite(lat2) and math.isfinite(lon2)):
        return NAN
    p1, p2 = math.radians(lat1), math.radians(lat2)
    half_dlat = (p2 - p1) / 2.0
    half_dlon = math.radians(lon2 - lon1) / 2.0
    s_lat, s_lon = math.sin(half_dlat), math.sin(half_dlon)
    a = s_lat * s_lat + math.cos(p1) * math.cos(p2) * s_lon * s_lon
    if a < 0.0:  # latitudes beyond +-90: math.sqrt would raise
        return NAN
    # rounding can push `a` a hair above 1 for antipodes
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(math.sqrt(a), 1.0))


def hour_of_day(ts: float) -> float:
    if not math.isfinite(ts):
        return NAN
    # Python's float % is floor-based like rem_euclid, so times before 1970 work; a tiny
    # negative ts rounds up to exactly 86400.0, hence the min.
    return float(min(math.floor((ts % 86400.0) / 3600.0), 23))


def day_of_week(ts: float) -> float:
    """0 = Monday; 1970-01-01 was a Thursday."""
    if not math.isfinite(ts):
        return NAN
    return float((math.floor(ts / 86400.0) + 3) % 7)


def model_input(amount, lat, lon, ts, category, profile, activity) -> np.ndarray:
    """The 24 float32 columns of model v2, in training order."""
    home_lat, home_lon, card_created_ts, credit_limit = profile
    (txn_count_1h, txn_count_24h, amount_sum_24h, amount_avg_30d, amount_std_30d,
     last_txn_ts, last_lat, last_lon) = activity

    amount_ratio_30d = NAN if math.isnan(amount_avg_30d) else amount / nanmax(amount_avg_30d, 1.0)
    amount_z_30d = (amount - amount_avg_30d) / nanmax(amount_std_30d, 0.5 * amount_avg_30d, 1.0)
    amount_to_limit = amount / credit_limit if credit_limit > 0 else NAN
    amount_bucket = NAN if math.isnan(amount) else float(bisect_right(AMOUNT_BUCKETS, amount))
    prev_ts = coalesce(last_txn_ts, card_created_ts)
    km_from_last = haversine(coalesce(last_lat, home_lat), coalesce(last_lon, home_lon), lat, lon)
    seconds_since_last = ts - prev_ts
    if math.isnan(prev_ts) or math.isnan(km_from_last):
        speed_kmh = NAN
    else:
        speed_kmh = min(max(km_from_last / nanmax(seconds_since_last / 3600.0, 0.25), 0.0), 2000.0)
    hour = hour_of_day(ts)
    row = [
        amount,
        log1p(amount),
        amount_ratio_30d,
        amount_z_30d,
        amount_to_limit,
        amount_bucket,
        amount_sum_24h + amount,                    # spend_24h
        txn_count_1h,
        txn_count_24h,
        amount_avg_30d,
        haversine(home_lat, home_lon, lat, lon),    # km_from_home
        km_from_last,
        seconds_since_last,
        speed_kmh,
        (ts - card_created_ts) / 86400.0,           # card_age_days
        hour,
        day_of_week(ts),
        1.0 if hour < 6 else 0.0,                   # is_night (NaN hour: not night)
    ]
    row.extend(1.0 if category == c else 0.0 for c in CATEGORIES)
    return np.array([row], dtype=np.float32)


def read_group(spec, raw: list, missing: list) -> list:
    """Stored strings to numbers; an absent or unparsable value takes the default and is
    reported in missing_features."""
    values = []
    for (name, is_int, default), value in zip(spec, raw):
        parsed = None
        if value is not None:
            try:
                parsed = float(value)
            except ValueError:
                parsed = None
            if parsed is not None and is_int and not parsed.is_integer():
                parsed = None
        if parsed is None:
            parsed = default
            missing.append(name)
        values.append(parsed)
    return values


# ----------------------------------------------------------------------------- model

def load_session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # no per-run warning about the graph's [1] label shape
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- HTTP

class Features(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients may send more than v2 uses
    amount: StrictFloat
    lat: StrictFloat
    lon: StrictFloat
    ts: StrictFloat
    merchant_category: StrictStr | None = None


class PredictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entities: dict[str, StrictStr | StrictInt]
    features: Features
    return_features: bool = False


state: dict = {}


@asynccontextmanager
async def lifespan(_app: FastAPI):
    state["session"] = load_session(MODEL_PATH)
    state["input"] = state["session"].get_inputs()[0].name
    pool = aioredis.ConnectionPool.from_url(
        REDIS_URL,
        max_connections=REDIS_MAX_CONNECTIONS,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    state["redis"] = aioredis.Redis(connection_pool=pool)
    try:
        yield
    finally:
        await state["redis"].aclose()
        await pool.aclose()


app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)


def error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = {"error": message, "code": code}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


@app.exception_handler(RequestValidationError)
async def invalid_body(_request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return error(400, "malformed_json", f"request body is not valid JSON: {first.get('msg')}")
    field = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return error(422, "invalid_input", f"{field}: {first.get('msg')}", field)


@app.post(f"/v1/models/{MODEL_NAME}/predict")
async def predict(body: PredictBody):
    if body.return_features:
        return error(422, "invalid_input", "return_features: not supported by this server", "return_features")
    unknown = [k for k in body.entities if k != "cc_num"]
    if unknown:
        field = f"entities.{unknown[0]}"
        return error(422, "invalid_input", f"{field}: unknown entity key (this model takes cc_num)", field)
    cc_num = body.entities.get("cc_num")
    if cc_num is None or cc_num == "":
        reason = "required" if cc_num is None else "must not be empty"
        return error(422, "invalid_input", f"entities.cc_num: {reason}", "entities.cc_num")
    cc_num = str(cc_num)

    try:
        # both feature groups in one round trip
        async with state["redis"].pipeline(transaction=False) as pipe:
            pipe.hmget(f"{PREFIX}card_profile:{cc_num}", PROFILE_FIELDS)
            pipe.hmget(f"{PREFIX}card_activity:{cc_num}", ACTIVITY_FIELDS)
            profile_raw, activity_raw = await pipe.execute()
    except (RedisError, OSError, TimeoutError) as e:
        return error(503, "store_unavailable", f"online store: {type(e).__name__}")

    f = body.features
    missing: list[str] = []
    category = f.merchant_category
    if category is None:
        category = DEFAULT_CATEGORY
        missing.append("merchant_category")
    profile = read_group(CARD_PROFILE, profile_raw, missing)
    activity = read_group(CARD_ACTIVITY, activity_raw, missing)
    x = model_input(f.amount, f.lat, f.lon, f.ts, category, profile, activity)

    # ~20 µs for 50 trees: run inline, a thread-pool hop would cost more.
    probabilities = state["session"].run(["probabilities"], {state["input"]: x})[0][0]
    return {
        "model": MODEL_NAME,
        "version": MODEL_VERSION,
        "outputs": {"probability": float(probabilities[1]), "label": int(np.argmax(probabilities))},
        "missing_features": missing,
    }


@app.get("/health/live")
async def live():
    return {"live": True}


@app.get("/health/ready")
async def ready():
    try:
        await state["redis"].ping()
    except (RedisError, OSError, TimeoutError) as e:
        return JSONResponse({"ready": False, "store": type(e).__name__}, status_code=503)
    return {"ready": True}
