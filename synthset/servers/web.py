"""The Prefect API and MLflow tracking server for `make run`: started in the background when
none answers at the configured URL, stopped by the PIDs recorded when they were started.

Their data goes to SQLite files in the state folder (`synthset.servers.state`) unless they are
given database URLs (the PostgreSQL cluster of `synthset.servers.postgres`). A URL that is not
on this machine is left alone: it is someone else's server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from synthset.errors import SynthsetError
from synthset.servers.state import log_tail, state_dir

DEFAULT_PREFECT_API_URL = "http://127.0.0.1:4200/api"
DEFAULT_MLFLOW_URL = "http://127.0.0.1:5000"
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Service:
    """A server synthset can run locally: how to start it and how to tell that it is up.

    `database_url` is where it keeps its data (SQLAlchemy URL); None means a SQLite file in
    the state folder, the quickstart default.
    """

    name: str
    url: str
    health_url: str
    ui_url: str
    database_url: str | None = None

    @property
    def local(self) -> bool:
        parsed = urlparse(self.url)
        return parsed.scheme == "http" and parsed.hostname in _LOCAL_HOSTS

    @property
    def port(self) -> int:
        return urlparse(self.url).port or 80

    @property
    def pid_file(self) -> Path:
        return state_dir() / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return state_dir() / "logs" / f"{self.name}.log"

    def command(self) -> tuple[list[str], dict[str, str]]:
        bin_dir = Path(sys.executable).parent
        state = state_dir()
        if self.name == "prefect":
            cmd = [
                str(bin_dir / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ]
            env = {
                "PREFECT_HOME": str(state / "prefect"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            }
            if self.database_url:
                env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        else:
            cmd = [
                str(bin_dir / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--artifacts-destination",
                str(state / "mlartifacts"),
            ]
            env = {
                "MLFLOW_BACKEND_STORE_URI": self.database_url or f"sqlite:///{state / 'mlflow.db'}",
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            }
        return cmd, env


def services(database_urls: Mapping[str, str] | None = None) -> list[Service]:
    """The Prefect API and MLflow tracking server, at the URLs the environment configures,
    keeping their data at `database_urls[name]` when given (else SQLite)."""
    prefect = os.environ.get("PREFECT_API_URL") or DEFAULT_PREFECT_API_URL
    mlflow = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_URL
    databases = database_urls or {}
    return [
        Service(
            "prefect",
            prefect,
            prefect.rstrip("/") + "/health",
            prefect.rstrip("/").removesuffix("/api"),
            databases.get("prefect"),
        ),
        Service(
            "mlflow",
            mlflow,
            mlflow.rstrip("/") + "/health",
            mlflow.rstrip("/"),
            databases.get("mlflow"),
        ),
    ]


def require_reachable(tracking_uri: str | None = None) -> None:
    """Fail before any work when a configured Prefect API or MLflow server does not answer."""
    from prefect.settings import PREFECT_API_URL

    configured = {
        "prefect": PREFECT_API_URL.value(),
        "mlflow": tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"),
    }
    for service in services():
        url = configured[service.name]
        if url and url.startswith("http"):
            service = Service(service.name, url, url.rstrip("/") + "/health", service.ui_url)
            if not is_up(service):
                raise SynthsetError(
                    f"the {service.name} server does not answer at {url}; start "
                    "the local servers with `make servers` or fix the URL"
                )


def is_up(service: Service) -> bool:
    try:
        with urllib.request.urlopen(service.health_url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _pid(service: Service) -> int | None:
    try:
        pid = int(service.pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(service: Service, timeout: float = 120.0) -> str:
    """Start `service` unless something answers at its URL; returns what was done."""
    if is_up(service):
        return "already running"
    if not service.local:
        raise SynthsetError(
            f"{service.name} does not answer at {service.url}, which is not a "
            "local http URL synthset could start a server at"
        )
    cmd, env = service.command()
    service.log_file.parent.mkdir(parents=True, exist_ok=True)
    service.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with service.log_file.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    service.pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if is_up(service):
            return f"started (pid {proc.pid})"
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    service.pid_file.unlink(missing_ok=True)
    raise SynthsetError(
        f"{service.name} server did not come up at {service.url}; {log_tail(service.log_file)}"
    )


def stop(service: Service, timeout: float = 20.0) -> str:
    """Stop a server this module started (its whole process group); returns what was done."""
    pid = _pid(service)
    service.pid_file.unlink(missing_ok=True)
    if pid is None:
        return "not started by synthset"
    try:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            os.killpg(pid, 0)
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return f"stopped (pid {pid})"
