"""`generate_dataset` with its shards on a Ray cluster, as a deployment entrypoint.

A deployment cannot choose a task runner per run, so this is the same flow with prefect-ray's
task runner: the flow run is the driver, and `RAY_ADDRESS` names the cluster
(`ray://<KubeRay head service>:10001`; unset: the cluster of this machine, else a new one).
Needs the `ray` extra.
"""

from __future__ import annotations

import os

from synthset.flows.generate import generate_dataset
from synthset.runners.prefect import task_runner
from synthset.runners.ray import RaySettings

generate_dataset_on_ray = generate_dataset.with_options(
    task_runner=task_runner("ray", RaySettings(os.environ.get("RAY_ADDRESS") or "auto"))
)
