#!/bin/sh
# qemu-user checks of every dist/ARCH/ktap: each runs under its qemu-ARCH-static, writes a kernel
# description, compiles every sample for every target into objects byte-identical to the host
# build's, reports its kernel, dispatches by symlink name, refuses bad objects clearly, runs
# objects compiled on the host, runs the VM conformance cases, and verifies every object.
#
# usage: qemu-user.sh HOST_KTAP DIST_DIR ARCH...
# Prints one line per failure and ends with "N passed, N failed"; exits 1 on any failure.

set -u
host=$1
dist=$2
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ktap-qemu-user.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
passed=0
failed=0

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# `field ARCH KEY`: a value from targets/ARCH.conf.
field() { sed -n "s/^$2 *= *//p" "$root/targets/$1.conf"; }

# `on ARCH ktap ARGS...`: that architecture's binary under its qemu ("host" is the native build).
on() {
	a=$1
	shift
	if [ "$a" = host ]; then
		"$host" "$@"
	else
		"$(field "$a" qemu_user)" "$dist/$a/ktap" "$@"
	fi
}

# qemu-user sees this machine's tracefs, not a board's: every binary reads the compiler's
# fixture tracepoints from a tracefs-shaped tree instead.
tree=$work/tracefs
for f in "$root"/crates/ktap-lang/test_data/kernel/*/*.format; do
	cat=$(basename "$(dirname "$f")")
	name=$(basename "$f" .format)
	mkdir -p "$tree/events/$cat/$name"
	cp "$f" "$tree/events/$cat/$name/format"
done

# Uprobe and USDT samples name files of the machine they run on (its libc), which a kernel
# description does not carry: they compile only where they run.
samples=$(cd "$root" && grep -L -e 'probe:/' -e 'sdt:/' samples/*/*.kp)

for t in "$@"; do
	# Each target's own binary describes "its" kernel: the description carries its target.
	if on "$t" ktap-selftest --dump "$work/$t.desc" --tracefs "$tree" 2>"$work/err"; then
		ok
	else
		fail "$t: ktap-selftest --dump: $(cat "$work/err")"
		continue
	fi
	mkdir -p "$work/host/$t"
	for s in $samples; do
		out=$work/host/$t/$(echo "$s" | tr / _).kpo
		if (cd "$root" && "$host" ktapc --kernel "$work/$t.desc" -o "$out" "$s") 2>"$work/err"; then
			ok
		else
			fail "host: ktapc for $t: $s: $(cat "$work/err")"
		fi
	done
done

# Every architecture compiles for every target; the bytes must be the host's.
for r in "$@"; do
	for t in "$@"; do
		[ -f "$work/$t.desc" ] || continue
		mkdir -p "$work/$r/$t"
		for s in $samples; do
			obj=$(echo "$s" | tr / _).kpo
			if ! (cd "$root" && on "$r" ktapc --kernel "$work/$t.desc" -o "$work/$r/$t/$obj" "$s") 2>"$work/err"; then
				fail "$r: ktapc for $t: $s: $(cat "$work/err")"
			elif cmp -s "$work/$r/$t/$obj" "$work/host/$t/$obj"; then
				ok
			else
				fail "$r: ktapc for $t: $s: the object differs from the host's"
			fi
		done
	done
done

hello=samples_basic_hello.kp.kpo
(cd "$root" && "$host" samples/basic/hello.kp) >"$work/hello.expected" 2>/dev/null || fail "host: samples/basic/hello.kp does not run"

