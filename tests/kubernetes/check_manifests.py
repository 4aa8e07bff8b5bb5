"""What neither validator knows: that deploy/kubernetes agrees with itself, with the
server's config and with the image (tests/kubernetes/run.sh runs this).

- kustomization.yaml lists every manifest but secret.yaml (kept out on purpose);
- the pods bind 0.0.0.0 on the ports the container, the probes, the Service and the
  Prometheus annotations name; the probes hit /health/live and /health/ready;
- a preStop sleep, and terminationGracePeriodSeconds exceeds it + server.drain_grace_ms +
  drain_timeout_ms;
- the config file, the registry and the secret files are where the mounts put them, and
  every secret file the config names is a key of the Secret;
- the pods run as the Dockerfile's USER, with a read-only root file system;
- the HPA, the PDB and the Services select the Deployment's pods;
- with --fti-serve BIN: the server itself loads the ConfigMap's config (unknown or
  mistyped keys are refused), with the mounted paths moved to a temporary directory.

Exits 1 with one line per problem.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

problems: list[str] = []


def check(ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def load_all(directory: Path) -> dict[str, list[dict]]:
    docs = {}
    for path in sorted(directory.glob("*.yaml")):
        with path.open() as f:
            docs[path.name] = [d for d in yaml.safe_load_all(f) if d]
    return docs


def one(docs: dict[str, list[dict]], kind: str, name: str | None = None) -> dict:
    found = [
        d
        for ds in docs.values()
        for d in ds
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    ]
    if len(found) != 1:
        raise SystemExit(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def port_of(addr: str) -> int:
    host, _, port = addr.rpartition(":")
    check(host == "0.0.0.0", f"{addr}: inside a pod the server must bind 0.0.0.0")
    return int(port)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, default=Path("deploy/kubernetes"))
    parser.add_argument("--dockerfile", type=Path, default=Path("Dockerfile"))
    parser.add_argument("--registry", type=Path, default=Path("models"))
    parser.add_argument("--fti-serve", type=Path, help="server binary: load the ConfigMap's config with it")
    args = parser.parse_args()
    docs = load_all(args.dir)

    # kustomization.yaml lists every manifest except the Secret template.
    kustomization = one(docs, "Kustomization")
    listed = set(kustomization["resources"])
    expected = set(docs) - {"kustomization.yaml", "secret.yaml"}
    check(listed == expected, f"kustomization.yaml resources {sorted(listed)} != manifests {sorted(expected)}")
    check("secret.yaml" not in listed, "secret.yaml must stay out of kustomization.yaml")

    deployment = one(docs, "Deployment", "fti-serve")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    config_map = one(docs, "ConfigMap", "fti-serve-config")
    secret = one(docs, "Secret", "fti-serve-secrets")

    # The config file: --config PATH is a key of the ConfigMap mounted at PATH's directory.
    cmd = container["args"]
    config_path = Path(cmd[cmd.index("--config") + 1])
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}

    def mount_of(kind: str, name: str) -> dict:
        for vname, volume in volumes.items():
            source = volume.get(kind) or {}
            if name in (source.get("name"), source.get("secretName"), source.get("claimName")):
                return mounts[vname]
        raise SystemExit(f"no volume mounts {kind} {name}")

    config_mount = mount_of("configMap", "fti-serve-config")
    check(
        str(config_path.parent) == config_mount["mountPath"],
        f"--config {config_path} is not under the ConfigMap's mount {config_mount['mountPath']}",
    )
    check(config_path.name in config_map["data"], f"the ConfigMap has no key {config_path.name}")
    config_text = config_map["data"][config_path.name]
    config = tomllib.loads(config_text)
    server = config.get("server", {})

    # Addresses: the environment wins over the file (FTI__SERVER__HTTP_ADDR, ...).
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    http_addr = env.get("FTI__SERVER__HTTP_ADDR", server.get("http_addr", "127.0.0.1:8080"))
    grpc_addr = env.get("FTI__SERVER__GRPC_ADDR", server.get("grpc_addr", "127.0.0.1:8081"))
    for key in ("http_addr", "grpc_addr"):
        if key in server:
            port_of(server[key])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(port_of(http_addr) == ports.get("http"), f"HTTP listens on {http_addr}, containerPort http is {ports.get('http')}")
    check(port_of(grpc_addr) == ports.get("grpc"), f"gRPC listens on {grpc_addr}, containerPort grpc is {ports.get('grpc')}")

    # Probes.
    for probe, path in (("startupProbe", "/health/live"), ("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
        get = container.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path, f"{probe} must GET {path}, not {get.get('path')}")
        check(get.get("port") in ("http", ports.get("http")), f"{probe} must probe the HTTP port")

    # The drain must finish before the kubelet's SIGKILL.
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    check(pre_stop > 0, "the container needs a preStop sleep while the pod leaves the endpoints")
    drain_s = pre_stop + (server.get("drain_grace_ms", 5000) + server.get("drain_timeout_ms", 20000)) / 1000
    grace = spec.get("terminationGracePeriodSeconds", 30)
    check(
        grace >= drain_s + 5,
        f"terminationGracePeriodSeconds {grace} must exceed preStop + drain_grace_ms + drain_timeout_ms "
        f"({drain_s:g} s) by at least 5 s",
    )

    # Prometheus scrapes the HTTP port's /metrics.
    annotations = pod["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true", "pods lack prometheus.io/scrape: \"true\"")
    check(annotations.get("prometheus.io/port") == str(ports.get("http")), "prometheus.io/port is not the HTTP port")
    check(annotations.get("prometheus.io/path") == "/metrics", "prometheus.io/path is not /metrics")

    # The registry is the PVC's mount.
    registry_mount = mount_of("persistentVolumeClaim", "fti-registry")
    check(
        config.get("registry", {}).get("path") == registry_mount["mountPath"],
        f"registry.path {config.get('registry', {}).get('path')} is not the PVC's mount {registry_mount['mountPath']}",
    )
    check(config.get("registry", {}).get("watch") is False, "registry.watch must be false on a shared network volume")

    # Secret files: each one the config names is a key of the Secret, under its mount.
    secret_mount = mount_of("secret", "fti-serve-secrets")["mountPath"]
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    secret_files = {
        "admin.token_file": config.get("admin", {}).get("token_file"),
        "store.redis.password_file": config.get("store", {}).get("redis", {}).get("password_file"),
        "store.redis.ca_file": config.get("store", {}).get("redis", {}).get("ca_file"),
    }
    for key, value in secret_files.items():
        if value is None:
            continue
        path = Path(value)
        check(str(path.parent) == secret_mount, f"{key} {value} is not under the Secret's mount {secret_mount}")
        check(path.name in keys, f"{key} {value}: the Secret has no key {path.name}")
    check(secret_files["admin.token_file"] is not None, "admin.token_file must come from the Secret")

    # The image's user, and a read-only root file system.
    user = re.search(r"^USER\s+(\d+)\s*$", args.dockerfile.read_text(), re.M)
    check(user is not None, f"{args.dockerfile} has no numeric USER")
    if user:
        uid = int(user.group(1))
        for where, ctx in (("pod", spec.get("securityContext", {})), ("container", container.get("securityContext", {}))):
            check(ctx.get("runAsUser") == uid, f"{where} runAsUser {ctx.get('runAsUser')} is not the image's USER {uid}")
    csc = container.get("securityContext", {})
    check(csc.get("readOnlyRootFilesystem") is True, "the root file system must be read-only")
    check(csc.get("runAsNonRoot") is True, "the container must run as non-root")

    # Everything selects the Deployment's pods.
    labels = pod["metadata"]["labels"]

    def selects(selector: dict) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    check(selects(deployment["spec"]["selector"]["matchLabels"]), "the Deployment's selector misses its pods")
    for name in ("fti-serve", "fti-serve-grpc"):
        service = one(docs, "Service", name)
        check(selects(service["spec"]["selector"]), f"Service {name} selects no pod")
        for p in service["spec"]["ports"]:
            check(p["targetPort"] in ports or p["targetPort"] in ports.values(), f"Service {name} port {p['name']}: no such container port")
    check(selects(one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]), "the PDB selects no pod")
    check(selects(one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]), "the NetworkPolicy selects no pod")
    hpa = one(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    check(
        (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"]),
        "the HPA does not scale the Deployment",
    )
    check("replicas" not in deployment["spec"], "the HPA owns the replica count: no spec.replicas")
    check(hpa["spec"]["minReplicas"] >= 2, "minReplicas below 2 leaves none serving during a disruption")
    resources = container["resources"]
    check("cpu" in resources.get("requests", {}), "the HPA's CPU utilization needs a CPU request")

    # The server itself loads the config (its keys, types and checks), with the mounted
    # files moved to a temporary directory.
    if args.fti_serve:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / config_path.name).write_text(config_text)
            env = dict(os.environ, FTI__REGISTRY__PATH=str(args.registry.resolve()))
            overrides = {
                "admin.token_file": "FTI__ADMIN__TOKEN_FILE",
                "store.redis.password_file": "FTI__STORE__REDIS__PASSWORD_FILE",
                "store.redis.ca_file": "FTI__STORE__REDIS__CA_FILE",
            }
            for key, value in secret_files.items():
                if value is not None:
                    stand_in = tmp / Path(value).name
                    stand_in.write_text("stand-in-secret-value-0123456789\n")
                    env[overrides[key]] = str(stand_in)
            run = subprocess.run(
                [str(args.fti_serve), "models", "--config", str(tmp / config_path.name), "list"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            check(run.returncode == 0, f"fti-serve refused the ConfigMap's config: {run.stderr.strip() or run.stdout.strip()}")

    for p in problems:
        print(f"check_manifests: {p}", file=sys.stderr)
    if not problems:
        print(f"check_manifests: {args.dir} is consistent" + (" and the server loads its config" if args.fti_serve else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
