#!/usr/bin/env python3
"""Build the ONNX-ML test corpus: small models from the usual exporters, with onnxruntime
reference outputs on golden rows (tests/onnx_ml.rs checks the tract backend against them).

    /work/main/.venv/bin/python tests/corpus/make_corpus.py            # everything
    /work/main/.venv/bin/python tests/corpus/make_corpus.py 'svc_*' refused  # some (globs)

Pins: requirements.txt here. Naming models regenerates only those, so the committed
files of the others stay byte-identical.

Each model lands in tests/corpus/<name>/{model.onnx, golden.json}. golden.json holds the
input name and width, the rows (null = NaN), the class labels when the model has them,
and every graph output as onnxruntime computed it on the whole batch (intra-op threads 1).
Rows include NaN/missing values and values exactly on split thresholds. CI needs no
Python: everything this script writes is committed.
"""

from __future__ import annotations

import fnmatch
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

HERE = Path(__file__).resolve().parent
SEED = 11
N_FEATURES = 6
SKL_OPSET = {"": 13, "ai.onnx.ml": 1}
SKL_OPSET_ML3 = {"": 13, "ai.onnx.ml": 3}
ONNXMLTOOLS_OPSET = 15
ONLY: list[str] = []  # globs from the command line; empty = every model


def selected(name: str) -> bool:
    return not ONLY or any(fnmatch.fnmatch(name, g) for g in ONLY)


# ----------------------------------------------------------------------------- data

def dataset(n_classes: int, regression: bool = False, nan: bool = False, n: int = 600):
    rng = np.random.default_rng(SEED + n_classes + (7 if regression else 0))
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 4] = rng.integers(0, 4, size=n)  # a small-integer column: exercises ties and EQ
    X[:, 5] = np.round(X[:, 5], 1)  # coarse values: many rows sit on split thresholds
    z = X[:, 0] + 0.5 * X[:, 1] * X[:, 2] - 0.3 * X[:, 4] + 0.2 * rng.normal(size=n)
    if regression:
        y = 3.0 * z + X[:, 3] ** 2
    elif n_classes == 2:
        y = (z > 0.1).astype(np.int64)
    else:
        y = np.digitize(z, np.quantile(z, np.linspace(0, 1, n_classes + 1)[1:-1]))
    X = X.astype(np.float32)
    if nan:
        mask = rng.random(size=X.shape) < 0.08
        mask[:, 4] = False
        X[mask] = np.nan
    return X, y


def thresholds(model: onnx.ModelProto) -> list[tuple[int, float]]:
    """(feature, threshold) of split nodes, from any tree-ensemble node in the graph."""
    out = []
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if "nodes_featureids" in attrs and "nodes_values" in attrs:
            modes = [m.decode() for m in attrs["nodes_modes"].strings]
            for f, v, m in zip(attrs["nodes_featureids"].ints, attrs["nodes_values"].floats, modes):
                if m != "LEAF":
                    out.append((int(f), float(np.float32(v))))
    return out


def golden_rows(model: onnx.ModelProto, X: np.ndarray, nan_rows: bool) -> np.ndarray:
    """Training-like rows, rows with NaN, and rows exactly on split thresholds.

    Pipelines one-hot column 4 after an ONNX Cast to int64, and the cast of NaN is
    undefined (onnxruntime gives INT64_MIN, an unknown category; tract 0, a known one):
    there, NaN goes only into the numeric columns, which the pipeline imputes."""
    categorical = any(n.op_type == "OneHotEncoder" for n in model.graph.node)
    rng = np.random.default_rng(SEED)
    rows = [X[i].copy() for i in rng.choice(len(X), size=12, replace=False)]
    rows.append(np.zeros(X.shape[1], dtype=np.float32))
    # In pipelines the trees see transformed columns: those rows are merely more rows.
    splits = [(f, t) for f, t in thresholds(model) if f < X.shape[1]]
    for k in range(min(10, len(splits))):
        f, t = splits[(k * 7919) % len(splits)]
        row = rows[k % 12].copy()
        row[f] = t
        rows.append(row)
    if nan_rows:
        for k in range(6):
            row = rows[k].copy()
            if k == 5:
                row[:] = np.nan
            else:
                row[k % X.shape[1]] = np.nan
            if categorical:
                row[4] = rows[k][4]
            rows.append(row)
    R = np.vstack(rows).astype(np.float32)
    return np.nan_to_num(R, nan=np.nan, posinf=1e30, neginf=-1e30)


