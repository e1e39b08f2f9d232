"""Shared pytest setup.

On a machine without CUDA the Triton kernels run under the Triton interpreter, which must be switched on before
triton is first imported; that is why this happens here, at collection time, ahead of every test module.
Tests run on few threads: CI has 2 cores and the suite's tensors are tiny, so threading only adds overhead.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
