"""Local server management: start in the background, detect a running one, stop by PID."""

from __future__ import annotations

import os
import socket

import pytest

from synthset import cli, servers
from synthset.servers import postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_server_starts_once_and_stops_by_pid(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSET_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    (_, mlflow) = servers.services()

    assert servers.start(mlflow).startswith("started (pid ")
    pid = int(mlflow.pid_file.read_text())
    assert servers.is_up(mlflow)
    assert servers.start(mlflow) == "already running"
    servers.require_reachable()

    assert servers.stop(mlflow) == f"stopped (pid {pid})"
    assert not servers.is_up(mlflow)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert servers.stop(mlflow) == "not started by synthset"


def test_a_remote_url_is_never_started(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example.invalid:5000")
    (_, mlflow) = servers.services()
    assert not mlflow.local
    with pytest.raises(servers.SynthsetError, match="not a local http URL"):
        servers.start(mlflow)


def test_servers_status_lists_all_three_before_anything_started(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYNTHSET_STATE", str(tmp_path / "state"))
    monkeypatch.delenv("SYNTHSET_POSTGRES_PORT", raising=False)
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{_free_port()}/api")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    assert cli.main(["servers", "status"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [(line[0], " ".join(line[2:])) for line in lines] == [
        ("prefect", "down"),
        ("mlflow", "down"),
        ("postgres", "not created"),
    ]
    assert cli.main(["servers", "stop"]) == 0
    last = capsys.readouterr().out.splitlines()[-1].split()
    assert last == ["postgres", "postgresql://127.0.0.1:5433", "not", "created"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SYNTHSET_DATABASE": "mysql"}, "database 'mysql' is not one of sqlite, postgres"),
        (
            {"SYNTHSET_DATABASE": "postgres", "SYNTHSET_POSTGRES_BIN": "/nonexistent"},
            "PostgreSQL binaries (initdb, pg_ctl) not found: install PostgreSQL",
        ),
    ],
)
def test_a_database_that_cannot_be_had_is_one_line(tmp_path, monkeypatch, capsys, env, message):
    monkeypatch.setenv("SYNTHSET_STATE", str(tmp_path / "state"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["servers", "start"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "state").exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or not postgres.available(), reason="needs root and PostgreSQL"
)
def test_under_root_a_state_folder_postgres_cannot_reach_is_named(tmp_path, monkeypatch):
    tmp_path.chmod(0o700)
    monkeypatch.setenv("SYNTHSET_STATE", str(tmp_path / "state"))
    with pytest.raises(servers.SynthsetError, match="postgres user cannot reach"):
        postgres.Cluster.in_state().start()