# ----------------------------------------------------------------------------- export

def sess(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def jsonable(v):
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return None if math.isnan(v) else v
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (np.str_, str, bytes)):
        return v.decode() if isinstance(v, bytes) else str(v)
    raise TypeError(type(v))


def class_labels(model: onnx.ModelProto):
    for node in model.graph.node:
        for a in node.attribute:
            if a.name == "classlabels_int64s" and a.ints:
                return [int(x) for x in a.ints]
            if a.name == "classlabels_strings" and a.strings:
                return [s.decode() for s in a.strings]
    return None


def write(name: str, model: onnx.ModelProto, X: np.ndarray, nan_rows: bool = True,
          note: str = "") -> None:
    if selected(name):
        save(name, model, golden_rows(model, X, nan_rows), note)


def write_columns(name: str, model: onnx.ModelProto, rows: list, note: str = "") -> None:
    """A model whose input holds strings or int64 (the server feeds float32 only; the test
    runs these at the tract level). `rows` are given as they are; a rank-1 input takes one
    value per row."""
    if not selected(name):
        return
    t = model.graph.input[0].type.tensor_type
    dtype = {onnx.TensorProto.STRING: object, onnx.TensorProto.INT64: np.int64}[t.elem_type]
    R = np.array(rows, dtype=dtype)
    save(name, model, R.reshape(-1) if len(t.shape.dim) == 1 else R, note)


def save(name: str, model: onnx.ModelProto, R: np.ndarray, note: str) -> None:
    d = HERE / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    onnx.checker.check_model(model)
    (d / "model.onnx").write_bytes(model.SerializeToString())
    s = sess(model)
    inp = s.get_inputs()[0].name
    names = [o.name for o in s.get_outputs()]
    values = s.run(None, {inp: R})
    outputs = {}
    for o, v in zip(names, values):
        if isinstance(v, list):  # ZipMap: a list of {class: probability}
            outputs[o] = {"kind": "map", "data": jsonable(v)}
        else:
            v = np.asarray(v)
            kind = "string" if v.dtype.kind in "OUS" else ("int" if v.dtype.kind in "iu" else "float")
            outputs[o] = {"kind": kind, "shape": list(v.shape), "data": jsonable(v.reshape(-1).tolist())}
    ops = sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in model.graph.node})
    golden = {"note": note, "input": inp, "width": int(R.shape[1]) if R.ndim == 2 else 1}
    if R.dtype != np.float32:
        golden["input_dtype"] = "string" if R.dtype == object else "int64"
        golden["input_rank"] = R.ndim
    golden.update({
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "operators": ops,
        "class_labels": class_labels(model),
        "rows": jsonable(R.reshape(len(R), -1).tolist()),
        "outputs": outputs,
    })
    (d / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"{name:28s} {len(model.SerializeToString()) / 1024:7.1f} KB  {', '.join(ops)}")


def _ints_not_bools() -> None:
    """skl2onnx 1.20 hands `nodes_missing_value_tracks_true` to onnx as Python bools, which
    onnx 1.23 rejects (HistGradientBoosting trained with NaN); give it the ints it means."""
    original = helper.make_attribute

    def make_attribute(key, value, *args, **kwargs):
        if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
            value = [int(v) if isinstance(v, (bool, np.bool_)) else v for v in value]
        return original(key, value, *args, **kwargs)

    helper.make_attribute = make_attribute


_ints_not_bools()


