"""Writes model.onnx, the model the Feast end-to-end test serves: `y = input @ ones(11, 1)`
(a MatMul), input `input` [batch, 11] float32, output `y` [batch, 1]. 11 is the number of
numeric Feast features the test's manifest feeds the model, so `y` is their sum.

Run once with the `onnx` package (e.g. onnx==1.23.2 in a scratch venv):
    python tests/feast/make_model.py
The file is committed; the test computes its sha256 at run time.
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIDTH = 11
x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, WIDTH])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
w = numpy_helper.from_array(np.ones((WIDTH, 1), dtype=np.float32), name="w")
graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["y"])], "feast_sum", [x], [y], [w])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="fti-serve tests")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, Path(__file__).with_name("model.onnx"))
