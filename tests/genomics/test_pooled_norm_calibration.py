"""The classifier re-estimates its pooled-feature statistics with the current weights before every validation in
fit (running averages lag behind a fine-tuned backbone: on an H200 at L = 2^16 they gave validation loss 76 at
training loss 0.1). Checked against the mean/variance of the pooled features computed directly."""

import lightning.pytorch as pl
import torch

from genomics.classifier import DNAClassifier
from genomics.classify_data import SequenceClassificationDataModule
from genomics.synthetic import make_species_genomes

TINY = {"d_model": 16, "n_layer": 1, "d_state": 4}


def _data(tmp_path, **kwargs):
    paths = make_species_genomes(tmp_path / "genomes", ("human", "orangutan"), n_chromosomes=3,
                                 chromosome_length=3000, seed=2)
    return SequenceClassificationDataModule(fasta_files={k: str(v) for k, v in paths.items()}, length=256,
                                            batch_size=4, index_dir=str(tmp_path), **kwargs)


def _direct_statistics(model, dataset):
    model.eval()
    with torch.no_grad():
        feats = torch.stack([model.pooled_features(dataset[i]["input_ids"][None], dataset[i]["mask"][None])[0]
                             for i in range(len(dataset))])
    return feats.mean(0), feats.var(0)


def test_calibration_windows_are_fixed_balanced_training_windows(tmp_path):
    dm = _data(tmp_path)
    dm.prepare_classes()
    first, again = dm.calibration_dataset(10), dm.calibration_dataset(10)
    train_records = {iv.chrom for ivs in dm.intervals["train"] for iv in ivs}
    located = [first.locate(i) for i in range(10)]
    assert [label for label, *_ in located] == [0, 1] * 5
    assert all(interval.chrom in train_records and not reverse for _, interval, _, _, reverse in located)
    assert all(torch.equal(first[i]["input_ids"], again[i]["input_ids"]) for i in range(10))


def test_calibrate_sets_statistics_of_current_features(tmp_path):
    dm = _data(tmp_path)
    model = DNAClassifier(**TINY, class_names=dm.prepare_classes())
    model.pooled_norm.running_mean.fill_(5.0)
    model.pooled_norm.running_var.fill_(100.0)
    dataset = dm.calibration_dataset(10)
    model.calibrate_pooled_norm(dataset, batch_size=4)
    mean, var = _direct_statistics(model, dataset)
    assert torch.allclose(model.pooled_norm.running_mean, mean, atol=1e-6)
    assert torch.allclose(model.pooled_norm.running_var, var, rtol=1e-4, atol=1e-12)


def test_fit_validates_and_checkpoints_with_fresh_statistics(tmp_path):
    dm = _data(tmp_path, train_windows=8, valid_windows=4)
    model = DNAClassifier(**TINY, lr=5e-2, backbone_lr=5e-2, warmup_steps=1, calibration_windows=6)
    pl.seed_everything(0)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(model, dm)  # 2 large steps: the running average alone would trail the final weights
    mean, var = _direct_statistics(model, dm.calibration_dataset(6))
    assert torch.allclose(model.pooled_norm.running_mean, mean, atol=1e-6)
    assert torch.allclose(model.pooled_norm.running_var, var, rtol=1e-4, atol=1e-12)
    saved = torch.load(next((tmp_path / "checkpoints").glob("*.ckpt")), map_location="cpu", weights_only=True)
    assert torch.allclose(saved["state_dict"]["pooled_norm.running_mean"], mean, atol=1e-6)
