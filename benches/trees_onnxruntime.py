#!/usr/bin/env python3
"""onnxruntime on the same models and rows as `cargo bench --bench trees`, for the
comparison in BENCHMARKS.md ("Tree ensembles"). Run it right after the criterion bench:

    .venv/bin/python benches/trees_onnxruntime.py

One session per model, intra_op_num_threads=1 (as the server would run one request per
core). Times are the median over repeated runs of `sess.run` from Python, so they include
Python's call overhead (~2-3 us), as any Python caller pays it.
"""

import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

DIR = Path(__file__).resolve().parent.parent / "target" / "bench-trees"
REPO = Path(__file__).resolve().parent.parent


def median_us(fn, budget_s: float = 2.0) -> float:
    for _ in range(200):
        fn()
    samples = []
    end = time.perf_counter() + budget_s
    while time.perf_counter() < end:
        t0 = time.perf_counter_ns()
        for _ in range(20):
            fn()
        samples.append((time.perf_counter_ns() - t0) / 20 / 1000)
    return statistics.median(samples)


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    # onnxmltools declares the label shape [1]: without this, every batch run logs a
    # warning, which would be timed too.
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def main() -> None:
    rows = np.asarray(json.loads((DIR / "rows.json").read_text())["rows"], dtype=np.float32)
    print(f"onnxruntime {ort.__version__}, intra_op_num_threads=1")
    for name in ("lgbm_100", "lgbm_500", "rf_50"):
        s = session(DIR / f"{name}.onnx")
        one, batch = rows[:1], rows
        print(f"{name:10s} 1 row {median_us(lambda: s.run(None, {'input': one})):9.2f} us   "
              f"64 rows {median_us(lambda: s.run(None, {'input': batch})):9.2f} us")
    fraud = session(REPO / "models" / "fraud" / "2" / "model.onnx")
    width = fraud.get_inputs()[0].shape[1]
    x = np.zeros((1, width), dtype=np.float32)
    print(f"{'fraud v2':10s} 1 row {median_us(lambda: fraud.run(None, {'input': x})):9.2f} us")


if __name__ == "__main__":
    main()
