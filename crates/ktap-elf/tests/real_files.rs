//! ktap-elf against real files, checked with binutils' `readelf` (which reads every
//! architecture): this machine's libc, executables and SDT-carrying binaries, the Debian cross
//! libcs `make deps` installs (ELF32 and ELF64, both byte orders, ARM Thumb, PowerPC64 ELFv1
//! descriptors and ELFv2 local entries), gcc-built static and PIE executables, and the
//! committed per-target SDT fixtures (`tests/data`, rebuilt by `gen.sh`). Nothing is skipped:
//! a missing file or tool fails with what installs it.

use ktap_bpf::arch;
use ktap_bpf::{Endian, Target};
use ktap_elf::{machine, ByteOrder, Class, Elf, ElfError, FileKind, SdtLoc};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (make deps installs it)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (make deps installs it)", path.display()))
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("hex {s}"))
}

/// `readelf -lW`'s PT_LOAD lines: (offset, vaddr, filesz).
fn loads(path: &Path) -> Vec<(u64, u64, u64)> {
    run("readelf", &["-lW", path.to_str().unwrap()])
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
        .map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (hex(t[1]), hex(t[2]), hex(t[4]))
        })
        .collect()
}

/// The file offset of `vaddr` computed from readelf's program headers.
fn expected_offset(loads: &[(u64, u64, u64)], vaddr: u64) -> Option<u64> {
    loads
        .iter()
        .find(|&&(_, v, sz)| vaddr >= v && vaddr < v + sz)
        .map(|&(off, v, _)| vaddr - v + off)
}

struct RSym {
    value: u64,
    name: String,
    local_entry: u64,
}

/// The defined FUNC and IFUNC entries `readelf -sW` lists, from both tables.
fn readelf_functions(path: &Path) -> Vec<RSym> {
    run("readelf", &["-sW", path.to_str().unwrap()])
        .lines()
        .filter_map(|l| {
            let mut t: Vec<&str> = l.split_whitespace().collect();
            if t.len() < 8 || !t[0].ends_with(':') || !matches!(t[3], "FUNC" | "IFUNC") {
                return None;
            }
            // Imports print as `name@VER (2)`.
            if t.last()?.starts_with('(') {
                t.pop();
            }
            let name = t.pop()?;
            if *t.last()? == "UND" {
                return None;
            }
            let local_entry = t
                .iter()
                .position(|&w| w == "[<localentry>:")
                .map_or(0, |i| t[i + 1].trim_end_matches(']').parse().unwrap());
            Some(RSym {
                value: hex(t[1]),
                name: name.to_string(),
                local_entry,
            })
        })
        .collect()
}

/// The bytes of `section` from `readelf -x`, keyed by address.
fn section_bytes(path: &Path, section: &str) -> HashMap<u64, u8> {
    let mut out = HashMap::new();
    for l in run("readelf", &["-x", section, path.to_str().unwrap()]).lines() {
        let t: Vec<&str> = l.split_whitespace().collect();
        let Some(addr) = t.first().and_then(|a| a.strip_prefix("0x")) else {
            continue;
        };
        let mut at = hex(addr);
        for word in t[1..].iter().take(4).take_while(|w| w.len() == 8) {
            for i in 0..4 {
                out.insert(at, u8::from_str_radix(&word[2 * i..2 * i + 2], 16).unwrap());
                at += 1;
            }
        }
    }
    out
}

