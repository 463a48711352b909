"""The config of a synthetic-table release (YAML or JSON), validated with one-line errors.

```yaml
dataset: patients-synth        # name of the synthetic dataset (versions, MLflow experiment)
data: patients.csv             # the private table (relative to this file)
identifiers: [patient_id]      # dropped before anything else
types: {visit: datetime}       # overrides of inferred kinds
target: outcome                # conditioning target and TSTR target
sensitive: [hiv_status]        # attribute-inference checks
bounds: {age: [0, 120]}        # public declarations: no budget spent on them under DP
categories: {sex: [F, M]}
holdout: 0.3
synthesizer: {steps: 4000, epsilon: 3, delta: 1.0e-6}
gate: {max_mia_auc: 0.6}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synthset.errors import InputError, describe_validation, fields_at, format_loc
from synthset.inputs.paths import is_file
from synthset.inputs.structured import read_structured
from synthset.privacy.errors import TableError
from synthset.privacy.tabular.gate import GateConfig
from synthset.privacy.tabular.synthesizer import SynthesizerConfig

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class AuditConfig(BaseModel):
    """Audit settings: the TSTR model and the seed of its subsamples."""

    model_config = ConfigDict(extra="forbid")

    tstr_model: str = Field(default="auto", pattern="^(auto|linear|gbm)$")
    seed: int = 0


class TabularConfig(BaseModel):
    """Everything a release needs: input, declarations, model, budget, audit and gate."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=_NAME)
    data: str
    description: str | None = None
    types: dict[str, str] = Field(default_factory=dict)
    identifiers: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)
    target: str | None = None
    sensitive: list[str] = Field(default_factory=list)
    bounds: dict[str, tuple[Any, Any]] = Field(default_factory=dict)
    categories: dict[str, list[Any]] = Field(default_factory=dict)
    decimals: dict[str, int] = Field(default_factory=dict)
    max_categories: int = Field(default=10, ge=2)
    holdout: float = Field(default=0.3, gt=0, lt=1)
    rows: int | None = Field(
        default=None, ge=1, description="synthetic rows; default: training rows"
    )
    seed: int = 0
    synthesizer: SynthesizerConfig = Field(default_factory=SynthesizerConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    gate: GateConfig = Field(default_factory=GateConfig)

    @field_validator("data")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give the path of the private table")
        return value

    def table_options(self) -> dict[str, Any]:
        """Keyword arguments of `synthset.privacy.tabular.schema.prepare_table`."""
        return {
            "types": self.types,
            "identifiers": self.identifiers,
            "drop": self.drop,
            "target": self.target,
            "sensitive": self.sensitive,
            "bounds": self.bounds,
            "categories": self.categories,
            "decimals": self.decimals,
            "max_categories": self.max_categories,
        }


def parse_config(
    data: dict[str, Any], source: str = "<config>", base: Path | None = None
) -> TabularConfig:
    """Validate a config mapping; `data` paths are resolved against `base`."""
    try:
        config = TabularConfig(**data)
    except ValidationError as exc:
        loc, message = describe_validation(exc, fields_at(TabularConfig))
        raise TableError(source, f"field '{format_loc(loc)}': {message}") from None
    except (TypeError, ValueError) as exc:
        raise TableError(source, str(exc)) from None
    if base is not None and not Path(config.data).is_absolute():
        config.data = str((base / config.data).resolve())
    return config


def load_config(path: str | Path) -> TabularConfig:
    """Read and validate a YAML or JSON release config (UTF-8 or with a byte-order mark; nesting,
    integers and aliases within `synthset.inputs.structured`'s limits; no repeated keys)."""
    path = Path(path)
    if not is_file(path):
        raise TableError(str(path), "no such file")
    try:
        data = read_structured(path)
    except InputError as exc:
        place = ": ".join(part for part in (exc.where, exc.problem) if part)
        raise TableError(str(path), place, column=exc.field) from None
    if not isinstance(data, dict):
        raise TableError(str(path), "expected a mapping with at least 'dataset' and 'data'")
    return parse_config(data, str(path), path.parent)
