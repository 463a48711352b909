"""Build the base job templates of synthset's Docker and Kubernetes work pools.

They are made offline the way a Prefect worker makes its default template
(`BaseWorker.get_default_base_job_template`): the job configuration from a
`BaseJobConfiguration` subclass, the variables from a `BaseVariables` subclass. The fields
follow prefect-kubernetes 0.8 and prefect-docker 0.7 (the `workers` extra; not needed to build
these), plus what synthset's GPU jobs need: the GPU request, the shared datasets volume, the
URLs of the servers. `python deploy/prefect/templates.py` rewrites the JSON files next to this
script; `tests/test_deploy_files.py` checks that they match it.

    prefect work-pool create synthset-kubernetes --type kubernetes \\
        --base-job-template deploy/prefect/kubernetes-job-template.json
    prefect work-pool create synthset-docker --type docker \\
        --base-job-template deploy/prefect/docker-job-template.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from prefect.workers.base import BaseJobConfiguration, BaseVariables
from pydantic import Field

HERE = Path(__file__).resolve().parent
IMAGE = "ghcr.io/synthset/synthset:latest"
NAMESPACE = "synthset"
DATASETS = "/data/datasets"
CACHE = "/data/cache"
GPU = "nvidia.com/gpu"

KUBERNETES_JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "annotations": "{{ annotations }}",
        "labels": "{{ labels }}",
        "namespace": "{{ namespace }}",
        "generateName": "{{ name }}-",
    },
    "spec": {
        "backoffLimit": "{{ backoff_limit }}",
        "ttlSecondsAfterFinished": "{{ finished_job_ttl }}",
        "template": {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/name": "synthset",
                    "app.kubernetes.io/component": "flow-run",
                }
            },
            "spec": {
                # prefect-kubernetes checks for these two at this path; Kubernetes drops them.
                "parallelism": 1,
                "completions": 1,
                "restartPolicy": "Never",
                "serviceAccountName": "{{ service_account_name }}",
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
                "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [
                    {
                        "name": "prefect-job",
                        "env": "{{ env }}",
                        "envFrom": [
                            {"configMapRef": {"name": "{{ config_map }}"}},
                            {"secretRef": {"name": "{{ secret }}", "optional": True}},
                        ],
                        "image": "{{ image }}",
                        "imagePullPolicy": "{{ image_pull_policy }}",
                        "args": "{{ command }}",
                        "resources": {
                            "limits": {
                                "cpu": "{{ cpu_limit }}",
                                "memory": "{{ memory_limit }}",
                                GPU: "{{ gpu_count }}",
                            },
                            "requests": {
                                "cpu": "{{ cpu_request }}",
                                "memory": "{{ memory_request }}",
                                GPU: "{{ gpu_count }}",
                            },
                        },
                        "volumeMounts": [
                            {"name": "datasets", "mountPath": DATASETS},
                            {"name": "cache", "mountPath": CACHE},
                            {"name": "dshm", "mountPath": "/dev/shm"},
                        ],
                    }
                ],
                "volumes": [
                    {
                        "name": "datasets",
                        "persistentVolumeClaim": {"claimName": "{{ datasets_claim }}"},
                    },
                    {"name": "cache", "emptyDir": {}},
                    {"name": "dshm", "emptyDir": {"medium": "Memory"}},
                ],
            },
        },
    },
}
"""The Job of one flow run: prefect-kubernetes 0.8's default plus the GPU, the datasets claim
mounted where `SYNTHSET_DATASETS` says, and the URLs from the ConfigMap (and Secret)."""


class KubernetesJobConfiguration(BaseJobConfiguration):
    """The job configuration keys of prefect-kubernetes 0.8 (cluster config left out: the
    worker runs in the cluster)."""

    annotations: dict[str, str] = Field(default_factory=dict)
    namespace: str = NAMESPACE
    job_manifest: dict[str, Any] = Field(json_schema_extra={"template": KUBERNETES_JOB})
    job_watch_timeout_seconds: int | None = None
    pod_watch_timeout_seconds: int = 60
    stream_output: bool = True


class KubernetesVariables(BaseVariables):
    """prefect-kubernetes 0.8's variables with synthset's defaults, and the GPU and storage."""

    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations applied to the flow run's job."
    )
    namespace: str = Field(NAMESPACE, description="The namespace jobs are created in.")
    image: str = Field(IMAGE, description="The image of the flow run's container.")
    service_account_name: str | None = Field(
        None, description="The service account of the flow run's pod (none needed)."
    )
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        "IfNotPresent", description="The image pull policy of the flow run's container."
    )
    backoff_limit: int = Field(
        0,
        ge=0,
        description="Kubernetes retries of the job; 0: Prefect reschedules an evicted run.",
    )
    finished_job_ttl: int | None = Field(
        86400, description="Seconds a finished job is kept before Kubernetes deletes it."
    )
    job_watch_timeout_seconds: int | None = Field(
        None, description="Seconds to wait for each event of the job; unset: no limit."
    )
    pod_watch_timeout_seconds: int = Field(
        600,
        description="Seconds to wait for the pod to start (a GPU node may be scaled up and "
        "pull a large image first).",
    )
    stream_output: bool = Field(True, description="Stream the job's output to the worker.")
    cpu_request: str | None = Field("4", description="CPU request, e.g. '500m', '4'.")
    cpu_limit: str | None = Field(None, description="CPU limit; unset: none.")
    memory_request: str | None = Field("16Gi", description="Memory request, e.g. '16Gi'.")
    memory_limit: str | None = Field("32Gi", description="Memory limit, e.g. '32Gi'.")
    gpu_count: int = Field(
        1,
        ge=0,
        description=f"GPUs ({GPU}) requested and limited; 0 for a driver whose shards run on Ray.",
    )
    datasets_claim: str = Field(
        "synthset-datasets",
        description=f"PersistentVolumeClaim (ReadWriteMany) mounted at {DATASETS}.",
    )
    config_map: str = Field(
        "synthset-config", description="ConfigMap with MLFLOW_TRACKING_URI, SYNTHSET_DATASETS."
    )
    secret: str = Field("synthset-secrets", description="Secret with credentials (optional).")


class DockerJobConfiguration(BaseJobConfiguration):
    """The job configuration keys of prefect-docker 0.7."""

    image: str = IMAGE
    image_pull_policy: str | None = None
    networks: list[str] = Field(default_factory=list)
    network_mode: str | None = None
    auto_remove: bool = False
    volumes: list[str] = Field(default_factory=list)
    stream_output: bool = True
    mem_limit: str | None = None
    memswap_limit: str | None = None
    privileged: bool = False
    container_create_kwargs: dict[str, Any] | None = None


class DockerVariables(BaseVariables):
    """prefect-docker 0.7's variables with synthset's defaults: every GPU of the host, the
    compose network and the named volumes of deploy/compose.yaml."""

    env: dict[str, str | None] = Field(
        default={
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "SYNTHSET_DATASETS": DATASETS,
            "SYNTHSET_CACHE": f"{CACHE}/synthset",
            "HF_HOME": f"{CACHE}/hf",
        },
        title="Environment Variables",
        description="Environment of the flow run's container (PREFECT_API_URL is the worker's).",
    )
    image: str = Field(IMAGE, description="The image of the flow run's container.")
    image_pull_policy: Literal["IfNotPresent", "Always", "IfPossible", "Never"] | None = Field(
        None, description="The image pull policy; unset: Always for :latest."
    )
    networks: list[str] = Field(
        default=["synthset"],
        description="Networks of the container: the compose network reaches the servers.",
    )
    network_mode: str | None = Field(None, description="Network mode (not with networks).")
    auto_remove: bool = Field(True, description="Remove the container when it exits.")
    volumes: list[str] = Field(
        default=[f"synthset-datasets:{DATASETS}", f"synthset-cache:{CACHE}"],
        description="Volumes mounted in the container: the datasets and the model cache.",
    )
    stream_output: bool = Field(True, description="Stream the container's output.")
    mem_limit: str | None = Field(None, description="Memory limit, e.g. '32g'.")
    memswap_limit: str | None = Field(None, description="Memory + swap limit.")
    privileged: bool = Field(False, description="Extended privileges (not needed for GPUs).")
    container_create_kwargs: dict[str, Any] | None = Field(
        default={
            "device_requests": [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}],
            "shm_size": "2g",
        },
        description="docker-py create arguments: every GPU of the host (nvidia container "
        "toolkit), shared memory.",
    )


def template(job: type[BaseJobConfiguration], variables: type[BaseVariables]) -> dict[str, Any]:
    """A base job template as a worker of that type would publish it."""
    schema = variables.model_json_schema()
    schema.pop("title", None)
    return {"job_configuration": job.json_template(), "variables": schema}


TEMPLATES = {
    "kubernetes-job-template.json": (KubernetesJobConfiguration, KubernetesVariables),
    "docker-job-template.json": (DockerJobConfiguration, DockerVariables),
}


def render(name: str) -> str:
    return json.dumps(template(*TEMPLATES[name]), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    for file_name in TEMPLATES:
        (HERE / file_name).write_text(render(file_name))
        print(f"wrote {HERE / file_name}")
