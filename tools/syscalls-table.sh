#!/bin/sh
# tools/syscalls-table.sh KERNEL_TREE: owns crates/ktap-bpf/data/syscalls.txt, which it rebuilds from the syscall tables (*.tbl) of a Linux source tree.
#
# usage: sh tools/syscalls-table.sh KERNEL_TREE > crates/ktap-bpf/data/syscalls.txt
#
# Column sources (number, abi, name, entry point[, compat entry point]):
#   x86_64     arch/x86/entry/syscalls/syscall_64.tbl      abis common 64 (not x32)
#   aarch64    scripts/syscall.tbl, or the table arch/arm64/kernel/Makefile.syscalls names
#                                                          (`syscalltbl`), abis common 64 + its
#                                                          syscall_abis_64 extras
#   arm        arch/arm/tools/syscall.tbl                  abis common eabi (not oabi)
#   mips       arch/mips/kernel/syscalls/syscall_o32.tbl   abi o32 (+ common), numbers + 4000
#   mips64     arch/mips/kernel/syscalls/syscall_n64.tbl   abi n64 (+ common), numbers + 5000
#   powerpc    arch/powerpc/kernel/syscalls/syscall.tbl    abis common 32 nospu
#   powerpc64  arch/powerpc/kernel/syscalls/syscall.tbl    abis common 64 nospu
# The MIPS tables are read with `common` too because the kernel's MIPS build passes no
# abi filter at all and syscall_n64.tbl has a row spelt `common` (set_mempolicy_home_node).
# Only the native entry point (4th column) counts; it must start with `sys_` (which is
# stripped) and sys_ni_syscall is skipped. A missing table leaves its column all `-`.
set -eu

me=tools/syscalls-table.sh

if [ "$#" -ne 1 ]; then
	echo "usage: sh $me KERNEL_TREE > crates/ktap-bpf/data/syscalls.txt" >&2
	exit 2
fi
tree=$1
if [ ! -d "$tree" ]; then
	echo "$me: $tree: not a directory" >&2
	exit 1
fi

# Kernel version from the top-level Makefile, as `make kernelversion` spells it;
# without one, the basename of the tree's path.
version=
if [ -f "$tree/Makefile" ]; then
	version=$(awk '
		function val(   s) { s = $0; sub(/^[^=]*=[ \t]*/, "", s); sub(/[ \t]*$/, "", s); return s }
		$1 == "VERSION" && $2 == "=" && v == "" { v = val() }
		$1 == "PATCHLEVEL" && $2 == "=" && p == "" { p = val() }
		$1 == "SUBLEVEL" && $2 == "=" && s == "" { s = val() }
		$1 == "EXTRAVERSION" && !seen_e { e = val(); seen_e = 1 }
		$1 == "NAME" { exit }
		END {
			if (v == "") exit
			out = v
			if (p != "") { out = out "." p; if (s != "") out = out "." s }
			print out e
		}' "$tree/Makefile")
fi
if [ -z "$version" ]; then
	version=$(basename "$(cd "$tree" && pwd)")
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# tbl LABEL FILE OFFSET ABI...: print "LABEL NAME NUMBER" for each kept row of FILE.
tbl() {
	label=$1 file=$2 offset=$3
	shift 3
	if [ ! -f "$tree/$file" ]; then
		echo "$me: warning: $tree/$file is missing; the $label column is left empty" >&2
		return 0
	fi
	awk -v label="$label" -v offset="$offset" -v abis="$*" -v file="$tree/$file" '
		BEGIN { n = split(abis, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
		/^[ \t]*#/ || NF == 0 { next }
		$1 !~ /^[0-9]+$/ {
			printf "%s: %s:%d: not a syscall number: %s\n", "'"$me"'", file, FNR, $1 > "/dev/stderr"
			bad = 1
			next
		}
		!($2 in want) || NF < 4 { next }
		$4 !~ /^sys_/ || $4 == "sys_ni_syscall" { next }
		{ print label, substr($4, 5), $1 + offset }
		END { exit bad }
	' "$tree/$file"
}

abis64=
arm64tbl=scripts/syscall.tbl
mk=arch/arm64/kernel/Makefile.syscalls
if [ -f "$tree/$mk" ]; then
	abis64=$(awk '$1 == "syscall_abis_64" && ($2 == "+=" || $2 == ":=" || $2 == "=") {
		for (i = 3; i <= NF; i++) printf " %s", $i }' "$tree/$mk")
	# Newer kernels give arm64 a table of its own (`syscalltbl = arch/arm64/tools/syscall_%.tbl`).
	own=$(awk '$1 == "syscalltbl" && $2 == "=" { sub(/%/, "64", $3); print $3 }' "$tree/$mk")
	if [ -n "$own" ] && [ -f "$tree/$own" ]; then
		arm64tbl=$own
	fi
elif [ -f "$tree/scripts/syscall.tbl" ]; then
	echo "$me: warning: $tree/$mk is missing; aarch64 uses abis common and 64 only" >&2
fi

{
	tbl x86_64 arch/x86/entry/syscalls/syscall_64.tbl 0 common 64
	tbl aarch64 "$arm64tbl" 0 common 64 $abis64
	tbl arm arch/arm/tools/syscall.tbl 0 common eabi
	tbl mips arch/mips/kernel/syscalls/syscall_o32.tbl 4000 o32 common
	tbl mips64 arch/mips/kernel/syscalls/syscall_n64.tbl 5000 n64 common
	tbl powerpc arch/powerpc/kernel/syscalls/syscall.tbl 0 common 32 nospu
	tbl powerpc64 arch/powerpc/kernel/syscalls/syscall.tbl 0 common 64 nospu
} > "$tmp"

cat <<EOF
# System call numbers by the kernel's entry point, per architecture: written by $me from Linux $version.
# A row is NAME then one column per architecture: x86_64 aarch64 arm mips mips64 powerpc powerpc64.
# NAME is the entry point without \`sys_\`, as the kernel's syscall tracepoints name it (syscalls:sys_enter_NAME);
# a column is the full number (MIPS o32 from 4000, n64 from 5000), several joined by \`,\`, or \`-\` when absent.
EOF

awk '
	BEGIN {
		ncol = split("x86_64 aarch64 arm mips mips64 powerpc powerpc64", col, " ")
		for (i = 1; i <= ncol; i++) idx[col[i]] = i
	}
	{
		key = $2 SUBSEP idx[$1]
		names[$2] = 1
		# Keep each cell a list of distinct numbers in increasing order.
		if (!(key in cell)) { cell[key] = $3; next }
		m = split(cell[key], v, ",")
		out = ""; done = 0
		for (j = 1; j <= m; j++) {
			if (!done && $3 + 0 == v[j] + 0) done = 1
			if (!done && $3 + 0 < v[j] + 0) { out = out (out == "" ? "" : ",") $3; done = 1 }
			out = out (out == "" ? "" : ",") v[j]
		}
		if (!done) out = out "," $3
		cell[key] = out
	}
	END {
		for (name in names) {
			line = name
			for (i = 1; i <= ncol; i++) {
				key = name SUBSEP i
				line = line " " ((key in cell) ? cell[key] : "-")
			}
			print line
		}
	}
' "$tmp" | LC_ALL=C sort
