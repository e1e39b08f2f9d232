"""Window sampling inside intervals, and the DDP-aware sampler that numbers windows.

Every sample is named by an integer window id; the window it denotes is a pure function of (seed, id), so
- training sees fresh random offsets every epoch (the sampler hands out new ids each epoch: ``epoch * n + i``),
- validation/test windows are drawn once from fixed ids and are identical every epoch and on every run,
- under DDP each rank takes a disjoint stride of ids, so ranks never see the same window,
- resuming from a checkpoint replays the same windows.
Windows are drawn uniformly over all start positions where a full window fits inside an interval (no chromosome-end
N padding). Intervals shorter than the window are skipped, or, with ``short="pad"``, used whole and padded with
[PAD] tokens that the loss and the pooling ignore.
"""

from __future__ import annotations

import math

import numpy as np
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from genomics.intervals import Interval


class WindowPicker:
    """Uniform draws of windows of ``length`` from a list of intervals."""

    def __init__(self, intervals: list[Interval], length: int, short: str = "skip"):
        if short not in ("skip", "pad"):
            raise ValueError(f"short must be 'skip' or 'pad', got {short!r}")
        if length < 1:
            raise ValueError(f"window length must be positive, got {length}")
        self.length = length
        self.intervals = [iv for iv in intervals if len(iv) >= length or (short == "pad" and len(iv) > 0)]
        starts = np.array([max(1, len(iv) - length + 1) for iv in self.intervals], dtype=np.int64)
        self._cumulative = np.cumsum(starts)

    @property
    def num_starts(self) -> int:
        return int(self._cumulative[-1]) if len(self.intervals) else 0

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def window(self, position: int) -> tuple[Interval, int, int]:
        """The window at ``position`` in [0, num_starts): (its interval, start, end); end - start <= length."""
        index = int(np.searchsorted(self._cumulative, position, side="right"))
        interval = self.intervals[index]
        before = int(self._cumulative[index - 1]) if index else 0
        start = interval.start + position - before
        return interval, start, min(start + self.length, interval.end)

    def draw(self, rng: np.random.Generator) -> tuple[Interval, int, int]:
        return self.window(int(rng.integers(self.num_starts)))


def dist_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class WindowIdSampler(DistributedSampler):
    """Yields window ids; a DistributedSampler subclass, so Lightning keeps it under DDP and calls ``set_epoch``.

    ``fresh_each_epoch=True`` (training): epoch e uses ids [e*T, (e+1)*T), i.e. new random windows every epoch, in
    an order shuffled by (seed, epoch), so that batches do not follow the cyclic ``id % n_classes`` label pattern.
    ``fresh_each_epoch=False`` (evaluation): ids [0, T) every epoch, in order. T = ceil(n / world) * world; each rank
    takes every world-th id of the (shuffled) list from its rank on, so ranks never share a window. Evaluation ids
    past ``n`` wrap around (a few repeats, as DistributedSampler does).
    """

    def __init__(self, num_windows: int, fresh_each_epoch: bool, num_replicas: int | None = None,
                 rank: int | None = None, seed: int = 0):
        found_rank, found_world = dist_rank_world()
        num_replicas = found_world if num_replicas is None else num_replicas
        rank = found_rank if rank is None else rank
        super().__init__(range(num_windows), num_replicas=num_replicas, rank=rank, shuffle=False, seed=seed)
        self.num_windows = num_windows
        self.fresh_each_epoch = fresh_each_epoch
        self.per_rank = math.ceil(num_windows / num_replicas)
        self.total = self.per_rank * num_replicas

    def __iter__(self):
        if self.fresh_each_epoch:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.total)
            base = self.epoch * self.total
            yield from (base + int(i) for i in order[self.rank :: self.num_replicas])
        else:
            yield from ((self.rank + k * self.num_replicas) % self.num_windows for k in range(self.per_rank))

    def __len__(self) -> int:
        return self.per_rank


def window_rng(seed: int, window_id: int) -> np.random.Generator:
    return np.random.default_rng([seed, window_id])
