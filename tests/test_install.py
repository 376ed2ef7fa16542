"""The README's commands, run as a new user runs them: `pip install .` in a fresh clone, then
`python -m cuda_convnet ...`, `python -c` and `python -m pytest` from the clone's root, where
Python imports the clone's source tree (which has no compiled extensions) before the
installed package. cuda_convnet/_ext.py then loads the installed build, but only one built
from the same version and the same csrc/.

One emulator-only install (CCN_CUDA=OFF) into its own prefix (`pip install --target`) serves
the `slow` tests (the build takes a minute or more). The fast tests check the loader's rules
on a hand-made install: the package and the build in use copied into a folder with the
`.dist-info` that pip would write.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cuda_convnet as ccn
from cuda_convnet._ext import csrc_sha256

ROOT = Path(__file__).resolve().parents[1]


def _copy_checkout(dest: Path) -> Path:
    """The files a clone of this checkout has (tracked and not ignored), without builds."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to copy")
    return _copy_checkout(tmp_path_factory.mktemp("checkout") / "clone")


def _hand_made_install(site: Path, csrc: Path) -> Path:
    """`site` laid out as `pip install --target site` would: the package with the build in
    use (its CSRC_SHA256 set to that of `csrc`), and a .dist-info whose RECORD lists it."""
    info = ccn.build_info()
    if not info["built"]:
        pytest.skip("no build to copy")
    pkg = site / "cuda_convnet"
    shutil.copytree(Path(ccn.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__", "_emu*", "_C*",
                                                                                    "_build_info.py"))
    build = Path(info["location"])
    for f in [*build.glob("_emu*"), *build.glob("_C*")]:
        shutil.copy2(f, pkg / f.name)
    text = (build / "_build_info.py").read_text()
    text = re.sub(r'CSRC_SHA256 = ".*"', "", text) + f'CSRC_SHA256 = "{csrc_sha256(csrc)}"\n'
    (pkg / "_build_info.py").write_text(text)
    dist = site / f"cuda_convnet-{ccn.__version__}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: cuda_convnet\nVersion: {ccn.__version__}\n")
    files = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    (dist / "RECORD").write_text("".join(f"{f},,\n" for f in files) + f"{dist.name}/RECORD,,\n")
    return site


def test_checkout_without_build_loads_the_matching_install(checkout, tmp_path):
    site = _hand_made_install(tmp_path / "site", checkout / "csrc")
    code = ("import cuda_convnet as ccn, numpy as np\n"
            "x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)\n"
            "np.testing.assert_array_equal(ccn.backend('emu').relu(x), np.maximum(x, 0))\n"
            "import sys; print(ccn.__file__, sys.modules['cuda_convnet._emu'].__file__, ccn.build_info()['location'])")
    r = _run([sys.executable, "-c", code], checkout, site)
    assert r.returncode == 0, r.stderr
    package, emu, location = r.stdout.split()
    assert Path(package) == checkout / "cuda_convnet" / "__init__.py"
    assert Path(emu).parent == Path(location) == (site / "cuda_convnet").resolve()


def test_checkout_without_build_refuses_an_install_from_other_sources(checkout, tmp_path):
    site = _hand_made_install(tmp_path / "site", checkout / "csrc")
    edited = _copy_checkout(tmp_path / "edited")
    (edited / "csrc" / "new_kernel.cuh").write_text("// a file the install was not built from\n")
    r = _run([sys.executable, "-c", "import cuda_convnet as ccn; ccn.backend('emu')"], edited, site)
    assert r.returncode != 0
    assert "ExtensionMissing" in r.stderr and "is from other sources" in r.stderr, r.stderr


