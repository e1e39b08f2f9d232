"""SyntheticDataModule(curriculum=...): shorter training contexts first, validation always at seq_len."""

from types import SimpleNamespace

import pytest

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
