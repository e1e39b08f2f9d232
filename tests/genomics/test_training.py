"""End-to-end CPU training checks: pretraining learns real DNA; the classifier separates synthetic species and
predicts on awkward FASTA records; pretrained weights reach the classifier from both checkpoint formats."""

import csv
import math

import lightning.pytorch as pl
import pytest
import torch

from genomics.backbone import load_pretrained
from genomics.classifier import DNAClassifier
from genomics.classify_data import SequenceClassificationDataModule
from genomics.lm_module import DNALanguageModel
from genomics.pretrain_data import GenomePretrainDataModule
from genomics.synthetic import make_species_genomes

TINY = {"d_model": 32, "n_layer": 2, "d_state": 4}


def _trainer(tmp_path, **kwargs):
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path, **kwargs)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, request):
    """200 steps of a 16k-parameter model on 64-base windows of the human mitochondrial genome."""
    from pathlib import Path

    folder = tmp_path_factory.mktemp("pretrain")
    fasta = Path(request.config.rootpath) / "tests" / "data" / "dna" / "MT-human.fa"
    pl.seed_everything(0)
    dm = GenomePretrainDataModule(str(fasta), length=64, batch_size=16, train_windows=16 * 200, valid_windows=128,
                                  index_dir=str(folder))
    model = DNALanguageModel(**TINY, lr=5e-3, warmup_steps=10, weight_decay=0.0)
    trainer = _trainer(folder, max_epochs=1, enable_checkpointing=False)
    before = trainer.validate(model, dm, verbose=False)[0]
    trainer.fit(model, dm)
    after = trainer.validate(model, dm, verbose=False)[0]
    ckpt = folder / "lm.ckpt"
    trainer.save_checkpoint(ckpt)
    return model, before, after, ckpt


def test_pretraining_loss_falls_well_below_uniform(pretrained):
    _, before, after, _ = pretrained
    assert before["val/loss"] > 2.0  # untrained: ~ln(10 symbols)
    # ln 4 = 1.386 is guessing among four bases; the base composition alone gives ~1.30 on the held-out block
    assert after["val/loss"] < 1.33
    assert math.isclose(after["val/ppl"], math.exp(after["val/loss"]), rel_tol=1e-4)
    assert after["val/acc"] > 0.33


def test_classifier_loads_backbone_from_ckpt_and_folder(pretrained, tmp_path):
    model, _, _, ckpt = pretrained
    ids = torch.randint(5, 10, (2, 50))
    reference = model.model.backbone.eval()(ids)
    from_ckpt = load_pretrained(ckpt)
    assert torch.allclose(from_ckpt.backbone.eval()(ids), reference, atol=1e-6)
    folder = from_ckpt.save_pretrained(tmp_path / "exported")
    classifier = DNAClassifier(pretrained=str(folder), class_names=["a", "b"])
    assert torch.allclose(classifier.backbone.eval()(ids), reference, atol=1e-6)
    with pytest.raises(ValueError, match="causal"):
        DNAClassifier(pretrained=str(ckpt), class_names=["a", "b"], bidirectional=True)


@pytest.fixture(scope="module")
def species_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("species")
    paths = make_species_genomes(folder / "genomes", n_chromosomes=3, chromosome_length=40_000, divergence=6.0,
                                 seed=1)
    pl.seed_everything(0)
    dm = SequenceClassificationDataModule(fasta_files={k: str(v) for k, v in paths.items()}, length=1024,
                                          batch_size=4, train_windows=4 * 60, valid_windows=100)
    model = DNAClassifier(**TINY, lr=1e-2, warmup_steps=5, predict_output=str(folder / "pred"))
    trainer = _trainer(folder, max_epochs=1, enable_checkpointing=False)
    trainer.fit(model, dm)
    return model, trainer, folder


def test_classifier_beats_chance_on_synthetic_species(species_run):
    model, trainer, _ = species_run
    assert model.class_names == ["human", "chimpanzee", "bonobo", "gorilla", "orangutan"]
    assert trainer.callback_metrics["val/acc"] > 0.5  # chance: 0.2


def test_predict_writes_record_and_window_probabilities(species_run):
    model, _, folder = species_run
    query = folder / "query.fa"
    orang = (folder / "genomes" / "orangutan.fa").read_text().split(">")[3]  # chr3, unseen in training
    body = "".join(orang.splitlines()[1:])[:2500]
    query.write_text(">empty\n>all_n\n" + "N" * 1500 + "\n>lower short\n" + body[:700].lower() + "\n>orang\n"
                     + "\n".join(body[i:i + 60] for i in range(0, len(body), 60)) + "\n")
    dm = SequenceClassificationDataModule(fasta_files={"x": str(query), "y": str(query)}, length=1024,
                                          predict_fasta=str(query), index_dir=str(folder))
    _trainer(folder).predict(model, dm, return_predictions=False)
    with open(folder / "pred" / "records.tsv") as handle:
        rows = {r["record"]: r for r in csv.DictReader(handle, delimiter="\t")}
    assert [rows[n]["status"] for n in ("empty", "all_n", "lower", "orang")] == \
        ["empty", "all_N", "shorter_than_window", "ok"]
    assert rows["empty"]["n_windows"] == "0" and rows["empty"]["p_human"] == "NA"
    assert rows["orang"]["n_windows"] == "3"  # 2500 bases: tiles at 0, 1024 and the end-aligned 1476
    with open(folder / "pred" / "windows.tsv") as handle:
        windows = [r for r in csv.DictReader(handle, delimiter="\t") if r["record"] == "orang"]
    assert [(w["start"], w["end"]) for w in windows] == [("0", "1024"), ("1024", "2048"), ("1476", "2500")]
    columns = [f"p_{c}" for c in model.class_names]
    mean = [sum(float(w[c]) for w in windows) / 3 for c in columns]
    assert [float(rows["orang"][c]) for c in columns] == pytest.approx(mean, abs=2e-6)
    assert sum(float(rows["lower"][c]) for c in columns) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        _trainer(folder).predict(model, dm, return_predictions=False)


def test_sequence_length_warmup_doubles_windows_at_fixed_tokens(tmp_path):
    from pathlib import Path

    fasta = Path(__file__).resolve().parents[1] / "data" / "dna" / "MT-human.fa"
    seen = []

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                seen.append(tuple(batch["input_ids"].shape))

    dm = GenomePretrainDataModule(str(fasta), length=64, batch_size=2, train_windows=4, valid_windows=2,
                                  warmup_min_length=16, warmup_epochs_per_stage=1, index_dir=str(tmp_path))
    model = DNALanguageModel(d_model=8, n_layer=1, d_state=2)
    _trainer(tmp_path, max_epochs=4, reload_dataloaders_every_n_epochs=1, enable_checkpointing=False,
             limit_val_batches=0, callbacks=[Spy()]).fit(model, dm)
    assert seen == [(8, 16), (4, 32), (2, 64), (2, 64)]  # 128 tokens per batch; 2 steps per epoch throughout
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs: 1"):
        _trainer(tmp_path, max_epochs=1, enable_checkpointing=False, limit_val_batches=0).fit(
            DNALanguageModel(d_model=8, n_layer=1, d_state=2), dm)
