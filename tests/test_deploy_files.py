"""deploy/ stands the stack up: Docker cannot run here, so every file is parsed, the parts are
checked to agree with each other (image, ports, URLs, databases, volumes, GPU requests, pool
names), and the Kubernetes objects are validated offline against their schemas: the core
kinds with kubernetes-validate, the RayCluster against KubeRay's CRD schema (tests/data)."""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonpatch
import jsonschema
import kubernetes_validate
import pytest
import yaml
from prefect.utilities.templating import apply_values
from prefect.workers.base import BaseJobConfiguration

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
IMAGE = "ghcr.io/synthset/synthset:latest"
KUBERNETES_VERSION = "1.33.0"
GPU = "nvidia.com/gpu"
CRD_SCHEMA = REPO / "tests" / "data" / "kuberay" / "raycluster-v1.schema.json"

COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
PROJECT = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
K8S = [
    doc
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc
]
TEMPLATES = {
    kind: json.loads((DEPLOY / "prefect" / f"{kind}-job-template.json").read_text())
    for kind in ("docker", "kubernetes")
}


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/docker/Dockerfile, continuation lines joined."""
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


DOCKERFILE = _dockerfile()


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in K8S if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def _walk(obj: Any, key: str) -> list[Any]:
    """Every value of `key` anywhere in a parsed document."""
    if isinstance(obj, dict):
        here = [obj[key]] if key in obj else []
        return here + [v for value in obj.values() for v in _walk(value, key)]
    if isinstance(obj, list):
        return [v for item in obj for v in _walk(item, key)]
    return []


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def _config() -> dict[str, str]:
    return _one("ConfigMap", "synthset-config")["data"]


def _pod_specs() -> list[dict[str, Any]]:
    specs = [d["spec"]["template"]["spec"] for d in K8S if d["kind"] == "Deployment"]
    ray = _one("RayCluster")["spec"]
    specs.append(ray["headGroupSpec"]["template"]["spec"])
    specs += [group["template"]["spec"] for group in ray["workerGroupSpecs"]]
    return specs


def _render_job(variables: dict[str, Any]) -> dict[str, Any]:
    """The Job a Kubernetes worker submits: the template's defaults (but None, as Prefect's
    worker does), then `variables`, through Prefect's own templating (unset ones removed)."""
    template = TEMPLATES["kubernetes"]
    values = BaseJobConfiguration._get_base_config_defaults(template["variables"]["properties"])
    values |= {"command": "prefect flow-run execute", "name": "synthset-run", **variables}
    config = apply_values(copy.deepcopy(template["job_configuration"]), values)
    return config["job_manifest"]


def test_every_deploy_file_parses():
    assert {"postgres", "prefect", "mlflow", "worker"} <= set(SERVICES)
    assert {d["kind"] for d in K8S} >= {
        "Namespace",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "RayCluster",
    }
    assert DOCKERFILE[0][0] in ("ARG", "FROM") and ("ENTRYPOINT", '["tini", "--"]') in DOCKERFILE
    assert all("job_configuration" in t and "variables" in t for t in TEMPLATES.values())


def test_one_image_everywhere():
    ours = {name for name, s in SERVICES.items() if s.get("image", "").startswith("ghcr.io/")}
    assert ours == {"prefect", "mlflow", "worker", "docker-worker", "setup"}
    for name in ours:
        assert SERVICES[name]["image"] == IMAGE, name
        assert SERVICES[name]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    images = _walk(K8S, "image")
    assert images and set(images) == {IMAGE}
    for template in TEMPLATES.values():
        assert template["variables"]["properties"]["image"]["default"] == IMAGE
    docker = [d for d in PROJECT["deployments"] if d["work_pool"]["name"] == "synthset-docker"]
    assert docker and all(d["work_pool"]["job_variables"]["image"] == IMAGE for d in docker)


