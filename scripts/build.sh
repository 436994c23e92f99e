#!/bin/sh
# Configures (once) and builds Sluice out of tree in ${BUILD_DIR:-build}; the binary is
# $BUILD_DIR/sluice. Extra arguments go to configure (and force a reconfigure).
set -e
cd "$(dirname "$0")/.."
top=$(pwd)
dir=${BUILD_DIR:-build}
if [ ! -x configure ]; then ./autogen.sh >/dev/null 2>&1 || { ./autogen.sh; exit 1; }; fi
if [ -f config.status ]; then
    echo "build: the source tree is configured in place; run 'make distclean' first" >&2
    exit 1
fi
mkdir -p "$dir"
cd "$dir"
if [ ! -f Makefile ] || [ -n "$*" ]; then "$top/configure" -q "$@" 2>&1 | grep -v "cannot remove 'core'" || true; fi
[ -f Makefile ] || { echo "build: configure failed" >&2; exit 1; }
make -s -j"$(nproc)" >/dev/null
[ -x sluice ] || { echo "build: the build failed" >&2; exit 1; }
