"""Shared fixtures: the kernel backends (emu always, cuda when a GPU is present), output
poisoning, and hypothesis settings suited to the emulator's speed."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import cuda_convnet as ccn
from cuda_convnet.backends import poison_outputs
from cuda_convnet.backends.device import BackendDevice

# The emulator is fast but not GPU-fast, and its speed varies with the machine's load:
# no per-example deadline. CCN_HYPOTHESIS_EXAMPLES scales the search (CI uses the default).
settings.register_profile(
    "ccn",
    deadline=None,
    max_examples=int(os.environ.get("CCN_HYPOTHESIS_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=os.environ.get("CI") is not None,  # CI: reproducible draws
)
settings.load_profile("ccn")


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, at most 4. Each worker holds its own PyTorch and
    emulator (the emulator already runs a kernel's blocks on every core), so more workers
    add memory, not speed."""
    return max(1, min(4, os.cpu_count() or 1))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes (builds or trains); CI runs it, the fast loop may skip it")


def pytest_runtest_setup(item):
    """A test marked `cuda` needs a real GPU: skipped without one (the marker's meaning)."""
    if item.get_closest_marker("cuda") is not None and not ccn.has_cuda():
        pytest.skip("no usable GPU (cuda_convnet.has_cuda() is False)")


def pytest_report_header(config):
    """Which cuda_convnet is under test and which build of it: `pytest` and `python -m pytest`
    can import different copies (the latter puts the current folder first on sys.path)."""
    info = ccn.build_info()
    lines = [f"cuda_convnet {ccn.__version__} from {Path(ccn.__file__).parent}"]
    if not info["built"]:
        lines.append(f"compiled extensions: none ({info.get('problem', 'not built')})")
    else:
        fresh = {True: "built from this checkout's csrc/", False: "STALE: built from other csrc/ sources",
                 None: "installed package"}[info.get("matches_sources")]
        where = info.get("location", Path(ccn.__file__).parent)
        lines.append(f"compiled extensions: {where} ({fresh}; cuda={info['built_with_cuda']}, "
                     f"sanitize={info['sanitize']}, fibers={info['emulator_fibers']})")
    return lines


@pytest.fixture(autouse=True, scope="session")
def _poison_kernel_outputs():
    """Every kernel output starts as NaN, so an element a kernel never writes shows."""
    with poison_outputs():
        yield


@pytest.fixture(
    params=[pytest.param("emu", marks=pytest.mark.emu), pytest.param("cuda", marks=pytest.mark.cuda)],
    scope="session",
)
def kernel_device(request):
    """A kernel backend and its host <-> backend conversions (put, get)."""
    if request.param == "cuda" and not ccn.has_cuda():
        pytest.skip("no usable GPU (cuda_convnet.has_cuda() is False)")
    return BackendDevice(request.param)


@pytest.fixture(scope="session")
def cpu():
    return ccn.backend("cpu")