for a in "$@"; do
	# The report runs to the end; under qemu-user bpf(2) is ENOSYS, and says so.
	if on "$a" ktap-selftest >"$work/report" 2>&1 && grep -q '^bpf syscall  no   bpf(2) is not implemented (ENOSYS)' "$work/report"; then
		ok
	else
		fail "$a: ktap-selftest: $(cat "$work/report")"
	fi

	# Applets by the name they are invoked as, through the links --install makes.
	bin=$work/bin-$a
	mkdir -p "$bin"
	cp "$dist/$a/ktap" "$bin/ktap"
	if "$(field "$a" qemu_user)" "$bin/ktap" --install "$bin" >/dev/null 2>"$work/err" &&
		[ "$(readlink "$bin/ktapc")" = ktap ] &&
		"$(field "$a" qemu_user)" "$bin/ktapc" -h 2>&1 | grep -q '^Usage: ktapc'; then
		ok
	else
		fail "$a: ktap --install / dispatch by argv[0]: $(cat "$work/err")"
	fi

	# Bad objects: another target's, a truncated one, a description instead of an object.
	other=x86_64
	[ "$a" = x86_64 ] && other=mips
	if [ -f "$work/host/$other/$hello" ]; then
		on "$a" "$work/host/$other/$hello" >"$work/out" 2>&1
		if [ $? -eq 1 ] && grep -q "compiled ktap object for $other .*, but this is $a .*: compile it with \`ktapc --target $a\`" "$work/out"; then
			ok
		else
			fail "$a: an object for $other: $(cat "$work/out")"
		fi
	fi
	[ -f "$work/host/$a/$hello" ] || continue
	head -c 40 "$work/host/$a/$hello" >"$work/cut.kpo"
	on "$a" "$work/cut.kpo" >"$work/out" 2>&1
	if [ $? -eq 1 ] && grep -q "truncated compiled ktap object: 40 bytes of" "$work/out"; then ok; else fail "$a: a truncated object: $(cat "$work/out")"; fi
	on "$a" "$work/$a.desc" >"$work/out" 2>&1
	if [ $? -eq 1 ] && grep -q "is a kernel description" "$work/out"; then ok; else fail "$a: a description run as an object: $(cat "$work/out")"; fi

	# Objects compiled on the host run here. qemu-user has no bpf(2), so every build falls back
	# to the userspace VM (and says so): a userspace-only object prints what it prints on the
	# host, and a probe's object ends in one message (qemu-user has no perf events either).
	on "$a" "$work/host/$a/$hello" >"$work/out" 2>"$work/err"
	if [ $? -eq 0 ] && cmp -s "$work/out" "$work/hello.expected"; then ok; else fail "$a: hello object: $(cat "$work/out" "$work/err")"; fi
	on "$a" "$work/host/$a/samples_syscalls_opensnoop.kp.kpo" >"$work/out" 2>&1
	if [ $? -eq 1 ] && grep -q "^ktap: " "$work/out" && ! grep -qi panick "$work/out"; then ok; else fail "$a: a probe's object without bpf(2) or perf events: $(cat "$work/out")"; fi
done

# The VM conformance cases (test_data/bpf) through the ktap-vm applet on every architecture:
# r0 must be the case's result, and a case the VM must refuse must fail with a message. Cases
# with a `-- mem` section need a context the applet does not take; ktap-vm's own tests run them.
if on host --list | grep -q '^ktap-vm '; then
	mkdir -p "$work/bpf"
	for d in "$root"/test_data/bpf/*.data; do
		grep -q '^-- mem' "$d" && continue
		c=$work/bpf/$(basename "$d" .data)
		sed -n '/^-- asm/,/^-- /p' "$d" | sed '1d;/^-- /d' >"$c.s"
		r=$(sed -n '/^-- result/{n;p;}' "$d")
		if [ -n "$r" ]; then printf '%u\n' "$r" >"$c.want"; else : >"$c.want"; fi
	done
	for a in "$@"; do
		for c in "$work"/bpf/*.s; do
			want=$(cat "${c%.s}.want")
			got=$(on "$a" ktap-vm "$c" 2>"$work/err")
			rc=$?
			got=$(printf '%s\n' "$got" | tail -n 1)
			be=${c%.s}.big-endian
			if [ -n "$want" ] && [ "$(field "$a" endian)" = big ] && [ $rc -eq 0 ] && [ "$got" != "$want" ]; then
				# The golden results are little-endian machines'; the VM keeps the host's byte
				# order, so a case that stores and reloads parts of words differs on big-endian
				# ones, where it must give the same r0 on every one.
				[ -f "$be" ] || echo "$got" >"$be"
				if [ "$got" = "$(cat "$be")" ]; then ok; else fail "$a: ktap-vm $(basename "$c"): got $got, another big-endian machine $(cat "$be")"; fi
			elif [ -n "$want" ]; then
				if [ $rc -eq 0 ] && [ "$got" = "$want" ]; then ok; else fail "$a: ktap-vm $(basename "$c"): got '$got' (rc $rc), want $want: $(cat "$work/err")"; fi
			elif [ $rc -ne 0 ] && [ -s "$work/err" ] && ! grep -qi panick "$work/err"; then
				ok
			else
				fail "$a: ktap-vm $(basename "$c") must fail with a message: rc $rc: $(cat "$work/err")"
			fi
		done
	done
else
	fail "no ktap-vm applet to run the VM conformance cases"
fi

# Our verifier, once its applet exists, on every object every architecture compiled.
if on host --list | grep -q '^ktap-verify '; then
	for a in "$@"; do
		for o in "$work/host/$a"/*.kpo; do
			[ -f "$o" ] || continue
			if on "$a" ktap-verify "$o" >"$work/out" 2>&1; then ok; else fail "$a: ktap-verify $(basename "$o"): $(cat "$work/out")"; fi
		done
	done
fi

echo "qemu-user: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