def skl(model, X, opset=SKL_OPSET, zipmap=False, extra=None):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    options = {"zipmap": zipmap} if hasattr(model, "predict_proba") else {}
    if extra:
        options.update(extra)
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                   options={id(model): options} if options else None, target_opset=opset)


def mltools_lgbm(model, X, zipmap=False):
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    return convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                            zipmap=zipmap, target_opset=ONNXMLTOOLS_OPSET)


def mltools_xgb(model, X):
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    return convert_xgboost(model, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                           target_opset=ONNXMLTOOLS_OPSET)


def as_tensor_attributes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same trees with ml-opset-3 `*_as_tensor` attributes. The spec means them for
    double; onnxruntime unpacks them in the input's type, so with float input they must be
    float tensors."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for node in m.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        keep = []
        for a in node.attribute:
            if a.name in ("nodes_values", "class_weights", "target_weights", "base_values"):
                t = numpy_helper.from_array(np.asarray(a.floats, dtype=np.float32), a.name + "_as_tensor")
                keep.append(helper.make_attribute(a.name + "_as_tensor", t))
            else:
                keep.append(a)
        del node.attribute[:]
        node.attribute.extend(keep)
    for op in m.opset_import:
        if op.domain == "ai.onnx.ml":
            op.version = 3
    return m


def to_tree_ensemble_v5(model: onnx.ModelProto, member_feature: int) -> onnx.ModelProto:
    """A single-target TreeEnsembleRegressor rewritten as ai.onnx.ml opset 5 TreeEnsemble.
    Splits on `member_feature` (small integers 0..3) become MEMBER sets of the integers
    that took the true branch, so set membership is exercised."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    node = next(n for n in m.graph.node if n.op_type == "TreeEnsembleRegressor")
    a = {x.name: x for x in node.attribute}
    trees, ids = list(a["nodes_treeids"].ints), list(a["nodes_nodeids"].ints)
    feats, vals = list(a["nodes_featureids"].ints), list(a["nodes_values"].floats)
    modes = [x.decode() for x in a["nodes_modes"].strings]
    yes, no = list(a["nodes_truenodeids"].ints), list(a["nodes_falsenodeids"].ints)
    miss = list(a["nodes_missing_value_tracks_true"].ints) or [0] * len(ids)
    weight = {(t, n): w for t, n, w in zip(a["target_treeids"].ints, a["target_nodeids"].ints,
                                           a["target_weights"].floats)}
    split_ix, leaf_ix = {}, {}
    for i, (t, n) in enumerate(zip(trees, ids)):
        (leaf_ix if modes[i] == "LEAF" else split_ix)[(t, n)] = len(leaf_ix if modes[i] == "LEAF" else split_ix)
    order = sorted(split_ix, key=split_ix.get)
    at = {(t, n): i for i, (t, n) in enumerate(zip(trees, ids))}
    f_, s_, m_, ty, fy, tl, fl, mv, members = [], [], [], [], [], [], [], [], []
    for key in order:
        i = at[key]
        t = key[0]
        mode = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4,
                "BRANCH_NEQ": 5}[modes[i]]
        if feats[i] == member_feature and mode == 0:
            mode = 6
            members += [float(v) for v in range(4) if v <= vals[i]] + [float("nan")]
        f_.append(feats[i]); s_.append(vals[i]); m_.append(mode); mv.append(miss[i])
        for child, ids_out, flags in ((yes[i], ty, tl), (no[i], fy, fl)):
            ck = (t, child)
            if ck in leaf_ix:
                ids_out.append(leaf_ix[ck]); flags.append(1)
            else:
                ids_out.append(split_ix[ck]); flags.append(0)
    roots = [split_ix[(t, 0)] for t in sorted(set(trees))]
    leaves = sorted(leaf_ix, key=leaf_ix.get)
    attrs = dict(
        nodes_featureids=f_, nodes_truenodeids=ty, nodes_falsenodeids=fy, nodes_trueleafs=tl,
        nodes_falseleafs=fl, nodes_missing_value_tracks_true=mv, tree_roots=roots,
        leaf_targetids=[0] * len(leaves), n_targets=1, aggregate_function=1, post_transform=0,
        nodes_splits=numpy_helper.from_array(np.asarray(s_, dtype=np.float32), "nodes_splits"),
        nodes_modes=numpy_helper.from_array(np.asarray(m_, dtype=np.uint8), "nodes_modes"),
        leaf_weights=numpy_helper.from_array(np.asarray([weight[k] for k in leaves], dtype=np.float32),
                                             "leaf_weights"),
    )
    if members:
        attrs["membership_values"] = numpy_helper.from_array(np.asarray(members, dtype=np.float32),
                                                             "membership_values")
    new = helper.make_node("TreeEnsemble", list(node.input), list(node.output), domain="ai.onnx.ml", **attrs)
    nodes = [new if n is node else n for n in m.graph.node]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    for op in m.opset_import:
        if op.domain == "ai.onnx.ml":
            op.version = 5
    return m


# ----------------------------------------------------------------------------- SVMs

def single_node(op: str, attrs: dict, outputs: list, input_type: int = onnx.TensorProto.FLOAT,
                input_shape: tuple = (None, N_FEATURES), ml_opset: int = 1) -> onnx.ModelProto:
    """A graph of one ai.onnx.ml node reading `input`; `outputs` are (name, elem_type,
    shape) triples."""
    node = helper.make_node(op, ["input"], [o[0] for o in outputs], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph(
        [node], op.lower(), [helper.make_tensor_value_info("input", input_type, list(input_shape))],
        [helper.make_tensor_value_info(*o) for o in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", ml_opset)])


def with_svm_attrs(model: onnx.ModelProto, **attrs) -> onnx.ModelProto:
    """The same model with some attributes of its SVM node set (added or replaced)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    node = next(n for n in m.graph.node if n.op_type.startswith("SVM"))
    keep = [a for a in node.attribute if a.name not in attrs]
    del node.attribute[:]
    node.attribute.extend(keep + [helper.make_attribute(k, v) for k, v in attrs.items()])
    return m


