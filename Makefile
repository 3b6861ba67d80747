# The project's entry points: `deps` sets up a fresh machine, then `build`, `test`, `run`, `clean`.
# Only deps reaches the network (rustup's dist server, Python's package index for zig, Debian's archive);
# it caches under ~/.cache/ktap.
# Cargo runs with its default target dir, or with CARGO_TARGET_DIR when the caller sets one.

CACHE := $(HOME)/.cache/ktap

# rustup's proxies live here, and a non-login shell (CI's) may not have them on PATH.
export PATH := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(PATH)

# rust-toolchain.toml is the one place the toolchain is named: its channel, components and targets
# (each array on one line) are read from there, never repeated here.
toolchain_field = $(shell sed -n 's/^$(1) *= *//p' rust-toolchain.toml | tr -d '"[],')
TOOLCHAIN := $(call toolchain_field,channel)
RUST_COMPONENTS := $(call toolchain_field,components)
RUST_TARGETS := $(call toolchain_field,targets)
ifeq ($(TOOLCHAIN),)
$(error rust-toolchain.toml names no channel)
endif

# Debian packages the build needs: Rust's host target links through `cc` against glibc's dev files;
# qemu-user runs every target's binary in the tests; binutils-multiarch's objcopy reads every
# target's ELF files.
APT_PACKAGES := gcc libc6-dev qemu-user-static binutils-multiarch
# ktap-elf's tests read real files of every target with binutils' readelf: Debian's cross libcs
# (ELF32 and ELF64, both byte orders), SDT-carrying libstdc++ and CPython, and probes they compile
# with gcc and <sys/sdt.h>; they check ktap-bpf's pt_regs tables against each target's uapi headers.
APT_PACKAGES += binutils libstdc++6 python3-minimal systemtap-sdt-dev \
	libc6-arm64-cross libc6-armhf-cross libc6-mips-cross libc6-mipsel-cross libc6-mips64el-cross \
	libc6-powerpc-cross libc6-ppc64-cross libc6-ppc64el-cross \
	linux-libc-dev-arm64-cross linux-libc-dev-armhf-cross linux-libc-dev-mips-cross \
	linux-libc-dev-powerpc-cross linux-libc-dev-ppc64-cross
# The USDT test builds a C++ program whose exceptions fire libstdc++'s `throw` marker.
APT_PACKAGES += g++
# ktap-board's test reads the initramfs it writes back with the system's cpio and gzip.
APT_PACKAGES += cpio gzip
# Named by a checksum of the package list (the list itself outgrows a file name), so changing
# the list checks again; deleting ~/.cache/ktap does too.
APT_STAMP := $(CACHE)/apt-$(shell printf '%s\n' $(sort $(APT_PACKAGES)) | cksum | cut -d' ' -f1).stamp
# make bench also runs bpftrace and counts instructions with bpftool; the tests need neither, so
# they have a stamp of their own (same rule, with the package list set for that target).
BENCH_APT_PACKAGES := bpftrace bpftool
BENCH_APT_STAMP := $(CACHE)/apt-$(shell printf '%s\n' $(sort $(BENCH_APT_PACKAGES)) | cksum | cut -d' ' -f1).stamp

TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
RELEASE_DIR := $(TARGET_DIR)/release

