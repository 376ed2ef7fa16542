"""The compiled extensions: what they export, and why the cuda backend is unavailable.

_emu and _C define launchers of the same names; each module must export only its
PyInit_<name> (hidden visibility + a linker version script), so neither can bind the
other's launcher. And when the cuda backend is unusable, the reason is reported
(cudaGetDeviceCount's error from _C, e.g. a runtime newer than the driver), not just False.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import cuda_convnet as ccn
from cuda_convnet import _ext


def _module_file(name):
    try:
        return Path(_ext.load(name).__file__)
    except ImportError:
        return None


@pytest.mark.parametrize("name", ["_emu", "_C"])
def test_extension_exports_only_its_init_function(name):
    if shutil.which("nm") is None:
        pytest.skip("nm not installed")
    path = _module_file(name)
    if path is None:
        pytest.skip(f"cuda_convnet.{name} not built")
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True).stdout
    symbols = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
    assert symbols == [f"PyInit_{name}"], symbols[:20]


def test_emulator_says_why_it_has_no_devices():
    emu = _ext.load("_emu")
    assert emu.device_count() == 0
    assert "emulator" in emu.device_count_error()


def test_reason_names_the_runtime_error(monkeypatch):
    """A _C whose cudaGetDeviceCount fails: the reason carries its error string."""
    class FakeC:
        @staticmethod
        def device_count():
            return 0

        @staticmethod
        def device_count_error():
            return ("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version "
                    "(CUDA runtime 13000 linked into _C, driver supports 12040)")

    monkeypatch.setattr(_ext, "build_info", lambda: {"built": True, "built_with_cuda": True})
    monkeypatch.setattr(_ext, "load", lambda name: FakeC)
    _ext.cuda_unavailable_reason.cache_clear()
    _ext.has_cuda.cache_clear()
    try:
        why = _ext.cuda_unavailable_reason()
        assert "cudaErrorInsufficientDriver" in why and "12040" in why
        assert _ext.has_cuda() is False
        ccn.backend.cache_clear()
        with pytest.raises(RuntimeError, match="cuda backend is unavailable: .*cudaErrorInsufficientDriver"):
            ccn.backend("cuda")
    finally:
        _ext.cuda_unavailable_reason.cache_clear()
        _ext.has_cuda.cache_clear()
        ccn.backend.cache_clear()


def test_reason_when_built_without_cuda(monkeypatch):
    monkeypatch.setattr(_ext, "build_info", lambda: {"built": True, "built_with_cuda": False})
    _ext.cuda_unavailable_reason.cache_clear()
    _ext.has_cuda.cache_clear()
    try:
        assert "built without CUDA" in ccn.cuda_unavailable_reason()
        assert ccn.has_cuda() is False
    finally:
        _ext.cuda_unavailable_reason.cache_clear()
        _ext.has_cuda.cache_clear()


# ------------------------------------------------------------------ one binding, two builds
def _api(module) -> dict[str, str]:
    """Every public name of an extension -> its pybind11 signature (the whole docstring of a
    function: the signature line, and every overload's), or the type of a constant."""
    api = {}
    for name in dir(module):
        if name.startswith("_"):
            continue
        obj = getattr(module, name)
        api[name] = (obj.__doc__ or "").strip() if type(obj).__name__ == "builtin_function_or_method" \
            else f"constant of type {type(obj).__name__}"
    return api


def test_emu_signatures_are_real():
    """The comparison below is only as good as the signatures it compares: every launcher's
    docstring starts with `name(arg: type, ...) -> result`, with typed arguments."""
    api = _api(_ext.load("_emu"))
    launchers = {"gemm", "conv2d", "conv2d_dgrad", "conv2d_wgrad", "lrn", "lrn_backward",
                 "max_pool", "max_pool_backward", "dropout", "softmax_cross_entropy", "topk_errors",
                 "sgd_update", "concat_channels", "split_channels", "train_views"}
    assert launchers <= set(api), sorted(launchers - set(api))
    for name in launchers:
        first = api[name].splitlines()[0]
        assert first.startswith(f"{name}(") and ": " in first and ") -> " in first, first


# The GEMM primitives the `linear` op is made of, and the build queries: the only bindings
# that are not named after an op of the kernel backend.
PRIMITIVES = {"gemm", "gemm_tc", "bias_grad", "device_count", "device_count_error"}
# Families with several kernels: the launcher takes `version`, and <family>_version says
# which kernel it runs.
VERSIONED = {"conv2d": ("conv2d",), "conv2d_dgrad": ("conv2d_dgrad",), "conv2d_wgrad": ("conv2d_wgrad",),
             "lrn": ("lrn", "lrn_backward"), "gemm": ("gemm",)}


def test_every_binding_is_named_after_its_op():
    """One name per op: each binding is an op of the kernel backend of the same name (the
    reference's name) or that op's tensor-core kernel (<op>_tc), a GEMM primitive, or the
    <family>_version query of a family with several kernels; every launcher of such a family
    takes `version` (default 0), and so may its <family>_plan query."""
    api = _api(_ext.load("_emu"))
    functions = {name for name, doc in api.items() if not doc.startswith("constant")}
    backend = ccn.backend("emu")
    queries = {f"{family}_version" for family in VERSIONED}

    def named_after_an_op(n):
        # <op>_tc and <op>_tc_plan: the tensor-core kernel of op <op> (precision != "fp32")
        # and its workspace plan, under the op's own name
        op = n.removesuffix("_plan").removesuffix("_tc") if "_tc" in n else n
        return callable(getattr(backend, op, None))

    stray = sorted(n for n in functions if n not in PRIMITIVES | queries and not named_after_an_op(n))
    assert stray == [], f"bindings not named after an op of the backend: {stray}"
    assert queries <= functions
    for family, launchers in VERSIONED.items():
        for name in launchers + (f"{family}_version",):
            assert re.search(r"\bversion: [^,]*Supports[^,]* = 0[,)]", api[name].splitlines()[0]), api[name]
    unversioned = functions - queries - {n for ls in VERSIONED.values() for n in ls} - {f"{f}_plan" for f in VERSIONED}
    assert not [n for n in unversioned if re.search(r"\bversion:", api[n].splitlines()[0])]


def test_emu_and_cuda_builds_expose_the_same_api():
    """_emu (g++ + emulator) and _C (nvcc) are bindings.cpp compiled twice: the same names,
    each function with the same signature (argument names, types, defaults, result) and
    the same constants (`emulated` differs in value only)."""
    if not ccn.build_info().get("built_with_cuda"):
        pytest.skip("cuda_convnet._C not built (no nvcc at build time); CI builds it")
    emu, cuda = _api(_ext.load("_emu")), _api(_ext.load("_C"))
    assert sorted(set(emu) ^ set(cuda)) == [], "names in one build only"
    differ = {name: (emu[name].splitlines()[0], cuda[name].splitlines()[0]) for name in emu if emu[name] != cuda[name]}
    assert differ == {}
    assert _ext.load("_emu").emulated is True and _ext.load("_C").emulated is False