def pairwise_scores_shape(model: onnx.ModelProto, n_classes: int) -> onnx.ModelProto:
    """skl2onnx declares the ovo scores as [N, n_classes]; there is one per class pair."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output[1].type.tensor_type.shape.dim[1].dim_value = n_classes * (n_classes - 1) // 2
    return m


def linear_svm_classifier(est) -> onnx.ModelProto:
    """LinearSVC's weights as an SVMClassifier without support vectors (skl2onnx exports
    LinearSVC as LinearClassifier). Two classes get the rows [-w, w]."""
    W, b = est.coef_, est.intercept_
    if W.shape[0] == 1:
        W, b = np.vstack([-W, W]), np.array([-b[0], b[0]])
    c = len(est.classes_)
    attrs = dict(classlabels_ints=[int(x) for x in est.classes_], kernel_type="LINEAR",
                 kernel_params=[0.0, 0.0, 0.0], coefficients=W.astype(np.float32).ravel().tolist(),
                 rho=b.astype(np.float32).tolist(), post_transform="NONE")
    return single_node("SVMClassifier", attrs, [("label", onnx.TensorProto.INT64, [None]),
                                                ("probabilities", onnx.TensorProto.FLOAT, [None, c])])


def linear_svm_regressor(est) -> onnx.ModelProto:
    """LinearSVR's weights as an SVMRegressor without support vectors (n_supports = 0)."""
    attrs = dict(kernel_type="LINEAR", kernel_params=[0.0, 0.0, 0.0], n_supports=0,
                 coefficients=est.coef_.astype(np.float32).ravel().tolist(),
                 rho=[float(np.float32(est.intercept_[0]))], post_transform="NONE")
    return single_node("SVMRegressor", attrs, [("variable", onnx.TensorProto.FLOAT, [None, 1])])