# Cross builds. targets/ARCH.conf describes each target as `key = value` lines; these read them.
DIST_ARCHES := $(sort $(basename $(notdir $(wildcard targets/*.conf))))
target_field = $(strip $(shell sed -n 's/^$(2) *= *//p' targets/$(1).conf))

# zig is every target's linker and C library (musl for each architecture, built once into its cache).
# The version is pinned because zig renames targets between releases.
ZIG_VERSION := 0.17.1
ZIG_DIR := $(CACHE)/zig-$(ZIG_VERSION)
ZIG := $(ZIG_DIR)/ziglang/zig
ZIG_CACHE := $(CACHE)/zig-cache
LINKERS := $(CACHE)/linkers-$(ZIG_VERSION)
# rustc's own flags for a static binary that zig links: without link-self-contained=no, rustc
# looks for its own crt1.o, which build-std targets do not ship. The rest is for size (x86_64,
# measured; see the README): panic=abort never unwinds, so no unwind tables (-210 KiB), and no
# file/line strings in panic messages for panics that cannot happen (-55 KiB).
CROSS_RUSTFLAGS := -C link-self-contained=no -C target-feature=+crt-static \
	-C force-unwind-tables=no -Zlocation-detail=none
# Every target builds std from rust-src, also where rustup ships it prebuilt: std's default
# features include the backtrace symbolizer (gimli, addr2line), which optimize_for_size
# replaces (-300 KiB). RUSTC_BOOTSTRAP lets the pinned stable toolchain take the -Z flags.
BUILD_STD := -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
# Sections a stripped binary still carries that nothing loads: MIPS procedure descriptors
# (.pdr, 160 KiB on mips) and the toolchains' version strings.
DROP_SECTIONS := .pdr .comment
SCRIPT ?= samples/syscalls/count_by_name.kp
WORKLOAD ?= getppid 1000

.PHONY: bench deps toolchain build test run clean bench-vm verifier-diff dist zig qemu-user \
	board-test board-shell board-deps board-host bench-board

deps: toolchain $(APT_STAMP) zig

# Asking rustup what is installed takes milliseconds; `rustup toolchain install` asks the network,
# so it runs only when the toolchain, a component or a target is missing. --no-self-update: where
# rustup's settings allow it, an install would also replace the machine's rustup itself.
toolchain:
	@installed=$$(rustup +$(TOOLCHAIN) component list --installed 2>/dev/null) && \
	(for c in $(RUST_COMPONENTS) $(addprefix rust-std-,$(RUST_TARGETS)); do \
		printf '%s\n' "$$installed" | grep -qE "^$$c(-|$$)" || exit 1; \
	done) || \
	rustup toolchain install $(TOOLCHAIN) --profile minimal --no-self-update \
		$(addprefix -c ,$(RUST_COMPONENTS)) $(addprefix -t ,$(RUST_TARGETS))

# apt-get update runs only when a package is missing, and retries: a mirror mid-sync fails it for a while.
$(BENCH_APT_STAMP): APT_PACKAGES := $(BENCH_APT_PACKAGES)
$(APT_STAMP) $(BENCH_APT_STAMP):
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Status}\n' $$p 2>/dev/null | grep -qx installed || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		for try in 1 2 3; do apt-get update -qq && break; sleep 5; done; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(@D) && touch $@

# The workload is built beside the binary because `run` and the samples trace it.
build: deps
	cargo build --release -p ktap-static -p ktap-workload

# Tests build in the dev profile: the release profile (fat LTO, one codegen unit, opt-level z) makes
# every test binary a long serial link on 2 cores, while the tests themselves run in moments.
# The benchmark harness (its own cargo project) is linted and its own tests run too, so it keeps
# building against the crates it measures and its process handling stays right. The suite ends with the board tests: every architecture's real kernel
# under qemu-system.
test: deps
	cargo fmt --all --check
	cargo fmt --manifest-path bench/harness/Cargo.toml --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --manifest-path bench/harness/Cargo.toml --target-dir $(TARGET_DIR) --all-targets -- -D warnings
	cargo test --workspace
	cargo test --manifest-path bench/harness/Cargo.toml --target-dir $(TARGET_DIR)
	cargo test -p ktap-verifier --test kernel_diff -- --ignored
	$(MAKE) --no-print-directory qemu-user
	$(MAKE) --no-print-directory board-test

# Every dist binary under qemu-user against the host's dev build (which `cargo test` leaves in
# the target dir): descriptions, objects byte-identical to the host's, dispatch, bad input, the
# VM conformance cases, the verifier.
qemu-user: dist
	cargo build --quiet -p ktap-static
	sh ktap-static/tests/qemu-user.sh $(TARGET_DIR)/debug/ktap dist $(DIST_ARCHES)

# ktap's verifier against the running kernel's, on 10,000 generated programs (as root; about 20
# seconds, most of them the kernel's): nothing ktap accepts may be rejected by the kernel, and every
# program ktap alone rejects must be rejected for a reason the test explains. It prints the figures.
verifier-diff: deps
	cargo test -p ktap-verifier --test kernel_diff -- --ignored --nocapture

run: deps build
	$(RELEASE_DIR)/ktap $(SCRIPT) -- $(RELEASE_DIR)/ktap-workload $(WORKLOAD)

clean:
	cargo clean
	rm -rf dist

$(ZIG):
	python3 -m pip install --disable-pip-version-check --quiet --target $(ZIG_DIR) ziglang==$(ZIG_VERSION)

zig: $(ZIG) $(foreach a,$(DIST_ARCHES),$(LINKERS)/$(a))

# A linker per target: zig's clang for the target's triple and CPU, with zig's cache under ours.
# rustc's prebuilt aarch64 target asks for an erratum workaround zig's linker does not know
# (lld applies it itself), so the wrapper drops that one argument.
$(LINKERS)/%: targets/%.conf $(ZIG) Makefile
	@mkdir -p $(@D)
	@printf '%s\n' '#!/bin/sh' '# Links for $*: zig cc for $(call target_field,$*,zig_target) (written by the Makefile from targets/$*.conf).' \
		'export ZIG_GLOBAL_CACHE_DIR="$(ZIG_CACHE)" ZIG_LOCAL_CACHE_DIR="$(ZIG_CACHE)"' \
		'for a; do shift; case $$a in -Wl,--fix-cortex-a53-843419) ;; *) set -- "$$@" "$$a" ;; esac; done' \
		'exec "$(ZIG)" cc -target $(call target_field,$*,zig_target) $(call target_field,$*,zig_cpu_flags) "$$@"' > $@.tmp
	@chmod +x $@.tmp && mv $@.tmp $@

# dist/ARCH/ktap for every target in targets/. cargo decides what to rebuild, so each binary is
# always handed to it; a warm build is only cargo's fingerprint checks.
dist: $(foreach a,$(DIST_ARCHES),dist/$(a)/ktap)

# `$(call cross,ARCH)`: the environment and cargo arguments that build for ARCH.
# `$(call cross,ARCH,KEY)` takes the target's rustc flags from KEY instead of rust_flags.
cross = CARGO_TARGET_$(call target_var,$(1))_LINKER=$(LINKERS)/$(1) \
	CARGO_TARGET_$(call target_var,$(1))_RUSTFLAGS="$(CROSS_RUSTFLAGS) $(call target_field,$(1),$(or $(2),rust_flags))" \
	RUSTC_BOOTSTRAP=1 cargo build --quiet --target $(call target_field,$(1),rust_triple) $(BUILD_STD)
target_var = $(shell echo $(call target_field,$(1),rust_triple) | tr a-z- A-Z_)

dist/%/ktap: FORCE | deps
	@test -f targets/$*.conf || { echo "make: no target description targets/$*.conf" >&2; exit 1; }
	$(eval T := $(call target_field,$*,rust_triple))
	$(call cross,$*) --release -p ktap-static
	@mkdir -p $(@D)
	objcopy $(addprefix --remove-section=,$(DROP_SECTIONS)) $(TARGET_DIR)/$(T)/release/ktap $@.tmp
	@mv $@.tmp $@

FORCE:

# Board tests: every board architecture's kernel under qemu-system with an initramfs of its
# dist binary, ktap-board as /init and the cases of board-tests/ (board-tests/README.md).
# Each ends with `board-test ARCH: N passed, M failed`; the target fails if any case did.
BOARD_ARCHES := x86_64 aarch64 armv7 mipsel mips64el powerpc64le mips powerpc64
BOARD_WORK := $(TARGET_DIR)/board
BOARD_DEPS_STAMP := $(CACHE)/board-deps.stamp

# ktap-board and the workload for a board, with symbols (the `board` profile): the uprobe cases
# probe the workload's functions by name.
# A target whose board binaries need other flags says so in board_rust_flags.
$(BOARD_WORK)/bin/%: FORCE | deps
	$(call cross,$*,$(if $(call target_field,$*,board_rust_flags),board_rust_flags)) \
		--profile board -p ktap-board -p ktap-workload
	@mkdir -p $@
	cp $(TARGET_DIR)/$(call target_field,$*,rust_triple)/board/ktap-board \
		$(TARGET_DIR)/$(call target_field,$*,rust_triple)/board/ktap-workload $@/

# qemu-system for every board, and every board's kernel (firmware/kernel.sh fetches Debian's
# or builds the big-endian ones, caching them under ~/.cache/ktap/kernels).
board-deps: deps
	@for a in $(BOARD_ARCHES); do sh firmware/kernel.sh $$a >/dev/null || exit 1; done

# One board's run; `make board-test-mips` builds what it needs first. ARGS passes options to
# ktap-board, e.g. ARGS="--only kprobe".
board_run = $(TARGET_DIR)/debug/ktap-board run --arch $(1) --kernel "$$(sh firmware/kernel.sh $(1))" \
	--ktap dist/$(1)/ktap --board $(BOARD_WORK)/bin/$(1)/ktap-board \
	--workload $(BOARD_WORK)/bin/$(1)/ktap-workload --host-ktap $(TARGET_DIR)/debug/ktap \
	--work $(BOARD_WORK) $(ARGS)

board-host:
	cargo build --quiet -p ktap-board -p ktap-static

board-test-%: dist/%/ktap $(BOARD_WORK)/bin/% board-host FORCE | board-deps
	$(call board_run,$*)

# ktap's startup, peak RSS and per-event cost against the floor program inside one board's
# guest (bench/README.md): `make bench-board ARCH=aarch64`; ARGS="--rounds 3 --events 200000".
bench-board: bench-board-$(or $(ARCH),x86_64)
bench-board-%: dist/%/ktap $(BOARD_WORK)/bin/% board-host FORCE | board-deps
	$(subst ktap-board run,ktap-board bench,$(call board_run,$*))

# Every board: everything is built first, then the boards run two at a time (qemu emulates
# one CPU per process), each to its end even when another fails; each board's failures, then
# the summary lines in a fixed order.
board-test: $(foreach a,$(BOARD_ARCHES),dist/$(a)/ktap $(BOARD_WORK)/bin/$(a)) board-host | board-deps
	@mkdir -p $(BOARD_WORK)
	@printf '%s\n' $(BOARD_ARCHES) | xargs -P 2 -I ARCH sh -c \
		'$(subst $$$$,$$,$(call board_run,ARCH)) > $(BOARD_WORK)/ARCH.out 2>&1; echo $$? > $(BOARD_WORK)/ARCH.rc'
	@rc=0; for a in $(BOARD_ARCHES); do \
		grep -v '^board-test [^ ]*: [0-9]* passed, [0-9]* failed$$' $(BOARD_WORK)/$$a.out; \
		[ "$$(cat $(BOARD_WORK)/$$a.rc)" = 0 ] || rc=1; \
	done; \
	for a in $(BOARD_ARCHES); do \
		grep "^board-test $$a: [0-9]* passed, [0-9]* failed$$" $(BOARD_WORK)/$$a.out || \
			echo "board-test $$a: 0 passed, 1 failed"; \
	done; exit $$rc

# A prompt on a board for a person: `make board-shell ARCH=mips` (exit powers it off).
board-shell: dist/$(ARCH)/ktap $(BOARD_WORK)/bin/$(ARCH) | board-deps
	cargo build --quiet -p ktap-board -p ktap-static
	$(TARGET_DIR)/debug/ktap-board shell --arch $(ARCH) --kernel "$$(sh firmware/kernel.sh $(ARCH))" \
		--ktap dist/$(ARCH)/ktap --board $(BOARD_WORK)/bin/$(ARCH)/ktap-board \
		--workload $(BOARD_WORK)/bin/$(ARCH)/ktap-workload --host-ktap $(TARGET_DIR)/debug/ktap

# The VM against the rbpf crate's interpreter, ns per instruction side by side (bench/vm is its own
# cargo project, so rbpf never enters the workspace or its tests).
bench-vm: deps
	cargo run --release --manifest-path bench/vm/Cargo.toml

# ktap against bpftrace (and ply, given PLY=/path/to/ply) and a 2-instruction floor program, as
# root; bench/README.md says how each figure is measured. It measures the binary that ships,
# dist/ARCH/ktap for this machine's architecture, built first; KTAP= measures another one,
# BENCH_ARGS passes options to the harness (bench/harness, its own cargo project like bench/vm).
BENCH_KTAP := dist/$(shell uname -m | sed 's/^armv7.*/armv7/')/ktap
KTAP ?= $(BENCH_KTAP)
bench: build $(BENCH_APT_STAMP) $(filter $(BENCH_KTAP),$(KTAP))
	cargo build --release --manifest-path bench/harness/Cargo.toml --target-dir $(TARGET_DIR)
	$(RELEASE_DIR)/ktap-bench --ktap $(KTAP) --workload $(RELEASE_DIR)/ktap-workload \
		$(if $(PLY),--ply $(PLY)) --results bench/RESULTS.md $(BENCH_ARGS)
