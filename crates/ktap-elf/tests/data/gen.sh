#!/bin/sh
# Rebuilds the SDT fixtures (sdt-TARGET.elf) from sdt.c: tiny static executables, one per
# ktap target, with <sys/sdt.h> notes (Debian's systemtap-sdt-dev) compiled by zig's clang
# (`make zig` installs it). The tests read the committed files; run this only to change them.
set -eu
cd "$(dirname "$0")"
ZIG=${ZIG:-$HOME/.cache/ktap/zig-0.17.1/ziglang/zig}
SDT_H=$(dirname "$(dpkg -L systemtap-sdt-dev | grep '/sys/sdt.h$')")/..
export ZIG_GLOBAL_CACHE_DIR="${TMPDIR:-/tmp}/ktap-zig-cache" ZIG_LOCAL_CACHE_DIR="${TMPDIR:-/tmp}/ktap-zig-cache"
for t in x86_64-linux-musl aarch64-linux-musl arm-linux-musleabihf mips-linux-musleabi \
	mipsel-linux-musleabi mips64el-linux-muslabi64 powerpc-linux-musleabi \
	powerpc64-linux-musl powerpc64le-linux-musl; do
	"$ZIG" cc -target "$t" -O1 -nostdlib -static -fno-pie -no-pie -Wl,-e,_start -Wl,--build-id=none \
		-isystem "$SDT_H" -o "sdt-${t%%-*}.elf" sdt.c
done
