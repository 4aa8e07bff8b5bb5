"""Open Inference Protocol v2 over HTTP, checked with the real `tritonclient` package
against a live fti-serve (the debug binary `cargo test` builds) on a free loopback port,
serving the example registry. Run by tests/run.sh: `.venv-test/bin/pytest tests/oip`.
"""
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import golden  # noqa: E402


@pytest.fixture()
def client(server):
    return httpclient.InferenceServerClient(url=server["http"])


def test_health_and_server_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "fti-serve"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_readiness(client):
    assert client.is_model_ready("fraud")
    assert client.is_model_ready("fraud", "1")
    assert not client.is_model_ready("nope")
    latest = client.get_model_metadata("fraud")
    assert latest["name"] == "fraud"
    assert set(latest["versions"]) >= {"1", "2"}
    assert latest["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 24]}]
    outputs = {o["name"]: o for o in latest["outputs"]}
    assert outputs["probabilities"]["datatype"] == "FP32"
    assert outputs["probabilities"]["shape"] == [-1, 2]
    v1 = client.get_model_metadata("fraud", "1")
    assert v1["inputs"][0]["shape"] == [-1, 19]


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("binary", [True, False])
def test_infer_matches_golden_single_and_batch(client, version, binary):
    inputs, rows = golden(int(version))
    if not binary:
        # JSON cannot carry NaN: the JSON form takes the rows without missing values.
        keep = ~np.isnan(inputs).any(axis=1)
        inputs, rows = inputs[keep], [r for r, k in zip(rows, keep) if k]
    for batch in [inputs[:1], inputs]:
        tensor = httpclient.InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=binary)
        wanted = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
        result = client.infer("fraud", [tensor], model_version=version, outputs=wanted, request_id="req-7")
        assert result.get_response()["model_version"] == version
        assert result.get_response()["id"] == "req-7"
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (len(batch), 2)
        for got, row in zip(probabilities, rows):
            assert abs(float(got[1]) - row["outputs"]["probability"]) <= 1e-5
            assert int(np.argmax(got)) == row["outputs"]["label"]


def test_all_outputs_without_a_selection(client):
    inputs, _ = golden(1)
    tensor = httpclient.InferInput("input", [2, 19], "FP32")
    tensor.set_data_from_numpy(inputs[:2])
    result = client.infer("fraud", [tensor], model_version="1")
    assert result.as_numpy("probabilities").shape == (2, 2)
    assert result.as_numpy("label").shape == (2,)


def test_errors_use_the_specification_form(client, server):
    inputs, _ = golden(2)
    good = httpclient.InferInput("input", [1, 24], "FP32")
    good.set_data_from_numpy(inputs[:1])

    with pytest.raises(InferenceServerException, match="not served"):
        client.infer("nope", [good])

    wrong_shape = httpclient.InferInput("input", [1, 19], "FP32")
    wrong_shape.set_data_from_numpy(np.zeros((1, 19), dtype=np.float32))
    with pytest.raises(InferenceServerException, match=r"expected \[batch, 24\]"):
        client.infer("fraud", [wrong_shape])

    wrong_type = httpclient.InferInput("input", [1, 24], "BYTES")
    wrong_type.set_data_from_numpy(np.array([[b"x"] * 24], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="BYTES is not supported"):
        client.infer("fraud", [wrong_type])

    wrong_name = httpclient.InferInput("features", [1, 24], "FP32")
    wrong_name.set_data_from_numpy(inputs[:1])
    with pytest.raises(InferenceServerException, match="expected `input`"):
        client.infer("fraud", [wrong_name])

    # The raw HTTP form: a 4xx with {"error": "..."}.
    request = urllib.request.Request(
        f"http://{server['http']}/v2/models/fraud/infer", data=b'{"inputs": 3}', method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 400
    assert "inputs" in json.loads(raised.value.read())["error"]


@pytest.mark.parametrize("version", ["1", "2"])
def test_infer_answers_name_the_serving_version_in_a_header(server, version):
    inputs, _ = golden(int(version))
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, inputs.shape[1]],
                        "data": [None if np.isnan(x) else float(x) for x in inputs[0]]}]}
    req = urllib.request.Request(f"http://{server['http']}/v2/models/fraud/versions/{version}/infer",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["x-model-version"] == version
        assert json.loads(r.read())["model_version"] == version
