"""SyntheticDataModule(curriculum=...): shorter training contexts first, validation always at seq_len."""

from types import SimpleNamespace

import pytest
import torch

from apps.synthetic.data import SyntheticDataModule, SyntheticTaskError


def test_curriculum_stages_follow_the_epoch_and_validation_stays_at_seq_len():
    dm = SyntheticDataModule(task="selective_copying", seq_len=32, vocab_size=8, num_tokens=2, batch_size=3,
                             batches_per_epoch=1, curriculum=[8, 16], curriculum_epochs=2)
    widths = []
    for epoch in range(6):
        dm.trainer = SimpleNamespace(current_epoch=epoch)
        inputs, targets = next(iter(dm.train_dataloader()))
        widths.append(inputs.shape[1])
        assert targets.shape == (3, 2)
    assert widths == [10, 10, 18, 18, 34, 34]  # context + 2 markers: 8, 8, 16, 16, then seq_len 32
    assert next(iter(dm.val_dataloader()))[0].shape == (3, 34)


def test_no_curriculum_trains_at_seq_len_and_bad_stages_are_refused():
    dm = SyntheticDataModule(task="induction_heads", seq_len=16, vocab_size=6, batch_size=2, batches_per_epoch=1)
    assert dm.train_spec(0) is dm.spec and dm.train_spec(7) is dm.spec
    with pytest.raises(SyntheticTaskError, match="seq_len >= 3"):
        SyntheticDataModule(task="induction_heads", seq_len=16, vocab_size=6, curriculum=[2])
    with pytest.raises(SyntheticTaskError, match="curriculum_epochs"):
        SyntheticDataModule(task="induction_heads", seq_len=16, vocab_size=6, curriculum=[8], curriculum_epochs=0)


def _epoch_widths(dm, accuracies):
    """Input widths of successive epochs, each epoch's loader built after the previous epoch reported accuracy."""
    widths = []
    for epoch, acc in enumerate(accuracies):
        metrics = {} if acc is None else {"train/epoch_acc": torch.tensor(acc)}
        dm.trainer = SimpleNamespace(current_epoch=epoch, callback_metrics=metrics)
        widths.append(next(iter(dm.train_dataloader()))[0].shape[1])
    return widths


def test_accuracy_gated_curriculum_waits_for_the_threshold_and_survives_a_resume():
    kwargs = dict(task="selective_copying", seq_len=32, vocab_size=8, num_tokens=2, batch_size=3,
                  batches_per_epoch=1, curriculum=[8, 16], curriculum_epochs=2, curriculum_advance_acc=0.9)
    dm = SyntheticDataModule(**kwargs)
    # stage 8: two epochs minimum, then held until an epoch reaches 0.9; stage 16 likewise; then seq_len 32
    widths = _epoch_widths(dm, [None, 0.95, 0.5, 0.92, 0.99, 0.95, 0.2])
    assert widths == [10, 10, 10, 18, 18, 34, 34]
    resumed = SyntheticDataModule(**kwargs)
    dm2 = SyntheticDataModule(**kwargs)
    _epoch_widths(dm2, [None, 0.95, 0.5, 0.92])  # in stage 16 after its first epoch
    resumed.load_state_dict(dm2.state_dict())
    resumed.trainer = SimpleNamespace(current_epoch=4, callback_metrics={})  # fresh trainer: no metrics yet
    assert next(iter(resumed.train_dataloader()))[0].shape[1] == 18
    with pytest.raises(SyntheticTaskError, match="curriculum_advance_acc"):
        SyntheticDataModule(**{**kwargs, "curriculum_advance_acc": 1.5})


def test_a_curriculum_without_per_epoch_reloads_is_refused():
    dm = SyntheticDataModule(task="selective_copying", seq_len=32, vocab_size=8, num_tokens=2, batch_size=3,
                             batches_per_epoch=1, curriculum=[8])
    dm.trainer = SimpleNamespace(current_epoch=0, reload_dataloaders_every_n_epochs=0)
    with pytest.raises(SyntheticTaskError, match="reload_dataloaders_every_n_epochs 1"):
        dm.train_dataloader()
