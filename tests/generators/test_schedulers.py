"""Every scheduler name gives correct digits with the default model (read by the digit judge),
and `scheduler_options` reach `from_config`."""

from __future__ import annotations

import pytest

from synthset.errors import SynthsetError
from synthset.generators.pipeline import ImageGenerator
from synthset.manifest import SCHEDULERS, GeneratorConfig
from synthset.models.evaluate import adherence, generate, prompt_plan
from synthset.models.judge import load_judge

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_makes_correct_digits_with_the_default_model(name):
    specs = prompt_plan(20, seed=3)

    images = generate("synthset/tiny-digits", specs, steps=12, guidance=4.0, scheduler=name)

    assert adherence(images, specs, load_judge()) >= 0.9


def test_scheduler_options_reach_the_scheduler_and_clip_sample_is_off_for_latents():
    def scheduler(**settings):
        config = GeneratorConfig(device="cpu", steps=2, **settings)
        return ImageGenerator(config).pipe.scheduler

    assert scheduler(scheduler="ddim").config.clip_sample is False
    tuned = scheduler(scheduler="ddim", scheduler_options={"timestep_spacing": "leading"})
    assert tuned.config.timestep_spacing == "leading"
    assert scheduler(scheduler="ddim", scheduler_options={"clip_sample": True}).config.clip_sample
    own = scheduler(scheduler_options={"use_karras_sigmas": True})
    assert type(own).__name__ == "DPMSolverMultistepScheduler" and own.config.use_karras_sigmas


def test_an_option_the_scheduler_does_not_take_is_named():
    config = GeneratorConfig(device="cpu", scheduler="euler", scheduler_options={"eta": 0.5})

    with pytest.raises(SynthsetError, match="'eta' is not an option of EulerDiscreteScheduler"):
        ImageGenerator(config)
