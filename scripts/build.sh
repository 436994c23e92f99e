#!/bin/sh
# Configures (once) and builds Sluice in the source tree. Extra arguments go to configure.
set -e
cd "$(dirname "$0")/.."
if [ ! -x configure ]; then ./autogen.sh >/dev/null; fi
if [ ! -f Makefile ] || [ -n "$*" ]; then ./configure -q "$@"; fi
make -s -j"$(nproc)"
