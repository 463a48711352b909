"""A private PostgreSQL cluster under the state folder, where the local Prefect and MLflow
servers keep their data when SQLite is not enough (concurrent runs, a team's server).

It is made with the distribution's `initdb` and run with `pg_ctl`, so nothing but the
PostgreSQL binaries is needed: no system service, no shared cluster. It listens on
127.0.0.1 only, with its unix socket in its own folder; TCP connections need the password
kept in that folder (0600), the socket (0700) lets in its owner only. `initdb` and `pg_ctl`
refuse to run as root, so under root the cluster belongs to the `postgres` user and every
tool runs through `runuser`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from synthset.errors import SynthsetError
from synthset.servers.state import log_tail, state_dir

USER = "synthset"
DATABASES = ("prefect", "mlflow")
DEFAULT_PORT = 5433
OWNER_WHEN_ROOT = "postgres"
_TOOLS = ("initdb", "pg_ctl", "psql", "createdb")
_SOCKET_PATH_MAX = 107


def bin_dir() -> Path:
    """The folder of `initdb` and `pg_ctl`: `$SYNTHSET_POSTGRES_BIN`, else the one on PATH,
    else the newest `/usr/lib/postgresql/<major>/bin` (Debian keeps them off PATH)."""
    candidates = []
    if os.environ.get("SYNTHSET_POSTGRES_BIN"):
        candidates.append(Path(os.environ["SYNTHSET_POSTGRES_BIN"]))
    else:
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).parent)
        debian = glob.glob("/usr/lib/postgresql/*/bin")
        candidates += sorted(
            (Path(p) for p in debian), key=lambda p: int(p.parent.name), reverse=True
        )
    for folder in candidates:
        if all((folder / tool).is_file() for tool in _TOOLS):
            return folder
    raise SynthsetError(
        "PostgreSQL binaries (initdb, pg_ctl) not found: install PostgreSQL (Debian: "
        "apt-get install postgresql) or set SYNTHSET_POSTGRES_BIN to their folder"
    )


def available() -> bool:
    try:
        bin_dir()
    except SynthsetError:
        return False
    return True


@dataclass(frozen=True)
class Cluster:
    """The cluster in `root` (`<state>/postgres`): `data/`, `socket/`, `password`, `log`."""

    root: Path

    @classmethod
    def in_state(cls) -> Cluster:
        return cls(state_dir() / "postgres")

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def log_file(self) -> Path:
        return self.root / "log"

    @property
    def created(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    @property
    def port(self) -> int:
        """The port the cluster was made with; before that, `$SYNTHSET_POSTGRES_PORT`."""
        if self.created:
            found = re.findall(r"^port = (\d+)$", _read(self.data / "postgresql.conf"), re.M)
            if found:
                return int(found[-1])
        return int(os.environ.get("SYNTHSET_POSTGRES_PORT") or DEFAULT_PORT)

    @property
    def address(self) -> str:
        return f"postgresql://127.0.0.1:{self.port}"

    def url(self, database: str, driver: str = "postgresql") -> str:
        """A SQLAlchemy URL for `database` over TCP, with the cluster's password."""
        password = _read(self.password_file).strip()
        return f"{driver}://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def database_urls(self) -> dict[str, str]:
        """What `synthset.servers.web.services` takes: Prefect's async driver, MLflow's."""
        return {
            "prefect": self.url("prefect", "postgresql+asyncpg"),
            "mlflow": self.url("mlflow"),
        }

    def pid(self) -> int | None:
        """The postmaster's PID while it runs (from `postmaster.pid`), else None."""
        try:
            pid = int(_read(self.data / "postmaster.pid").splitlines()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def status(self) -> str:
        if not self.created:
            return "not created"
        pid = self.pid()
        return f"up (pid {pid})" if pid else "down"

    def start(self) -> str:
        """Create the cluster if needed, start it unless it runs, make the databases."""
        bin_dir()
        self._check_port()
        pid = self.pid()
        if pid:
            self._create_databases()
            return f"already running (pid {pid})"
        if not self.created:
            self._init()
        done = self._run(
            ["pg_ctl", "start", "-D", self.data, "-l", self.log_file, "-w", "-t", "60"]
        )
        if done.returncode != 0:
            raise SynthsetError(
                f"PostgreSQL did not start on 127.0.0.1:{self.port}; {log_tail(self.log_file)}"
            )
        self._create_databases()
        return f"started (pid {self.pid()})"

    def stop(self) -> str:
        """Stop the postmaster (`pg_ctl stop`, fast mode: open sessions are cut)."""
        pid = self.pid()
        if pid is None:
            return "not created" if not self.created else "not running"
        done = self._run(["pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", "-t", "60"])
        if done.returncode != 0:
            raise SynthsetError(f"PostgreSQL (pid {pid}) did not stop: {_one_line(done)}")
        return f"stopped (pid {pid})"

    def _check_port(self) -> None:
        asked = os.environ.get("SYNTHSET_POSTGRES_PORT")
        if self.created and asked and int(asked) != self.port:
            raise SynthsetError(
                f"the PostgreSQL cluster in {self.root} listens on port {self.port}, not "
                f"SYNTHSET_POSTGRES_PORT={asked}; unset it, or remove the folder for a new one"
            )

    def _init(self) -> None:
        port = self.port
        socket = self.socket_dir / f".s.PGSQL.{port}"
        if len(str(socket)) > _SOCKET_PATH_MAX:
            raise SynthsetError(
                f"{socket} is too long for a unix socket; set SYNTHSET_STATE to a shorter folder"
            )
        for folder in (self.root, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
        if not self.password_file.exists():
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_hex(16) + "\n")
        if _as_root():
            owner = _owner_when_root()
            for path in (self.root, self.socket_dir, self.password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            if self._run(["test", "-w", self.root], tool=False).returncode != 0:
                raise SynthsetError(
                    f"the {OWNER_WHEN_ROOT} user cannot reach {self.root} (PostgreSQL refuses "
                    "to run as root): let others traverse its parent folders (chmod o+x) or "
                    "set SYNTHSET_STATE to a folder it can reach"
                )
        done = self._run(
            [
                "initdb",
                "-D",
                self.data,
                "-U",
                USER,
                "--pwfile",
                self.password_file,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
            ]
        )
        if done.returncode != 0:
            raise SynthsetError(f"initdb failed in {self.data}: {_one_line(done)}")
        socket_dir = str(self.socket_dir).replace("'", "''")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# synthset: a private cluster\n"
                f"port = {port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{socket_dir}'\n"
            )

    def _create_databases(self) -> None:
        connect = ["-h", self.socket_dir, "-p", str(self.port), "-U", USER]
        listed = self._run(
            ["psql", *connect, "-d", "postgres", "-tAc", "SELECT datname FROM pg_database"]
        )
        if listed.returncode != 0:
            raise SynthsetError(f"cannot list PostgreSQL databases: {_one_line(listed)}")
        have = set(listed.stdout.split())
        for name in DATABASES:
            if name not in have:
                made = self._run(["createdb", *connect, name])
                if made.returncode != 0:
                    raise SynthsetError(f"cannot create database {name}: {_one_line(made)}")

    def _run(self, argv: Sequence[object], tool: bool = True) -> subprocess.CompletedProcess:
        """Run a PostgreSQL tool (or a plain command) as the cluster's owner, in its folder."""
        cmd = [str(a) for a in argv]
        if tool:
            cmd[0] = str(bin_dir() / cmd[0])
        if _as_root():
            cmd = ["runuser", "-u", _owner_when_root().pw_name, "--", *cmd]
        return subprocess.run(
            cmd, cwd=self.root, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )


def _as_root() -> bool:
    return os.geteuid() == 0


def _owner_when_root() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OWNER_WHEN_ROOT)
    except KeyError:
        raise SynthsetError(
            f"PostgreSQL refuses to run as root and there is no {OWNER_WHEN_ROOT!r} user to "
            "run it as; run synthset as another user or install PostgreSQL's package"
        ) from None


def _alive(pid: int) -> bool:
    """False for a zombie: a stopped postmaster nobody reaped still answers `kill -0`."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _one_line(done: subprocess.CompletedProcess) -> str:
    text = (done.stderr or done.stdout or f"exit {done.returncode}").strip()
    return " | ".join(text.splitlines()[-3:])
