#!/bin/sh
# Rebuilds the bad-input objects of cmd/bpfc/badinput_test.go.
set -eu
cd "$(dirname "$0")"
for src in unknown_kfunc.c unknown_map.c deep_calls.c ok_calls.c; do
	clang-19 -O2 -g -target bpf -mcpu=v4 -c "$src" -o "${src%.c}.o" || echo "$src: clang refused it" >&2
done
