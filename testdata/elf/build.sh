#!/bin/sh
# Rebuilds the test objects from their C sources: run from any directory.
#   testdata/elf/build.sh
set -eu
cd "$(dirname "$0")"
for src in alu.c maps.c calls.c arena_globals.c core.c; do
	clang-19 -O2 -g -target bpf -mcpu=v4 -c "$src" -o "${src%.c}.o"
done
