"""A manifest given inline as the flow's `manifest` parameter (a deployment carries it; no file
on the worker): relative paths resolve against the worker's working directory, the flow run is
named after the dataset, and a bad one is a one-line user error."""

from __future__ import annotations

import pandas as pd
import pytest
from prefect.client.orchestration import get_client

from synthset.errors import SynthsetError
from synthset.flows.generate import generate_dataset

pytestmark = pytest.mark.slow

SWATCH = "tests.generators.test_kinds:Swatch"


def test_an_inline_manifest_makes_the_dataset(prefect_api, tracking_uri, tmp_path):
    (tmp_path / "more.csv").write_text("prompt,count,seed\na blue swatch,2,5\n")
    manifest = {
        "dataset": "inline-swatches",
        "generator": {"kind": SWATCH},
        "curation": {"enabled": False},
        "items": [{"prompt": "a red swatch", "count": 3, "seed": 1}],
        "items_from": "more.csv",
    }

    result = generate_dataset(manifest=manifest, tracking_uri=tracking_uri)

    assert (result["name"], result["version"], result["images"]) == ("inline-swatches", 1, 5)
    meta = pd.read_parquet(tmp_path / "datasets" / "inline-swatches" / "v1" / "metadata.parquet")
    assert sorted(meta["prompt"].value_counts().items()) == [
        ("a blue swatch", 2),
        ("a red swatch", 3),
    ]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(result["flow_run_id"])
    assert run.name == "inline-swatches"
    assert run.parameters["manifest"] == manifest


def test_a_bad_inline_manifest_names_itself_and_the_field(prefect_api, tracking_uri):
    manifest = {"dataset": "inline-bad", "items": [{"prompt": "a swatch", "count": 0}]}

    with pytest.raises(SynthsetError) as raised:
        generate_dataset(manifest=manifest, tracking_uri=tracking_uri)

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("<inline manifest>") and "items[0]" in message and "count" in message


@pytest.mark.parametrize("given", [{}, {"manifest_path": "m.yaml", "manifest": {"dataset": "x"}}])
def test_exactly_one_manifest_is_given(prefect_api, given):
    with pytest.raises(SynthsetError, match="exactly one of manifest_path and manifest"):
        generate_dataset(**given)
