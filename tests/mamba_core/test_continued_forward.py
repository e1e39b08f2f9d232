"""A sequence fed in pieces through one InferenceCache gives the logits of one forward over all of it.

This is what chunked prefill and state passing between training batches rely on: the references' initial_state,
Mamba's conv window reaching back into the cache, and the model's continuing of a cache that has read tokens.
"""

import pytest
import torch

from mamba_core.models import MambaConfig, MambaLMHeadModel
from mamba_core.ops import selective_scan_chunked, selective_scan_fn, selective_scan_ref


def _scan_inputs(batch=2, dim=3, seqlen=11, dstate=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, dim, seqlen, generator=g, dtype=torch.float64)
    delta = torch.randn(batch, dim, seqlen, generator=g, dtype=torch.float64)
    A = -torch.rand(dim, dstate, generator=g, dtype=torch.float64) - 0.5
    B = torch.randn(batch, dstate, seqlen, generator=g, dtype=torch.float64)
    C = torch.randn(batch, dstate, seqlen, generator=g, dtype=torch.float64)
    z = torch.randn(batch, dim, seqlen, generator=g, dtype=torch.float64)
    return u, delta, A, B, C, z


@pytest.mark.parametrize("scan", [selective_scan_ref, selective_scan_chunked])
def test_scan_from_a_state_equals_the_second_half_of_one_scan(scan):
    u, delta, A, B, C, z = _scan_inputs()
    kw = dict(delta_softplus=True, return_last_state=True)
    full, last = selective_scan_ref(u, delta, A, B, C, z=z, **kw)
    cut = 5
    first, mid = scan(u[..., :cut], delta[..., :cut], A, B[..., :cut], C[..., :cut], z=z[..., :cut], **kw)
    second, end = scan(u[..., cut:], delta[..., cut:], A, B[..., cut:], C[..., cut:], z=z[..., cut:], **kw,
                       initial_state=mid)
    torch.testing.assert_close(torch.cat([first, second], -1), full)
    torch.testing.assert_close(end, last)


def test_initial_state_gradient_matches_the_loop_reference_and_bad_shapes_are_refused():
    u, delta, A, B, C, z = _scan_inputs(seed=1)
    h0 = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    grads = []
    for scan in (selective_scan_ref, selective_scan_chunked):
        h0.grad = None
        scan(u, delta, A, B, C, delta_softplus=True, initial_state=h0).square().sum().backward()
        grads.append(h0.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0
    with pytest.raises(ValueError, match="initial_state must be"):
        selective_scan_fn(u, delta, A, B, C, initial_state=torch.zeros(2, 3, 5, dtype=torch.float64))


def test_model_fed_in_pieces_gives_the_logits_of_one_forward():
    torch.manual_seed(0)
    config = MambaConfig(d_model=16, n_layer=2, vocab_size=11, pad_vocab_size_multiple=1,
                         ssm_cfg={"d_state": 4})
    model = MambaLMHeadModel(config).eval()
    ids = torch.randint(0, 11, (2, 23))
    with torch.no_grad():
        full = model(ids)
        cache = model.allocate_inference_cache(2)
        pieces = [model(ids[:, a:b], inference_cache=cache) for a, b in ((0, 2), (2, 9), (9, 23))]
        assert cache.seqlen_offset == 23
        torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-5, atol=1e-5)
        # and decoding goes on from the pieces' state as from a whole prefill
        nxt = torch.randint(0, 11, (2,))
        whole = model.allocate_inference_cache(2)
        model(ids, inference_cache=whole)
        torch.testing.assert_close(model.step(nxt, cache), model.step(nxt, whole), rtol=1e-5, atol=1e-5)


def test_training_through_a_continued_cache_keeps_gradients_out_of_the_cache():
    torch.manual_seed(0)
    model = MambaLMHeadModel(MambaConfig(d_model=8, n_layer=1, vocab_size=7, pad_vocab_size_multiple=1,
                                         ssm_cfg={"d_state": 4}))
    cache = model.allocate_inference_cache(3)
    for _ in range(3):  # the second and third batches continue the first
        loss = model(torch.randint(0, 7, (3, 6)), inference_cache=cache).logsumexp(-1).mean()
        loss.backward()
    assert all(not t.requires_grad for t in cache.states[0])
    assert model.backbone.layers[0].mixer.A_log.grad is not None
    model.set_gradient_checkpointing(True)
    with pytest.raises(ValueError, match="gradient checkpointing cannot continue"):
        model(torch.randint(0, 7, (3, 6)), inference_cache=cache)


@pytest.mark.parametrize("b_form,c_form", [("var", "var"), ("fixed", "group"), ("group", "fixed")])
def test_triton_scan_from_a_state_matches_the_reference(b_form, c_form):
    """The Triton path with an initial state (zero-start kernel + the state's decaying share) against the loop
    reference: output, last state and every gradient of the output, the start state's included (interpreter on
    CPU)."""
    g = torch.Generator().manual_seed(2)
    batch, dim, seqlen, dstate, groups = 2, 4, 19, 4, 2
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device).requires_grad_()

    def bc(form):
        return {"fixed": lambda: rnd(dim, dstate), "var": lambda: rnd(batch, dstate, seqlen),
                "group": lambda: rnd(batch, groups, dstate, seqlen)}[form]()

    inputs = dict(u=rnd(batch, dim, seqlen), delta=rnd(batch, dim, seqlen, scale=0.5),
                  A=(-torch.rand(dim, dstate, generator=g) - 0.2).to(device).requires_grad_(),
                  B=bc(b_form), C=bc(c_form), D=rnd(dim), z=rnd(batch, dim, seqlen), delta_bias=rnd(dim, scale=0.3))
    h0 = rnd(batch, dim, dstate)
    results = []
    for backend in ("triton", "reference"):
        out, last = selective_scan_fn(**inputs, delta_softplus=True, return_last_state=True, backend=backend,
                                      initial_state=h0)
        leaves = [*inputs.values(), h0]
        grads = torch.autograd.grad(out.square().sum(), leaves)  # the kernels, like mamba_ssm's, give no
        # gradient through last_state
        results.append((out, last, grads))
    (out, last, grads), (out_r, last_r, grads_r) = results
    torch.testing.assert_close(out, out_r, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(last, last_r, rtol=1e-4, atol=1e-4)
    for name, a, b in zip([*inputs, "initial_state"], grads, grads_r, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3, msg=lambda m, n=name: f"grad {n}: {m}")