def svm_models() -> None:
    """SVC in every kernel, with and without probabilities, binary, 3 and 4 classes; SVR,
    NuSVR, OneClassSVM; the linear form from LinearSVC/LinearSVR weights (skl2onnx exports
    those as LinearClassifier/LinearRegressor); post_transform and one_class variants.
    Trained on 120 rows: few support vectors keep the files small and onnxruntime's f32
    sums close to exact."""
    import warnings

    from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR, NuSVR, OneClassSVM

    # scikit-learn 1.9 deprecates SVC(probability=True) (removal in 1.11); the pins keep it.
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    Xb, yb = dataset(2)
    Xm, ym = dataset(3)
    X4, y4 = dataset(4)
    Xr, yr = dataset(0, regression=True)
    names = np.array(["low", "mid", "high"])
    n = 120

    def svc(X, y, **kw):
        return SVC(random_state=SEED, **kw).fit(X[:n], y[:n])

    plain = {"zipmap": False}
    linear_binary = skl(svc(Xb, yb, kernel="linear"), Xb, extra=plain)
    write("svc_linear_binary", linear_binary, Xb, note="binary scores are [-d, d]")
    write("svc_linear_binary_logistic", with_svm_attrs(linear_binary, post_transform="LOGISTIC"), Xb,
          note="post_transform LOGISTIC on the binary layout")
    write("svc_rbf_binary_proba", skl(svc(Xb, yb, probability=True), Xb), Xb,
          note="Platt scaling, coupled for two classes too")
    write("svc_poly_multiclass", skl(svc(Xm, ym, kernel="poly", degree=2, coef0=1.0), Xm, extra=plain),
          Xm, note="pairwise decisions, then skl2onnx's ovr graph")
    multi_proba = skl(svc(Xm, ym, kernel="sigmoid", gamma=0.05, probability=True), Xm)
    write("svc_sigmoid_multiclass_proba", multi_proba, Xm, note="pairwise coupling")
    write("svc_sigmoid_multiclass_proba_softmax", with_svm_attrs(multi_proba, post_transform="SOFTMAX"),
          Xm, note="post_transform SOFTMAX on coupled probabilities")
    write("svc_rbf_multiclass_proba_strings", skl(svc(Xm, names[ym], probability=True), Xm), Xm,
          note="string class labels")
    write("svc_rbf_4class_ovo",
          pairwise_scores_shape(skl(svc(X4, y4, decision_function_shape="ovo"), X4, extra=plain), 4),
          X4, note="6 pairwise decisions as the scores")

    write("svr_rbf", skl(SVR(C=3.0).fit(Xr[:n], yr[:n]), Xr), Xr)
    write("svr_linear", skl(SVR(kernel="linear").fit(Xr[:n], yr[:n]), Xr), Xr)
    write("nusvr_poly", skl(NuSVR(kernel="poly", degree=2, coef0=1.0).fit(Xr[:n], yr[:n]), Xr), Xr)
    oneclass = skl(OneClassSVM(gamma=0.1).fit(Xr[:n]), Xr)
    # The graph casts Sign(decision) to int64: NaN rows would test the cast of NaN, which
    # is undefined (onnxruntime INT64_MIN, tract 0).
    write("oneclass_svm", oneclass, Xr, nan_rows=False, note="SVMRegressor decision, Sign in the graph")
    write("oneclass_svm_one_class", with_svm_attrs(oneclass, one_class=1), Xr,
          note="one_class = 1: the node itself answers 1 or -1")

    write("svm_linear_form_multiclass", linear_svm_classifier(LinearSVC(random_state=SEED).fit(Xm, ym)),
          Xm, note="no support vectors: coefficients are class weights (LinearSVC's)")
    write("svm_linear_form_binary", linear_svm_classifier(LinearSVC(random_state=SEED).fit(Xb, yb)), Xb)
    write("svr_linear_form", linear_svm_regressor(LinearSVR(random_state=SEED).fit(Xr, yr)), Xr,
          note="n_supports = 0: coefficients are LinearSVR's weights")
    write("array_feature_extractor_shapes", array_feature_extractor_shapes(), Xm,
          note="the graphs skl2onnx appends to SVC index with scalars")


