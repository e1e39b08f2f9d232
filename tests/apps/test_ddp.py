"""Multi-process DDP on CPU (gloo): ``mamba-dna pretrain fit`` / ``mamba-audio fit`` with ``--trainer.devices 2
--trainer.strategy ddp``.

The CLIs run as subprocesses, so Lightning's own subprocess launcher starts rank 1 from the command line exactly as
on a GPU machine. A test-only callback (``ddp_window_recorder.py``) records the samples each rank trained on.
DNA: the ranks trained on disjoint windows that together are exactly the epoch a single process would have seen;
DDP kept the ranks' weights identical; only rank 0 wrote logs/checkpoints; and the epoch-end checkpoint resumes on a
different device count (1 device, gradient accumulation 2 keeps the global batch) with the weights, step count and
LR schedule restored and fresh, non-repeated windows for the next epoch. Audio: the shipped tiny SC09 config runs
unchanged on 2 ranks, each clip trained on exactly once per epoch; the training sampler drops the odd clip left over
rather than repeating one. FSDP needs CUDA, so for it only the flags of docs/scaling.md are checked (parsed by both
CLIs, naming blocks the models contain) and the audio weight-decay groups under FSDP's 1-D parameter views. The
scaling benchmark's genome writer and report table are checked too (its GPU run is not CI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from apps import audio as audio_app
from apps import dna as dna_app
from audio.datasets import SC09DataModule
from audio.lightning_module import AudioLM
from benchmarks.ddp_scaling import table, write_random_genome
from genomics.fasta import FastaReader
from genomics.lm_module import DNALanguageModel
from genomics.windows import WindowIdSampler

ROOT = Path(__file__).resolve().parents[2]
TRAIN_WINDOWS, BATCH, LENGTH = 16, 2, 32
LAUNCH_ENV_VARS = ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "RANK", "GROUP_RANK",
                   "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_JOB_NAME")


def _write_genome(path: Path) -> None:
    rng = np.random.default_rng(0)
    with path.open("w") as out:
        for name in ("chrA", "chrB", "chrC"):
            seq = "".join(rng.choice(list("ACGT"), 3000))
            out.write(f">{name}\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n")


def _run_cli(module: str, args: list[str], timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "apps"), str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"  # two ranks share two cores
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # rank 0 and the rank it launched
        output, _ = proc.communicate()
        pytest.fail(f"{module} did not finish in {timeout} s (a rank waiting for the other?):\n{output[-4000:]}")
    assert proc.returncode == 0, f"{module} failed ({proc.returncode}):\n{output[-4000:]}"
    return output


def _epoch_ids(epoch: int, world: int) -> list[set[int]]:
    """The window ids each rank of ``world`` draws in ``epoch``, straight from the sampler."""
    ranks = []
    for rank in range(world):
        sampler = WindowIdSampler(TRAIN_WINDOWS, fresh_each_epoch=True, num_replicas=world, rank=rank)
        sampler.set_epoch(epoch)
        ranks.append(set(sampler))
    return ranks


def _recorder(out_dir: Path) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": "ddp_window_recorder.WindowRecorder",
                                                 "init_args": {"out_dir": str(out_dir)}})


def _record(folder: Path, epoch: int, world: int, rank: int) -> dict:
    return json.loads((folder / f"windows_epoch{epoch}_world{world}_rank{rank}.json").read_text())


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{key} differs")


@pytest.mark.slow
def test_ddp_two_cpu_ranks_shard_windows_and_resume_on_one_device(tmp_path):
    fasta, record_dir, run_dir = tmp_path / "genome.fa", tmp_path / "record", tmp_path / "runs"
    _write_genome(fasta)
    common = ["pretrain", "fit", f"--data.fasta={fasta}", f"--data.index_dir={tmp_path}",
              f"--data.length={LENGTH}", f"--data.batch_size={BATCH}", f"--data.train_windows={TRAIN_WINDOWS}",
              "--data.valid_windows=4", "--data.test_windows=2", "--model.d_model=16", "--model.n_layer=1",
              "--model.d_state=4", "--model.warmup_steps=2", "--trainer.accelerator=cpu",
              "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
              "--trainer.log_every_n_steps=1", "--trainer.num_sanity_val_steps=0",
              f"--trainer.default_root_dir={run_dir}", _recorder(record_dir)]

    # epoch 0 on two ranks
    _run_cli("apps.dna", [*common, "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.max_epochs=1"])
    ranks = [_record(record_dir, 0, 2, rank) for rank in (0, 1)]
    seen = [r["window_ids"] for r in ranks]
    assert [r["mismatched_batches"] for r in ranks] == [[], []], "batches differ from the recorded window ids"
    assert all(len(ids) == len(set(ids)) == TRAIN_WINDOWS // 2 for ids in seen), seen
    assert not set(seen[0]) & set(seen[1]), f"both ranks trained on windows {set(seen[0]) & set(seen[1])}"
    assert set(seen[0]) | set(seen[1]) == _epoch_ids(0, world=1)[0], "the ranks together missed part of the epoch"

    start = [_weights(record_dir / f"start_weights_world2_rank{rank}.pt") for rank in (0, 1)]
    end = [_weights(record_dir / f"end_weights_epoch0_world2_rank{rank}.pt") for rank in (0, 1)]
    _assert_same_weights(start[0], start[1])
    _assert_same_weights(end[0], end[1])  # gradients were averaged over the ranks
    assert any(not torch.equal(start[0][k], end[0][k]) for k in start[0]), "training changed no weight"

    versions = sorted(p.name for p in (run_dir / "lightning_logs").iterdir())
    assert versions == ["version_0"], f"ranks other than 0 wrote log folders: {versions}"
    checkpoint_path = run_dir / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    steps_epoch0 = TRAIN_WINDOWS // (2 * BATCH)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, steps_epoch0)

    # epoch 1 on one device, same global batch (accumulate 2 micro-batches), resumed from the 2-rank checkpoint
    _run_cli("apps.dna", [*common, "--trainer.devices=1", "--trainer.accumulate_grad_batches=2",
                          "--trainer.max_epochs=2", f"--ckpt_path={checkpoint_path}"])
    _assert_same_weights(_weights(record_dir / "start_weights_world1_rank0.pt"), checkpoint["state_dict"])
    resumed = _record(record_dir, 1, 1, 0)
    assert resumed["mismatched_batches"] == []
    ids = resumed["window_ids"]
    assert len(ids) == len(set(ids)) == TRAIN_WINDOWS
    assert not set(ids) & (set(seen[0]) | set(seen[1])), "epoch 1 repeated windows of epoch 0"
    assert set(ids) == set().union(*_epoch_ids(1, world=2)), "1 device saw other windows than 2 ranks would have"

    final = torch.load(run_dir / "lightning_logs" / "version_1" / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=False)
    assert (final["epoch"], final["global_step"]) == (1, 2 * steps_epoch0)  # same optimizer steps per epoch
    assert final["lr_schedulers"][0]["last_epoch"] == 2 * steps_epoch0  # the LR schedule carried on, not restarted


@pytest.mark.slow
def test_audio_config_runs_unchanged_on_two_cpu_ranks(tmp_path):
    record_dir = tmp_path / "record"
    output = _run_cli("apps.audio", [
        "fit", "--config", str(ROOT / "configs" / "audio" / "sc09_tiny.yaml"), "--trainer.devices=2",
        "--trainer.strategy=ddp", "--trainer.max_steps=-1", "--trainer.max_epochs=1", "--data.init_args.batch_size=8",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}", "--trainer.enable_progress_bar=false",
        _recorder(record_dir)])
    assert "global batch 16 clips per optimizer step = 2 device(s) x batch 8 x 1 accumulated" in output
    ranks = [_record(record_dir, 0, 2, rank) for rank in (0, 1)]
    seen = [set(r["window_ids"]) for r in ranks]
    assert [r["mismatched_batches"] for r in ranks] == [[], []]
    assert [len(r["window_ids"]) for r in ranks] == [100, 100] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(200))  # the 200 training clips of sc09_mini, each once
    end = [_weights(record_dir / f"end_weights_epoch0_world2_rank{rank}.pt") for rank in (0, 1)]
    _assert_same_weights(end[0], end[1])
    assert [p.name for p in (tmp_path / "runs" / "sc09_tiny").iterdir()] == ["version_0"]
    assert torch.load(tmp_path / "runs" / "sc09_tiny" / "version_0" / "checkpoints" / "last.ckpt",
                      map_location="cpu", weights_only=False)["global_step"] == 13  # ceil(100 / 8)


def test_audio_train_sampler_shards_without_repeats():
    data = SC09DataModule(root="unused", batch_size=2)
    data.datasets["train"] = [(torch.full((16,), i), torch.full((16,), i)) for i in range(7)]
    assert not isinstance(data.train_dataloader().sampler, torch.utils.data.DistributedSampler)  # no trainer
    orders = []
    for epoch in (0, 1):
        shards = []
        for rank in (0, 1):
            data.trainer = SimpleNamespace(world_size=2, global_rank=rank)
            loader = data.train_dataloader()
            loader.sampler.set_epoch(epoch)
            shards.append(list(loader.sampler))
            assert torch.cat([inputs[:, 0] for inputs, _ in loader]).tolist() == shards[-1]
        assert [len(s) for s in shards] == [3, 3] and len(set(shards[0]) | set(shards[1])) == 6  # 7th dropped
        orders.append(shards)
    assert orders[0] != orders[1]  # reshuffled every epoch


def test_audio_weight_decay_groups_survive_fsdp_flattening():
    module = AudioLM(d_model=8, n_layers=1, mamba_d_state=4, schedule_steps=10)
    names = {id(p): name for name, p in module.model.named_parameters()}
    decayed = {name for name, p in module.model.named_parameters() if p.ndim >= 2 and not name.endswith("A_log")}
    for param in module.model.parameters():  # what FSDP's use_orig_params views look like: 1-D shards
        param.data = param.data.reshape(-1)
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert {names[id(p)] for p in groups[0]["params"]} == decayed and decayed
    assert {names[id(p)] for p in groups[1]["params"]} == set(names.values()) - decayed


@pytest.mark.parametrize("program, config, block, model", [
    ("dna", "configs/dna/pretrain_mt_human_cpu.yaml", "mamba_core.modules.Block",
     lambda: DNALanguageModel(d_model=8, n_layer=2)),
    ("audio", "configs/audio/sc09_tiny.yaml", "audio.layers.MambaResidual",
     lambda: AudioLM(d_model=8, n_layers=1, mamba_d_state=4)),
])
def test_fsdp_flags_of_docs_parse_and_wrap_blocks(program, config, block, model, capsys):
    """docs/scaling.md's FSDP flags are accepted by the CLI (FSDP itself needs CUDA) and name blocks that exist."""
    flags = ["--trainer.strategy=lightning.pytorch.strategies.FSDPStrategy",
             f"--trainer.strategy.auto_wrap_policy=[{block}]", "--trainer.strategy.state_dict_type=full",
             "--print_config"]
    main, words = (dna_app.main, ["pretrain", "fit"]) if program == "dna" else (audio_app.main, ["fit"])
    with pytest.raises(SystemExit) as exit_info:
        main([*words, "--config", str(ROOT / config), *flags])
    assert exit_info.value.code in (0, None)
    strategy = yaml.safe_load(capsys.readouterr().out)["trainer"]["strategy"]
    assert strategy["class_path"] == "lightning.pytorch.strategies.FSDPStrategy"
    assert strategy["init_args"]["auto_wrap_policy"] == [block]
    assert strategy["init_args"]["state_dict_type"] == "full"
    module_name, class_name = block.rsplit(".", 1)
    block_class = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    assert sum(isinstance(m, block_class) for m in model().modules()) >= 1


def test_scaling_benchmark_genome_and_report(tmp_path):
    write_random_genome(tmp_path / "g.fa", records=2, record_length=800)
    reader = FastaReader(tmp_path / "g.fa", index_dir=tmp_path)
    assert reader.lengths() == {"chr1": 800, "chr2": 800}
    assert set(reader.fetch("chr2", 0, 800)) == set("ACGT")
    run = {"length": 65536, "device_name": "H100", "torch": "2.x", "strategy": "DDPStrategy",
           "accumulate_grad_batches": 2, "tokens_per_step": 2**20, "peak_gib": 10.0}
    report = table([{**run, "devices": 1, "tokens_per_s": 1000.0, "seconds_per_step": 1.0},
                    {**run, "devices": 2, "tokens_per_s": 1850.0, "seconds_per_step": 0.54}])
    assert "| 2 | DDPStrategy | 2 | 1048576 | 0.540 | 1,850 | 10.00 | 1.85x | 92% |" in report
    assert report.endswith("2-device speedup 1.85x (target >= 1.8x): PASS")
