"""SyntheticLM(state_passing=True): a training batch continues the state the previous one ended in."""

import pytest
import torch
import torch.nn.functional as F

from apps.synthetic.data import InductionHeadsSpec, induction_heads_batch
from apps.synthetic.module import SyntheticLM


def test_second_batch_is_scored_as_the_continuation_of_the_first():
    torch.manual_seed(0)
    module = SyntheticLM(arch="mamba", task="induction_heads", vocab_size=6, d_model=16, n_layer=2, d_state=4,
                         state_passing=True)
    module.log = lambda *args, **kwargs: None
    with torch.no_grad():  # slow decay and large steps: the state carried from the first batch matters
        for layer in module.model.backbone.layers:
            layer.mixer.A_log.fill_(-4.0)
            layer.mixer.dt_proj.bias.fill_(1.0)
    spec = InductionHeadsSpec(seq_len=12, vocab_size=6)
    g = torch.Generator().manual_seed(3)
    first, second = induction_heads_batch(spec, 3, g), induction_heads_batch(spec, 3, g)
    with torch.no_grad():
        module._shared_step(first, "train")
        carried = module._shared_step(second, "train")
        joined = module.model(torch.cat([first[0], second[0]], 1))[:, -1, :6]
        fresh = module._shared_step(second, "val")  # validation starts from zeros
    torch.testing.assert_close(carried, F.cross_entropy(joined, second[1]), rtol=1e-5, atol=1e-6)
    assert (carried - fresh).abs() > 1e-3, (carried, fresh)  # the carried state changed the answer logits
    assert module._carry.seqlen_offset == 24


def test_state_passing_needs_a_recurrent_model():
    with pytest.raises(ValueError, match="state_passing needs arch 'mamba'"):
        SyntheticLM(arch="transformer", task="induction_heads", vocab_size=6, state_passing=True)
