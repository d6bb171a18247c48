#!/bin/sh
# Rebuilds the arena test objects: run from anywhere; needs clang-19.
set -e
cd "$(dirname "$0")"
for c in p*.c; do
	clang-19 -O2 -g -target bpf -mcpu=v4 -c "$c" -o "${c%.c}.o"
done
