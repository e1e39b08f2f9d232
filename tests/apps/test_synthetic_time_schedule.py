"""lr_schedule="time": the cosine spans the trainer's max_time, so a run that a wall-clock cap ends still anneals."""

import math

import lightning.pytorch as pl
import pytest

from apps.synthetic.module import SyntheticLM, time_cosine_factor


def test_factor_warms_up_by_step_then_follows_the_elapsed_fraction():
    assert time_cosine_factor(0, 0.9, warmup_steps=4, min_lr_ratio=0.1) == 0.25  # warm-up ignores the clock
    assert time_cosine_factor(3, 0.0, 4, 0.1) == 1.0
    assert time_cosine_factor(10, 0.0, 4, 0.1) == 1.0
    assert math.isclose(time_cosine_factor(10, 0.5, 4, 0.1), 0.55)
    assert math.isclose(time_cosine_factor(10, 1.0, 4, 0.1), 0.1)
    assert math.isclose(time_cosine_factor(10, 3.0, 4, 0.1), 0.1)  # past the cap: held at the floor
    # constant for the first 80% of the budget, cosine over the last 20%
    assert time_cosine_factor(10, 0.79, 4, 0.1, decay_start=0.8) == 1.0
    assert math.isclose(time_cosine_factor(10, 0.9, 4, 0.1, decay_start=0.8), 0.55)
    assert math.isclose(time_cosine_factor(10, 1.0, 4, 0.1, decay_start=0.8), 0.1)


def _module(**kwargs) -> SyntheticLM:
    return SyntheticLM(arch="mamba", task="induction_heads", vocab_size=6, d_model=8, n_layer=1, d_state=4,
                       lr=1e-3, warmup_steps=2, min_lr_ratio=0.1, **kwargs)


def test_learning_rate_follows_the_trainers_clock():
    trainer = pl.Trainer(accelerator="cpu", max_time={"seconds": 100}, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False)
    module = _module(lr_schedule="time")
    module.trainer = trainer
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    timer = next(c for c in trainer.callbacks if isinstance(c, pl.callbacks.Timer))
    lrs = []
    for elapsed in (0, 0, 0, 50, 100):  # the Timer has not started: its offset stands for the elapsed seconds
        timer._offset = elapsed
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    lrs.append(optimizer.param_groups[0]["lr"])
    expected = [5e-4, 1e-3, 1e-3, 1e-3, 5.5e-4, 1e-4]  # warm-up (2 steps), then by time: 0 s, 0 s, 50 s, 100 s
    assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(lrs, expected, strict=True)), lrs


def test_time_schedule_without_max_time_is_refused():
    trainer = pl.Trainer(accelerator="cpu", max_steps=10, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False)
    module = _module(lr_schedule="time")
    module.trainer = trainer
    with pytest.raises(ValueError, match="needs trainer.max_time"):
        module.configure_optimizers()
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        _module(lr_schedule="epochs")
    with pytest.raises(ValueError, match="decay_start"):
        _module(lr_schedule="time", decay_start=1.0)
