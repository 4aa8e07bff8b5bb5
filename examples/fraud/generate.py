#!/usr/bin/env python3
"""Synthetic card transactions with injected fraud.

500 cards (4111000000000001 ... 4111000000000500), each with a home city, a spending
profile and a creation date, and about 30 days of transactions ending at
2025-11-23 00:00:00 UTC. Fraud is injected through mechanisms a model can learn from
behavioural features (bursts, distance from home, impossible travel, unusual amounts,
night hours, risky categories), plus a share of "quiet" fraud that looks normal, so the
problem is learnable but not trivially separable.

Output: build/transactions.csv (txn_id, cc_num, ts, amount, merchant_category, lat, lon,
is_fraud) and build/cards.csv (the static card attributes the feature pipeline publishes).
Everything is deterministic from SEED.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

SEED = 20251123
N_CARDS = 500
END_TS = 1763856000  # 2025-11-23 00:00:00 UTC (exclusive end of the data)
DAYS = 30
START_TS = END_TS - DAYS * 86400
DAY = 86400
HOUR = 3600

CATEGORIES = ["grocery", "restaurant", "travel", "online", "electronics", "gas"]
# Typical spend per category relative to a card's base amount (log offsets).
CAT_LOG_OFFSET = {
    "grocery": 0.3,
    "restaurant": 0.0,
    "travel": 1.8,
    "online": 0.4,
    "electronics": 1.5,
    "gas": 0.4,
}
BASE_CAT_WEIGHTS = np.array([0.30, 0.25, 0.04, 0.20, 0.05, 0.16])

# Home cities (card 1 lives in Stockholm: HOME_CITIES[0]).
HOME_CITIES = [
    ("Stockholm", 59.3293, 18.0686),
    ("Gothenburg", 57.7089, 11.9746),
    ("Berlin", 52.5200, 13.4050),
    ("London", 51.5074, -0.1278),
    ("New York", 40.7128, -74.0060),
    ("Chicago", 41.8781, -87.6298),
]
# Legitimate trip destinations.
TRIP_CITIES = [
    ("Paris", 48.8566, 2.3522),
    ("Barcelona", 41.3874, 2.1686),
    ("Rome", 41.9028, 12.4964),
    ("Copenhagen", 55.6761, 12.5683),
    ("Miami", 25.7617, -80.1918),
    ("Tokyo", 35.6762, 139.6503),
    ("Amsterdam", 52.3676, 4.9041),
]
# Where stolen card data tends to be used.
FRAUD_CITIES = [
    ("Bucharest", 44.4268, 26.1025),
    ("Lagos", 6.5244, 3.3792),
    ("Sao Paulo", -23.5558, -46.6396),
    ("Jakarta", -6.2088, 106.8456),
    ("Los Angeles", 34.0522, -118.2437),
    ("Madrid", 40.4168, -3.7038),
    ("Kyiv", 50.4501, 30.5234),
]

# Probability of each hour of the day for normal card holders (UTC, local-ish).
_DAY_SHAPE = np.array(
    [0.4, 0.2, 0.1, 0.1, 0.1, 0.3, 1.0, 2.5, 3.5, 4.0, 4.5, 5.5,
     6.5, 5.5, 4.5, 4.5, 5.0, 6.0, 6.5, 6.0, 4.5, 3.0, 1.8, 0.9]
)
HOUR_P_NORMAL = _DAY_SHAPE / _DAY_SHAPE.sum()
_OWL_SHAPE = np.roll(_DAY_SHAPE, 5) + 0.8
HOUR_P_OWL = _OWL_SHAPE / _OWL_SHAPE.sum()


def jitter(rng: np.random.Generator, lat: float, lon: float, sd_km: float) -> tuple[float, float]:
    dlat = rng.normal(0.0, sd_km / 111.0)
    dlon = rng.normal(0.0, sd_km / (111.0 * max(math.cos(math.radians(lat)), 0.2)))
    return lat + dlat, lon + dlon


def make_cards(rng: np.random.Generator) -> list[dict]:
    cards = []
    for i in range(N_CARDS):
        cc_num = f"4111{i + 1:012d}"
        city = HOME_CITIES[i % len(HOME_CITIES)]
        home_lat, home_lon = jitter(rng, city[1], city[2], 6.0)
        if i == 0:  # the documented example card: central Stockholm
            home_lat, home_lon = 59.3293, 18.0686
        base_log = rng.normal(3.2, 0.45)  # median everyday amount ~ e^3.2 = 25
        rate = float(np.clip(rng.lognormal(math.log(1.5), 0.45), 0.3, 5.0))  # txns/day
        weights = rng.dirichlet(BASE_CAT_WEIGHTS * 20.0)
        owl = rng.random() < 0.10
        # Most cards are years old; some were issued recently (new cards are riskier).
        if rng.random() < 0.07:
            created = int(rng.integers(END_TS - 50 * DAY, END_TS - 2 * DAY))
        else:
            created = int(rng.integers(1483228800, END_TS - 120 * DAY))  # 2017-01-01 ..
        limit_choices = [1000, 2000, 5000, 10000, 20000]
        spend_rank = int(np.clip(round((base_log - 2.4) / 0.4), 0, 4))
        credit_limit = float(limit_choices[int(np.clip(spend_rank + rng.integers(-1, 2), 0, 4))])
        if i == N_CARDS - 1:  # issued hours before the snapshot, never used: no history
            created, rate = END_TS - 10 * HOUR, 0.0
        trip = None
        if rng.random() < 0.15:
            dest = TRIP_CITIES[int(rng.integers(len(TRIP_CITIES)))]
            depart = int(rng.integers(START_TS + 2 * DAY, END_TS - 4 * DAY))
            km = haversine_km(home_lat, home_lon, dest[1], dest[2])
            flight = int((1.5 + km / 750.0) * HOUR)  # generous door-to-door time
            stay = int(rng.integers(2 * DAY, 7 * DAY))
            trip = {
                "dest": dest,
                "depart": depart,
                "arrive": depart + flight,
                "leave": depart + flight + stay,
                "back": depart + 2 * flight + stay,
            }
        cards.append(
            {
                "cc_num": cc_num,
                "home_lat": round(home_lat, 5),
                "home_lon": round(home_lon, 5),
                "card_created_ts": created,
                "credit_limit": credit_limit,
                "base_log": base_log,
                "rate": rate,
                "weights": weights,
                "owl": owl,
                "trip": trip,
            }
        )
    return cards


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6371.0088
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(min(1.0, a)))


def amount_for(rng: np.random.Generator, card: dict, cat: str, scale: float = 1.0) -> float:
    a = math.exp(card["base_log"] + CAT_LOG_OFFSET[cat] + rng.normal(0.0, 0.55)) * scale
    return round(float(np.clip(a, 1.0, 5000.0)), 2)


def legit_transactions(rng: np.random.Generator, card: dict) -> list[dict]:
    out = []
    hour_p = HOUR_P_OWL if card["owl"] else HOUR_P_NORMAL
    trip = card["trip"]
    first_day_ts = max(START_TS, card["card_created_ts"] + HOUR)
    for d in range(DAYS):
        day0 = START_TS + d * DAY
        n = rng.poisson(card["rate"])
        for _ in range(n):
            ts = day0 + int(rng.choice(24, p=hour_p)) * HOUR + int(rng.integers(0, HOUR))
            if ts < first_day_ts:
                continue
            weights = card["weights"]
            lat0, lon0, sd = card["home_lat"], card["home_lon"], 4.0
            if trip is not None:
                if trip["depart"] <= ts < trip["arrive"] or trip["leave"] <= ts < trip["back"]:
                    continue  # in the air
                if trip["arrive"] <= ts < trip["leave"]:
                    lat0, lon0, sd = trip["dest"][1], trip["dest"][2], 5.0
                    weights = np.array([0.15, 0.40, 0.15, 0.10, 0.05, 0.15])
            cat = CATEGORIES[int(rng.choice(len(CATEGORIES), p=weights))]
            scale = 1.0
            if rng.random() < 0.03:  # the occasional big legitimate purchase
                scale = float(rng.uniform(3.0, 8.0))
            lat, lon = jitter(rng, lat0, lon0, sd)
            out.append(dict(ts=ts, amount=amount_for(rng, card, cat, scale), cat=cat,
                            lat=lat, lon=lon, fraud=0))
            if rng.random() < 0.06:  # a legitimate shopping spree: a few more nearby
                for _k in range(int(rng.integers(1, 4))):
                    ts2 = ts + int(rng.integers(120, 2400))
                    cat2 = CATEGORIES[int(rng.choice(len(CATEGORIES), p=weights))]
                    la, lo = jitter(rng, lat0, lon0, sd)
                    out.append(dict(ts=ts2, amount=amount_for(rng, card, cat2), cat=cat2,
                                    lat=la, lon=lo, fraud=0))
                    ts = ts2
        if trip is not None and day0 <= trip["depart"] < day0 + DAY:
            # the ticket / airport purchase just before leaving, at home
            t = trip["depart"] - int(rng.integers(HOUR, 4 * HOUR))
            if t >= first_day_ts:
                la, lo = jitter(rng, card["home_lat"], card["home_lon"], 8.0)
                out.append(dict(ts=t, amount=amount_for(rng, card, "travel"), cat="travel",
                                lat=la, lon=lo, fraud=0))
    return out


def fraud_episode(rng: np.random.Generator, card: dict) -> list[dict]:
    """One compromise of a card: a short sequence of fraudulent transactions."""
    out = []
    start_lo = max(START_TS + DAY, card["card_created_ts"] + DAY)
    if start_lo >= END_TS - 2 * HOUR:
        return out
    t = int(rng.integers(start_lo, END_TS - 2 * HOUR))
    city = FRAUD_CITIES[int(rng.integers(len(FRAUD_CITIES)))]
    typical = math.exp(card["base_log"])
    kind = rng.choice(["testing", "skimmed", "takeover", "quiet"], p=[0.30, 0.30, 0.25, 0.15])

    def add(ts, amount, cat, lat, lon):
        out.append(dict(ts=int(ts), amount=round(float(np.clip(amount, 0.5, 5000.0)), 2),
                        cat=cat, lat=lat, lon=lon, fraud=1))

    if kind == "testing":
        # card testing: a few tiny online charges, then cash-out purchases
        if rng.random() < 0.5:
            t = t - t % DAY + int(rng.integers(0, 6)) * HOUR + int(rng.integers(0, HOUR))
        for _ in range(int(rng.integers(2, 5))):
            la, lo = jitter(rng, city[1], city[2], 10.0)
            add(t, rng.uniform(0.5, 5.0), "online", la, lo)
            t += int(rng.integers(30, 600))
        for _ in range(int(rng.integers(1, 4))):
            la, lo = jitter(rng, city[1], city[2], 10.0)
            add(t, rng.uniform(150, 1500), str(rng.choice(["online", "electronics"])), la, lo)
            t += int(rng.integers(120, 1500))
    elif kind == "skimmed":
        # a cloned card used in person far from home, often at night
        if rng.random() < 0.5:
            t = t - t % DAY + int(rng.integers(0, 5)) * HOUR + int(rng.integers(0, HOUR))
        for _ in range(int(rng.integers(2, 6))):
            cat = str(rng.choice(["electronics", "gas", "travel", "online", "grocery"],
                                 p=[0.4, 0.2, 0.15, 0.15, 0.1]))
            la, lo = jitter(rng, city[1], city[2], 8.0)
            add(t, typical * math.exp(CAT_LOG_OFFSET[cat]) * rng.uniform(2.0, 9.0), cat, la, lo)
            t += int(rng.integers(300, 3 * HOUR))
    elif kind == "takeover":
        # stolen credentials: large online orders, sometimes from near home (VPN, mule)
        near_home = rng.random() < 0.5
        if rng.random() < 0.4:
            t = t - t % DAY + int(rng.integers(0, 6)) * HOUR + int(rng.integers(0, HOUR))
        for _ in range(int(rng.integers(1, 3))):
            if near_home:
                la, lo = jitter(rng, card["home_lat"], card["home_lon"], 15.0)
            else:
                la, lo = jitter(rng, city[1], city[2], 10.0)
            cat = str(rng.choice(["online", "electronics"]))
            add(t, typical * math.exp(CAT_LOG_OFFSET[cat]) * rng.uniform(2.0, 7.0), cat, la, lo)
            t += int(rng.integers(600, 4 * HOUR))
    else:
        # quiet fraud (friendly fraud, a family member): looks like the holder's own spend
        for _ in range(int(rng.integers(1, 4))):
            cat = CATEGORIES[int(rng.choice(len(CATEGORIES), p=card["weights"]))]
            la, lo = jitter(rng, card["home_lat"], card["home_lon"], 5.0)
            add(t, amount_for(rng, card, cat, float(rng.uniform(1.0, 2.0))), cat, la, lo)
            t += int(rng.integers(HOUR, 12 * HOUR))
    return [x for x in out if x["ts"] < END_TS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "build"))
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    cards = make_cards(rng)
    rows: list[tuple] = []
    for card in cards:
        txns = legit_transactions(rng, card)
        # recently issued cards (intercepted in the mail, bust-out) are compromised more often
        is_new = card["card_created_ts"] > END_TS - 60 * DAY
        n_episodes = rng.poisson(1.2 if is_new else 0.42)
        for _ in range(n_episodes):
            txns.extend(fraud_episode(rng, card))
        txns = [x for x in txns if START_TS <= x["ts"] < END_TS]
        txns.sort(key=lambda x: (x["ts"], x["fraud"]))
        last = None
        for x in txns:  # at most one transaction per card and second
            if last is not None and x["ts"] <= last:
                x["ts"] = last + 1
            last = x["ts"]
        for x in txns:
            if x["ts"] < END_TS:
                rows.append((x["ts"], card["cc_num"], x["amount"], x["cat"],
                             round(x["lat"], 5), round(x["lon"], 5), x["fraud"]))
    rows.sort(key=lambda r: (r[0], r[1]))

    with open(out_dir / "transactions.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["txn_id", "cc_num", "ts", "amount", "merchant_category", "lat", "lon",
                    "is_fraud"])
        for i, (ts, cc, amount, cat, lat, lon, fraud) in enumerate(rows, start=1):
            w.writerow([i, cc, ts, f"{amount:.2f}", cat, repr(lat), repr(lon), fraud])
    with open(out_dir / "cards.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["cc_num", "home_lat", "home_lon", "card_created_ts", "credit_limit"])
        for c in cards:
            w.writerow([c["cc_num"], repr(c["home_lat"]), repr(c["home_lon"]),
                        c["card_created_ts"], int(c["credit_limit"])])

    n_fraud = sum(r[6] for r in rows)
    print(f"generate: {len(rows)} transactions, {n_fraud} fraud "
          f"({100.0 * n_fraud / len(rows):.2f}%), {len(cards)} cards -> {out_dir}")


if __name__ == "__main__":
    main()
