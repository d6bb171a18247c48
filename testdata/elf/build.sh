#!/bin/sh
# Rebuilds the test objects from their C sources: run from any directory.
# -fdebug-prefix-map keeps the checkout path out of the objects, so a rebuild
# anywhere gives the same bytes.
#   testdata/elf/build.sh
set -eu
cd "$(dirname "$0")"
for src in alu.c maps.c calls.c arena_globals.c core.c; do
	clang-19 -O2 -g -target bpf -mcpu=v4 -fdebug-prefix-map="$PWD"=. -c "$src" -o "${src%.c}.o"
done
