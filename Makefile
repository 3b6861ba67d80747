# The project's entry points: `deps` sets up a fresh machine, then `build`, `test`, `run`, `clean`.
# Only deps reaches the network (rustup's dist server and Debian's archive); it caches under ~/.cache/ktap.
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

# Debian packages the build needs: Rust's host target links through `cc` against glibc's dev files.
APT_PACKAGES := gcc libc6-dev
# ktap-elf's tests read real files of every target with binutils' readelf: Debian's cross libcs
# (ELF32 and ELF64, both byte orders), SDT-carrying libstdc++ and CPython, and probes they compile
# with gcc and <sys/sdt.h>; they check ktap-bpf's pt_regs tables against each target's uapi headers.
APT_PACKAGES += binutils libstdc++6 python3-minimal systemtap-sdt-dev \
	libc6-arm64-cross libc6-armhf-cross libc6-mips-cross libc6-mipsel-cross libc6-mips64el-cross \
	libc6-powerpc-cross libc6-ppc64-cross libc6-ppc64el-cross \
	linux-libc-dev-arm64-cross linux-libc-dev-armhf-cross linux-libc-dev-mips-cross \
	linux-libc-dev-powerpc-cross linux-libc-dev-ppc64-cross
# Named by a checksum of the package list (the list itself outgrows a file name), so changing
# the list checks again; deleting ~/.cache/ktap does too.
APT_STAMP := $(CACHE)/apt-$(shell printf '%s\n' $(sort $(APT_PACKAGES)) | cksum | cut -d' ' -f1).stamp

RELEASE_DIR := $(or $(CARGO_TARGET_DIR),target)/release
SCRIPT ?= samples/syscalls/count_by_name.kp
WORKLOAD ?= getppid 1000

.PHONY: deps toolchain build test run clean bench-vm verifier-diff

deps: toolchain $(APT_STAMP)

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
$(APT_STAMP):
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
test: deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace
	cargo test -p ktap-verifier --test kernel_diff -- --ignored

# ktap's verifier against the running kernel's, on 10,000 generated programs (as root; about 20
# seconds, most of them the kernel's): nothing ktap accepts may be rejected by the kernel, and every
# program ktap alone rejects must be rejected for a reason the test explains. It prints the figures.
verifier-diff: deps
	cargo test -p ktap-verifier --test kernel_diff -- --ignored --nocapture

run: deps build
	$(RELEASE_DIR)/ktap $(SCRIPT) -- $(RELEASE_DIR)/ktap-workload $(WORKLOAD)

clean:
	cargo clean

# The VM against the rbpf crate's interpreter, ns per instruction side by side (bench/vm is its own
# cargo project, so rbpf never enters the workspace or its tests).
bench-vm: deps
	cargo run --release --manifest-path bench/vm/Cargo.toml
