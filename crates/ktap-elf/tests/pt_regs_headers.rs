//! ktap-bpf's pt_regs tables against the Linux uapi headers of every target: for each one, a C
//! file of `_Static_assert`s on `offsetof(...)`, generated from the table, must compile with the
//! host's gcc against that target's `<asm/ptrace.h>` (Debian's linux-libc-dev cross packages,
//! which `make deps` installs). The uapi headers show what user space sees: all of x86_64's, ARM's
//! and PowerPC's `pt_regs`, arm64's `user_pt_regs`, and MIPS's ptrace layout (the size of a perf
//! program's register context); the kernel-only parts (MIPS's argument words, arm64's `orig_x0`)
//! are checked by ktap-bpf's own tests against the kernel sources. The host compiler's `long` is
//! 8 bytes, so 32-bit layouts (all `unsigned long` fields) are compared as word indexes.
//! It lives here because this crate's tests already run external tools and depend on ktap-bpf.

use ktap_bpf::arch::{self, RegsLayout};
use ktap_bpf::Target;
use std::process::Command;

/// `offsetof(STRUCT, FIELD) == offset of our register NAME`, for each (field, name).
/// `unit` is the bytes of one of the struct's words on the target (`W` on the host).
fn asserts(l: &RegsLayout, st: &str, fields: &[(String, String)], unit: u32) -> String {
    // W: the size of one of the struct's words on the host, to compare in words.
    let mut c = String::from("#include <stddef.h>\n#include <asm/ptrace.h>\n");
    for (field, name) in fields {
        let slot = l.reg(name).unwrap_or_else(|| panic!("{}: {name}", l.name));
        c += &format!(
            "_Static_assert(offsetof(struct {st}, {field}) / W == {}, \"{field} is {name}\");\n",
            slot.offset / unit
        );
    }
    c += &format!(
        "_Static_assert(sizeof(struct {st}) / W == {}, \"perf regs size\");\n",
        l.perf_regs_size / unit
    );
    c
}

/// (target, uapi include directory, extra flags, struct, (field, register) pairs).
type Case = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    Vec<(String, String)>,
);

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(f, n)| (f.to_string(), n.to_string()))
        .collect()
}

fn indexed(field: &str, names: impl Iterator<Item = String>) -> Vec<(String, String)> {
    names
        .enumerate()
        .map(|(i, n)| (format!("{field}[{i}]"), n))
        .collect()
}

#[test]
fn tables_match_the_uapi_headers() {
    let dir = std::env::temp_dir().join(format!("ktap-ptregs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ppc_special = |fifth: &str| -> Vec<(String, String)> {
        let mut v = indexed("gpr", (0..32).map(|i| format!("gpr{i}")));
        for f in [
            "nip",
            "msr",
            "orig_gpr3",
            "ctr",
            "link",
            "xer",
            "ccr",
            fifth,
            "trap",
            "dar",
            "dsisr",
            "result",
        ] {
            v.push((f.to_string(), f.to_string()));
        }
        v
    };
    let x86 = pairs(&[
        ("r15", "r15"),
        ("r14", "r14"),
        ("r13", "r13"),
        ("r12", "r12"),
        ("rbp", "rbp"),
        ("rbx", "rbx"),
        ("r11", "r11"),
        ("r10", "r10"),
        ("r9", "r9"),
        ("r8", "r8"),
        ("rax", "rax"),
        ("rcx", "rcx"),
        ("rdx", "rdx"),
        ("rsi", "rsi"),
        ("rdi", "rdi"),
        ("orig_rax", "orig_rax"),
        ("rip", "rip"),
        ("cs", "cs"),
        ("eflags", "eflags"),
        ("rsp", "rsp"),
        ("ss", "ss"),
    ]);
    let mut arm64 = indexed("regs", (0..31).map(|i| format!("x{i}")));
    arm64.extend(pairs(&[("sp", "sp"), ("pc", "pc"), ("pstate", "pstate")]));
    let arm_names = [
        "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "fp", "ip", "sp", "lr",
        "pc", "cpsr", "ORIG_r0",
    ];
    let arm = indexed("uregs", arm_names.iter().map(|s| s.to_string()));
    // (target, uapi include directory, extra flags, struct, fields). PowerPC's header picks
    // softe or mq by the compiler's __powerpc64__; 64-bit MIPS and little-endian PowerPC64
    // share their 32-bit or big-endian sibling's header.
    let cases: &[Case] = &[
        (
            "x86_64",
            "/usr/include/x86_64-linux-gnu",
            &[],
            "pt_regs",
            x86,
        ),
        (
            "aarch64",
            "/usr/aarch64-linux-gnu/include",
            &[],
            "user_pt_regs",
            arm64,
        ),
        (
            "armv7",
            "/usr/arm-linux-gnueabihf/include",
            &[],
            "pt_regs",
            arm,
        ),
        // The uapi MIPS pt_regs is the ptrace layout: 38 64-bit words, the perf context.
        (
            "mips",
            "/usr/mips-linux-gnu/include",
            &["-DW=8"],
            "pt_regs",
            Vec::new(),
        ),
        (
            "mips64el",
            "/usr/mips-linux-gnu/include",
            &["-DW=8"],
            "pt_regs",
            Vec::new(),
        ),
        (
            "powerpc",
            "/usr/powerpc-linux-gnu/include",
            &[],
            "pt_regs",
            ppc_special("mq"),
        ),
        (
            "powerpc64",
            "/usr/powerpc64-linux-gnu/include",
            &["-D__powerpc64__"],
            "pt_regs",
            ppc_special("softe"),
        ),
        (
            "powerpc64le",
            "/usr/powerpc64-linux-gnu/include",
            &["-D__powerpc64__"],
            "pt_regs",
            ppc_special("softe"),
        ),
    ];
    for (name, include, flags, st, fields) in cases {
        assert!(
            std::path::Path::new(include).join("asm/ptrace.h").exists(),
            "{include}/asm/ptrace.h (make deps installs it)"
        );
        let layout = arch::regs(Target::by_name(name).unwrap());
        let src = dir.join(format!("{name}.c"));
        // MIPS's ptrace layout is in __u64s whatever the word size.
        let unit = if name.starts_with("mips") {
            8
        } else {
            u32::from(layout.word)
        };
        std::fs::write(&src, asserts(layout, st, fields, unit)).unwrap();
        let mut cmd = Command::new("gcc");
        cmd.args(["-fsyntax-only", "-I", include]).args(*flags);
        if !flags.iter().any(|f| f.starts_with("-DW=")) {
            cmd.arg("-DW=sizeof(long)");
        }
        let out = cmd
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("gcc: {e} (make deps installs it)"));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
