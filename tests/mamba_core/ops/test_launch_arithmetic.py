"""The host-side launch arithmetic that replaced ``triton.cdiv`` / ``triton.next_power_of_2`` in the scan's host code
(those are ConstexprFunctions, slow to call from Python): same answers over every size a launch can meet."""

import math

import triton

from mamba_core.ops.selective_scan_triton_common import cdiv, next_power_of_2


def test_cdiv_matches_ceiling_division():
    for a in range(0, 300):
        for b in (1, 2, 3, 7, 16, 32, 64, 257):
            assert cdiv(a, b) == math.ceil(a / b) == triton.cdiv(a, b), (a, b)
    assert cdiv(2**40 + 1, 2**20) == 2**20 + 1


def test_next_power_of_2_matches_triton():
    for n in range(1, 5000):
        assert next_power_of_2(n) == triton.next_power_of_2(n), n
    assert next_power_of_2(0) == 1
    assert next_power_of_2(2**33 + 1) == 2**34
