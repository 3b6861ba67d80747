#!/bin/sh
# firmware/kernel.sh ARCH: owns the kernels that qemu-system boots for ktap's targets.
# Prints on stdout the absolute path of a kernel image that `qemu_system -M qemu_machine -kernel`
# (from targets/ARCH.conf) boots to an initramfs /init; all progress goes to stderr.
#
# - Targets with `debian_kernel` (a metapackage) get Debian's kernel for `debian_arch`: the
#   metapackage is resolved to its current linux-image package, which apt downloads with its own
#   lists and cache (the machine's dpkg setup is never changed); only the image and its config are
#   kept from the .deb.
# - Targets with `kernel_config` (a fragment under firmware/) get a kernel built from Debian's
#   `kernel_source` package (/usr/src/<it>.tar.xz) with `make allnoconfig` plus that fragment,
#   for `kernel_arch` with the cross compiler `kernel_cross`, target `kernel_image`.
#   It is cached by a hash of the fragment, the build recipe below and the source's version.
#
# Cache, under ~/.cache/ktap/kernels/:
#   ARCH/current -> DIR          the image in use (a symlink, replaced atomically)
#   ARCH/DIR/                    Debian: <linux-image package>_<version>/{vmlinu[xz]-*,config-*}
#                                built:  <hash>/{<kernel_image>,config}
#   ARCH/build-<source version>/ built: the object tree, reused when the fragment changes
#   apt/<debian_arch>/           apt's lists and cache for that Debian architecture
#   src/<package>_<version>/     built: the unpacked kernel source
# A call that finds its image is instant and reaches no network. KTAP_KERNEL_REFRESH=1 resolves a
# Debian metapackage again (and downloads only if it names another package or version).
# Packages it needs (qemu for ARCH; for a built kernel the cross compiler, the source and the build
# tools) are installed with apt-get when missing.
set -eu

say() { printf 'kernel.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ $# -eq 1 ] || die "usage: sh firmware/kernel.sh ARCH  (ARCH: a targets/ARCH.conf)"
arch=$1
root=$(cd "$(dirname "$0")/.." && pwd)
self=$root/firmware/kernel.sh
conf=$root/targets/$arch.conf
[ -f "$conf" ] || die "no target description targets/$arch.conf"
field() { sed -n "s/^$1 *= *//p" "$conf" | sed 's/[[:space:]]*$//'; }

K=$HOME/.cache/ktap/kernels
A=$K/$arch

# Fast path: the image in use, if any (built kernels check the hash first, below).
current_image() {
	[ -L "$A/current" ] || return 1
	for f in "$A/$(readlink "$A/current")"/vmlinu[xz]*; do
		[ -f "$f" ] && { printf '%s\n' "$f"; return 0; }
	done
	return 1
}

# apt-get install of whatever is missing (dpkg-query is local and instant); the machine's lists are
# updated first, retried, and used as they are when an update keeps failing (a mirror mid-sync).
need() {
	installed=" $(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null |
		awk '$2 == "installed" { printf "%s ", $1 }')"
	missing=
	for p; do
		case $installed in *" $p "*) ;; *) missing="$missing $p" ;; esac
	done
	[ -n "$missing" ] || return 0
	say "installing$missing"
	for try in 1 2 3; do apt-get update -qq >&2 && break; sleep $((try * 5)); done || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-oDPkg::Lock::Timeout=600 $missing >&2 || die "could not install$missing"
}

qemu_system=$(field qemu_system)
case $qemu_system in
qemu-system-arm | qemu-system-aarch64) qemu_pkg=qemu-system-arm ;;
qemu-system-mips*) qemu_pkg=qemu-system-mips ;;
qemu-system-ppc*) qemu_pkg=qemu-system-ppc ;;
qemu-system-x86_64 | qemu-system-i386) qemu_pkg=qemu-system-x86 ;;
*) die "targets/$arch.conf: no Debian package known for qemu_system = $qemu_system" ;;
esac

# One caller at a time per ARCH for the slow paths (the fast path reads only finished files).
lock() { mkdir -p "$A" && exec 9>"$A/.lock" && flock 9; }

