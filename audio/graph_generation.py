"""Sampling with static buffers and an in-place recurrent state, replayed as CUDA graphs on the GPU.

Why: the eager loop of :func:`audio.generation.sample_tokens` launches a few hundred tiny kernels per sample from
Python (about 12 ms a step for the 6.26M U-Net on an H100, whatever the batch), so a 16,000-sample clip took
minutes. Here one whole step (``model.step``, temperature / top-p, the draw, the log-likelihood sum) is recorded
once into a :class:`torch.cuda.CUDAGraph` and replayed ``length`` times; nothing is copied between steps except
the sampled tokens, gathered every ``period`` steps.

How the U-Net fits a static graph:

* every tensor of its state is allocated once by ``init_state`` and updated in place (``audio/sashimi.py``,
  ``audio/layers.py``, ``Mamba.step``); what differs from one sample to the next is only *which levels step*
  (level i steps every prod(pool[:i]) samples). That schedule repeats with period ``prod(pool)`` (16 for the SC09
  models), so one graph is captured per phase ``t mod period`` and graph ``t mod period`` replays at step t;
* the tokens live in a ring buffer (batch, period): phase p reads column p - 1 and writes column p;
* the draw is ``argmax(probs / q)`` with ``q ~ Exp(1)`` from ``exponential_(generator=...)``. That is the very
  computation ``torch.multinomial(probs, 1)`` performs (its one-sample fast path), minus the validity checks that
  read values back to the host, which a graph cannot do. With the same generator state the tokens therefore equal
  the eager loop's; a user generator is registered with each graph so that every replay advances it.

:class:`StaticStepSampler` runs the same step body either eagerly (any device: this is what the CPU tests compare
with the eager loop) or captured (CUDA). Blocks whose state grows (attention's key/value cache) cannot be captured:
:func:`state_pointers` before and after a warm-up cycle tells, and :class:`GraphUnsupportedError` is raised.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from audio import mulaw
from audio.generation import filter_logits
from audio.sashimi import SaShiMi


class GraphUnsupportedError(RuntimeError):
    """The model's step cannot be captured in a static CUDA graph (e.g. its state grows or is replaced)."""


def _leaves(state, tensors: list, counters: list) -> None:
    """Collect the tensors and the (container, key, int) counters of a nested dict/list/tuple state."""
    if isinstance(state, torch.Tensor):
        tensors.append(state)
        return
    if state is None:
        return
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        raise TypeError(f"unexpected {type(state).__name__} in a model state")
    for key, value in items:
        if isinstance(value, bool) or not isinstance(value, int):
            _leaves(value, tensors, counters)
        elif isinstance(state, tuple):
            raise TypeError("an int counter inside a tuple cannot be reset in place")
        else:
            counters.append((state, key, value))


def state_pointers(state) -> list[tuple[int, tuple[int, ...]]]:
    """(data pointer, shape) of every tensor in a model state, in a fixed order: equal before and after stepping
    iff every step updates the state in place (the condition for capturing it in a CUDA graph)."""
    tensors: list[torch.Tensor] = []
    _leaves(state, tensors, [])
    return [(t.data_ptr(), tuple(t.shape)) for t in tensors]


