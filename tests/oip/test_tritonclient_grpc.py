"""Open Inference Protocol v2 over gRPC, checked with the real `tritonclient` gRPC client
(it sends `raw_input_contents` and reads `raw_output_contents`)."""
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from conftest import golden


@pytest.fixture()
def client(server):
    return grpcclient.InferenceServerClient(url=server["grpc"])


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata().name == "fti-serve"
    assert client.is_model_ready("fraud")
    assert not client.is_model_ready("nope")
    meta = client.get_model_metadata("fraud", "1")
    assert meta.name == "fraud"
    assert [(i.name, i.datatype, list(i.shape)) for i in meta.inputs] == [("input", "FP32", [-1, 19])]
    outputs = {o.name: (o.datatype, list(o.shape)) for o in meta.outputs}
    assert outputs["probabilities"] == ("FP32", [-1, 2])


@pytest.mark.parametrize("version", ["1", "2"])
def test_infer_matches_golden_single_and_batch(client, version):
    inputs, rows = golden(int(version))
    for batch in [inputs[:1], inputs]:
        tensor = grpcclient.InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        result = client.infer(
            "fraud", [tensor], model_version=version, outputs=[grpcclient.InferRequestedOutput("probabilities")],
            request_id="g-1",
        )
        assert result.get_response().model_version == version
        assert result.get_response().id == "g-1"
        probabilities = result.as_numpy("probabilities")
        assert probabilities.shape == (len(batch), 2)
        for got, row in zip(probabilities, rows):
            assert abs(float(got[1]) - row["outputs"]["probability"]) <= 1e-5
            assert int(np.argmax(got)) == row["outputs"]["label"]


def test_production_alias_answers_without_a_version(client):
    inputs, rows = golden(2)
    tensor = grpcclient.InferInput("input", [1, 24], "FP32")
    tensor.set_data_from_numpy(inputs[:1])
    result = client.infer("fraud", [tensor])
    assert result.get_response().model_version == "2"
    assert result.as_numpy("label").shape == (1,)


def test_errors_are_grpc_statuses(client):
    inputs, _ = golden(2)
    good = grpcclient.InferInput("input", [1, 24], "FP32")
    good.set_data_from_numpy(inputs[:1])
    with pytest.raises(InferenceServerException, match="not served") as raised:
        client.infer("nope", [good])
    assert "NOT_FOUND" in str(raised.value.status())
    wrong_shape = grpcclient.InferInput("input", [1, 19], "FP32")
    wrong_shape.set_data_from_numpy(np.zeros((1, 19), dtype=np.float32))
    with pytest.raises(InferenceServerException, match=r"expected \[batch, 24\]") as raised:
        client.infer("fraud", [wrong_shape])
    assert "INVALID_ARGUMENT" in str(raised.value.status())
    wrong_type = grpcclient.InferInput("input", [1, 24], "INT8")
    wrong_type.set_data_from_numpy(np.zeros((1, 24), dtype=np.int8))
    with pytest.raises(InferenceServerException, match="INT8 is not supported"):
        client.infer("fraud", [wrong_type])
