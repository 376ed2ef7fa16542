"""No 32-bit overflow and no out-of-bounds access for any legal argument, and legal but
absurd arguments finish in milliseconds (the pooling and LRN cases, a window of 2^30 and
an LRN size of 2^62, live in tests/test_pool.py and tests/test_lrn.py).

Every extent an op accepts is at most checks.MAX_EXTENT (2^31 - 1025) on every backend,
so a kernel's int index plus one tile step never wraps; larger ones are refused with the
same message on cpu and emu before anything is allocated (the tests pass zero-size arrays
with one huge dimension). The launchers refuse the same extents themselves (the
bindings are called directly with tiny arrays and huge sizes), and where a kernel forms
sums of extents (pool window bounds, conv origins) it does so in 64 bits.
"""
from __future__ import annotations

import numpy as np
import pytest
from kernel_inputs import emu_ext, host_ptr

import cuda_convnet as ccn
from cuda_convnet import checks

BACKENDS = ("cpu", "emu")
MAX = checks.MAX_EXTENT
INT_MAX = 2**31 - 1



# Pooling and LRN: tests/test_pool.py, tests/test_lrn.py (one file per op family).

# ------------------------------------------------------------------------------ GEMM, softmax


def test_versioned_launchers_refuse_unknown_versions():
    a = np.ones(16, np.float32)
    gemm = dict(a=host_ptr(a), b=host_ptr(a), c=host_ptr(a), bias=0, M=4, N=4, K=1, trans_a=False, trans_b=False)
    assert [emu_ext().gemm_version(M=m, N=n) for m, n in ((127, 500), (128, 128))] == [1, 2]
    for version in (-1, 3):
        with pytest.raises(ValueError, match="version must be 0"):
            emu_ext().gemm(**gemm, version=version)
        with pytest.raises(ValueError, match="version must be 0"):
            emu_ext().lrn(x=host_ptr(a), y=host_ptr(a), rows=4, channels=4, groups=1, before=2, after=2, alpha=0.01,
                          neg_beta=-0.75, k=2.0, version=version)
        with pytest.raises(ValueError, match="version must be 0"):
            emu_ext().lrn_version(rows=4, channels=4, version=version)


# ------------------------------------------------------------------------------ refusals

def _zero(*shape):
    return np.zeros(shape, np.float32)


REFUSED = {
    "pool H": (lambda o: o.max_pool(_zero(0, MAX + 1, 1, 1), size=1, stride=1),
               rf"max_pool: x.shape\[1\] \(H\) = {MAX + 1} is larger than {MAX}"),
    "pool padded W": (lambda o: o.max_pool(_zero(0, 1, 2, 1), size=MAX, stride=1, padding=(0, 0, MAX - 1, 0)),
                      rf"max_pool: W \+ left \+ right = {MAX + 1} is larger than {MAX}"),
    "linear in": (lambda o: o.linear(_zero(0, MAX + 1), _zero(0, MAX + 1)),
                  rf"linear: x.shape\[1\] \(in\) = {MAX + 1} is larger than {MAX}"),
    "linear N": (lambda o: o.linear(_zero(checks.GEMM_MAX_ROWS + 1, 0), _zero(2, 0)),
                 rf"linear: N = {checks.GEMM_MAX_ROWS + 1} is larger than {checks.GEMM_MAX_ROWS}"),
    "conv R*S*C": (lambda o: o.conv2d(_zero(0, 2, 1, 2**30), _zero(0, 2, 1, 2**30)),
                   rf"conv2d: R\*S\*C/groups = {2**31} is larger than {checks.CONV_MAX_GEMM}"),
    "conv padded H": (lambda o: o.conv2d(_zero(0, 3, 3, 1), _zero(1, 1, 1, 1), padding=(MAX, 0, 0, 0)),
                      rf"conv2d: H \+ top \+ bottom = {MAX + 3} is larger than {MAX}"),
    "dgrad phases": (lambda o: o.conv2d_backward(_zero(1, 3, 3, 1), _zero(1, 1, 1, 1), _zero(1, 1, 1, 1),
                                                 stride=256),
                     r"conv2d_backward: groups \* stride\^2 = 65536 is larger than 65535"),
    "lrn C": (lambda o: o.lrn(_zero(0, 1, 1, MAX + 1)),
              rf"lrn: x.shape\[3\] \(C\) = {MAX + 1} is larger than {MAX}"),
    "softmax classes": (lambda o: o.softmax_cross_entropy(_zero(0, MAX + 1), np.zeros(0, np.int64)),
                        rf"softmax_cross_entropy: classes = {MAX + 1} is larger than {MAX}"),
    "concat channels": (lambda o: o.concat_channels([_zero(0, 2**30), _zero(0, 2**30)]),
                        rf"concat_channels: total channels = {2**31} is larger than {MAX}"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(REFUSED))
def test_extents_past_the_limit_are_refused_alike_before_allocation(backend, case):
    call, message = REFUSED[case]
    with pytest.raises(ValueError, match=message):
        call(ccn.backend(backend))
