"""Checks a running server against the golden requests of the example model: POSTs every
`request` of models/fraud/2/golden.jsonl to `<url>/v1/models/fraud/predict` and compares
`outputs.probability` (within --tolerance), `outputs.label` (exactly) and
`missing_features` (the same names in the same order) with the file. Works against
fti-serve and the Python baseline alike. Standard library only.

    python3 loadtest/compare/check_golden.py --url http://127.0.0.1:8080

Exit status: 0 when every row agrees, 1 on any mismatch or failed request.
"""

import argparse
import http.client
import json
import sys
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def post(conn: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, str]:
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read().decode("utf-8", "replace")


def check_row(status: int, text: str, golden: dict, tolerance: float) -> list[str]:
    """What is wrong with one answer; empty when it agrees with the golden row."""
    if status != 200:
        return [f"HTTP {status}: {text[:300]}"]
    try:
        answer = json.loads(text)
        outputs = answer["outputs"]
        probability, label = outputs["probability"], outputs["label"]
    except (ValueError, KeyError, TypeError) as e:
        return [f"unexpected body ({e!r}): {text[:300]}"]
    want = golden["outputs"]
    problems = []
    if not isinstance(probability, (int, float)) or abs(probability - want["probability"]) > tolerance:
        problems.append(f"probability {probability!r}, expected {want['probability']!r} (±{tolerance:g})")
    if label != want["label"]:
        problems.append(f"label {label!r}, expected {want['label']!r}")
    if "missing_features" in golden and answer.get("missing_features") != golden["missing_features"]:
        problems.append(
            f"missing_features {answer.get('missing_features')!r}, expected {golden['missing_features']!r}"
        )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--golden", default=str(REPO / "models/fraud/2/golden.jsonl"))
    parser.add_argument("--model", default="fraud")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "http" or not url.hostname:
        print(f"check_golden: --url must be http://host:port, got {args.url!r}", file=sys.stderr)
        return 1
    path = f"{url.path.rstrip('/')}/v1/models/{args.model}/predict"
    rows = [json.loads(line) for line in Path(args.golden).read_text().splitlines() if line.strip()]
    if not rows:
        print(f"check_golden: no rows in {args.golden}", file=sys.stderr)
        return 1

    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=args.timeout)
    failures = 0
    try:
        for i, golden in enumerate(rows, start=1):
            try:
                status, text = post(conn, path, golden["request"])
            except (OSError, http.client.HTTPException) as e:
                conn.close()  # reconnect on the next row
                status, text = 0, f"request failed: {e!r}"
            problems = check_row(status, text, golden, args.tolerance)
            if problems:
                failures += 1
                entity = golden["request"].get("entities")
                for problem in problems:
                    print(f"check_golden: row {i} {json.dumps(entity)}: {problem}", file=sys.stderr)
    finally:
        conn.close()

    if failures:
        print(f"check_golden: {args.url}: {failures} of {len(rows)} golden rows disagree", file=sys.stderr)
        return 1
    print(f"check_golden: {args.url}: all {len(rows)} golden rows agree "
          f"(probability within {args.tolerance:g}, label and missing_features exact)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
