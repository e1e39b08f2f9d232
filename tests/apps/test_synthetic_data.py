"""Synthetic task generators: every sample must satisfy the task definition exactly, and streams must be seeded."""

import pytest
import torch

from apps.synthetic.data import (
    InductionHeadsSpec,
    SelectiveCopyingSpec,
    SyntheticBatches,
    SyntheticDataModule,
    SyntheticTaskError,
    induction_heads_batch,
    make_spec,
    selective_copying_batch,
)


def test_selective_copying_samples_follow_the_definition():
    spec = SelectiveCopyingSpec(context_len=50, num_tokens=6, vocab_size=8)
    inputs, targets = selective_copying_batch(spec, 200, torch.Generator().manual_seed(0))
    assert inputs.shape == (200, 56) and targets.shape == (200, 6)
    assert inputs.dtype == targets.dtype == torch.long
    context, markers = inputs[:, :50], inputs[:, 50:]
    assert bool((markers == 7).all())
    assert bool(((targets >= 1) & (targets <= 6)).all())  # data tokens never collide with noise or marker
    for row in range(200):
        data = context[row][context[row] != 0]
        assert data.tolist() == targets[row].tolist()  # exactly the data tokens, in order
    # positions are spread over the whole context, not packed at the start (the non-selective "copying" task)
    first_positions = (context != 0).float().argmax(dim=1)
    assert first_positions.float().mean() > 2
    # every data value is used
    assert set(targets.unique().tolist()) == set(range(1, 7))


def test_induction_heads_samples_follow_the_definition():
    spec = InductionHeadsSpec(seq_len=20, vocab_size=5)
    inputs, targets = induction_heads_batch(spec, 500, torch.Generator().manual_seed(1))
    assert inputs.shape == (500, 20) and targets.shape == (500,)
    special = 4
    assert bool((inputs[:, -1] == special).all())
    counts = (inputs == special).sum(dim=1)
    assert bool((counts == 2).all())  # one trigger + the final query, nothing else
    trigger = (inputs == special).float().argmax(dim=1)
    assert int(trigger.max()) <= 17 and int(trigger.min()) == 0
    assert torch.equal(targets, inputs[torch.arange(500), trigger + 1])
    assert bool((targets < special).all())
    assert set(targets.tolist()) == set(range(4))


def test_paper_defaults():
    copying = make_spec("selective_copying", 4096, 16, 16)
    assert copying.input_len == 4112 and copying.marker_token == 15 and copying.num_data_values == 14
    induction = make_spec("induction_heads", 256, 16)
    assert induction.input_len == 256 and induction.special_token == 15 and induction.chance_accuracy == 1 / 15


def test_streams_are_seeded_and_batches_differ():
    spec = SelectiveCopyingSpec(context_len=30, num_tokens=4, vocab_size=8)
    a, b = SyntheticBatches(spec, 8, 3, seed=5), SyntheticBatches(spec, 8, 3, seed=5)
    assert torch.equal(a[1][0], b[1][0]) and torch.equal(a[1][1], b[1][1])
    assert not torch.equal(a[0][0], a[1][0])
    assert not torch.equal(a[0][0], SyntheticBatches(spec, 8, 3, seed=6)[0][0])
    with pytest.raises(IndexError):
        a[3]


def test_datamodule_train_and_validation_do_not_overlap():
    dm = SyntheticDataModule(task="induction_heads", seq_len=16, vocab_size=6, batch_size=4, batches_per_epoch=2)
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    assert train[0].shape == (4, 16) and val[1].shape == (4,)
    assert not torch.equal(train[0], val[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(task="selective_copying", seq_len=4, vocab_size=8, num_tokens=5), "cannot scatter"),
        (dict(task="selective_copying", seq_len=16, vocab_size=2, num_tokens=2), "vocab_size >= 3"),
        (dict(task="induction_heads", seq_len=2, vocab_size=8), "seq_len >= 3"),
        (dict(task="induction_heads", seq_len=0, vocab_size=8), "positive integer"),
        (dict(task="copying", seq_len=16, vocab_size=8), "unknown task"),
    ],
)
def test_bad_settings_raise_clear_errors(kwargs, message):
    with pytest.raises(SyntheticTaskError, match=message):
        make_spec(**kwargs)
    assert issubclass(SyntheticTaskError, ValueError)