/// Checks `functions()` against readelf both ways, each one's file offset against readelf's
/// program headers, and returns how many functions there were.
fn check_functions(path: &Path) -> usize {
    let data = read(path);
    let elf = Elf::parse(&data).unwrap();
    let funcs = elf.functions().unwrap();
    let loads = loads(path);
    let opd = (elf.machine == machine::PPC64 && elf.section(".opd").is_some())
        .then(|| section_bytes(path, ".opd"));
    let expected_addr = |s: &RSym| -> u64 {
        match (elf.machine, &opd) {
            (machine::ARM, _) => s.value & !1,
            (machine::PPC64, Some(opd)) if opd.contains_key(&s.value) => {
                let b: Vec<u8> = (0..8).map(|i| opd[&(s.value + i)]).collect();
                u64::from_be_bytes(b.try_into().unwrap())
            }
            _ => s.value,
        }
    };
    let theirs = readelf_functions(path);
    assert!(!theirs.is_empty(), "{}", path.display());
    let mut ours: HashMap<(u64, String), &ktap_elf::Function> = HashMap::new();
    for f in funcs.iter() {
        ours.insert((f.addr, f.versioned_name()), f);
        ours.insert((f.addr, f.name.to_string()), f);
    }
    for s in &theirs {
        let addr = expected_addr(s);
        let f = ours.get(&(addr, s.name.clone())).unwrap_or_else(|| {
            panic!(
                "{}: readelf's {} at {addr:#x} missing",
                path.display(),
                s.name
            )
        });
        assert_eq!(f.entry_offset, s.local_entry, "{}", s.name);
        assert_eq!(
            f.compressed,
            elf.machine == machine::ARM && s.value & 1 == 1
        );
    }
    let names: HashMap<(u64, &str), ()> = theirs
        .iter()
        .map(|s| ((expected_addr(s), s.name.as_str()), ()))
        .collect();
    for f in funcs.iter() {
        let v = f.versioned_name();
        assert!(
            names.contains_key(&(f.addr, v.as_str())) || names.contains_key(&(f.addr, f.name)),
            "{}: our {v} at {:#x} is not readelf's",
            path.display(),
            f.addr
        );
        assert_eq!(
            elf.file_offset(f.probe_addr()).ok(),
            expected_offset(&loads, f.probe_addr()),
            "{}: offset of {v}",
            path.display()
        );
    }
    funcs.len()
}

fn host_libc() -> PathBuf {
    PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")
}

#[test]
fn host_libc_matches_readelf() {
    let path = host_libc();
    assert!(check_functions(&path) > 1000);
    let data = read(&path);
    let elf = Elf::parse(&data).unwrap();
    assert_eq!(
        (elf.class, elf.byte_order, elf.kind, elf.machine),
        (
            Class::Elf64,
            ByteOrder::Little,
            FileKind::Dynamic,
            machine::X86_64
        )
    );
    let malloc = elf.find_function("malloc").unwrap();
    assert_eq!(malloc.versioned_name(), "malloc@@GLIBC_2.2.5");
    assert_eq!(elf.find_function("malloc@@GLIBC_2.2.5").unwrap(), malloc);
    assert_eq!(
        elf.uprobe_offset("malloc").ok(),
        expected_offset(&loads(&path), malloc.addr)
    );
    // Two versions of memcpy: the default one for the base name, the old one by name.
    let new = elf.find_function("memcpy").unwrap();
    let old = elf.find_function("memcpy@GLIBC_2.2.5").unwrap();
    assert!(new.default_version && !old.default_version && new.addr != old.addr);
    assert!(new.ifunc);
    match elf.find_function("mallocc") {
        Err(ElfError::SymbolNotFound { suggestions, .. }) => {
            assert_eq!(suggestions[0], "malloc");
        }
        other => panic!("{other:?}"),
    }
    let msg = elf.find_function("mallocc").unwrap_err().to_string();
    assert!(
        msg.contains("did you mean") && msg.contains("`malloc`"),
        "{msg}"
    );
    // Symbolizing a pc inside malloc, as ustack would.
    let funcs = elf.functions().unwrap();
    let (f, off) = funcs.at(malloc.addr + 5).unwrap();
    assert_eq!((f.name, off), ("malloc", 5));
    assert_eq!(
        elf.vaddr_of_offset(elf.file_offset(malloc.addr).unwrap()),
        Some(malloc.addr)
    );
}

