#!/usr/bin/env bash
# Development build: compile the extensions with CMake into build/inplace and copy them
# into cuda_convnet/ (git-ignored), so `python -m pytest` run from this checkout imports
# this checkout, with no `pip install`. Several worktrees can each build their own.
# The settings (build type, C++ standard, CUDA architectures, sanitizer flags) are the
# presets' of CMakePresets.json: `dev`, or `dev-asan` with CCN_SANITIZE=ON; the variables
# below override one for this build only.
#   dev/inplace_build.sh               # emulator + CUDA (if nvcc is found)
#   CCN_CUDA=OFF dev/inplace_build.sh  # emulator only (faster)
#   CUDA_ARCHS=90 dev/inplace_build.sh # one architecture (a faster nvcc check)
#   CCN_SANITIZE=ON dev/inplace_build.sh   # preset dev-asan, into build/inplace-asan
#   BUILD=build/other dev/inplace_build.sh # another build folder
set -euo pipefail
cd "$(dirname "$0")/.."
preset=dev
[[ ${CCN_SANITIZE:-OFF} == ON ]] && preset=dev-asan
args=(--preset "$preset")
[[ -n ${BUILD:-} ]] && args+=(-B "$BUILD")
[[ -n ${CCN_CUDA:-} ]] && args+=(-DCCN_CUDA="$CCN_CUDA")
[[ -n ${CUDA_ARCHS:-} ]] && args+=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS")
command -v ninja >/dev/null && args+=(-G Ninja)
# Where this machine's Python and pybind11 are (pip's build passes its own).
args+=(-DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)")
cmake "${args[@]}" >/dev/null
build=${BUILD:-$(python3 -c 'import json, sys
presets = {p["name"]: p for p in json.load(open("CMakePresets.json"))["configurePresets"]}
print(presets[sys.argv[1]]["binaryDir"].replace("${sourceDir}/", ""))' "$preset")}
cmake --build "$build" -j "$(nproc)"
rm -f cuda_convnet/_emu*.so cuda_convnet/_C*.so
cp "$build"/_emu*.so cuda_convnet/
# Only a _C this configuration built (a CCN_CUDA=OFF rebuild leaves an old one behind).
if grep -q "BUILT_WITH_CUDA = True" "$build"/_build_info.py; then cp "$build"/_C*.so cuda_convnet/; fi
cp "$build"/_build_info.py cuda_convnet/
echo "built into cuda_convnet/: $(cd cuda_convnet && ls _emu*.so _C*.so 2>/dev/null | tr '\n' ' ')"