def test_the_image_is_a_pinned_non_root_cuda_runtime():
    froms = [args for word, args in DOCKERFILE if word == "FROM"]
    base = next(
        args.split("=", 1)[1] for word, args in DOCKERFILE if args.startswith("CUDA_IMAGE=")
    )
    assert base.startswith("nvidia/cuda:") and "runtime" in base
    assert froms[-1] == "${CUDA_IMAGE}"
    cuda_major = re.match(r"nvidia/cuda:(\d+)\.", base).group(1)
    constraints = (REPO / "constraints.txt").read_text()
    pinned = re.search(r"^nvidia-cuda-runtime==(\d+)\.", constraints, re.M).group(1)
    assert cuda_major == pinned, "the base image's CUDA and torch's CUDA wheels differ"
    runs = " ".join(args for word, args in DOCKERFILE if word == "RUN")
    assert "--constraint constraints.txt" in runs
    python = next(args.split("=", 1)[1] for word, args in DOCKERFILE if "PYTHON_VERSION=" in args)
    assert f'requires-python = ">={python}"' in (REPO / "pyproject.toml").read_text()
    uid, _, gid = [args for word, args in DOCKERFILE if word == "USER"][-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric, so runAsNonRoot can verify it"
    assert f"groupadd --gid {gid} synthset" in runs
    assert f"useradd --create-home --uid {uid} --gid {gid} synthset" in runs
    for pod in _pod_specs():
        assert pod["securityContext"]["runAsUser"] == int(uid)
    job = TEMPLATES["kubernetes"]["job_configuration"]["job_manifest"]["spec"]["template"]
    assert job["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_the_image_copies_only_what_dockerignore_admits():
    admitted = [
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copies = [args for word, args in DOCKERFILE if word == "COPY" and "--from" not in args]
    assert copies
    for args in copies:
        *sources, _ = shlex.split(args)
        for source in sources:
            assert (REPO / source).exists(), source
            assert any(source == a or source.startswith(a + "/") for a in admitted), source


def test_compose_clients_reach_the_servers_they_name():
    env = _env(SERVICES["worker"])
    for variable, service, path in (
        ("PREFECT_API_URL", "prefect", "/api"),
        ("MLFLOW_TRACKING_URI", "mlflow", ""),
    ):
        url = urlparse(env[variable])
        assert (url.hostname, url.path) == (service, path), variable
        command = SERVICES[service]["command"]
        assert url.port == int(_flag(command, "--port")), variable
        assert f"{url.port}:{url.port}" in SERVICES[service]["ports"]
        assert f"localhost:{url.port}" in " ".join(SERVICES[service]["healthcheck"]["test"])
    mlflow = urlparse(env["MLFLOW_TRACKING_URI"])
    allowed = _flag(SERVICES["mlflow"]["command"], "--allowed-hosts").split(",")
    assert any(fnmatch.fnmatch(mlflow.netloc, pattern) for pattern in allowed)
    for name in ("docker-worker", "setup"):
        assert _env(SERVICES[name]) == env, name


def test_compose_servers_share_one_postgres():
    pg = SERVICES["postgres"]["environment"]
    init = next(v for v in SERVICES["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v)
    created = re.findall(r"CREATE DATABASE (\w+)", (DEPLOY / init.split(":")[0]).read_text())
    urls = {
        "prefect": _env(SERVICES["prefect"])["PREFECT_API_DATABASE_CONNECTION_URL"],
        "mlflow": _flag(SERVICES["mlflow"]["command"], "--backend-store-uri"),
    }
    for service, raw in urls.items():
        url = urlparse(raw)
        assert (url.hostname, url.port, url.username) == ("postgres", 5432, pg["POSTGRES_USER"])
        assert url.password == pg["POSTGRES_PASSWORD"]
        assert url.path.lstrip("/") in [pg["POSTGRES_DB"], *created], service
        assert SERVICES[service]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert urlparse(urls["prefect"]).scheme == "postgresql+asyncpg"
    assert urlparse(urls["mlflow"]).path == "/mlflow" and created == ["mlflow"]


def test_compose_volumes_and_gpu_agree():
    env = _env(SERVICES["worker"])
    datasets = env["SYNTHSET_DATASETS"]
    assert f"datasets:{datasets}" in SERVICES["worker"]["volumes"]
    dockerfile_env = " ".join(args for word, args in DOCKERFILE if word == "ENV")
    assert f"SYNTHSET_DATASETS={datasets}" in dockerfile_env
    assert f"HF_HOME={env['HF_HOME']}" in dockerfile_env
    artifacts = _flag(SERVICES["mlflow"]["command"], "--artifacts-destination")
    assert f"mlflow-artifacts:{artifacts}" in SERVICES["mlflow"]["volumes"]
    (device,) = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], (name, dependency)


def test_docker_pool_containers_join_the_compose_stack():
    variables = TEMPLATES["docker"]["variables"]["properties"]
    env = _env(SERVICES["worker"])
    defaults = variables["env"]["default"]
    for key in ("MLFLOW_TRACKING_URI", "SYNTHSET_DATASETS", "SYNTHSET_CACHE", "HF_HOME"):
        assert defaults[key] == env[key], key
    assert variables["networks"]["default"] == [COMPOSE["networks"]["default"]["name"]]
    volumes = COMPOSE["volumes"]
    assert variables["volumes"]["default"] == [
        f"{volumes['datasets']['name']}:{env['SYNTHSET_DATASETS']}",
        f"{volumes['cache']['name']}:/data/cache",
    ]
    (request,) = variables["container_create_kwargs"]["default"]["device_requests"]
    assert request == {"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}


def test_compose_workers_serve_the_pools_of_the_project():
    pools = {d["work_pool"]["name"] for d in PROJECT["deployments"]}
    for name, kind in (("worker", "process"), ("docker-worker", "docker")):
        command = SERVICES[name]["command"]
        assert _flag(command, "--pool") in pools and _flag(command, "--type") == kind
    setup = SERVICES["setup"]["command"][-1]
    for template in re.findall(r"--base-job-template (\S+)", setup):
        assert (REPO / template).is_file(), template
    names = {d["name"] for d in PROJECT["deployments"]}
    assert set(re.findall(r"--name (\S+)", setup)) <= names


def test_in_image_deployments_work_where_the_image_keeps_the_checkout():
    workdir = [args for word, args in DOCKERFILE if word == "WORKDIR"][-1]
    step = "prefect.deployments.steps.set_working_directory"
    for spec in PROJECT["deployments"]:
        if spec["work_pool"]["name"] != "synthset":
            assert spec["pull"] == [{step: {"directory": workdir}}], spec["name"]
            assert (REPO / spec["entrypoint"].split(":")[0]).is_file()


@pytest.mark.parametrize(
    "doc", [d for d in K8S if d["kind"] != "RayCluster"], ids=lambda d: f"{d['kind']}"
)
def test_kubernetes_objects_match_their_schemas(doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields (as `kubectl apply --validate=strict` does)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def test_the_raycluster_matches_the_kuberay_crd():
    ray = _one("RayCluster")
    schema = _strict(json.loads(CRD_SCHEMA.read_text()))
    jsonschema.Draft7Validator(schema).validate(ray)
    wrong = copy.deepcopy(ray)
    wrong["spec"]["workerGroupSpecs"][0]["replica"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(wrong)
    for template in [ray["spec"]["headGroupSpec"]["template"]] + [
        g["template"] for g in ray["spec"]["workerGroupSpecs"]
    ]:
        pod = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}}
        kubernetes_validate.validate({**pod, "template": template}, KUBERNETES_VERSION, True)


def test_the_raycluster_has_gpu_workers_on_the_shared_datasets():
    ray = _one("RayCluster")
    spec = ray["spec"]
    ray_pin = re.search(r"^ray==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert spec["rayVersion"] == ray_pin.group(1)
    address = urlparse(_config()["RAY_ADDRESS"])
    assert address.scheme == "ray"
    assert address.hostname.split(".")[:2] == [f"{ray['metadata']['name']}-head-svc", "synthset"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert address.port in [p["containerPort"] for p in head["ports"]]
    assert spec["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    (gpu,) = spec["workerGroupSpecs"]
    worker = gpu["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"][GPU] == worker["resources"]["requests"][GPU] >= 1
    assert gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    pvc = _one("PersistentVolumeClaim", "synthset-datasets")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for pod in (spec["headGroupSpec"]["template"]["spec"], gpu["template"]["spec"]):
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        (name,) = [n for n, claim in claims.items() if claim == pvc["metadata"]["name"]]
        assert mounts[name] == _config()["SYNTHSET_DATASETS"]
        keys = {e["valueFrom"]["configMapKeyRef"]["key"] for e in pod["containers"][0]["env"]}
        assert {"PREFECT_API_URL", "SYNTHSET_DATASETS"} <= keys <= set(_config())


def test_kubernetes_urls_point_at_services_that_serve_them():
    for variable, path in (("PREFECT_API_URL", "/api"), ("MLFLOW_TRACKING_URI", "")):
        url = urlparse(_config()[variable])
        name, namespace = url.hostname.split(".")[:2]
        assert url.hostname == f"{name}.{namespace}.svc.cluster.local" and url.path == path
        service = _one("Service", name)
        (port,) = service["spec"]["ports"]
        assert port["port"] == url.port and service["metadata"]["namespace"] == namespace
        deployment = _one("Deployment", name)
        pod = deployment["spec"]["template"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        container = pod["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[port["targetPort"]] == int(_flag(container["args"], "--port")) == url.port
    mlflow = _one("Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    allowed = _flag(mlflow["args"], "--allowed-hosts").split(",")
    assert urlparse(_config()["MLFLOW_TRACKING_URI"]).netloc in allowed
    secret = _one("Secret", "synthset-secrets")["stringData"]
    for ref in _walk(K8S, "secretKeyRef"):
        assert ref["name"] == "synthset-secrets" and ref["key"] in secret
    for ref in _walk(K8S, "configMapKeyRef"):
        assert ref["name"] == "synthset-config" and ref["key"] in _config()
    assert urlparse(secret["MLFLOW_BACKEND_STORE_URI"]).scheme == "postgresql"
    assert urlparse(secret["PREFECT_API_DATABASE_CONNECTION_URL"]).scheme == "postgresql+asyncpg"


def test_everything_lives_in_one_namespace_and_runs_as_non_root():
    namespace = _one("Namespace")["metadata"]["name"]
    for doc in K8S:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
    for pod in _pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001


def test_the_kubernetes_worker_may_launch_jobs_of_its_pool():
    deployment = _one("Deployment", "prefect-worker")
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    k8s_pools = {
        d["work_pool"]["name"]
        for d in PROJECT["deployments"]
        if "kubernetes" in d["work_pool"]["name"]
    }
    assert {_flag(args, "--pool")} == k8s_pools and _flag(args, "--type") == "kubernetes"
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": "synthset-config"}}]
    binding = _one("RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "synthset"}
    ]
    role = _one("Role", binding["roleRef"]["name"])
    jobs = [r for r in role["rules"] if r["apiGroups"] == ["batch"] and "jobs" in r["resources"]]
    assert jobs and {"create", "watch", "delete"} <= set(jobs[0]["verbs"])
    pods = [r for r in role["rules"] if "pods" in r["resources"]]
    assert pods and {"list", "watch"} <= set(pods[0]["verbs"])


def _prefect_kubernetes_base_job() -> dict[str, Any]:
    """What prefect-kubernetes 0.8 requires of every job manifest (`_get_base_job_manifest`):
    a path missing is refused, and so is another value at one of these paths."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"annotations": {}, "labels": {}},
        "spec": {
            "template": {
                "spec": {
                    "parallelism": 1,
                    "completions": 1,
                    "restartPolicy": "Never",
                    "containers": [{"name": "prefect-job"}],
                }
            }
        },
    }


@pytest.mark.parametrize(
    "spec",
    [d for d in PROJECT["deployments"] if d["work_pool"]["name"] == "synthset-kubernetes"],
    ids=lambda d: d["name"],
)
def test_kubernetes_deployments_render_valid_gpu_jobs(spec):
    variables = spec["work_pool"].get("job_variables", {})
    job = _render_job(variables)
    job["metadata"].setdefault("annotations", {})
    job["metadata"].setdefault("labels", {})
    patch = jsonpatch.JsonPatch.from_diff(job, _prefect_kubernetes_base_job())
    assert [op for op in patch if op["op"] in ("add", "replace")] == []

    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    gpus = variables.get("gpu_count", 1)
    assert container["resources"]["limits"][GPU] == container["resources"]["requests"][GPU] == gpus
    assert job["metadata"]["namespace"] == _one("Namespace")["metadata"]["name"]
    assert container["image"] == IMAGE and container["args"] == "prefect flow-run execute"
    (claim,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    _one("PersistentVolumeClaim", claim["persistentVolumeClaim"]["claimName"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["name"]] == _config()["SYNTHSET_DATASETS"]
    assert container["envFrom"][0] == {"configMapRef": {"name": "synthset-config"}}
    assert container["envFrom"][1]["secretRef"]["name"] == "synthset-secrets"

    container["args"] = shlex.split(container["args"])
    for field in ("parallelism", "completions"):
        del pod[field]
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_a_job_without_the_gpu_variable_still_requests_one_gpu():
    container = _render_job({})["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"][GPU] == 1


def test_job_templates_declare_every_placeholder():
    for kind, template in TEMPLATES.items():
        used = set(re.findall(r"{{\s*(\w+)\s*}}", json.dumps(template["job_configuration"])))
        assert used <= set(template["variables"]["properties"]), kind


def test_job_templates_are_what_the_script_builds():
    spec = importlib.util.spec_from_file_location("templates", DEPLOY / "prefect" / "templates.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["templates"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["templates"]
    for kind in TEMPLATES:
        name = f"{kind}-job-template.json"
        assert (DEPLOY / "prefect" / name).read_text() == module.render(name), name