def test_in_place_build_takes_priority_over_an_install(checkout, tmp_path):
    site = _hand_made_install(tmp_path / "site", checkout / "csrc")
    local = _copy_checkout(tmp_path / "local")
    (local / "cuda_convnet" / "_build_info.py").write_text((site / "cuda_convnet" / "_build_info.py").read_text())
    r = _run([sys.executable, "-c", "import cuda_convnet as ccn; print(ccn.build_info()['location'])"], local, site)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == (local / "cuda_convnet").resolve()


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    """(clone, prefix): a copy of the checkout, and where `pip install .` put its package."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to copy")
    base = tmp_path_factory.mktemp("install")
    clone = _copy_checkout(base / "clone")
    prefix = base / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(prefix),
           "-Ccmake.define.CCN_CUDA=OFF", f"-Cbuild-dir={base / 'build'}", "."]
    if all(importlib.util.find_spec(m) for m in ("scikit_build_core", "pybind11")):
        cmd.insert(4, "--no-build-isolation")  # the build tools are here: no download
    r = subprocess.run(cmd, cwd=clone, capture_output=True, text=True, timeout=1800, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not list((clone / "cuda_convnet").glob("_emu*")), "the install built into the source tree"
    return clone, prefix


def _run(args, cwd, prefix, timeout=600):
    """A command in `cwd` with the install on PYTHONPATH, as a site-packages install is."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(prefix)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _readme_python_snippet(readme: Path) -> str:
    """The README's ```python block that calls ccn.backend("emu")."""
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.DOTALL)
    return next(b for b in blocks if 'ccn.backend("emu")' in b)


@pytest.mark.slow
def test_readme_snippet_runs_from_clone_root(install):
    clone, prefix = install
    code = _readme_python_snippet(clone / "README.md") + (
        "\nimport numpy as np\n"
        "np.testing.assert_allclose(y_emu, y_ref, rtol=1e-4, atol=1e-3)\n"
        "print('package', ccn.__file__)\n"
        "print('build', ccn.build_info()['location'], ccn.build_info()['matches_sources'])\n")
    r = _run([sys.executable, "-c", code], clone, prefix)
    assert r.returncode == 0, r.stderr
    # The clone's Python code ran, with the compiled parts of the install.
    assert f"package {clone / 'cuda_convnet' / '__init__.py'}" in r.stdout
    assert f"build {(prefix / 'cuda_convnet').resolve()} True" in r.stdout


@pytest.mark.slow
def test_readme_cli_commands_run_from_clone_root(install, tmp_path):
    clone, prefix = install
    r = _run([sys.executable, "-m", "cuda_convnet", "selfcheck"], clone, prefix)
    assert r.returncode == 0, r.stderr
    assert "selfcheck passed" in r.stdout and str((prefix / "cuda_convnet").resolve()) in r.stdout
    out = tmp_path / "demo_out"
    r = _run([sys.executable, "-m", "cuda_convnet", "demo", "--quick", "--device", "emu", "--out", str(out)],
             clone, prefix)
    assert r.returncode == 0, r.stderr
    assert (out / "checkpoint.npz").is_file()


@pytest.mark.slow
def test_python_m_pytest_from_clone_root_tests_the_installed_build(install):
    clone, prefix = install
    r = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_build.py"], clone, prefix)
    assert r.returncode == 0, r.stdout[-3000:]
    assert f"compiled extensions: {(prefix / 'cuda_convnet').resolve()} (built from this checkout's csrc/" in r.stdout


@pytest.mark.slow
def test_install_from_other_sources_is_refused(install, tmp_path):
    _, prefix = install
    edited = _copy_checkout(tmp_path / "edited")
    with open(edited / "csrc" / "common.h", "a") as f:
        f.write("// an edit after the install\n")
    r = _run([sys.executable, "-c", "import cuda_convnet as ccn; ccn.backend('emu')"], edited, prefix)
    assert r.returncode != 0
    assert "is from other sources" in r.stderr and "run `pip install .` again" in r.stderr
    r = _run([sys.executable, "-m", "cuda_convnet", "selfcheck"], edited, prefix)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("cuda-convnet selfcheck: error: cuda_convnet._emu is not available")


@pytest.mark.slow
def test_install_of_another_version_is_refused(install, tmp_path):
    clone, prefix = install
    other = _copy_checkout(tmp_path / "other")
    init = other / "cuda_convnet" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.'))
    r = _run([sys.executable, "-c", "import cuda_convnet as ccn; print(ccn.build_info())"], other, prefix)
    assert r.returncode == 0, r.stderr
    assert "'built': False" in r.stdout and "run `pip install .` again" in r.stdout
    version = re.search(r'__version__ = "(.*)"', (clone / "cuda_convnet" / "__init__.py").read_text())[1]
    assert f"is version {version}" in r.stdout
