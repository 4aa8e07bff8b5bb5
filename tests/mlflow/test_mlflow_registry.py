"""fti-serve with an MLflow Model Registry as its registry source (docs/mlflow.md), against a
real `mlflow server`: versions registered with the example's script serve their goldens,
alias moves made in MLflow are followed under load with zero failed requests, the CLI and
admin API set MLflow's aliases, a version whose model does not match its manifest is
refused while the old one serves, and MLflow being down at start or while serving leaves
the cache serving, with readiness saying so."""
import re
import shutil
from pathlib import Path

from conftest import (ADMIN_TOKEN, REPO, Load, MlflowServer, assert_goldens, http, register,
                      serving, wait_for)


def metric(server, name):
    _, text = http("GET", f"{server.url}/metrics")
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_alias_moves_in_mlflow_are_served_under_load(mlflow_server, fti_serve):
    model = "fraud_moves"
    assert register(mlflow_server, model, REPO / "models/fraud/1", alias="production") == 1
    assert register(mlflow_server, model, REPO / "models/fraud/2") == 2
    server = fti_serve(mlflow_server.url, [model])
    status, ready = server.ready()
    assert status == 200, ready
    assert ready["registry_source"]["kind"] == "mlflow"
    assert ready["registry_source"]["up"] is True, ready
    assert ready["registry_source"]["error"] is None, ready
    assert_goldens(server, 1, served_as=1, model=model)

    load = Load(server, model)
    try:
        wait_for(lambda: load.served() >= 200, 60, "load to start")
        mlflow_server.set_alias(model, "production", 2)
        serving(server, model, 2)
        assert_goldens(server, 2, served_as=2, model=model)
        served_before = load.served()
        wait_for(lambda: load.served() >= served_before + 200, 60, "load on version 2")
        # Rolling back is setting the alias back.
        mlflow_server.set_alias(model, "production", 1)
        serving(server, model, 1)
        served_before = load.served()
        wait_for(lambda: load.served() >= served_before + 200, 60, "load after the rollback")
    finally:
        statuses, versions, errors = load.finish()
    assert set(statuses) == {200}, (statuses, errors)
    assert versions.get(1, 0) > 0 and versions.get(2, 0) > 0, versions

    history = server.cli("history", model)
    assert history.returncode == 0, history.stderr
    moves = [line.split() for line in history.stdout.splitlines()[1:]]
    # AT ALIAS ACTION FROM -> TO BY ...
    assert [(m[1], m[2], m[3], m[5], m[6]) for m in moves] == [
        ("production", "promote", "-", "1", "mlflow"),
        ("production", "promote", "1", "2", "mlflow"),
        ("production", "rollback", "2", "1", "mlflow"),
    ], history.stdout
    assert metric(server, "fti_registry_source_up") == 1.0
    downloads = metric(server, 'fti_registry_source_downloads_total{result="ok"}')
    assert downloads == 2.0, downloads


def test_cli_and_admin_api_set_the_mapped_mlflow_alias(mlflow_server, fti_serve):
    model = "fraud_cli"
    register(mlflow_server, model, REPO / "models/fraud/1", alias="champion")
    register(mlflow_server, model, REPO / "models/fraud/2")
    # MLflow's `champion` is fti-serve's `production`.
    server = fti_serve(mlflow_server.url, [model], aliases={"champion": "production"})
    status, ready = server.ready()
    assert status == 200, ready
    serving(server, model, 1)

    promoted = server.cli("promote", model, "2", "--reason", "better PR-AUC")
    assert promoted.returncode == 0, promoted.stderr
    assert "moved from version 1 to version 2" in promoted.stdout, promoted.stdout
    assert mlflow_server.alias(model, "champion") == 2
    serving(server, model, 2)

    rolled = server.cli("rollback", model)
    assert rolled.returncode == 0, rolled.stderr
    assert mlflow_server.alias(model, "champion") == 1
    serving(server, model, 1)

    # An fti-serve alias with no MLflow alias mapped to it is refused, naming the mapping.
    unmapped = server.cli("promote", model, "2", "--alias", "canary")
    assert unmapped.returncode != 0
    assert "registry.mlflow.aliases" in unmapped.stderr, unmapped.stderr

    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    status, body = http("POST", f"{server.url}/v1/admin/models/{model}/promote",
                        {"version": 2, "reason": "admin api"}, auth)
    assert status == 200, body
    assert mlflow_server.alias(model, "champion") == 2
    serving(server, model, 2)
    status, body = http("GET", f"{server.url}/v1/admin/models/{model}/history", headers=auth)
    assert status == 200, body
    by = [(m["action"], m["to"], m["by"].split()[0]) for m in body["history"]]
    assert by == [("promote", 1, "mlflow"), ("promote", 2, "cli"), ("rollback", 1, "cli"),
                  ("promote", 2, "admin-api")], body


