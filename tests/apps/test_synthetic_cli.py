"""mamba-synthetic end to end on CPU: fit a few steps, resume from the checkpoint, evaluate induction heads."""

import csv
from pathlib import Path

import pytest
import torch

from apps.synthetic.cli import main
from apps.synthetic.data import InductionHeadsSpec, induction_heads_batch
from apps.synthetic.evaluate import EvaluationError, load_induction_checkpoint, predict_final_token

TINY_CONFIG = """
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  precision: 32
  max_epochs: -1
  max_steps: 4
  reload_dataloaders_every_n_epochs: 1
  log_every_n_steps: 1
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args:
      save_dir: {root}
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        save_last: true
model:
  arch: {arch}
  d_model: 16
  n_layer: 2
  d_state: 4
  n_head: 2
  lr: 3.0e-3
  warmup_steps: 2
data:
  task: induction_heads
  seq_len: 12
  vocab_size: 6
  batch_size: 4
  batches_per_epoch: 2
  val_batches: 1
"""


def _fit(tmp_path: Path, arch: str, extra: list[str]) -> None:
    config = tmp_path / f"{arch}.yaml"
    config.write_text(TINY_CONFIG.format(root=tmp_path, arch=arch))
    assert main(["fit", "--config", str(config), *extra]) == 0


def _logged_steps(version_dir: Path) -> list[int]:
    with (version_dir / "metrics.csv").open() as handle:
        return sorted({int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss")})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 4-step S6 induction-heads run, then resumed from its last checkpoint up to step 6."""
    root = tmp_path_factory.mktemp("synthetic_cli")
    _fit(root, "mamba", [])
    first = root / "lightning_logs" / "version_0"
    last = first / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 4
    _fit(root, "mamba", ["--trainer.max_steps=6", "--ckpt_path", str(last)])
    return root, first, root / "lightning_logs" / "version_1"


def test_fit_then_resume_continues_from_the_checkpoint(trained_run):
    _, first, resumed = trained_run
    assert _logged_steps(first) == [0, 1, 2, 3]
    resumed_steps = _logged_steps(resumed)
    assert len(resumed_steps) == 2 and resumed_steps[0] >= 4  # only the 2 missing steps ran after the restore
    checkpoint = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 6
    assert checkpoint["lr_schedulers"][0]["last_epoch"] == 6
    assert checkpoint["hyper_parameters"]["task"] == "induction_heads"  # linked from the data module
    assert checkpoint["hyper_parameters"]["vocab_size"] == 6


def test_step_path_predicts_exactly_like_forward(trained_run):
    _, _, resumed = trained_run
    module, train_len = load_induction_checkpoint(resumed / "checkpoints" / "last.ckpt", torch.device("cpu"))
    assert train_len == 12
    spec = InductionHeadsSpec(seq_len=40, vocab_size=6)
    inputs, _ = induction_heads_batch(spec, 32, torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = module(inputs)[:, -1]
    forward = predict_final_token(module, inputs, "forward")
    step = predict_final_token(module, inputs, "step")
    assert torch.equal(forward, logits.argmax(-1))
    assert torch.equal(forward, step)


def test_eval_induction_writes_table_and_plot(trained_run, capsys):
    root, _, resumed = trained_run
    out = root / "eval"
    ckpt = str(resumed / "checkpoints" / "last.ckpt")
    args = ["eval-induction", "--ckpt", ckpt, "--min-log2-len", "3", "--max-log2-len", "5", "--num-samples", "24",
            "--token-budget", "16", "--out-dir", str(out), "--no-progress"]
    assert main(args) == 0
    with (out / "induction_heads_length.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["length"]) for r in rows] == [8, 16, 32]
    assert [r["path"] for r in rows] == ["forward", "forward", "step"]  # 32 > token budget of 16
    for row in rows:
        assert int(row["correct"]) == round(float(row["accuracy"]) * 24)
    assert "| 32 | 5 |" in (out / "induction_heads_length.md").read_text()
    assert (out / "induction_heads_length.png").read_bytes()[:4] == b"\x89PNG"
    assert main(args) == 2  # refuses to overwrite earlier results
    assert "induction_heads_length.csv already exists" in capsys.readouterr().err


def test_eval_induction_compares_checkpoints_on_the_same_sequences(trained_run, capsys):
    root, _, resumed = trained_run
    ckpt = str(resumed / "checkpoints" / "last.ckpt")
    out = root / "compare"
    base = ["eval-induction", "--min-log2-len", "3", "--max-log2-len", "4", "--num-samples", "16",
            "--out-dir", str(out), "--no-progress"]
    assert main(base + ["--ckpt", ckpt, ckpt, "--labels", "first", "second"]) == 0
    with (out / "induction_heads_length.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], int(r["length"])) for r in rows] == [("first", 8), ("first", 16), ("second", 8),
                                                              ("second", 16)]
    assert [r["correct"] for r in rows[:2]] == [r["correct"] for r in rows[2:]]  # same model, same sequences
    table = (out / "induction_heads_length.md").read_text()
    assert "| length | log2 | first | second |" in table
    assert main(base + ["--ckpt", ckpt, ckpt, "--overwrite"]) == 0  # default labels made unique
    assert "Mamba (S6) [1] | Mamba (S6) [2]" in (out / "induction_heads_length.md").read_text()
    assert main(base + ["--ckpt", ckpt, ckpt, "--labels", "only-one", "--overwrite"]) == 2
    assert "--labels needs one name per --ckpt (2), got 1" in capsys.readouterr().err


def test_eval_induction_rejects_bad_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EvaluationError, match="garbage.ckpt"):
        load_induction_checkpoint(garbage, torch.device("cpu"))
    with pytest.raises(EvaluationError, match="does not exist"):
        load_induction_checkpoint(tmp_path / "missing.ckpt", torch.device("cpu"))
    copying = tmp_path / "copying.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"task": "selective_copying"}}, copying)
    with pytest.raises(EvaluationError, match="not 'induction_heads'"):
        load_induction_checkpoint(copying, torch.device("cpu"))


def test_eval_samples_do_not_depend_on_batching(trained_run):
    from apps.synthetic.evaluate import evaluate_induction

    _, _, resumed = trained_run
    module, _ = load_induction_checkpoint(resumed / "checkpoints" / "last.ckpt", torch.device("cpu"))
    one_by_one = evaluate_induction(module, [16], num_samples=20, token_budget=16, mode="forward", progress=False)
    all_at_once = evaluate_induction(module, [16], num_samples=20, token_budget=2**10, mode="forward", progress=False)
    by_step = evaluate_induction(module, [16], num_samples=20, mode="step", progress=False)
    assert one_by_one[0]["correct"] == all_at_once[0]["correct"] == by_step[0]["correct"]
