"""Local servers for `make run` and `synthset servers`: the Prefect API and the MLflow
tracking server (`web`), the PostgreSQL cluster they can keep their data in (`postgres`),
and the three as one stack (`stack`); PID files, logs and data live in the state folder
(`state`: `.synthset/` or `$SYNTHSET_STATE`)."""

from synthset.errors import SynthsetError
from synthset.servers.state import state_dir
from synthset.servers.web import (
    DEFAULT_MLFLOW_URL,
    DEFAULT_PREFECT_API_URL,
    Service,
    is_up,
    require_reachable,
    services,
    start,
    stop,
)

__all__ = [
    "DEFAULT_MLFLOW_URL",
    "DEFAULT_PREFECT_API_URL",
    "Service",
    "SynthsetError",
    "is_up",
    "require_reachable",
    "services",
    "start",
    "state_dir",
    "stop",
]
