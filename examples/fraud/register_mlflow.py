#!/usr/bin/env python3
"""Register a model version directory with an MLflow Model Registry.

fti-serve can use an MLflow tracking server as its model registry: it polls the
server's REST API, downloads a version's artifacts (model.onnx, manifest.toml) into its
local registry directory and maps MLflow aliases to its own. This script puts a
version there in the first place:

    .venv-mlflow/bin/python examples/fraud/register_mlflow.py \
        --tracking-uri http://127.0.0.1:5000 --model-name fraud \
        models/fraud/1 --alias production

It creates a run in the experiment (default: the model name), logs every file of the
directory as a run artifact under `model` (plain files, not an MLflow flavor), registers
a new model version from the run's `model` artifacts (runs:/<run_id>/model), optionally
points ALIAS at it, and prints the new version number on stdout (MLflow's own messages
go to stderr). Only the mlflow client API (MlflowClient) is used; artifacts go through
the server (`mlflow server` proxies them by default, as mlflow-artifacts:/ URIs). The
Python environment: `pip install -r tests/mlflow/requirements.txt`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


def register(tracking_uri: str, model_name: str, version_dir: Path,
             alias: str | None = None, experiment: str | None = None) -> int:
    """Log version_dir's files, register them as a new version; return its number."""
    for needed in ("model.onnx", "manifest.toml"):
        if not (version_dir / needed).is_file():
            raise SystemExit(f"{version_dir}: no {needed}")
    # set_terminated would print "View run ... at: <url>" on stdout, which is the version's.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment or model_name)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment or model_name)
    run = client.create_run(exp_id, run_name=f"{model_name}-{version_dir.name}",
                            tags={"fti_serve.version_dir": str(version_dir)})
    client.log_artifacts(run.info.run_id, str(version_dir), artifact_path="model")
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(model_name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # The version's source is the artifact URI that runs:/<run_id>/model stands for
    # (mlflow-artifacts:/<experiment>/<run>/artifacts/model), as mlflow.register_model
    # records it for a flavored model; that function itself wants an MLmodel file.
    source = f"{run.info.artifact_uri}/model"
    mv = client.create_model_version(model_name, source, run_id=run.info.run_id)
    if alias:
        client.set_registered_model_alias(model_name, alias, mv.version)
    return int(mv.version)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("version_dir", type=Path,
                    help="directory with model.onnx and manifest.toml (e.g. models/fraud/1)")
    ap.add_argument("--tracking-uri", required=True, help="e.g. http://127.0.0.1:5000")
    ap.add_argument("--model-name", required=True, help="registered model name")
    ap.add_argument("--alias", help="MLflow alias to point at the new version")
    ap.add_argument("--experiment", help="experiment for the run (default: model name)")
    args = ap.parse_args()
    print(register(args.tracking_uri, args.model_name, args.version_dir,
                   args.alias, args.experiment))


if __name__ == "__main__":
    main()