def array_feature_extractor_shapes() -> onnx.ModelProto:
    """ArrayFeatureExtractor with a scalar index and a 2-D index tensor: onnxruntime keeps
    the last axis ([N, 1]) and flattens the indices ([N, 4])."""
    F = onnx.TensorProto.FLOAT
    nodes = [helper.make_node("ArrayFeatureExtractor", ["input", "one"], ["column"], domain="ai.onnx.ml"),
             helper.make_node("ArrayFeatureExtractor", ["input", "grid"], ["columns"], domain="ai.onnx.ml")]
    graph = helper.make_graph(
        nodes, "afe", [helper.make_tensor_value_info("input", F, [None, N_FEATURES])],
        [helper.make_tensor_value_info("column", F, [None, 1]),
         helper.make_tensor_value_info("columns", F, [None, 4])],
        initializer=[numpy_helper.from_array(np.array(4, dtype=np.int64), "one"),
                     numpy_helper.from_array(np.array([[5, 0], [2, 2]], dtype=np.int64), "grid")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid("ai.onnx.ml", 1)])


def write_refused() -> None:
    """A model the tract backend must refuse, naming the operator: FeatureVectorizer is
    not implemented (nothing we serve exports it)."""
    refused = HERE / "refused"
    refused.mkdir(exist_ok=True)
    model = single_node("FeatureVectorizer", dict(inputdimensions=[N_FEATURES]),
                        [("output", onnx.TensorProto.FLOAT, [None, N_FEATURES])])
    onnx.checker.check_model(model)
    (refused / "feature_vectorizer.onnx").write_bytes(model.SerializeToString())


# ----------------------------------------------------------------------------- strings

STRING_ROWS = [["red", "s"], ["green", "m"], ["blue", "l"], ["green", "s"], ["red", "xl"],
               ["blue", "m"], ["purple", "m"], ["", "s"], ["red", ""], ["Red", "L"],
               ["green", "l"], ["blue", "xl"]]


def string_models() -> None:
    """String columns: scikit-learn's OneHotEncoder and OrdinalEncoder as skl2onnx exports
    them (OneHotEncoder `cats_strings`, LabelEncoder string -> int64), and hand-built
    LabelEncoders for the other directions (int64 -> string, string -> float, string ->
    string) and the opset 4 tensor attributes. Rows include unknown categories, the empty
    string and a case variant."""
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    S, I, F = onnx.TensorProto.STRING, onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    rng = np.random.default_rng(SEED)
    colors, sizes = np.array(["red", "green", "blue"]), np.array(["s", "m", "l", "xl"])
    X = np.stack([colors[rng.integers(0, 3, 200)], sizes[rng.integers(0, 4, 200)]], axis=1).astype(object)
    y = ((X[:, 0] == "red") ^ (X[:, 1] == "l")).astype(np.int64)

    def skl_strings(model):
        from skl2onnx import to_onnx
        options = {id(model.steps[-1][1]): {"zipmap": False}} if hasattr(model, "steps") else None
        return to_onnx(model, initial_types=[("input", StringTensorType([None, 2]))],
                       target_opset={"": 13, "ai.onnx.ml": 2}, options=options)

    write_columns("ohe_strings_logreg",
                  skl_strings(Pipeline([("ohe", OneHotEncoder(handle_unknown="ignore")),
                                        ("clf", LogisticRegression())]).fit(X, y)),
                  STRING_ROWS, note="OneHotEncoder cats_strings on two string columns + LogisticRegression")
    write_columns("ordinal_strings",
                  skl_strings(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(X)),
                  STRING_ROWS, note="LabelEncoder keys_strings -> values_int64s, unknown -> -1")

    keys = ["red", "green", "blue"]
    write_columns("label_encoder_string_to_int",
                  single_node("LabelEncoder", dict(keys_strings=keys, values_int64s=[7, 8, 9],
                                                   default_int64=-7),
                              [("y", I, [None, 2])], S, (None, 2), ml_opset=2),
                  STRING_ROWS)
    write_columns("label_encoder_string_to_float",
                  single_node("LabelEncoder", dict(keys_strings=keys, values_floats=[0.25, -1.5, 3.0],
                                                   default_float=0.5),
                              [("y", F, [None, 2])], S, (None, 2), ml_opset=2),
                  STRING_ROWS)
    write_columns("label_encoder_string_to_string",
                  single_node("LabelEncoder", dict(keys_strings=keys + ["s"], values_strings=["R", "G", "B", "S"]),
                              [("y", S, [None, 2])], S, (None, 2), ml_opset=2),
                  STRING_ROWS, note="no default_string: '_Unused'")
    write_columns("label_encoder_int_to_string",
                  single_node("LabelEncoder", dict(keys_int64s=[1, 2, 3, -4], values_strings=["one", "two", "three", "minus four"],
                                                   default_string="other"),
                              [("y", S, [None])], I, (None,), ml_opset=2),
                  [[1], [2], [3], [-4], [0], [4], [9_007_199_254_740_993], [-1]], note="rank-1 int64 input")
    write_columns("label_encoder_v4_tensors",
                  single_node("LabelEncoder", dict(
                      keys_tensor=helper.make_tensor("keys_tensor", S, [3], [k.encode() for k in keys]),
                      values_tensor=numpy_helper.from_array(np.array([10, 20, 30], dtype=np.int64), "values_tensor"),
                      default_tensor=numpy_helper.from_array(np.array([-99], dtype=np.int64), "default_tensor")),
                      [("y", I, [None, 2])], S, (None, 2), ml_opset=4),
                  STRING_ROWS, note="ai.onnx.ml opset 4 keys_tensor / values_tensor / default_tensor")


