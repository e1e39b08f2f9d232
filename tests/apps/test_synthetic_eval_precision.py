"""eval-induction measures the trained model in full fp32 on every device, unless bf16 is asked for.

The 1-minute H100 run (benchmarks/results/h100_2026-11-25) was scored under bf16 autocast, the old CUDA default:
dt, B, C and u rounded to 8 significant bits, while keeping the key over 2^20 noise tokens needs delta' ~ 1e-7 on
every one of them. These tests pin the default (fp32 on CUDA too) and that fp32 really is fp32 (no TF32).
"""

import torch

import apps.synthetic.evaluate as evaluate
from apps.synthetic.module import SyntheticLM


def _tiny_module() -> SyntheticLM:
    torch.manual_seed(0)
    return SyntheticLM(arch="mamba", task="induction_heads", vocab_size=6, d_model=8, n_layer=1, d_state=4).eval()


def _fake_rows(lengths, num_samples):
    return [{"length": n, "log2_length": float(n.bit_length() - 1), "num_samples": num_samples, "accuracy": 1.0,
             "correct": num_samples, "path": "forward", "seconds": 0.0} for n in lengths]


def test_cuda_evaluation_defaults_to_fp32_not_bf16_autocast(tmp_path, monkeypatch):
    seen = {}

    def fake_load(path, device):
        seen["device"] = device
        return _tiny_module(), 256

    def fake_evaluate(module, lengths, **kwargs):
        seen.update(kwargs)
        return _fake_rows(lengths, kwargs["num_samples"])

    monkeypatch.setattr(evaluate, "load_induction_checkpoint", fake_load)
    monkeypatch.setattr(evaluate, "evaluate_induction", fake_evaluate)
    args = ["--ckpt", "unused.ckpt", "--device", "cuda", "--min-log2-len", "3", "--max-log2-len", "4",
            "--out-dir", str(tmp_path), "--no-progress"]
    assert evaluate.main(args) == 0
    assert seen["device"].type == "cuda"
    assert seen["autocast_dtype"] is None  # was torch.bfloat16 on CUDA before
    assert "cuda, fp32 (TF32 off), scan triton" in (tmp_path / "induction_heads_length.md").read_text()

    assert evaluate.main(args + ["--precision", "bf16", "--overwrite"]) == 0
    assert seen["autocast_dtype"] is torch.bfloat16
    assert "bf16 autocast" in (tmp_path / "induction_heads_length.md").read_text()


def test_fp32_evaluation_turns_tf32_off_and_restores_it(monkeypatch):
    flags = []
    real_predict = evaluate.predict_final_token

    def recording_predict(module, inputs, mode):
        flags.append((torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
                      torch.backends.cudnn.allow_tf32, torch.is_autocast_enabled("cpu")))
        return real_predict(module, inputs, mode)

    monkeypatch.setattr(evaluate, "predict_final_token", recording_predict)
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high")  # what `mamba-synthetic fit` sets on CUDA
    torch.backends.cudnn.allow_tf32 = True
    try:
        evaluate.evaluate_induction(_tiny_module(), [8], num_samples=2, progress=False)
        assert flags == [("highest", False, False, False)]
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
        evaluate.evaluate_induction(_tiny_module(), [8], num_samples=2, autocast_dtype=torch.bfloat16,
                                    progress=False)
        assert flags[-1][3]  # bf16 only when asked for
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]
