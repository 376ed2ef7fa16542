"""CMakePresets.json holds the build's settings (build type, C++ standard, CUDA architectures,
CCN_CUDA, CCN_SANITIZE and its flags) in one place: CMake refuses a configure without them,
each preset configures with its own, and the other ways in (dev/inplace_build.sh, pip's
scikit-build-core, the emulator self-tests' g++ compiles in tests/simt_build.py) take them
from there instead of repeating them."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import simt_build as sb

ROOT = Path(__file__).resolve().parents[1]
needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")


def _cmake(*args):
    cmd = ["cmake", *map(str, args)]
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"]
    pybind11_dir = subprocess.run([sys.executable, "-m", "pybind11", "--cmakedir"], capture_output=True,
                                  text=True, check=True).stdout.strip()
    cmd += [f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11_dir}"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def _cache(build: Path) -> dict:
    """NAME -> value of a CMakeCache.txt."""
    out = {}
    for line in (build / "CMakeCache.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z_][\w-]*):\w+=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


@needs_cmake
def test_a_configure_without_a_preset_is_refused_by_name(tmp_path):
    r = _cmake("-S", ROOT, "-B", tmp_path / "build")
    assert r.returncode != 0
    text = " ".join(r.stderr.split())  # CMake wraps its messages
    assert "CMAKE_BUILD_TYPE is not set" in text and "configure with a preset of CMakePresets.json" in text, text
    assert not (tmp_path / "build" / "_build_info.py").exists()


@needs_cmake
@pytest.mark.parametrize("name,sanitize", [("release", False), ("dev-asan", True)])
def test_each_preset_configures_with_its_settings(tmp_path, name, sanitize):
    build = tmp_path / "build"
    r = _cmake("--preset", name, "-B", build, "-DCCN_CUDA=OFF")  # -D overrides one setting
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    cache = _cache(build)
    settings = sb.preset(name)
    assert {"CMAKE_BUILD_TYPE", "CMAKE_CXX_STANDARD", "CMAKE_CUDA_ARCHITECTURES", "CCN_SANITIZE",
            "CCN_SANITIZE_FLAGS"} <= set(settings)
    for key, value in settings.items():
        assert cache[key] == ("OFF" if key == "CCN_CUDA" else value), key
    info = (build / "_build_info.py").read_text()
    assert f"SANITIZE = {sanitize}" in info and "BUILT_WITH_CUDA = False" in info
    assert f'CUDA_ARCHITECTURES = "{settings["CMAKE_CUDA_ARCHITECTURES"]}"' in info


def test_dev_asan_differs_from_release_only_where_it_says():
    release, asan = sb.preset("release"), sb.preset("dev-asan")
    assert {k for k in release if release[k] != asan[k]} == {"CCN_SANITIZE", "CCN_CUDA"}
    assert asan["CCN_SANITIZE"] == "ON" and release["CCN_SANITIZE"] == "OFF"


def test_the_self_tests_compile_with_the_presets_standard_and_sanitizer_flags():
    settings = sb.preset()
    plain, _ = sb.flags()
    checked, _ = sb.flags(sanitize=True)
    assert f"-std=c++{settings['CMAKE_CXX_STANDARD']}" in plain
    san = settings["CCN_SANITIZE_FLAGS"].split(";")
    assert any(f.startswith("-fsanitize=") for f in san)
    assert not set(san) & set(plain) and checked[-len(san):] == san


# Values that belong to CMakePresets.json: none may be spelled out again in the files that
# build (comments aside).
SETTINGS = [r"80;90", r"-fsanitize", r"c\+\+1[47]", r"CMAKE_BUILD_TYPE[= ]", r"CMAKE_CXX_STANDARD \d",
            r"build-type"]


@pytest.mark.parametrize("path", ["CMakeLists.txt", "pyproject.toml", "dev/inplace_build.sh", "tests/simt_build.py"])
def test_no_build_file_repeats_a_presets_setting(path):
    code = [re.sub(r"#.*", "", line) for line in (ROOT / path).read_text().splitlines()]
    repeated = [(i + 1, line.strip()) for i, line in enumerate(code) for s in SETTINGS if re.search(s, line)]
    if path == "CMakeLists.txt":  # the check that every setting was given names them
        repeated = [(i, line) for i, line in repeated if "foreach(setting" not in line]
    assert not repeated, repeated


def test_pip_and_the_dev_build_go_through_the_presets():
    assert 'cmake.args = ["--preset=release"]' in (ROOT / "pyproject.toml").read_text()
    script = (ROOT / "dev" / "inplace_build.sh").read_text()
    assert "--preset" in script and "preset=dev-asan" in script
