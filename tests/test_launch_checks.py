"""Every kernel launch goes through the one launch check of csrc/common.h.

check_launch reports a launch error by kernel name and, with CCN_SYNC_LAUNCHES=1,
synchronises after the launch so that a fault inside the kernel is reported against it
(not against the next launch). That only holds if every CCN_LAUNCH in csrc/ is followed by
its CCN_CHECK_LAUNCH: counted here, launcher file by launcher file.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[1] / "csrc"
LAUNCHERS = sorted(p for p in CSRC.glob("*.cu") if "CCN_LAUNCH(" in p.read_text())


def test_there_are_launchers():
    assert len(LAUNCHERS) >= 10


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_every_launch_is_checked(path):
    src = re.sub(r"//[^\n]*", "", path.read_text())
    launches = [m.start() for m in re.finditer(r"\bCCN_LAUNCH\(", src)]
    checks = [m.start() for m in re.finditer(r"\bCCN_CHECK_LAUNCH\(", src)]
    assert len(launches) == len(checks), f"{path.name}: {len(launches)} launches, {len(checks)} checks"
    for launch, check in zip(launches, checks):  # each check follows its launch
        assert launch < check
    assert "<<<" not in src, f"{path.name}: a launch bypasses CCN_LAUNCH"


def test_sync_mode_is_in_the_check():
    common = (CSRC / "common.h").read_text()
    body = common[common.index("inline void check_launch"):]
    assert "sync_launches()" in body and "cudaDeviceSynchronize()" in body
    assert 'std::getenv("CCN_SYNC_LAUNCHES")' in common
