"""Which cuda_convnet a benchmark imports: this checkout's or the installed one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def use_checkout():
    """Import cuda_convnet from this checkout when it was built in place
    (dev/inplace_build.sh, or gpu_check.sh) or when no other copy is installed;
    otherwise the installed one (CI: `pip install .`, extensions in site-packages)."""
    pkg = ROOT / "cuda_convnet"
    built_here = any(pkg.glob("_emu*.so")) or any(pkg.glob("_C*.so"))
    if built_here or importlib.util.find_spec("cuda_convnet") is None:
        sys.path.insert(0, str(ROOT))
