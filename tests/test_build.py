"""The package as built: extensions present, build info truthful, backends selectable,
GPU detection honest on machines without one."""
from __future__ import annotations

import os

import numpy as np
import pytest

import cuda_convnet as ccn


def test_emulator_extension_is_built():
    info = ccn.build_info()
    assert info["built"], "cuda_convnet was imported from a tree without its compiled extensions"
    emu = ccn.backend("emu").ext
    assert emu.emulated is True
    assert emu.device_count() == 0
    assert info["emulator_fibers"] in ("boost_context", "ucontext")


@pytest.mark.emu
def test_sanitizer_build_when_expected():
    """CI's sanitizer stage sets CCN_EXPECT_SANITIZE=1: make sure it really runs that build."""
    if os.environ.get("CCN_EXPECT_SANITIZE"):
        assert ccn.build_info()["sanitize"] is True
    else:
        assert ccn.build_info()["sanitize"] in (True, False)


def test_cuda_extension_matches_build_info():
    info = ccn.build_info()
    if not info["built_with_cuda"]:
        with pytest.raises(ImportError, match="not built with CUDA"):
            ccn._ext.load("_C")
        assert ccn.has_cuda() is False
        return
    c = ccn._ext.load("_C")  # cudart is static: imports with no driver
    assert c.emulated is False
    assert info["cuda_architectures"] and "native" not in info["cuda_architectures"]
    if c.device_count() == 0:
        assert ccn.has_cuda() is False


def test_backend_names():
    assert ccn.backend("cpu").name == "cpu"
    assert ccn.backend("emu").name == "emu"
    with pytest.raises(ValueError, match="unknown backend"):
        ccn.backend("tpu")
    if not ccn.has_cuda():
        with pytest.raises(RuntimeError, match="cuda backend is unavailable"):
            ccn.backend("cuda")


def test_ops_dispatch_on_array_type():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(ccn.ops.relu(x), ccn.backend("cpu").relu(x))
    with pytest.raises(TypeError, match="no NumPy or CuPy array"):
        ccn.ops.relu([1.0, 2.0])
    with pytest.raises(AttributeError, match="no op"):
        ccn.ops.not_an_op  # noqa: B018