def test_a_version_that_does_not_match_its_manifest_is_refused(mlflow_server, fti_serve, tmp_path):
    model = "fraud_broken"
    register(mlflow_server, model, REPO / "models/fraud/1", alias="production")
    broken = tmp_path / "broken"
    shutil.copytree(REPO / "models/fraud/2", broken)
    onnx = bytearray((broken / "model.onnx").read_bytes())
    onnx[len(onnx) // 2] ^= 0xFF
    (broken / "model.onnx").write_bytes(bytes(onnx))
    assert register(mlflow_server, model, broken) == 2
    # The same files, unharmed, registered again: MLflow numbers it 3, and MLflow's number
    # is the version's identity (its manifest says 2).
    assert register(mlflow_server, model, REPO / "models/fraud/2") == 3
    server = fti_serve(mlflow_server.url, [model])
    assert server.ready()[0] == 200

    refused = server.cli("promote", model, "2")
    assert refused.returncode != 0
    assert "checksum mismatch" in refused.stderr, refused.stderr
    assert mlflow_server.alias(model, "production") == 1, "a refused promotion leaves MLflow alone"

    load = Load(server, model)
    try:
        # Set in MLflow directly: fti-serve downloads it, refuses it and keeps serving 1.
        mlflow_server.set_alias(model, "production", 2)

        def refusal():
            _, info = http("GET", f"{server.url}/v1/models/{model}")
            return info.get("alias_errors", {}).get("production")
        reason = wait_for(refusal, 30, "the refusal of version 2")
        assert "checksum mismatch" in reason and "still serving version 1" in reason, reason
        served_before = load.served()
        wait_for(lambda: load.served() >= served_before + 200, 60, "load while version 2 is refused")
        status, ready = http("GET", f"{server.url}/health/ready")
        assert status == 200, ready
        mlflow_server.set_alias(model, "production", 3)
        serving(server, model, 3)
    finally:
        statuses, versions, errors = load.finish()
    assert set(statuses) == {200}, (statuses, errors)
    assert 2 not in versions, versions
    assert_goldens(server, 2, served_as=3, model=model)


def test_mlflow_down_at_start_and_while_serving(fti_serve, tmp_path):
    # A server of its own: this test stops and restarts it.
    mlflow = MlflowServer(tmp_path / "mlflow")
    (tmp_path / "mlflow").mkdir()
    mlflow.start()
    model = "fraud_down"
    try:
        register(mlflow, model, REPO / "models/fraud/1", alias="production")
        register(mlflow, model, REPO / "models/fraud/2")
        cache = tmp_path / "shared-cache"
        first = fti_serve(mlflow.url, [model], cache=cache)
        assert first.ready()[0] == 200
        serving(first, model, 1)

        mlflow.stop()
        load = Load(first, model)
        try:
            def source_down(server):
                status, ready = http("GET", f"{server.url}/health/ready")
                return status == 200 and ready["registry_source"]["up"] is False and ready
            ready = wait_for(lambda: source_down(first), 30, "readiness to report MLflow down")
            assert "unreachable" in ready["registry_source"]["error"], ready
            assert metric(first, "fti_registry_source_up") == 0.0
            errors_counted = metric(first, 'fti_registry_source_syncs_total{result="error"}')
            assert errors_counted and errors_counted >= 1, errors_counted

            # Started while MLflow is down: serves what the cache holds, and says so.
            second = fti_serve(mlflow.url, [model], cache=cache)
            status, ready = second.ready()
            assert status == 200, ready
            assert ready["registry_source"]["up"] is False, ready
            assert_goldens(second, 1, served_as=1, model=model)

            # Operator moves need MLflow: refused, nothing changes.
            refused = second.cli("promote", model, "2")
            assert refused.returncode != 0
            assert "unreachable" in refused.stderr, refused.stderr

            served_before = load.served()
            wait_for(lambda: load.served() >= served_before + 200, 60, "load while MLflow is down")

            # MLflow back, an alias moved there: both replicas follow.
            mlflow.start()
            mlflow.set_alias(model, "production", 2)
            serving(first, model, 2)
            serving(second, model, 2)
            for server in (first, second):
                _, ready = http("GET", f"{server.url}/health/ready")
                assert ready["registry_source"]["up"] is True, ready
        finally:
            statuses, versions, errors = load.finish()
        assert set(statuses) == {200}, (statuses, errors)
    finally:
        mlflow.stop()


def test_the_version_directory_layout_of_the_cache(mlflow_server, fti_serve):
    model = "fraud_layout"
    register(mlflow_server, model, REPO / "models/fraud/2", alias="production")
    server = fti_serve(mlflow_server.url, [model])
    assert server.ready()[0] == 200
    cache = Path(server.config).parent / "cache" / model
    for name in ("model.onnx", "manifest.toml", "golden.jsonl"):
        assert (cache / "1" / name).read_bytes() == (REPO / "models/fraud/2" / name).read_bytes(), name
    provenance = (cache / "1" / "mlflow-source.toml").read_text()
    assert f'model = "{model}"' in provenance and "version = 1" in provenance, provenance
    assert not [p for p in cache.iterdir() if p.name.startswith(".fetch")], "no temporary directories left"