# ----------------------------------------------------------------------------- corpus

def main() -> None:
    import lightgbm as lgb
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                                  HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Binarizer, OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    Xb, yb = dataset(2)
    Xm, ym = dataset(3)
    Xr, yr = dataset(0, regression=True)
    Xbn, ybn = dataset(2, nan=True)
    Xmn, ymn = dataset(3, nan=True)
    Xrn, yrn = dataset(0, regression=True, nan=True)
    names = np.array(["low", "mid", "high"])

    lgb_args = dict(n_estimators=20, num_leaves=15, learning_rate=0.2, random_state=SEED,
                    deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1)
    write("lgbm_binary", mltools_lgbm(lgb.LGBMClassifier(**lgb_args).fit(Xbn, ybn), Xbn), Xbn,
          note="LightGBM binary, NaN in training")
    write("lgbm_binary_zipmap",
          mltools_lgbm(lgb.LGBMClassifier(**lgb_args).fit(Xbn, ybn), Xbn, zipmap=True), Xbn)
    write("lgbm_multiclass", mltools_lgbm(lgb.LGBMClassifier(**lgb_args).fit(Xmn, ymn), Xmn), Xmn)
    write("lgbm_regressor", mltools_lgbm(lgb.LGBMRegressor(**lgb_args).fit(Xrn, yrn), Xrn), Xrn)

    rf = dict(n_estimators=8, max_depth=5, random_state=SEED, n_jobs=1)
    write("rf_binary", skl(RandomForestClassifier(**rf).fit(Xb, yb), Xb), Xb)
    write("rf_multiclass_strings", skl(RandomForestClassifier(**rf).fit(Xm, names[ym]), Xm), Xm,
          note="string class labels")
    write("rf_regressor", skl(RandomForestRegressor(**rf).fit(Xr, yr), Xr), Xr)
    write("rf_binary_ml3_as_tensor",
          as_tensor_attributes(skl(RandomForestClassifier(**rf).fit(Xb, yb), Xb)), Xb,
          note="*_as_tensor attributes, ai.onnx.ml opset 3")
    write("rf_regressor_ml3_as_tensor",
          as_tensor_attributes(skl(RandomForestRegressor(**rf).fit(Xr, yr), Xr)), Xr)
    write("dt_binary_labels_7_9", skl(DecisionTreeClassifier(max_depth=4, random_state=SEED)
                                      .fit(Xb, np.where(yb == 1, 9, 7)), Xb), Xb,
          note="integer labels that are not 0..n")

    gb = dict(n_estimators=15, max_depth=3, random_state=SEED)
    write("gb_binary", skl(GradientBoostingClassifier(**gb).fit(Xb, yb), Xb), Xb)
    write("gb_multiclass", skl(GradientBoostingClassifier(**gb).fit(Xm, ym), Xm), Xm)
    write("gb_regressor", skl(GradientBoostingRegressor(**gb).fit(Xr, yr), Xr), Xr)

    write("tree_ensemble_v5_member",
          to_tree_ensemble_v5(skl(HistGradientBoostingRegressor(max_iter=10, max_leaf_nodes=8,
                                                                 random_state=SEED).fit(Xrn, yrn), Xrn),
                              member_feature=4), Xrn,
          note="ai.onnx.ml opset 5 TreeEnsemble with MEMBER sets and missing tracking")

    hgb = dict(max_iter=15, max_leaf_nodes=15, random_state=SEED)
    write("hgb_binary", skl(HistGradientBoostingClassifier(**hgb).fit(Xbn, ybn), Xbn), Xbn,
          note="NaN in training: missing values tracked per node")
    write("hgb_multiclass", skl(HistGradientBoostingClassifier(**hgb).fit(Xmn, ymn), Xmn), Xmn)
    write("hgb_regressor", skl(HistGradientBoostingRegressor(**hgb).fit(Xrn, yrn), Xrn), Xrn)

    # Linear models are not defined on NaN (tract's LinearClassifier and onnxruntime
    # disagree on what comes out): no NaN rows.
    write("logreg_binary", skl(LogisticRegression(max_iter=500).fit(Xb, yb), Xb), Xb, nan_rows=False)
    write("logreg_multiclass_zipmap",
          skl(LogisticRegression(max_iter=500).fit(Xm, names[ym]), Xm, zipmap=True), Xm,
          nan_rows=False, note="string class labels, ZipMap")
    write("linreg", skl(LinearRegression().fit(Xr, yr), Xr), Xr, nan_rows=False)

    # Pipelines: impute + scale numeric columns, one-hot the small-integer column.
    num = [0, 1, 2, 3, 5]
    pre = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), num),
        ("cat", OneHotEncoder(handle_unknown="ignore"), [4]),
    ])
    write("pipeline_logreg",
          skl(Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(Xbn, ybn), Xbn),
          Xbn, note="SimpleImputer + StandardScaler + OneHotEncoder + LogisticRegression")
    write("pipeline_rf_zipmap",
          skl(Pipeline([("pre", pre), ("clf", RandomForestClassifier(**rf))]).fit(Xbn, ybn), Xbn,
              zipmap=True), Xbn)
    write("pipeline_binarizer_dt",
          skl(Pipeline([("bin", Binarizer(threshold=0.0)),
                        ("dt", DecisionTreeRegressor(max_depth=4, random_state=SEED))]).fit(Xr, yr), Xr),
          Xr, nan_rows=False)

    if selected("refused"):
        write_refused()

    svm_models()
    string_models()

    try:
        import xgboost as xgb
    except ImportError:
        sys.exit("xgboost is missing: pip install -r tests/corpus/requirements.txt")
    xg = dict(n_estimators=15, max_depth=4, learning_rate=0.3, random_state=SEED, n_jobs=1,
              base_score=0.5)
    write("xgb_binary", mltools_xgb(xgb.XGBClassifier(**xg).fit(Xbn, ybn), Xbn), Xbn)
    write("xgb_multiclass", mltools_xgb(xgb.XGBClassifier(**xg).fit(Xmn, ymn), Xmn), Xmn)
    write("xgb_regressor", mltools_xgb(xgb.XGBRegressor(**xg).fit(Xrn, yrn), Xrn), Xrn)


if __name__ == "__main__":
    ONLY.extend(sys.argv[1:])
    main()
