#!/usr/bin/env bash
# Configures and builds rdext and its tests in ./build (or $RDEXT_BUILD_DIR).
# This is the test build: fault injection points are compiled in (they do
# nothing unless RDEXT_FAULT is set); release builds leave them out.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${RDEXT_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE:-RelWithDebInfo} \
    -DRDEXT_FAULT_INJECTION=${RDEXT_FAULT_INJECTION:-ON} >/dev/null
ninja -C "$build_dir"