debian_kernel() {
	darch=$(field debian_arch)
	meta=$(field debian_kernel)
	[ -n "$darch" ] || die "targets/$arch.conf names debian_kernel but no debian_arch"
	need "$qemu_pkg"
	if [ "${KTAP_KERNEL_REFRESH:-0}" != 1 ] && current_image; then return 0; fi
	lock
	if [ "${KTAP_KERNEL_REFRESH:-0}" != 1 ] && current_image; then return 0; fi
	ad=$K/apt/$darch
	mkdir -p "$ad/lists/partial" "$ad/cache/archives/partial"
	o="-oAPT::Architecture=$darch -oAPT::Architectures=$darch -oDir::State::Lists=$ad/lists"
	o="$o -oDir::Cache=$ad/cache -oAPT::Sandbox::User=root"
	say "$arch: updating apt lists for $darch"
	for try in 1 2 3 4 5; do
		apt-get $o -qq update >&2 && break
		say "apt-get update failed (try $try of 5)"
		[ $try -lt 5 ] && sleep $((try * 10))
	done || true
	pkg=$(apt-cache $o depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
	[ -n "$pkg" ] || die "$meta ($darch) does not resolve to a linux-image package (apt lists: $ad/lists)"
	ver=$(apt-cache $o policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2; exit }')
	dir=${pkg}_$(printf '%s' "$ver" | tr ':' '+')
	if [ ! -d "$A/$dir" ]; then
		say "$arch: downloading $pkg $ver"
		tmp=$A/tmp.$$
		rm -rf "$tmp" && mkdir -p "$tmp"
		(cd "$tmp" && apt-get $o -qq download "$pkg" >&2) || { rm -rf "$tmp"; die "apt-get download $pkg failed"; }
		dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" --wildcards './boot/vmlinu*' './boot/config-*'
		mkdir -p "$tmp/$dir"
		mv "$tmp"/boot/* "$tmp/$dir/"
		mv "$tmp/$dir" "$A/$dir"
		rm -rf "$tmp"
	fi
	ln -sfn "$dir" "$A/current.tmp" && mv -T "$A/current.tmp" "$A/current"
	current_image || die "$pkg has no boot/vmlinu[xz]-* image"
}

built_kernel() {
	kernel_arch=$(field kernel_arch)
	kernel_cross=$(field kernel_cross)
	kernel_image=$(field kernel_image)
	kernel_source=$(field kernel_source)
	frag=$root/$(field kernel_config)
	for k in kernel_arch kernel_cross kernel_image kernel_source; do
		eval "[ -n \"\$$k\" ]" || die "targets/$arch.conf names kernel_config but no $k"
	done
	[ -f "$frag" ] || die "no config fragment $frag"
	need "$qemu_pkg" "gcc-${kernel_cross%-}" "$kernel_source" gcc libc6-dev bc bison flex make \
		libssl-dev libelf-dev xz-utils cpio
	srcver=$(dpkg-query -W -f='${Version}' "$kernel_source")
	hash=$({
		cat "$frag"
		sed -n '/^# BEGIN build recipe/,/^# END build recipe/p' "$self"
		echo "$kernel_arch $kernel_cross $kernel_image $kernel_source $srcver"
	} | sha256sum | cut -c1-16)
	out=$A/$hash/$kernel_image
	if [ -f "$out" ]; then
		[ "$(readlink "$A/current" 2>/dev/null)" = "$hash" ] ||
			{ ln -sfn "$hash" "$A/current.tmp" && mv -T "$A/current.tmp" "$A/current"; }
		printf '%s\n' "$out"
		return 0
	fi
	lock
	[ -f "$out" ] && { printf '%s\n' "$out"; return 0; }

	# The source, unpacked once per package version (shared by every built target).
	src=$K/src/${kernel_source}_$srcver
	if [ ! -f "$src/Makefile" ]; then
		mkdir -p "$K/src" && exec 8>"$K/src/.lock" && flock 8
		if [ ! -f "$src/Makefile" ]; then
			say "unpacking /usr/src/$kernel_source.tar.xz"
			rm -rf "$src.tmp" && mkdir -p "$src.tmp"
			tar -xJf "/usr/src/$kernel_source.tar.xz" -C "$src.tmp"
			top=$(ls "$src.tmp")
			mv "$src.tmp/$top" "$src" && rmdir "$src.tmp"
		fi
		flock -u 8
	fi
	# One object tree per source version: a newer source unpacks with its files' old mtimes, which
	# an older tree's objects would look newer than.
	build=$A/build-$srcver
	for old in "$A"/build-*; do [ "$old" = "$build" ] || rm -rf "$old"; done
	mkdir -p "$build"
	log=$build/build.log
	say "$arch: building $kernel_source $srcver for $kernel_arch with $(basename "$frag") (log: $log)"
	start=$(date +%s)
	# set -e is off inside a subshell whose status `||` tests, so the status is taken apart.
	set +e
	(
		set -e
		# BEGIN build recipe (hashed with the fragment: changing a line here rebuilds every built kernel)
		# allnoconfig with the fragment: everything off but what it names and what that needs.
		# A calling make's flags and variables (MAKEFLAGS) and a KCONFIG_CONFIG would reach kbuild.
		# nice -n 19: builds share the machine.
		kmake() {
			env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u KCONFIG_CONFIG -u KBUILD_OUTPUT nice -n 19 \
				make -C "$src" O="$build" ARCH="$kernel_arch" CROSS_COMPILE="$kernel_cross" "$@"
		}
		kmake KCONFIG_ALLCONFIG="$frag" allnoconfig
		# Kconfig drops what it cannot satisfy without a word: every line of the fragment must survive.
		bad=$(grep -E '^CONFIG_[A-Za-z0-9_]+=' "$frag" | while read -r line; do
			grep -qxF "$line" "$build/.config" || echo "$line"
		done)
		[ -z "$bad" ] || { echo "kernel.sh: not in the resulting .config:" $bad; exit 1; }
		kmake -j2 "$kernel_image"
		# END build recipe
	) > "$log" 2>&1
	rc=$?
	set -e
	[ $rc -eq 0 ] || { tail -n 40 "$log" >&2; die "$arch: kernel build failed (log: $log)"; }
	say "$arch: built in $(($(date +%s) - start)) s"
	img=$build/$kernel_image
	[ -f "$img" ] || img=$build/arch/$kernel_arch/boot/$kernel_image
	rm -rf "$A/$hash.tmp" && mkdir -p "$A/$hash.tmp"
	cp "$img" "$A/$hash.tmp/$kernel_image"
	cp "$build/.config" "$A/$hash.tmp/config"
	mv "$A/$hash.tmp" "$A/$hash"
	ln -sfn "$hash" "$A/current.tmp" && mv -T "$A/current.tmp" "$A/current"
	printf '%s\n' "$out"
}

if [ -n "$(field debian_kernel)" ]; then
	debian_kernel
elif [ -n "$(field kernel_config)" ]; then
	built_kernel
else
	die "targets/$arch.conf names neither debian_kernel nor kernel_config: no kernel for $arch"
fi
