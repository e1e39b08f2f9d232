"""Shared pytest setup.

On a machine without CUDA the Triton kernels run under the Triton interpreter, which must be switched on before
triton is first imported; that is why this happens here, at collection time, ahead of every test module.
Tests run on one thread: the suite's tensors are tiny, and OpenMP threads that spin while the other core is busy
made small ops up to 50x slower.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.set_num_threads(1)