class StaticStepSampler:
    """Samples ``batch_size`` clips with a state, token ring and log-likelihood buffer allocated once.

    ``cuda_graph=False`` runs the step body eagerly (any device); ``cuda_graph=True`` (CUDA only) warms the step up
    on a side stream with a scratch state, checks that it is in place, and captures one graph per phase.
    :meth:`run` can be called again for another batch of the same size (the buffers are reset in place).
    Sampling semantics are those of :func:`audio.generation.sample_tokens`: temperature and top-p shape the
    sampling distribution; the log-likelihood is under the unmodified one.
    """

    def __init__(self, model: SaShiMi, batch_size: int, temperature: float = 1.0, top_p: float = 1.0,
                 generator: torch.Generator | None = None, cuda_graph: bool = False, warmup_cycles: int = 2):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        filter_logits(torch.zeros(1, 2), temperature, top_p)  # validate temperature / top_p now
        self.model = model.eval()
        self.device = next(model.parameters()).device
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs the model on a CUDA device; it is on {self.device}")
        self.batch_size, self.temperature, self.top_p, self.generator = batch_size, temperature, top_p, generator
        self.period = model.backbone.total_pool
        with torch.no_grad():
            self.state = model.init_state(batch_size, device=self.device)
        self._tensors: list[torch.Tensor] = []
        self._counters: list = []
        _leaves(self.state, self._tensors, self._counters)
        self._initial = [t.clone() for t in self._tensors]
        self.ring = torch.full((batch_size, self.period), mulaw.ZERO_TOKEN, dtype=torch.long, device=self.device)
        self.total = torch.zeros(batch_size, dtype=torch.float64, device=self.device)
        self.graphs: list[torch.cuda.CUDAGraph] | None = None
        if cuda_graph:
            self._capture(warmup_cycles)

    def _body(self, phase: int) -> None:
        """One sample at phase ``t mod period``: reads ring[:, phase - 1], writes ring[:, phase], adds to total."""
        current = self.ring[:, (phase - 1) % self.period]
        logits = self.model.step(current, self.state).float()
        probs = filter_logits(logits, self.temperature, self.top_p).softmax(-1)
        noise = torch.empty_like(probs).exponential_(generator=self.generator)
        token = (probs / noise).argmax(-1)  # torch.multinomial(probs, 1)'s own method, without its host checks
        self.total.add_(logits.log_softmax(-1).gather(-1, token.unsqueeze(-1)).squeeze(-1).double())
        self.ring[:, phase].copy_(token)

    def reset(self) -> None:
        """Back to the start of a clip, in place: initial state tensors and counters, zero tokens, zero total."""
        for tensor, initial in zip(self._tensors, self._initial, strict=True):
            tensor.copy_(initial)
        for container, key, value in self._counters:
            container[key] = value
        self.ring.fill_(mulaw.ZERO_TOKEN)
        self.total.zero_()

    def _capture(self, warmup_cycles: int) -> None:
        device = self.device
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        # Warm-up (cuBLAS handles, Triton compilation) on a scratch sampler, so that neither this state nor the
        # caller's generator moves; it also shows whether the step keeps its state tensors in place.
        scratch = StaticStepSampler(self.model, self.batch_size, self.temperature, self.top_p,
                                    generator=torch.Generator(device=device).manual_seed(0))
        before = state_pointers(scratch.state)
        with torch.no_grad(), torch.cuda.stream(stream):
            for t in range(max(1, warmup_cycles) * self.period):
                scratch._body(t % self.period)
        torch.cuda.synchronize(device)
        if state_pointers(scratch.state) != before:
            raise GraphUnsupportedError("model.step replaces or grows its state tensors (e.g. an attention "
                                        "key/value cache), so it cannot be replayed from a CUDA graph")
        del scratch
        default = torch.cuda.default_generators[device.index if device.index is not None
                                                else torch.cuda.current_device()]
        pool = torch.cuda.graph_pool_handle()  # the graphs run one after another: they may share memory
        graphs = []
        with torch.no_grad(), torch.cuda.stream(stream):
            for phase in range(self.period):  # the Python counters advance through one full period
                graph = torch.cuda.CUDAGraph()
                if self.generator is not None and self.generator is not default:
                    graph.register_generator_state(self.generator)
                graph.capture_begin(pool=pool)
                try:
                    self._body(phase)
                finally:
                    graph.capture_end()
                graphs.append(graph)
        torch.cuda.current_stream(device).wait_stream(stream)
        torch.cuda.synchronize(device)
        self.graphs = graphs

    @torch.no_grad()
    def run(self, length: int, on_progress: Callable[[int], None] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``length`` tokens per clip -> (tokens (B, L) int64, log_likelihood (B,) fp64), on the device.

        ``on_progress(n)`` is told every ``period`` steps how many samples (batch x steps) were added.
        """
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.reset()
        tokens = torch.empty(self.batch_size, length, dtype=torch.long, device=self.device)
        for t in range(length):
            phase = t % self.period
            if self.graphs is not None:
                self.graphs[phase].replay()
            else:
                self._body(phase)
            if phase == self.period - 1 or t == length - 1:
                tokens[:, t - phase : t + 1].copy_(self.ring[:, : phase + 1])
                if on_progress is not None:
                    on_progress(self.batch_size * (phase + 1))
        return tokens, self.total.clone()