#[test]
fn host_executables_match_readelf() {
    // A PIE with .symtab (this test, unstripped), a stripped PIE exporting its API (CPython),
    // and a C++ library.
    let me = std::env::current_exe().unwrap();
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3 (make deps)");
    let libstdcxx = std::fs::canonicalize("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
        .expect("libstdc++ (installed with gcc)");
    for path in [me, python, libstdcxx] {
        let n = check_functions(&path);
        assert!(n > 10, "{}: {n}", path.display());
    }
}

/// Every Debian cross libc `make deps` installs: (path, class, byte order, machine).
const CROSS: &[(&str, Class, ByteOrder, u16)] = &[
    (
        "/usr/aarch64-linux-gnu/lib/libc.so.6",
        Class::Elf64,
        ByteOrder::Little,
        machine::AARCH64,
    ),
    (
        "/usr/arm-linux-gnueabihf/lib/libc.so.6",
        Class::Elf32,
        ByteOrder::Little,
        machine::ARM,
    ),
    (
        "/usr/mips-linux-gnu/lib/libc.so.6",
        Class::Elf32,
        ByteOrder::Big,
        machine::MIPS,
    ),
    (
        "/usr/mipsel-linux-gnu/lib/libc.so.6",
        Class::Elf32,
        ByteOrder::Little,
        machine::MIPS,
    ),
    (
        "/usr/mips64el-linux-gnuabi64/lib/libc.so.6",
        Class::Elf64,
        ByteOrder::Little,
        machine::MIPS,
    ),
    (
        "/usr/powerpc-linux-gnu/lib/libc.so.6",
        Class::Elf32,
        ByteOrder::Big,
        machine::PPC,
    ),
    (
        "/usr/powerpc64-linux-gnu/lib/libc.so.6",
        Class::Elf64,
        ByteOrder::Big,
        machine::PPC64,
    ),
    (
        "/usr/powerpc64le-linux-gnu/lib/libc.so.6",
        Class::Elf64,
        ByteOrder::Little,
        machine::PPC64,
    ),
];

#[test]
fn cross_libcs_match_readelf() {
    for &(path, class, order, mach) in CROSS {
        let path = Path::new(path);
        assert!(check_functions(path) > 1000, "{}", path.display());
        let data = read(path);
        let elf = Elf::parse(&data).unwrap();
        assert_eq!(
            (elf.class, elf.byte_order, elf.machine),
            (class, order, mach)
        );
        let malloc = elf.find_function("malloc").unwrap();
        assert!(malloc.default_version && malloc.version.unwrap().starts_with("GLIBC_2."));
        assert!(elf.is_code(malloc.probe_addr()), "{}", path.display());
        match path.to_str().unwrap() {
            // Debian's armhf libc is Thumb-2 throughout.
            p if p.contains("arm-") => assert!(malloc.compressed),
            p if p.contains("powerpc64le") => assert_eq!(malloc.entry_offset, 8),
            // ELFv1: the symbol is a descriptor in .opd, the code is in .text.
            p if p.contains("powerpc64-") => {
                let text = elf.section(".text").unwrap();
                assert!((text.addr..text.addr + text.size).contains(&malloc.addr));
            }
            _ => assert!(!malloc.compressed && malloc.entry_offset == 0),
        }
    }
}

/// The SDT notes of `path` as `readelf -n` prints them:
/// (provider, name, location, base, semaphore, arguments).
fn readelf_notes(path: &Path) -> Vec<(String, String, u64, u64, u64, String)> {
    let text = run("readelf", &["-nW", path.to_str().unwrap()]);
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(l) = lines.next() {
        // With -W the provider shares the line of the note's header.
        let Some(provider) = l.split("Provider: ").nth(1) else {
            continue;
        };
        let name = lines.next().unwrap().strip_prefix("Name: ").unwrap();
        let loc = lines.next().unwrap();
        let field = |key: &str| {
            let rest = &loc[loc.find(key).unwrap() + key.len()..];
            hex(rest.split(',').next().unwrap().trim())
        };
        let args = lines
            .next()
            .unwrap()
            .strip_prefix("Arguments:")
            .unwrap()
            .trim();
        out.push((
            provider.to_string(),
            name.to_string(),
            field("Location: "),
            field("Base: "),
            field("Semaphore: "),
            args.to_string(),
        ));
    }
    out
}

/// The ktap target whose kernel runs `elf`'s code.
fn target_of(elf: &Elf) -> Target {
    let name = match (elf.machine, elf.class, elf.byte_order) {
        (machine::X86_64, _, _) => "x86_64",
        (machine::AARCH64, _, _) => "aarch64",
        (machine::ARM, _, _) => "armv7",
        (machine::MIPS, Class::Elf32, ByteOrder::Big) => "mips",
        (machine::MIPS, Class::Elf32, ByteOrder::Little) => "mipsel",
        (machine::MIPS, Class::Elf64, ByteOrder::Little) => "mips64el",
        (machine::MIPS, Class::Elf64, ByteOrder::Big) => "mips64",
        (machine::PPC, _, _) => "powerpc",
        (machine::PPC64, _, ByteOrder::Big) => "powerpc64",
        (machine::PPC64, _, ByteOrder::Little) => "powerpc64le",
        other => panic!("no target for {other:?}"),
    };
    Target::by_name(name).unwrap()
}

/// Checks every note against readelf, the offsets against the program headers, and every
/// decoded register against the target's pt_regs table. Returns the notes' count.
fn check_notes(path: &Path) -> usize {
    let data = read(path);
    let elf = Elf::parse(&data).unwrap();
    let notes = elf.sdt_notes().unwrap();
    let theirs = readelf_notes(path);
    assert_eq!(notes.len(), theirs.len(), "{}", path.display());
    let loads = loads(path);
    let layout = arch::regs(target_of(&elf));
    let base_now = elf.section(".stapsdt.base").map(|s| s.addr);
    for (n, t) in notes.iter().zip(&theirs) {
        assert_eq!(
            (n.provider, n.name, n.pc, n.base, n.semaphore, n.args_text),
            (t.0.as_str(), t.1.as_str(), t.2, t.3, t.4, t.5.as_str())
        );
        // An unmoved file: the recorded base is where .stapsdt.base is.
        if let Some(b) = base_now {
            assert_eq!(b, n.base);
        }
        assert_eq!(n.addr, n.pc);
        assert!(elf.is_code(n.addr));
        assert_eq!(n.offset, expected_offset(&loads, n.addr));
        assert_eq!(
            n.semaphore_offset,
            n.semaphore_addr.and_then(|a| expected_offset(&loads, a))
        );
        assert_eq!(n.semaphore_addr.is_some(), n.semaphore != 0);
        assert_eq!(
            n.args.len(),
            n.args_text.split_whitespace().count() - n.args_text.matches(", ").count()
        );
        for a in &n.args {
            assert!(matches!(a.size, 1 | 2 | 4 | 8), "{}: {}", n.name, a.text);
            assert_eq!(a.signed, a.text.starts_with('-'));
            match a.loc {
                SdtLoc::Reg { reg, .. } | SdtLoc::Mem { reg, .. } => {
                    assert!(layout.reg(reg).is_some(), "{}: {reg}", a.text)
                }
                SdtLoc::Const(_) => {}
                SdtLoc::Unsupported => panic!("{}: {} undecoded", path.display(), a.text),
            }
        }
    }
    notes.len()
}

#[test]
fn host_sdt_notes_match_readelf() {
    // libstdc++ (a shared library, probes without semaphores) and CPython (a PIE with
    // semaphores, RIP-relative and high-byte-free x86 operands).
    let libstdcxx = std::fs::canonicalize("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")
        .expect("libstdc++ (installed with gcc)");
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3 (make deps)");
    assert!(check_notes(&libstdcxx) >= 3);
    assert!(check_notes(&python) >= 5);
    let data = read(&python);
    let elf = Elf::parse(&data).unwrap();
    let sites = elf.find_sdt("python:function__entry").unwrap();
    assert!(!sites.is_empty() && sites.iter().all(|s| s.semaphore_offset.is_some()));
    assert_eq!(elf.find_sdt("function__entry").unwrap(), sites);
    match elf.find_sdt("python:function__entyr") {
        Err(ElfError::SdtNotFound { suggestions, .. }) => {
            assert_eq!(suggestions[0], "python:function__entry")
        }
        other => panic!("{other:?}"),
    }
}

/// The committed fixtures: every target's operand syntax, in both byte orders and classes.
#[test]
fn fixture_sdt_notes_match_readelf() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let expect: &[(&str, &str, [SdtLoc; 3])] = &[
        (
            "x86_64",
            "-4@-4(%rbp)",
            [mem("bp", -4), mem("bp", -32), mem("bp", -24)],
        ),
        (
            "aarch64",
            "-4@[x10]",
            [mem("x10", 0), mem("x8", 0), mem("x9", 0)],
        ),
        ("arm", "-4@[r2]", [mem("r2", 0), mem("r3", 0), mem("ip", 0)]),
        (
            "mips",
            "-4@12($fp)",
            [mem("r30", 12), mem("r30", 8), mem("r30", 4)],
        ),
        (
            "mipsel",
            "-4@12($fp)",
            [mem("r30", 12), mem("r30", 8), mem("r30", 4)],
        ),
        (
            "mips64el",
            "-4@28($fp)",
            [mem("r30", 28), mem("r30", 16), mem("r30", 8)],
        ),
        (
            "powerpc",
            "-4@0(5)",
            [mem("gpr5", 0), mem("gpr7", 0), mem("gpr6", 0)],
        ),
        (
            "powerpc64",
            "-4@0(7)",
            [mem("gpr7", 0), mem("gpr6", 0), mem("gpr5", 0)],
        ),
        (
            "powerpc64le",
            "-4@0(7)",
            [mem("gpr7", 0), mem("gpr6", 0), mem("gpr5", 0)],
        ),
    ];
    for (name, first, locs) in expect {
        let path = dir.join(format!("sdt-{name}.elf"));
        assert_eq!(check_notes(&path), 2, "{name}");
        let data = read(&path);
        let elf = Elf::parse(&data).unwrap();
        let three = &elf.find_sdt("demo:three").unwrap()[0];
        assert!(
            three.args_text.starts_with(first),
            "{name}: {}",
            three.args_text
        );
        let got: Vec<SdtLoc> = three.args.iter().map(|a| a.loc).collect();
        assert_eq!(got, locs, "{name}");
        let gated = &elf.find_sdt("gated").unwrap()[0];
        assert_eq!(gated.args[1].loc, SdtLoc::Const(42), "{name}");
        assert_eq!((gated.args[1].size, gated.args[1].signed), (4, true));
        // The semaphores are the two zeroed shorts in .probes.
        let probes = elf.section(".probes").unwrap();
        let off = gated.semaphore_offset.unwrap();
        assert!(off >= probes.offset && off + 2 <= probes.offset + probes.size);
        assert_eq!(&data[off as usize..off as usize + 2], [0, 0]);
        // `work` itself, for the uprobe path on each target.
        let work = elf.find_function("work").unwrap();
        assert!(elf.is_code(work.probe_addr()));
        let expected_endian = match elf.byte_order {
            ByteOrder::Little => Endian::Little,
            ByteOrder::Big => Endian::Big,
        };
        assert_eq!(target_of(&elf).endian, expected_endian);
    }
}

