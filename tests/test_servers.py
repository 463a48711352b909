"""Local server management: start in the background, detect a running one, stop by PID."""

from __future__ import annotations

import os
import socket

import pytest

from synthset import servers


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
