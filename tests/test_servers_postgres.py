"""Prefect and MLflow on a private PostgreSQL cluster, stood up as `synthset servers start
--database postgres` does: a real flow run through both servers, checked over their REST APIs
and in the database itself, then all three stopped by PID."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from synthset import cli
from synthset.servers import postgres, web
from synthset.servers.postgres import Cluster
from synthset.storage.versioning import set_alias
from tests.conftest import write_manifest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not postgres.available(), reason="PostgreSQL binaries are not installed"),
]

NAME = "pg-e2e"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie nobody has reaped yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture
def state(monkeypatch):
    """A state folder outside pytest's 0700 temp root: under root the cluster belongs to the
    postgres user, which must reach it."""
    folder = Path(tempfile.mkdtemp(prefix="synthset-pg-"))
    folder.chmod(0o711)
    monkeypatch.setenv("SYNTHSET_STATE", str(folder / "state"))
    monkeypatch.setenv("SYNTHSET_POSTGRES_PORT", str(_free_port()))
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{_free_port()}/api")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    try:
        yield folder / "state"
    finally:
        cli.main(["servers", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


def _run_flow(manifest: Path, tmp_path: Path) -> str:
    """`synthset run` in its own process, as a user runs it; returns the flow run id."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-client")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "synthset"), "run", str(manifest), "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "version:     v1  (4 images" in done.stdout
    return re.search(r"/runs/flow-run/([0-9a-f-]{36})", done.stdout).group(1)


def test_flow_on_prefect_and_mlflow_servers_backed_by_postgres(state, tiny_model, tmp_path, capsys):
    assert cli.main(["servers", "start", "--database", "postgres"]) == 0
    started = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in started] == ["postgres", "prefect", "mlflow"]
    assert all("started (pid" in line for line in started), started
    cluster = Cluster.in_state()
    prefect, mlflow = web.services()
    pids = {
        "postgres": cluster.pid(),
        "prefect": int(prefect.pid_file.read_text()),
        "mlflow": int(mlflow.pid_file.read_text()),
    }

    manifest = write_manifest(
        tmp_path,
        f"""
dataset: {NAME}
generator: {{model: {tiny_model}, steps: 2, batch_size: 2}}
shard_size: 2
items:
  - {{prompt: a red seven, count: 2, seed: 1}}
  - {{prompt: a blue three, count: 2, seed: 9}}
""",
    )
    flow_run_id = _run_flow(manifest, tmp_path)

    api = prefect.url.rstrip("/")
    (flow_run,) = _http(f"{api}/flow_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    assert flow_run["name"] == NAME and flow_run["state_type"] == "COMPLETED"
    assert {f"dataset:{NAME}", "version:v1"} <= set(flow_run["tags"])
    of_run = {"flow_runs": {"id": {"any_": [flow_run_id]}}}
    tasks = _http(f"{api}/task_runs/filter", of_run)
    shards = [t for t in tasks if t["name"].startswith("shard-")]
    assert len(shards) == 2 and {t["state_type"] for t in shards} == {"COMPLETED"}
    artifacts = _http(
        f"{api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    )
    by_key = {a["key"]: a for a in artifacts if a["key"]}
    assert f"{NAME}-card" in by_key and by_key[f"{NAME}-card"]["type"] == "markdown"

    set_alias(NAME, 1, "production", tracking_uri=mlflow.url)
    ml = mlflow.url + "/api/2.0/mlflow"
    query = urllib.parse.urlencode({"experiment_name": f"synthset/{NAME}"})
    experiment = _http(f"{ml}/experiments/get-by-name?{query}")["experiment"]
    exp_tags = {t["key"]: t["value"] for t in experiment["tags"]}
    assert exp_tags["synthset.alias.latest"] == "1"
    assert exp_tags["synthset.alias.production"] == "1"
    (run,) = _http(f"{ml}/runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    run_tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert run_tags["synthset.version"] == "1"
    assert run_tags["prefect.flow_run_id"] == flow_run_id
    assert run["info"]["status"] == "FINISHED"

    import psycopg2

    with psycopg2.connect(cluster.url("prefect")) as db, db.cursor() as cur:
        cur.execute("SELECT name FROM flow_run WHERE id = %s", (flow_run_id,))
        assert cur.fetchall() == [(NAME,)]
        cur.execute("SELECT count(*) FROM task_run WHERE flow_run_id = %s", (flow_run_id,))
        assert cur.fetchone()[0] == len(tasks)
    with psycopg2.connect(cluster.url("mlflow")) as db, db.cursor() as cur:
        cur.execute("SELECT value FROM experiment_tags WHERE key = 'synthset.alias.production'")
        assert cur.fetchall() == [("1",)]
        cur.execute(
            "SELECT value FROM tags WHERE run_uuid = %s AND key = 'synthset.version'",
            (run["info"]["run_id"],),
        )
        assert cur.fetchall() == [("1",)]

    assert cli.main(["servers", "stop"]) == 0
    stopped = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in stopped] == [
        f"{pids['prefect']})",
        f"{pids['mlflow']})",
        f"{pids['postgres']})",
    ]
    assert all(_gone(pid) for pid in pids.values()), pids
    assert cli.main(["servers", "status"]) == 0
    status = capsys.readouterr().out
    assert "up" not in status.split() and "postgres" in status