fn mem(reg: &'static str, offset: i64) -> SdtLoc {
    SdtLoc::Mem { reg, offset }
}

/// A C program with SDT probes and semaphores, built by gcc in `dir`.
fn gcc(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join("probe.c");
    std::fs::write(
        &src,
        "#define _SDT_HAS_SEMAPHORES 1\n#include <sys/sdt.h>\n\
         __extension__ unsigned short app_tick_semaphore __attribute__((section(\".probes\")));\n\
         volatile long counter;\n\
         __attribute__((noinline)) long tick(long a, int b) {\n\
           if (app_tick_semaphore) STAP_PROBE3(app, tick, a, b, counter);\n\
           counter += a;\n  return counter + b;\n}\n\
         int main(int argc, char **argv) { return (int)tick(argc, argv[0][0]); }\n",
    )
    .unwrap();
    let out = dir.join(name);
    let mut args: Vec<&str> = vec![
        "-O2",
        "-g0",
        "-o",
        out.to_str().unwrap(),
        src.to_str().unwrap(),
    ];
    args.extend(flags);
    run("gcc", &args);
    out
}

#[test]
fn gcc_static_and_pie_executables() {
    let dir = std::env::temp_dir().join(format!("ktap-elf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            gcc(&dir, "static", &["-static", "-no-pie"]),
            FileKind::Executable,
        ),
        (gcc(&dir, "pie", &["-pie", "-fPIE"]), FileKind::Dynamic),
    ];
    // Stripped and static: no symbol table at all.
    let stripped = read(&gcc(&dir, "stripped", &["-static", "-no-pie", "-s"]));
    let err = Elf::parse(&stripped)
        .unwrap()
        .find_function("main")
        .unwrap_err();
    assert_eq!(err, ElfError::NoSymbols);
    assert!(err.to_string().contains(":0xOFFSET"));
    for (path, kind) in &cases {
        let data = read(path);
        let elf = Elf::parse(&data).unwrap();
        assert_eq!(elf.kind, *kind, "{}", path.display());
        check_functions(path);
        assert_eq!(check_notes(path), 1);
        let tick = elf.find_function("tick").unwrap();
        let off = elf.uprobe_offset("tick").unwrap();
        assert_eq!(Some(off), expected_offset(&loads(path), tick.addr));
        // A static executable is linked at a fixed address; a PIE at 0.
        match kind {
            FileKind::Executable => assert!(tick.addr >= 0x400000 && off < tick.addr),
            _ => assert!(tick.addr < 0x100000),
        }
        let note = &elf.find_sdt("app:tick").unwrap()[0];
        assert!(note.semaphore_offset.is_some());
        assert!(elf.section(".stapsdt.base").is_some());
        // The note's pc lies inside tick.
        assert!(note.addr >= tick.addr && note.addr < tick.addr + tick.size);
    }
    // The prelink rule: move .stapsdt.base's sh_addr by 0x1000, and the probe moves with it.
    let (path, _) = &cases[1];
    let mut data = read(path);
    let (index, before) = {
        let elf = Elf::parse(&data).unwrap();
        let index = elf
            .sections
            .iter()
            .position(|s| s.name == ".stapsdt.base")
            .unwrap();
        (index, elf.find_sdt("tick").unwrap()[0].pc)
    };
    {
        let shoff = u64::from_le_bytes(data[0x28..0x30].try_into().unwrap()) as usize;
        let shentsize = u16::from_le_bytes(data[0x3a..0x3c].try_into().unwrap()) as usize;
        let addr_at = shoff + index * shentsize + 16;
        let addr = u64::from_le_bytes(data[addr_at..addr_at + 8].try_into().unwrap());
        data[addr_at..addr_at + 8].copy_from_slice(&(addr + 0x1000).to_le_bytes());
    }
    let elf = Elf::parse(&data).unwrap();
    let moved = &elf.find_sdt("tick").unwrap()[0];
    assert_eq!((moved.pc, moved.addr), (before, before + 0x1000));
    assert_eq!(moved.semaphore_addr, Some(moved.semaphore + 0x1000));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_are_clear() {
    assert_eq!(Elf::parse(b"").unwrap_err(), ElfError::NotElf);
    assert_eq!(Elf::parse(b"#!/bin/sh\n").unwrap_err(), ElfError::NotElf);
    assert!(matches!(
        Elf::parse(b"\x7fELF\x02\x01").unwrap_err(),
        ElfError::Truncated(_)
    ));
    assert!(matches!(
        Elf::parse(b"\x7fELF\x03\x01\x01\0\0\0\0\0\0\0\0\0").unwrap_err(),
        ElfError::Unsupported(_)
    ));
    let data = read(&host_libc());
    let cut = Elf::parse(&data[..data.len() / 2]);
    // Section headers live at the end of the file: half of it has none of them.
    assert!(matches!(cut, Err(ElfError::Truncated(_))), "{cut:?}");
    let elf = Elf::parse(&data).unwrap();
    assert!(matches!(
        elf.file_offset(u64::MAX),
        Err(ElfError::NotMapped(_))
    ));
    let e = ktap_elf::open("/nonexistent/x").unwrap_err();
    assert!(
        e.to_string().starts_with("cannot read /nonexistent/x"),
        "{e}"
    );
    let f = ktap_elf::open(host_libc()).unwrap();
    assert_eq!(f.parse().unwrap().machine, machine::X86_64);
}
