"""fti-serve against an MLflow tracking server that wants HTTP basic auth (`mlflow server
--app-name basic-auth`, docs/mlflow.md): with the right username and password_file it
serves the alias's version and follows moves; with a wrong password it still starts, says
in readiness that MLflow refused it, serves nothing it has not cached, and never writes
the password to its log or its readiness answer."""
import json

from conftest import (REPO, MlflowServer, assert_goldens, http, register, serving, tail,
                      wait_for)

USER = "admin"
PASSWORD = "Right-pw-5d1f0c7a"
WRONG_PASSWORD = "Wrong-pw-93be42e6"


def test_basic_auth_credentials_right_and_wrong(fti_serve, tmp_path):
    # A server of its own (port, store, user store): the session's has no auth.
    work = tmp_path / "mlflow-auth"
    work.mkdir()
    mlflow = MlflowServer(work, basic_auth=(USER, PASSWORD))
    mlflow.start()
    model = "fraud_auth"
    try:
        # The server really wants credentials: none, or wrong ones, are refused.
        search = f"{mlflow.url}/api/2.0/mlflow/registered-models/search"
        assert http("GET", search)[0] == 401
        assert http("GET", search, headers={"Authorization": "Basic YWRtaW46bm9wZQ=="})[0] == 401

        assert register(mlflow, model, REPO / "models/fraud/1", alias="production") == 1
        assert register(mlflow, model, REPO / "models/fraud/2") == 2

        # (a) The right password, from a file.
        right_file = tmp_path / "mlflow-password"
        right_file.write_text(PASSWORD + "\n")
        good = fti_serve(mlflow.url, [model], cache=tmp_path / "cache-good",
                         mlflow_extra=[f'username = "{USER}"', f'password_file = "{right_file}"'])
        status, ready = good.ready()
        assert status == 200, ready
        assert ready["registry_source"]["kind"] == "mlflow", ready
        assert ready["registry_source"]["up"] is True, ready
        assert ready["registry_source"]["error"] is None, ready
        assert_goldens(good, 1, served_as=1, model=model)
        mlflow.set_alias(model, "production", 2)
        serving(good, model, 2)
        assert_goldens(good, 2, served_as=2, model=model)

        # (b) A wrong password: fti-serve starts and answers readiness, MLflow's refusal
        # is reported there, and with an empty cache there is nothing to serve. (No model
        # loads, so the embedded store is told its files' key column.)
        wrong_file = tmp_path / "mlflow-wrong-password"
        wrong_file.write_text(WRONG_PASSWORD + "\n")
        bad = fti_serve(mlflow.url, [model], cache=tmp_path / "cache-bad", store_keys=["cc_num"],
                        mlflow_extra=[f'username = "{USER}"', f'password_file = "{wrong_file}"'])
        bad.ready()

        def refused():
            status, ready = http("GET", f"{bad.url}/health/ready")
            return ready["registry_source"]["error"] and (status, ready)
        status, ready = wait_for(refused, 30, "readiness to report MLflow's refusal")
        error = ready["registry_source"]["error"]
        assert "401" in error and model in error, error
        assert ready["registry_source"]["up"] is False, ready
        assert status == 503 and ready["ready"] is False, ready
        assert ready["models"] == {model: False}, ready
        status, body = bad.predict({"entities": {"cc_num": "4111000000000001"}}, model)
        assert status != 200, body
        assert not list((tmp_path / "cache-bad").glob(f"{model}/*/model.onnx"))

        # Neither password is ever written out: not to either log, not in readiness.
        for server in (good, bad):
            log = tail(server.log, limit=10**7)
            assert log, f"{server.log} is empty"
            _, ready = http("GET", f"{server.url}/health/ready")
            for secret in (PASSWORD, WRONG_PASSWORD):
                assert secret not in log, f"a password in {server.log}"
                assert secret not in json.dumps(ready), ready
    finally:
        mlflow.stop()
