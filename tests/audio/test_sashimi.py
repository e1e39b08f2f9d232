"""SaShiMi U-Net: forward == step for every block type, causality (and that the UpPool shift is what gives it)."""

from pathlib import Path

import pytest
import torch
import yaml

from audio.sashimi import SaShiMi, SaShiMiBackbone, UpPool

TINY = {"d_model": 8, "n_layers": 1, "pool": [2, 2], "mamba_d_state": 4, "s4d_d_state": 8, "attn_head_dim": 16}
VARIANTS = [("mamba", None, True), ("mamba", None, False), ("s4d", None, True), ("s4d", "mha", False),
            ("mamba", "mha", True)]


@pytest.mark.parametrize("block,center,unet", VARIANTS)
def test_forward_equals_step(block, center, unet):
    torch.manual_seed(0)
    model = SaShiMi(block=block, center_block=center, unet=unet, **TINY).eval()
    tokens = torch.randint(0, 256, (2, 20))  # not a multiple of the total pool (4): forward pads internally
    with torch.no_grad():
        parallel = model(tokens)
        state = model.init_state(2)
        recurrent = torch.stack([model.step(tokens[:, t], state) for t in range(tokens.shape[1])], dim=1)
    assert parallel.shape == (2, 20, 256)
    torch.testing.assert_close(recurrent, parallel, atol=2e-5, rtol=1e-5)


def _max_change_before(backbone, x, t):
    with torch.no_grad():
        base = backbone(x)
        poked = x.clone()
        poked[:, t] += 3.0 * torch.randn(x.shape[0], x.shape[2])
        out = backbone(poked)
    diff = (out - base).abs().amax(dim=(0, 2))
    return (diff[:t].max().item() if t else 0.0), diff[t:].max().item()


@pytest.mark.parametrize("block", ["mamba", "s4d"])
def test_backbone_causal(block):
    torch.manual_seed(1)
    backbone = SaShiMiBackbone(block=block, center_block="mha" if block == "s4d" else None,
                               **TINY).eval()
    x = torch.randn(2, 32, TINY["d_model"])
    for t in (0, 3, 4, 13, 31):
        before, after = _max_change_before(backbone, x, t)
        assert before < 1e-5, f"output before {t} changed by {before}"
        assert after > 1e-3


def test_without_uppool_shift_causality_breaks(monkeypatch):
    """The test above can fail: dropping the one-coarse-step shift leaks future samples."""

    def unshifted(self, x):
        batch, length, _ = x.shape
        return self.linear(x).reshape(batch, length * self.pool, self.out_dim)

    monkeypatch.setattr(UpPool, "forward", unshifted)
    torch.manual_seed(1)
    backbone = SaShiMiBackbone(block="mamba", **TINY).eval()
    before, _ = _max_change_before(backbone, torch.randn(1, 32, TINY["d_model"]), 13)
    assert before > 1e-4


def test_lm_with_input_shift_changing_sample_t_keeps_logits_before_t_plus_1():
    torch.manual_seed(2)
    model = SaShiMi(**TINY).eval()
    samples = torch.randint(0, 256, (1, 24))
    t = 9
    changed = samples.clone()
    changed[0, t] = (samples[0, t] + 100) % 256

    def logits(s):
        inputs = torch.cat([torch.full((1, 1), 128), s[:, :-1]], dim=1)
        with torch.no_grad():
            return model(inputs)

    diff = (logits(changed) - logits(samples)).abs().amax(dim=(0, 2))
    assert diff[: t + 1].max() < 1e-5 and diff[t + 1] > 1e-4


def test_rejects_unknown_block():
    with pytest.raises(ValueError, match="block"):
        SaShiMi(block="lstm", **TINY)


CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "audio"


@pytest.mark.parametrize("name,paper_millions",
                         [("sc09_mamba_6m", 6.1), ("sc09_mamba_24m", 24.3), ("sc09_s4d_6m", 6.1)])
def test_config_parameter_counts_near_paper(name, paper_millions):
    from audio.lightning_module import AudioLM

    model_args = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["model"]
    with torch.device("meta"):  # counting only: no memory, no init time
        module = AudioLM(**model_args)
    count = module.num_parameters / 1e6
    print(f"{name}: {count:.3f}M parameters (paper {paper_millions}M)")
    assert abs(count - paper_millions) / paper_millions < 0.04
