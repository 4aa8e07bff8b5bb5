#!/usr/bin/env python3
"""Models and rows for `cargo bench --bench trees` and benches/trees_onnxruntime.py.

    .venv/bin/python benches/trees_models.py     # pins: tests/corpus/requirements.txt

Writes target/bench-trees/{lgbm_100,lgbm_500,rf_50}.onnx (LightGBM 31 leaves with 100 and
500 trees, a 50-tree random forest of depth 10; binary, ZipMap off) and rows.json (64
rows, float32, 20 features). Too big to commit (up to ~2 MB), deterministic to rebuild.
"""

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "target" / "bench-trees"
SEED = 5


def main() -> None:
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(SEED)
    n, f = 20000, 20
    X = rng.normal(size=(n, f)).astype(np.float32)
    z = X[:, 0] + X[:, 1] * X[:, 2] - 0.5 * X[:, 3] ** 2 + 0.3 * np.sin(3 * X[:, 4]) + rng.normal(size=n)
    y = (z > 0).astype(np.int64)
    OUT.mkdir(parents=True, exist_ok=True)
    for trees in (100, 500):
        clf = lgb.LGBMClassifier(n_estimators=trees, num_leaves=31, learning_rate=0.05, random_state=SEED,
                                 deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1).fit(X, y)
        onx = convert_lightgbm(clf, initial_types=[("input", MlFloat([None, f]))], zipmap=False,
                               target_opset=15)
        (OUT / f"lgbm_{trees}.onnx").write_bytes(onx.SerializeToString())
    rf = RandomForestClassifier(n_estimators=50, max_depth=10, random_state=SEED, n_jobs=1).fit(X, y)
    onx = to_onnx(rf, initial_types=[("input", FloatTensorType([None, f]))],
                  options={id(rf): {"zipmap": False}}, target_opset={"": 13, "ai.onnx.ml": 1})
    (OUT / "rf_50.onnx").write_bytes(onx.SerializeToString())
    rows = rng.normal(size=(64, f)).astype(np.float32)
    (OUT / "rows.json").write_text(json.dumps({"width": f, "rows": rows.tolist()}))
    for p in sorted(OUT.glob("*.onnx")):
        print(f"{p.name:14s} {p.stat().st_size / 1024:8.1f} KB")


if __name__ == "__main__":
    main()
