"""Where datasets live on disk: `<root>/<name>/v<N>/`, with staging beside the versions.

```
<root>/<name>/
  v1/ v2/ ...                       published versions (never modified after the rename,
                                    but for report/, outside the digest, rebuilt whole)
  .staging/<plan>/shards/<shard>/   generated shards of an unfinished run (resumable)
  .staging/<plan>/version/          a version being assembled, renamed to v<N> when complete
```
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_VERSION_DIR = re.compile(r"^v(\d+)$")


def cache_dir() -> Path:
    """Built-in models, pulled versions, earlier versions' indexes: `$SYNTHSET_CACHE`, else
    `~/.cache/synthset`."""
    return Path(os.environ.get("SYNTHSET_CACHE", Path.home() / ".cache" / "synthset"))


PACKAGED_MODELS: dict[str, Path] = {
    "synthset/tiny-digits": Path(__file__).parent / "models" / "weights" / "tiny-digits",
}
"""Built-in models shipped inside the package, by name."""

MODEL_DEFAULTS = "synthset_defaults.json"
"""A model folder's recommended `steps`, `guidance_scale` and `scheduler`."""


def model_defaults(model: str) -> dict[str, Any]:
    """The recommendations a packaged or local model folder carries (empty when none)."""
    folder = PACKAGED_MODELS.get(model) or Path(model).expanduser()
    path = folder / MODEL_DEFAULTS
    return json.loads(path.read_text()) if path.is_file() else {}


def datasets_root() -> Path:
    """The datasets folder: `$SYNTHSET_DATASETS`, else `./datasets`."""
    return Path(os.environ.get("SYNTHSET_DATASETS", "datasets")).resolve()


@dataclass(frozen=True)
class DatasetLayout:
    """Paths of one dataset under a root folder."""

    root: Path
    name: str

    @property
    def dataset_dir(self) -> Path:
        return self.root / self.name

    def version_dir(self, version: int) -> Path:
        return self.dataset_dir / f"v{version}"

    def staging_dir(self, plan: str) -> Path:
        return self.dataset_dir / ".staging" / plan

    def shard_dir(self, plan: str, shard_id: str) -> Path:
        return self.staging_dir(plan) / "shards" / shard_id

    def versions(self) -> list[int]:
        """Published version numbers found on disk, ascending."""
        if not self.dataset_dir.is_dir():
            return []
        found = (_VERSION_DIR.match(p.name) for p in self.dataset_dir.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)
