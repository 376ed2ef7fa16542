#!/usr/bin/env bash
# Development build: compile the extensions with CMake into build/inplace and copy them
# into cuda_convnet/ (git-ignored), so `python -m pytest` run from this checkout imports
# this checkout, with no `pip install`. Several worktrees can each build their own.
#   dev/inplace_build.sh               # emulator + CUDA (if nvcc is found)
#   CCN_CUDA=OFF dev/inplace_build.sh  # emulator only (faster)
#   CCN_SANITIZE=ON BUILD=build/inplace-asan dev/inplace_build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build/inplace}
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DSKBUILD_PROJECT_NAME=cuda_convnet -DSKBUILD_PROJECT_VERSION=0.1.0 \
  -DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" \
  -DCCN_CUDA="${CCN_CUDA:-AUTO}" -DCCN_SANITIZE="${CCN_SANITIZE:-OFF}" \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-80;90}" >/dev/null
cmake --build "$build" -j "$(nproc)"
rm -f cuda_convnet/_emu*.so cuda_convnet/_C*.so
cp "$build"/_emu*.so cuda_convnet/
# Only a _C this configuration built (a CCN_CUDA=OFF rebuild leaves an old one behind).
if grep -q "BUILT_WITH_CUDA = True" "$build"/_build_info.py; then cp "$build"/_C*.so cuda_convnet/; fi
cp "$build"/_build_info.py cuda_convnet/
echo "built into cuda_convnet/: $(cd cuda_convnet && ls _emu*.so _C*.so 2>/dev/null | tr '\n' ' ')"
