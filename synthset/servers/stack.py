"""The local servers as one stack for `synthset servers start|stop|status`: which database
Prefect and MLflow keep their data in, the order they start in, and stopping all of them.

SQLite is the quickstart default; `--database postgres` (or `SYNTHSET_DATABASE=postgres`)
puts both on the private PostgreSQL cluster of `synthset.servers.postgres`. `stop` and
`status` cover the cluster whichever database was asked for, so nothing is left running.
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from synthset.errors import SynthsetError
from synthset.servers import web
from synthset.servers.postgres import Cluster

DATABASES = ("sqlite", "postgres")


@dataclass(frozen=True)
class Line:
    """One server as the CLI shows it."""

    name: str
    address: str
    status: str


def database_choice(asked: str | None = None) -> str:
    """`asked`, else `$SYNTHSET_DATABASE`, else sqlite."""
    choice = asked or os.environ.get("SYNTHSET_DATABASE") or "sqlite"
    if choice not in DATABASES:
        raise SynthsetError(f"database {choice!r} is not one of {', '.join(DATABASES)}")
    return choice


def start_all(database: str | None = None) -> list[Line]:
    """Start what does not answer yet: the cluster first, then Prefect and MLflow together
    (their first start runs migrations, which is most of the wait)."""
    lines = []
    database_urls = None
    if database_choice(database) == "postgres":
        if importlib.util.find_spec("psycopg2") is None:
            raise SynthsetError(
                "MLflow on PostgreSQL needs psycopg2: pip install 'synthset[servers]'"
            )
        cluster = Cluster.in_state()
        lines.append(Line("postgres", cluster.address, cluster.start()))
        database_urls = cluster.database_urls()
    services = web.services(database_urls)
    with ThreadPoolExecutor(len(services)) as pool:
        started = list(pool.map(web.start, services))
    lines += [Line(s.name, s.ui_url, status) for s, status in zip(services, started, strict=True)]
    return lines


def stop_all() -> list[Line]:
    """Stop Prefect and MLflow by their PIDs, then the cluster their data may be in."""
    lines = [Line(s.name, s.ui_url, web.stop(s)) for s in web.services()]
    cluster = Cluster.in_state()
    return [*lines, Line("postgres", cluster.address, cluster.stop())]


def status_all() -> list[Line]:
    lines = [Line(s.name, s.ui_url, "up" if web.is_up(s) else "down") for s in web.services()]
    cluster = Cluster.in_state()
    return [*lines, Line("postgres", cluster.address, cluster.status())]
