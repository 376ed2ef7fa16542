"""The compiled extensions: what they export, and why the cuda backend is unavailable.

_emu and _C define launchers of the same names; each module must export only its
PyInit_<name> (hidden visibility + a linker version script), so neither can bind the
other's launcher. And when the cuda backend is unusable, the reason is reported
(cudaGetDeviceCount's error from _C, e.g. a runtime newer than the driver), not just False.
"""
from __future__ import annotations

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
