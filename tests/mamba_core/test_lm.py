"""The Mamba LM: mamba_ssm-compatible layout, decode path == forward, generation, save/load, checkpointing."""

import json

import pytest
import torch

from mamba_core import MambaConfig, MambaLMHeadModel
from mamba_core.models import filter_logits, sample_next_token
from mamba_core.utils import parameter_groups


def tiny(**kw):
    torch.manual_seed(0)
    cfg = dict(d_model=16, n_layer=2, vocab_size=11, ssm_cfg={"d_state": 4})
    cfg.update(kw)
    return MambaLMHeadModel(MambaConfig(**cfg))


def test_vocab_padding_tying_and_mamba_ssm_key_names():
    model = tiny()
    assert model.config.padded_vocab_size == 16
    assert model.lm_head.weight is model.backbone.embedding.weight
    keys = set(model.state_dict())
    for k in ["backbone.embedding.weight", "backbone.norm_f.weight", "lm_head.weight",
              "backbone.layers.0.norm.weight", "backbone.layers.1.mixer.A_log", "backbone.layers.1.mixer.D",
              "backbone.layers.0.mixer.in_proj.weight", "backbone.layers.0.mixer.dt_proj.bias"]:
        assert k in keys
    foreign = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    foreign["lm_head.weight"] = foreign["backbone.embedding.weight"]
    tiny().load_state_dict(foreign, strict=True)


def test_out_proj_is_rescaled_by_depth():
    torch.manual_seed(0)
    shallow = MambaLMHeadModel(MambaConfig(d_model=64, n_layer=1, vocab_size=8))
    torch.manual_seed(0)
    deep = MambaLMHeadModel(MambaConfig(d_model=64, n_layer=16, vocab_size=8))
    s = shallow.backbone.layers[0].mixer.out_proj.weight.detach().std()
    d = deep.backbone.layers[0].mixer.out_proj.weight.detach().std()
    assert abs(float(s / d) - 4.0) < 0.3


@pytest.mark.parametrize("kw", [{}, {"d_intermediate": 24}, {"rms_norm": False, "residual_in_fp32": False}])
def test_forward_equals_step_for_the_whole_model(kw):
    model = tiny(**kw).eval()
    ids = torch.randint(0, 11, (2, 12))
    logits = model(ids)
    cache = model.allocate_inference_cache(2)
    steps = torch.stack([model.step(ids[:, t], cache) for t in range(12)], dim=1)
    torch.testing.assert_close(steps, logits, rtol=1e-5, atol=1e-5)
    assert cache.seqlen_offset == 12


def test_greedy_generation_equals_argmax_rollout_with_the_full_forward():
    model = tiny().eval()
    prompt = torch.randint(0, 11, (2, 5))
    out = model.generate(prompt, max_new_tokens=6, temperature=0)
    seq = prompt
    for _ in range(6):
        nxt = model(seq)[:, -1, :11].argmax(-1)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
    assert torch.equal(out, seq)


def test_sampling_never_emits_padding_ids_and_is_seeded():
    model = tiny()
    prompt = torch.zeros(4, 3, dtype=torch.long)
    a = model.generate(prompt, 20, generator=torch.Generator().manual_seed(5))
    b = model.generate(prompt, 20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.max() < 11


def test_filters_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.85)).tolist() == [[False, False, False, True]]
    assert sample_next_token(logits, temperature=0).item() == 0
    with pytest.raises(ValueError):
        filter_logits(logits, top_p=1.5)


def test_save_and_load_round_trip(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["d_model"] == 16
    loaded = MambaLMHeadModel.from_pretrained(tmp_path / "m")
    ids = torch.randint(0, 11, (1, 7))
    torch.testing.assert_close(loaded(ids), model(ids))
    assert loaded.lm_head.weight is loaded.backbone.embedding.weight


def test_loads_a_mamba_ssm_style_folder(tmp_path):
    model = tiny()
    cfg = model.config.to_dict()
    cfg.pop("bidirectional"), cfg.pop("gradient_checkpointing"), cfg.pop("initializer_range")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    loaded = MambaLMHeadModel.from_pretrained(tmp_path)
    ids = torch.randint(0, 11, (1, 4))
    torch.testing.assert_close(loaded(ids), model(ids))


def test_load_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        MambaLMHeadModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"d_model": 8, "n_layer": 1, "vocab_size": 4, "bogus": 1}')
    with pytest.raises(ValueError, match="bogus"):
        MambaLMHeadModel.from_pretrained(tmp_path)


def test_gradient_checkpointing_gives_the_same_gradients():
    model = tiny()
    ids = torch.randint(0, 11, (2, 9))
    model(ids).logsumexp(-1).mean().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_gradient_checkpointing(True)
    model(ids).logsumexp(-1).mean().backward()
    for a, p in zip(plain, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, a)


def test_bidirectional_model_runs_but_refuses_to_decode():
    model = tiny(bidirectional=True)
    assert model(torch.randint(0, 11, (1, 6))).shape == (1, 6, 16)
    with pytest.raises(ValueError, match="not causal"):
        model.allocate_inference_cache(1)


def test_parameter_groups_leave_A_log_D_norms_and_biases_undecayed():
    model = tiny()
    decay, no_decay = parameter_groups(model, 0.1)
    no_decay_ids = {id(p) for p in no_decay["params"]}
    mixer = model.backbone.layers[0].mixer
    for p in (mixer.A_log, mixer.D, mixer.dt_proj.bias, model.backbone.norm_f.weight, model.backbone.embedding.weight):
        assert id(p) in no_decay_ids
    assert id(mixer.in_proj.weight) in {id(p) for p in decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_bad_config_and_inputs():
    with pytest.raises(ValueError, match="d_model"):
        MambaConfig(d_model=0)
    with pytest.raises(ValueError, match="input_ids"):
        tiny()(torch.randn(2, 3))


def test_weight_decay_groups_survive_flattened_parameters():
    """FSDP turns every parameter into a 1-D shard; the groups decided at build time must not change."""
    model = tiny()
    before = [{id(p) for p in g["params"]} for g in parameter_groups(model, 0.1)]
    for p in model.parameters():
        p.data = p.data.reshape(-1)
    after = [{id(p) for p in g["params"]} for g in parameter_groups(model, 0.1)]
    assert after == before and len(before[0]) > 0


def test_warmup_cosine_schedule_known_values():
    from mamba_core.utils import warmup_cosine

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[9] == pytest.approx(0.55)                      # half way through the decay
    assert lrs[14] == pytest.approx(0.1) and lrs[15] == pytest.approx(0.1)
