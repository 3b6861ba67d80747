//! What a probe sees of the machine: each target's `struct pt_regs` (the kprobe, uprobe and
//! perf-event context), where a function's arguments, return value, stack and instruction
//! pointer are in it, and the kernel's symbol lists (`/proc/kallsyms`, the kprobe blacklist)
//! parsed from their text. Pure data and pure functions: the loader reads the files.
//!
//! The layouts are the kernel's (`arch/*/include/asm/ptrace.h` and the uapi headers), with the
//! register names the kernel's `regs_query_register_offset` accepts for kprobe_events fetch-args,
//! plus the aliases people write (`%rdi`, `%a0`, `%r3`, `%lr`). Every register is one C `long`.

use crate::insn::Endian;
use crate::kernel::glob_match;
use crate::program::{Arch, Target};

/// Where one register is saved in `struct pt_regs`: a byte offset and a size (the word size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegSlot {
    pub offset: u32,
    pub size: u8,
}

impl RegSlot {
    /// The low `size` bytes of the register, for fetch-args like `%r3:u8`: on a big-endian
    /// machine they are at the end of the slot. `None` unless `size` is 1, 2, 4 or 8 and fits.
    pub fn narrow(self, size: u8, endian: Endian) -> Option<RegSlot> {
        if !matches!(size, 1 | 2 | 4 | 8) || size > self.size {
            return None;
        }
        let offset = match endian {
            Endian::Little => self.offset,
            Endian::Big => self.offset + u32::from(self.size - size),
        };
        Some(RegSlot { offset, size })
    }
}

/// How the probed function receives its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// An ordinary C function (kernel or user): the target's calling convention.
    Function,
    /// A syscall wrapper (`__x64_sys_openat`, `__arm64_sys_openat`): its one argument points
    /// at the user's saved `struct pt_regs`, whose fields hold the syscall's arguments.
    SyscallWrapper,
}

/// Where an argument's value is, relative to the probe's context (`r1`, a `struct pt_regs *`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgLoc {
    /// In the context, at this slot.
    Reg(RegSlot),
    /// In memory at the stack pointer plus `offset` (a probe-read of `size` bytes; valid at
    /// the function's first instruction, before it moves the stack pointer).
    Stack { offset: u32, size: u8 },
    /// Read the pointer at `ptr` in the context, then the value at `field` of the
    /// `struct pt_regs` it points to (a probe-read: that one is on the kernel stack).
    Indirect { ptr: RegSlot, field: RegSlot },
}

/// A family of syscall wrappers: functions named `prefix` + syscall name that take one
/// `struct pt_regs *` in register `regs_arg`, with the user's arguments in `args`, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallWrapper {
    pub prefix: &'static str,
    pub regs_arg: &'static str,
    pub args: &'static [&'static str],
}

/// One architecture's (and ABI's) `struct pt_regs`, as a table.
#[derive(Debug, PartialEq, Eq)]
pub struct RegsLayout {
    /// The architecture and ABI, for messages: `x86_64`, `mips o32`, `powerpc64 ELFv2`.
    pub name: &'static str,
    /// Bytes per register (a C `long`).
    pub word: u8,
    /// Byte offset of the first register: 32-bit MIPS keeps eight argument words before them.
    base: u32,
    /// The kernel's register names, in `pt_regs` order: slot `i` is at `base + i * word`.
    regs: &'static [&'static str],
    /// Other names for registers: `(alias, kernel name)`.
    aliases: &'static [(&'static str, &'static str)],
    /// Registers holding the first arguments of a function, in order.
    arg_regs: &'static [&'static str],
    /// Offset from the stack pointer, at function entry, of the first argument passed on the
    /// stack (the one after the last register argument); later ones follow a word apart.
    stack_args: u32,
    ret_reg: &'static str,
    sp_reg: &'static str,
    ip_reg: &'static str,
    /// The kernel's syscall wrappers on this architecture; empty where `sys_*` functions take
    /// their arguments as ordinary functions do.
    pub syscall_wrappers: &'static [SyscallWrapper],
    /// `sizeof(bpf_user_pt_regs_t)`: the register part of a perf-event program's context
    /// (`struct bpf_perf_event_data` starts with it, and its offsets are the ones here).
    pub perf_regs_size: u32,
}

/// The register layout of `target`'s kernel. Word size follows the architecture (`Mips` is
/// o32, `Mips64` n64); 64-bit PowerPC uses ELFv1 big-endian and ELFv2 little-endian, which
/// place stack arguments differently.
pub fn regs(target: Target) -> &'static RegsLayout {
    match (target.arch, target.endian) {
        (Arch::X86_64, _) => &X86_64,
        (Arch::Aarch64, _) => &AARCH64,
        (Arch::Arm, _) => &ARM,
        (Arch::Mips, _) => &MIPS_O32,
        (Arch::Mips64, _) => &MIPS_N64,
        (Arch::Powerpc, _) => &PPC32,
        (Arch::Powerpc64, Endian::Big) => &PPC64_ELFV1,
        (Arch::Powerpc64, Endian::Little) => &PPC64_ELFV2,
    }
}

impl RegsLayout {
    /// The slot of the register called `name` (a kernel name or an alias, with or without
    /// the leading `%`, any case).
    pub fn reg(&self, name: &str) -> Option<RegSlot> {
        let name = name.strip_prefix('%').unwrap_or(name);
        let canonical = self
            .aliases
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
            .map_or(name, |&(_, kernel)| kernel);
        let index = self
            .regs
            .iter()
            .position(|r| r.eq_ignore_ascii_case(canonical))?;
        Some(self.slot(index))
    }

    /// The kernel's names of every register, in `pt_regs` order (for `ktap -l`-style listings
    /// and "did you mean" suggestions).
    pub fn names(&self) -> &'static [&'static str] {
        self.regs
    }

    fn slot(&self, index: usize) -> RegSlot {
        // Tables have at most 64 entries, so the index fits in u32 and the offset cannot overflow.
        let index = index as u32;
        RegSlot {
            offset: self.base + index * u32::from(self.word),
            size: self.word,
        }
    }

    fn named(&self, name: &str) -> RegSlot {
        // Every name the tables use is in `regs`; the tests check each one.
        self.reg(name).unwrap_or(RegSlot {
            offset: 0,
            size: self.word,
        })
    }

    /// Where argument `n` (1 = the first, as `$argN` and ktap's `argN` count) of a `kind`
    /// function is at its entry. Arguments are counted in words: on 32-bit targets a 64-bit
    /// argument takes two (and MIPS o32 and ARM start it on an even one). `None` for `n == 0`,
    /// and for a syscall argument beyond the sixth or on an architecture without wrappers.
    pub fn arg(&self, n: u32, kind: CallKind) -> Option<ArgLoc> {
        let index = n.checked_sub(1)? as usize;
        match kind {
            CallKind::Function => match self.arg_regs.get(index) {
                Some(r) => Some(ArgLoc::Reg(self.named(r))),
                None => {
                    let beyond = u32::try_from(index - self.arg_regs.len()).ok()?;
                    let offset = beyond
                        .checked_mul(u32::from(self.word))?
                        .checked_add(self.stack_args)?;
                    Some(ArgLoc::Stack {
                        offset,
                        size: self.word,
                    })
                }
            },
            CallKind::SyscallWrapper => {
                let w = self.syscall_wrappers.first()?;
                Some(ArgLoc::Indirect {
                    ptr: self.named(w.regs_arg),
                    field: self.named(w.args.get(index)?),
                })
            }
        }
    }

    /// Where the `CallKind::SyscallWrapper` argument `n` of wrapper family `w` is; for the
    /// compat families, whose user registers differ (`__ia32_sys_*` reads `bx cx dx si di bp`).
    pub fn wrapper_arg(&self, w: &SyscallWrapper, n: u32) -> Option<ArgLoc> {
        let index = n.checked_sub(1)? as usize;
        Some(ArgLoc::Indirect {
            ptr: self.reg(w.regs_arg)?,
            field: self.reg(w.args.get(index)?)?,
        })
    }

    /// The syscall wrapper family `symbol` belongs to, if it is one (`__x64_sys_read`).
    pub fn syscall_wrapper(&self, symbol: &str) -> Option<&'static SyscallWrapper> {
        self.syscall_wrappers
            .iter()
            .find(|w| symbol.len() > w.prefix.len() && symbol.starts_with(w.prefix))
    }

    /// How the kernel function `symbol` takes its arguments.
    pub fn call_kind(&self, symbol: &str) -> CallKind {
        match self.syscall_wrapper(symbol) {
            Some(_) => CallKind::SyscallWrapper,
            None => CallKind::Function,
        }
    }

    /// The return value, for kretprobes and uretprobes (`$retval`).
    pub fn ret(&self) -> RegSlot {
        self.named(self.ret_reg)
    }

    /// The stack pointer (`$stack`).
    pub fn sp(&self) -> RegSlot {
        self.named(self.sp_reg)
    }

    /// The instruction pointer: the probed address, or the sampled one in a perf event.
    pub fn ip(&self) -> RegSlot {
        self.named(self.ip_reg)
    }

    /// `$stackN`: the offset from the stack pointer of the stack's `n`th word (`$stack0` is the
    /// word the stack pointer points at).
    pub fn stack_entry(&self, n: u32) -> Option<u32> {
        n.checked_mul(u32::from(self.word))
    }

    /// The slot of register `name` in a perf-event program's context, if the kernel lets such
    /// a program read it there (only the user-visible register set is in that context).
    pub fn perf_reg(&self, name: &str) -> Option<RegSlot> {
        self.reg(name)
            .filter(|s| s.offset + u32::from(s.size) <= self.perf_regs_size)
    }
}

const X86_64: RegsLayout = RegsLayout {
    name: "x86_64",
    word: 8,
    base: 0,
    regs: &[
        "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si",
        "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
    ],
    aliases: &[
        ("rax", "ax"),
        ("eax", "ax"),
        ("rbx", "bx"),
        ("ebx", "bx"),
        ("rcx", "cx"),
        ("ecx", "cx"),
        ("rdx", "dx"),
        ("edx", "dx"),
        ("rsi", "si"),
        ("esi", "si"),
        ("rdi", "di"),
        ("edi", "di"),
        ("rbp", "bp"),
        ("ebp", "bp"),
        ("rsp", "sp"),
        ("esp", "sp"),
        ("rip", "ip"),
        ("eflags", "flags"),
        ("orig_rax", "orig_ax"),
    ],
    arg_regs: &["di", "si", "dx", "cx", "r8", "r9"],
    // The call pushed the return address: the seventh argument is just above it.
    stack_args: 8,
    ret_reg: "ax",
    sp_reg: "sp",
    ip_reg: "ip",
    syscall_wrappers: &[
        SyscallWrapper {
            prefix: "__x64_sys_",
            regs_arg: "di",
            // The syscall instruction clobbers rcx, so the fourth argument travels in r10.
            args: &["di", "si", "dx", "r10", "r8", "r9"],
        },
        SyscallWrapper {
            prefix: "__ia32_sys_",
            regs_arg: "di",
            args: &["bx", "cx", "dx", "si", "di", "bp"],
        },
        SyscallWrapper {
            prefix: "__ia32_compat_sys_",
            regs_arg: "di",
            args: &["bx", "cx", "dx", "si", "di", "bp"],
        },
    ],
    perf_regs_size: 21 * 8,
};

const AARCH64: RegsLayout = RegsLayout {
    name: "aarch64",
    word: 8,
    base: 0,
    // struct user_pt_regs (regs[31], sp, pc, pstate), then the kernel's orig_x0.
    regs: &[
        "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
        "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26",
        "x27", "x28", "x29", "x30", "sp", "pc", "pstate", "orig_x0",
    ],
    aliases: &[("fp", "x29"), ("lr", "x30")],
    arg_regs: &["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"],
    // The return address is in lr, so the ninth argument is at the stack pointer.
    stack_args: 0,
    ret_reg: "x0",
    sp_reg: "sp",
    ip_reg: "pc",
    syscall_wrappers: &[
        SyscallWrapper {
            prefix: "__arm64_sys_",
            regs_arg: "x0",
            args: &["x0", "x1", "x2", "x3", "x4", "x5"],
        },
        SyscallWrapper {
            prefix: "__arm64_compat_sys_",
            regs_arg: "x0",
            args: &["x0", "x1", "x2", "x3", "x4", "x5"],
        },
    ],
    perf_regs_size: 34 * 8,
};

const ARM: RegsLayout = RegsLayout {
    name: "armv7",
    word: 4,
    base: 0,
    // uregs[18]: ARM_r0 .. ARM_pc, ARM_cpsr, ARM_ORIG_r0.
    regs: &[
        "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "fp", "ip", "sp", "lr",
        "pc", "cpsr", "ORIG_r0",
    ],
    aliases: &[
        ("r11", "fp"),
        ("r12", "ip"),
        ("r13", "sp"),
        ("r14", "lr"),
        ("r15", "pc"),
    ],
    arg_regs: &["r0", "r1", "r2", "r3"],
    stack_args: 0,
    ret_reg: "r0",
    sp_reg: "sp",
    ip_reg: "pc",
    syscall_wrappers: &[],
    perf_regs_size: 18 * 4,
};

/// MIPS registers after the (32-bit only) argument words: regs[32], then the special ones.
/// `acx` (SmartMIPS only) is left out: no Linux MIPS board ktap targets has it.
const MIPS_REGS: &[&str] = &[
    "r0",
    "r1",
    "r2",
    "r3",
    "r4",
    "r5",
    "r6",
    "r7",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "r16",
    "r17",
    "r18",
    "r19",
    "r20",
    "r21",
    "r22",
    "r23",
    "r24",
    "r25",
    "r26",
    "r27",
    "r28",
    "r29",
    "r30",
    "r31",
    "c0_status",
    "hi",
    "lo",
    "c0_badvaddr",
    "c0_cause",
    "c0_epc",
];

/// The names o32 and n64 share (`$8`-`$15` differ: o32 `t0`-`t7`, n64 `a4`-`a7`, `t0`-`t3`).
macro_rules! mips_aliases {
    ($($extra:expr),* $(,)?) => {
        &[
            ("zero", "r0"),
            ("at", "r1"),
            ("v0", "r2"),
            ("v1", "r3"),
            ("a0", "r4"),
            ("a1", "r5"),
            ("a2", "r6"),
            ("a3", "r7"),
            ("s0", "r16"),
            ("s1", "r17"),
            ("s2", "r18"),
            ("s3", "r19"),
            ("s4", "r20"),
            ("s5", "r21"),
            ("s6", "r22"),
            ("s7", "r23"),
            ("t8", "r24"),
            ("t9", "r25"),
            ("k0", "r26"),
            ("k1", "r27"),
            ("gp", "r28"),
            ("sp", "r29"),
            ("fp", "r30"),
            ("s8", "r30"),
            ("ra", "r31"),
            ("epc", "c0_epc"),
            ("pc", "c0_epc"),
            ("cp0_epc", "c0_epc"),
            ("cp0_status", "c0_status"),
            ("cp0_badvaddr", "c0_badvaddr"),
            ("cp0_cause", "c0_cause"),
            $($extra),*
        ]
    };
}

const MIPS_O32: RegsLayout = RegsLayout {
    name: "mips o32",
    word: 4,
    // unsigned long args[8] come first on 32-bit kernels (saved syscall stack arguments).
    base: 8 * 4,
    regs: MIPS_REGS,
    aliases: mips_aliases![
        ("t0", "r8"),
        ("t1", "r9"),
        ("t2", "r10"),
        ("t3", "r11"),
        ("t4", "r12"),
        ("t5", "r13"),
        ("t6", "r14"),
        ("t7", "r15"),
    ],
    arg_regs: &["r4", "r5", "r6", "r7"],
    // The caller reserves 16 bytes for a0-a3 below the fifth argument.
    stack_args: 16,
    ret_reg: "r2",
    sp_reg: "r29",
    ip_reg: "c0_epc",
    syscall_wrappers: &[],
    // bpf_user_pt_regs_t is struct user_pt_regs (38 64-bit words), but MIPS hands a perf
    // program the kernel's pt_regs: the offsets here are right, the size only bounds reads.
    perf_regs_size: 38 * 8,
};

const MIPS_N64: RegsLayout = RegsLayout {
    name: "mips n64",
    word: 8,
    base: 0,
    regs: MIPS_REGS,
    aliases: mips_aliases![
        ("a4", "r8"),
        ("a5", "r9"),
        ("a6", "r10"),
        ("a7", "r11"),
        ("t0", "r12"),
        ("t1", "r13"),
        ("t2", "r14"),
        ("t3", "r15"),
    ],
    arg_regs: &["r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11"],
    stack_args: 0,
    ret_reg: "r2",
    sp_reg: "r29",
    ip_reg: "c0_epc",
    syscall_wrappers: &[],
    perf_regs_size: 38 * 8,
};

/// PowerPC's pt_regs: gpr[32], nip, msr, orig_gpr3, ctr, link, xer, ccr, softe (64-bit) or
/// mq (32-bit), trap, dar, dsisr, result; the same 44 words in struct user_pt_regs.
macro_rules! ppc_regs {
    ($softe_or_mq:expr) => {
        &[
            "gpr0",
            "gpr1",
            "gpr2",
            "gpr3",
            "gpr4",
            "gpr5",
            "gpr6",
            "gpr7",
            "gpr8",
            "gpr9",
            "gpr10",
            "gpr11",
            "gpr12",
            "gpr13",
            "gpr14",
            "gpr15",
            "gpr16",
            "gpr17",
            "gpr18",
            "gpr19",
            "gpr20",
            "gpr21",
            "gpr22",
            "gpr23",
            "gpr24",
            "gpr25",
            "gpr26",
            "gpr27",
            "gpr28",
            "gpr29",
            "gpr30",
            "gpr31",
            "nip",
            "msr",
            "orig_gpr3",
            "ctr",
            "link",
            "xer",
            "ccr",
            $softe_or_mq,
            "trap",
            "dar",
            "dsisr",
            "result",
        ]
    };
}

/// Newer kernels accept `r3` as well as `gpr3`; ktap accepts both everywhere.
const PPC_ALIASES: &[(&str, &str)] = &[
    ("r0", "gpr0"),
    ("r1", "gpr1"),
    ("r2", "gpr2"),
    ("r3", "gpr3"),
    ("r4", "gpr4"),
    ("r5", "gpr5"),
    ("r6", "gpr6"),
    ("r7", "gpr7"),
    ("r8", "gpr8"),
    ("r9", "gpr9"),
    ("r10", "gpr10"),
    ("r11", "gpr11"),
    ("r12", "gpr12"),
    ("r13", "gpr13"),
    ("r14", "gpr14"),
    ("r15", "gpr15"),
    ("r16", "gpr16"),
    ("r17", "gpr17"),
    ("r18", "gpr18"),
    ("r19", "gpr19"),
    ("r20", "gpr20"),
    ("r21", "gpr21"),
    ("r22", "gpr22"),
    ("r23", "gpr23"),
    ("r24", "gpr24"),
    ("r25", "gpr25"),
    ("r26", "gpr26"),
    ("r27", "gpr27"),
    ("r28", "gpr28"),
    ("r29", "gpr29"),
    ("r30", "gpr30"),
    ("r31", "gpr31"),
    ("sp", "gpr1"),
    ("lr", "link"),
    ("pc", "nip"),
];

const PPC_ARGS: &[&str] = &[
    "gpr3", "gpr4", "gpr5", "gpr6", "gpr7", "gpr8", "gpr9", "gpr10",
];

const PPC32: RegsLayout = RegsLayout {
    name: "powerpc",
    word: 4,
    base: 0,
    regs: ppc_regs!("mq"),
    aliases: PPC_ALIASES,
    arg_regs: PPC_ARGS,
    // SysV: the back chain and the LR save word, then the parameter list.
    stack_args: 8,
    ret_reg: "gpr3",
    sp_reg: "gpr1",
    ip_reg: "nip",
    // Kernels since 6.1 built without COMPAT name their pt_regs wrappers plain `sys_*`, which
    // the name alone cannot tell apart; the loader decides, with `CallKind` chosen by it.
    syscall_wrappers: &[],
    perf_regs_size: 44 * 4,
};

const PPC64_ELFV1: RegsLayout = RegsLayout {
    name: "powerpc64 ELFv1",
    word: 8,
    base: 0,
    regs: ppc_regs!("softe"),
    aliases: PPC_ALIASES,
    arg_regs: PPC_ARGS,
    // The parameter save area starts at 48 and has a doubleword for each of r3-r10 first.
    stack_args: 48 + 8 * 8,
    ret_reg: "gpr3",
    sp_reg: "gpr1",
    ip_reg: "nip",
    syscall_wrappers: &[],
    perf_regs_size: 44 * 8,
};

const PPC64_ELFV2: RegsLayout = RegsLayout {
    name: "powerpc64 ELFv2",
    word: 8,
    base: 0,
    regs: ppc_regs!("softe"),
    aliases: PPC_ALIASES,
    arg_regs: PPC_ARGS,
    // ELFv2 moved the parameter save area to 32.
    stack_args: 32 + 8 * 8,
    ret_reg: "gpr3",
    sp_reg: "gpr1",
    ip_reg: "nip",
    syscall_wrappers: &[],
    perf_regs_size: 44 * 8,
};

/// Every layout, for tests and listings.
pub const LAYOUTS: &[&RegsLayout] = &[
    &X86_64,
    &AARCH64,
    &ARM,
    &MIPS_O32,
    &MIPS_N64,
    &PPC32,
    &PPC64_ELFV1,
    &PPC64_ELFV2,
];

/// One line of `/proc/kallsyms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KSym {
    pub addr: u64,
    /// `nm`'s type letter: `T`/`t` text, `W`/`w` weak, `D`/`d` data, ...
    pub kind: char,
    pub name: String,
    /// The module, for `name\t[module]` lines.
    pub module: Option<String>,
}

impl KSym {
    /// A function symbol: text (`t`, `T`) or a weak definition (`w`, `W`, which kallsyms lists
    /// only for code), minus the padding and CFI stubs (`__pfx_`, `__cfi_`) compilers put
    /// before functions, which are not probe points.
    pub fn is_function(&self) -> bool {
        matches!(self.kind, 't' | 'T' | 'w' | 'W')
            && !self.name.starts_with("__pfx_")
            && !self.name.starts_with("__cfi_")
    }
}

/// The kernel's symbols, sorted by address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kallsyms {
    syms: Vec<KSym>,
    hidden: bool,
}

impl Kallsyms {
    /// Parses `/proc/kallsyms` (`ffffffff81000000 T _stext`, `... t foo\t[mod]`); lines of any
    /// other shape are skipped.
    pub fn parse(text: &str) -> Kallsyms {
        let mut syms: Vec<KSym> = text.lines().filter_map(parse_kallsyms_line).collect();
        // Stable: among symbols at one address, the file's order is kept.
        syms.sort_by_key(|s| s.addr);
        let hidden = !syms.is_empty() && syms.iter().all(|s| s.addr == 0);
        Kallsyms { syms, hidden }
    }

    pub fn symbols(&self) -> &[KSym] {
        &self.syms
    }

    /// True when every address reads as 0: the kernel hides them (`kptr_restrict`) from
    /// readers without `CAP_SYSLOG`, so names exist but nothing can be symbolized.
    pub fn addresses_hidden(&self) -> bool {
        self.hidden
    }

    /// The symbol called `name`: a function if one has the name (an ELFv1 descriptor shares
    /// it), else the first, if a static name repeats.
    pub fn lookup(&self, name: &str) -> Option<&KSym> {
        let mut named = self.syms.iter().filter(|s| s.name == name);
        let first = named.clone().next();
        named.find(|s| s.is_function()).or(first)
    }

    /// The symbol `addr` falls in and the offset into it: the last symbol starting at or before
    /// `addr`, preferring a function where several start at one address. `None` before the
    /// first symbol, past the last one, or when addresses are hidden.
    pub fn symbol(&self, addr: u64) -> Option<(&KSym, u64)> {
        if self.addresses_hidden() {
            return None;
        }
        let end = self.syms.partition_point(|s| s.addr <= addr);
        let last = self.syms.get(end.checked_sub(1)?)?;
        if end == self.syms.len() && addr != last.addr {
            // Nothing bounds the last symbol: an address past it is not known to be in it.
            return None;
        }
        let start = self.syms.partition_point(|s| s.addr < last.addr);
        let same = &self.syms[start..end];
        let best = same.iter().find(|s| s.is_function()).unwrap_or(last);
        Some((best, addr - best.addr))
    }

    /// `addr` as `symbol+0xoff` (`symbol` alone at offset 0, `[module]` appended for modules),
    /// or `None` when no symbol holds it.
    pub fn symbolize(&self, addr: u64) -> Option<String> {
        let (sym, off) = self.symbol(addr)?;
        let mut s = sym.name.clone();
        if off != 0 {
            s.push_str(&format!("+0x{off:x}"));
        }
        if let Some(m) = &sym.module {
            s.push_str(&format!(" [{m}]"));
        }
        Some(s)
    }

    /// The function symbols matching `glob` (`*` and `?`) that kprobes may use: not in the
    /// blacklist, each name once, sorted by name.
    pub fn functions_matching(&self, glob: &str, blacklist: &KprobeBlacklist) -> Vec<&KSym> {
        let mut found: Vec<&KSym> = self
            .syms
            .iter()
            .filter(|s| s.is_function() && glob_match(glob, &s.name) && !blacklist.blocks(s))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup_by(|a, b| a.name == b.name);
        found
    }
}

fn parse_kallsyms_line(line: &str) -> Option<KSym> {
    let (name_part, module) = match line.split_once('\t') {
        Some((head, m)) => {
            let m = m.trim().strip_prefix('[')?.strip_suffix(']')?;
            (head, Some(m.to_string()))
        }
        None => (line, None),
    };
    let mut words = name_part.split_whitespace();
    let addr = u64::from_str_radix(words.next()?, 16).ok()?;
    let kind = words.next()?;
    let name = words.next()?;
    if words.next().is_some() || kind.len() != 1 {
        return None;
    }
    let kind = kind.chars().next()?;
    // 64-bit PowerPC ELFv1 kernels (big-endian) list a function's code as `.name` and its
    // descriptor in .opd as `name` (data): the code is the function, under its own name.
    let name = match name.strip_prefix('.') {
        Some(code) if matches!(kind, 't' | 'T') && !code.is_empty() => code,
        _ => name,
    };
    Some(KSym {
        addr,
        kind,
        name: name.to_string(),
        module,
    })
}

/// One entry of the kprobe blacklist: an address range and the function it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlacklistEntry {
    pub start: u64,
    pub end: u64,
    pub name: String,
}

/// The functions kprobes refuse (`/sys/kernel/debug/kprobes/blacklist`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KprobeBlacklist {
    /// Sorted by start address.
    entries: Vec<BlacklistEntry>,
    /// `reach[i]`: the largest end of `entries[..=i]`, so one binary search answers whether
    /// any range starting at or before an address covers it (ranges nest and overlap).
    reach: Vec<u64>,
    /// The entries' names, sorted, for lookups by name.
    names: Vec<String>,
    /// False when the kernel showed every range as 0 (`kptr_restrict`): only names count then.
    addrs_known: bool,
}

impl KprobeBlacklist {
    /// Parses the blacklist's `0xstart-0xend\tsymbol` lines (a ` [module]` after the symbol is
    /// dropped); lines of any other shape are skipped.
    pub fn parse(text: &str) -> KprobeBlacklist {
        let mut entries: Vec<BlacklistEntry> = text
            .lines()
            .filter_map(|line| {
                let (range, name) = line.split_once(char::is_whitespace)?;
                let (start, end) = range.split_once('-')?;
                let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
                let name = name.split_whitespace().next()?;
                Some(BlacklistEntry {
                    start: hex(start)?,
                    end: hex(end)?,
                    name: name.to_string(),
                })
            })
            .collect();
        entries.sort_by_key(|e| e.start);
        let mut names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        names.sort();
        names.dedup();
        let addrs_known = entries.iter().any(|e| e.start != 0);
        let reach = entries
            .iter()
            .scan(0, |max, e| {
                *max = e.end.max(*max);
                Some(*max)
            })
            .collect();
        KprobeBlacklist {
            entries,
            reach,
            names,
            addrs_known,
        }
    }

    pub fn entries(&self) -> &[BlacklistEntry] {
        &self.entries
    }

    /// True if `name` is a blacklisted function.
    pub fn contains_name(&self, name: &str) -> bool {
        self.names
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok()
    }

    /// True if `addr` lies in a blacklisted range (never, when the kernel hid the addresses).
    pub fn contains_addr(&self, addr: u64) -> bool {
        if !self.addrs_known {
            return false;
        }
        let end = self.entries.partition_point(|e| e.start <= addr);
        end.checked_sub(1)
            .and_then(|last| self.reach.get(last))
            .is_some_and(|&reach| addr < reach)
    }

    /// True if a kprobe on `sym` would be refused: by address when the addresses are known (a
    /// static function can share its name with an allowed one elsewhere), else by name.
    pub fn blocks(&self, sym: &KSym) -> bool {
        if self.addrs_known && sym.addr != 0 {
            self.contains_addr(sym.addr)
        } else {
            self.contains_name(&sym.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(name: &str) -> &'static RegsLayout {
        regs(Target::by_name(name).unwrap())
    }

    fn at(l: &RegsLayout, name: &str) -> u32 {
        l.reg(name)
            .unwrap_or_else(|| panic!("{} has no {name}", l.name))
            .offset
    }

    #[test]
    fn every_name_a_table_uses_resolves() {
        for l in LAYOUTS {
            for name in l.arg_regs.iter().chain([&l.ret_reg, &l.sp_reg, &l.ip_reg]) {
                assert!(l.reg(name).is_some(), "{}: {name}", l.name);
            }
            for (alias, kernel) in l.aliases {
                assert!(l.regs.contains(kernel), "{}: {alias} -> {kernel}", l.name);
                assert!(
                    !l.regs.contains(alias),
                    "{}: {alias} shadows a register",
                    l.name
                );
            }
            for w in l.syscall_wrappers {
                for name in w.args.iter().chain([&w.regs_arg]) {
                    assert!(l.reg(name).is_some(), "{}: {name}", l.name);
                }
                assert_eq!(w.args.len(), 6);
            }
            for r in l.regs {
                assert_eq!(l.reg(r).unwrap().size, l.word);
            }
            // The user-visible register set is the perf context, ip and sp among it.
            assert!(l.perf_reg(l.ip_reg).is_some() && l.perf_reg(l.sp_reg).is_some());
        }
    }

    #[test]
    fn x86_64() {
        let l = layout("x86_64");
        assert_eq!(at(l, "r15"), 0);
        assert_eq!(at(l, "bp"), 32);
        assert_eq!(at(l, "ax"), 80);
        assert_eq!(at(l, "di"), 112);
        assert_eq!(at(l, "%di"), 112);
        assert_eq!(at(l, "%rdi"), 112);
        assert_eq!(at(l, "orig_ax"), 120);
        assert_eq!(at(l, "ip"), 128);
        assert_eq!(at(l, "flags"), 144);
        assert_eq!(at(l, "sp"), 152);
        assert_eq!(at(l, "ss"), 160);
        assert_eq!(l.ip().offset, 128);
        assert_eq!(l.sp().offset, 152);
        assert_eq!(l.ret().offset, 80);
        let reg = |n| RegSlot { offset: n, size: 8 };
        assert_eq!(l.arg(1, CallKind::Function), Some(ArgLoc::Reg(reg(112))));
        assert_eq!(l.arg(4, CallKind::Function), Some(ArgLoc::Reg(reg(88))));
        assert_eq!(l.arg(6, CallKind::Function), Some(ArgLoc::Reg(reg(64))));
        assert_eq!(
            l.arg(7, CallKind::Function),
            Some(ArgLoc::Stack { offset: 8, size: 8 })
        );
        assert_eq!(
            l.arg(8, CallKind::Function),
            Some(ArgLoc::Stack {
                offset: 16,
                size: 8
            })
        );
        assert_eq!(l.arg(0, CallKind::Function), None);
        // The wrapper's pt_regs * is in di; the 4th user argument is r10, not cx.
        assert_eq!(
            l.arg(1, CallKind::SyscallWrapper),
            Some(ArgLoc::Indirect {
                ptr: reg(112),
                field: reg(112)
            })
        );
        assert_eq!(
            l.arg(4, CallKind::SyscallWrapper),
            Some(ArgLoc::Indirect {
                ptr: reg(112),
                field: reg(56)
            })
        );
        assert_eq!(l.arg(7, CallKind::SyscallWrapper), None);
        assert_eq!(l.call_kind("__x64_sys_openat"), CallKind::SyscallWrapper);
        assert_eq!(l.call_kind("do_sys_openat2"), CallKind::Function);
        assert_eq!(l.call_kind("__x64_sys_"), CallKind::Function);
        let ia32 = l.syscall_wrapper("__ia32_sys_read").unwrap();
        assert_eq!(
            l.wrapper_arg(ia32, 1),
            Some(ArgLoc::Indirect {
                ptr: reg(112),
                field: reg(40)
            })
        );
        assert_eq!(l.stack_entry(0), Some(0));
        assert_eq!(l.stack_entry(3), Some(24));
        assert_eq!(l.perf_regs_size, 168);
        assert_eq!(l.perf_reg("ip"), Some(reg(128)));
    }

    #[test]
    fn aarch64() {
        let l = layout("aarch64");
        assert_eq!(at(l, "x0"), 0);
        assert_eq!(at(l, "x7"), 56);
        assert_eq!(at(l, "x29"), 232);
        assert_eq!(at(l, "fp"), 232);
        assert_eq!(at(l, "lr"), 240);
        assert_eq!(at(l, "sp"), 248);
        assert_eq!(at(l, "pc"), 256);
        assert_eq!(at(l, "pstate"), 264);
        assert_eq!(at(l, "orig_x0"), 272);
        assert_eq!(l.ip().offset, 256);
        assert_eq!(l.ret().offset, 0);
        assert_eq!(
            l.arg(9, CallKind::Function),
            Some(ArgLoc::Stack { offset: 0, size: 8 })
        );
        assert_eq!(
            l.arg(3, CallKind::SyscallWrapper),
            Some(ArgLoc::Indirect {
                ptr: RegSlot { offset: 0, size: 8 },
                field: RegSlot {
                    offset: 16,
                    size: 8
                }
            })
        );
        assert_eq!(l.call_kind("__arm64_sys_read"), CallKind::SyscallWrapper);
        // orig_x0 is the kernel's: a perf program sees struct user_pt_regs only.
        assert_eq!(l.perf_regs_size, 272);
        assert!(l.perf_reg("pc").is_some());
        assert!(l.perf_reg("orig_x0").is_none());
    }

    #[test]
    fn armv7() {
        let l = layout("armv7");
        assert_eq!(at(l, "r0"), 0);
        assert_eq!(at(l, "r3"), 12);
        assert_eq!(at(l, "fp"), 44);
        assert_eq!(at(l, "r11"), 44);
        assert_eq!(at(l, "ip"), 48);
        assert_eq!(at(l, "sp"), 52);
        assert_eq!(at(l, "lr"), 56);
        assert_eq!(at(l, "pc"), 60);
        assert_eq!(at(l, "cpsr"), 64);
        assert_eq!(at(l, "ORIG_r0"), 68);
        assert_eq!(at(l, "orig_r0"), 68);
        assert_eq!(l.reg("r0").unwrap().size, 4);
        assert_eq!(
            l.arg(5, CallKind::Function),
            Some(ArgLoc::Stack { offset: 0, size: 4 })
        );
        assert_eq!(
            l.arg(6, CallKind::Function),
            Some(ArgLoc::Stack { offset: 4, size: 4 })
        );
        assert_eq!(l.arg(1, CallKind::SyscallWrapper), None);
        assert_eq!(l.call_kind("sys_read"), CallKind::Function);
        assert_eq!(l.stack_entry(2), Some(8));
        assert_eq!(l.perf_regs_size, 72);
    }

    #[test]
    fn mips_o32() {
        let l = layout("mips");
        assert_eq!(l, layout("mipsel"));
        // args[8] (32 bytes) precede regs[32] on 32-bit kernels.
        assert_eq!(at(l, "r0"), 32);
        assert_eq!(at(l, "a0"), 48);
        assert_eq!(at(l, "r4"), 48);
        assert_eq!(at(l, "v0"), 40);
        assert_eq!(at(l, "t0"), 64);
        assert_eq!(at(l, "sp"), 32 + 29 * 4);
        assert_eq!(at(l, "ra"), 32 + 31 * 4);
        assert_eq!(at(l, "c0_status"), 160);
        assert_eq!(at(l, "hi"), 164);
        assert_eq!(at(l, "lo"), 168);
        assert_eq!(at(l, "c0_badvaddr"), 172);
        assert_eq!(at(l, "c0_cause"), 176);
        assert_eq!(at(l, "c0_epc"), 180);
        assert_eq!(l.ip().offset, 180);
        assert_eq!(l.ret().offset, 40);
        assert!(l.reg("a4").is_none());
        // o32: four register arguments, then the stack above the 16-byte home area.
        assert_eq!(
            l.arg(4, CallKind::Function),
            Some(ArgLoc::Reg(RegSlot {
                offset: 60,
                size: 4
            }))
        );
        assert_eq!(
            l.arg(5, CallKind::Function),
            Some(ArgLoc::Stack {
                offset: 16,
                size: 4
            })
        );
        assert_eq!(
            l.arg(6, CallKind::Function),
            Some(ArgLoc::Stack {
                offset: 20,
                size: 4
            })
        );
        assert!(l.perf_reg("c0_epc").is_some());
    }

    #[test]
    fn mips_n64() {
        let l = layout("mips64el");
        assert_eq!(at(l, "r0"), 0);
        assert_eq!(at(l, "a0"), 32);
        assert_eq!(at(l, "a4"), 64);
        assert_eq!(at(l, "t0"), 96);
        assert_eq!(at(l, "sp"), 232);
        assert_eq!(at(l, "c0_status"), 256);
        assert_eq!(at(l, "hi"), 264);
        assert_eq!(at(l, "lo"), 272);
        assert_eq!(at(l, "c0_epc"), 296);
        assert_eq!(
            l.arg(8, CallKind::Function),
            Some(ArgLoc::Reg(RegSlot {
                offset: 88,
                size: 8
            }))
        );
        assert_eq!(
            l.arg(9, CallKind::Function),
            Some(ArgLoc::Stack { offset: 0, size: 8 })
        );
        assert_eq!(l.perf_regs_size, 304);
        assert!(l.perf_reg("c0_epc").is_some());
    }

    #[test]
    fn powerpc() {
        let l = layout("powerpc");
        assert_eq!(at(l, "gpr0"), 0);
        assert_eq!(at(l, "gpr3"), 12);
        assert_eq!(at(l, "r3"), 12);
        assert_eq!(at(l, "%r31"), 124);
        assert_eq!(at(l, "nip"), 128);
        assert_eq!(at(l, "msr"), 132);
        assert_eq!(at(l, "orig_gpr3"), 136);
        assert_eq!(at(l, "link"), 144);
        assert_eq!(at(l, "mq"), 156);
        assert_eq!(at(l, "result"), 172);
        assert!(l.reg("softe").is_none());
        assert_eq!(l.sp().offset, 4);
        assert_eq!(
            l.arg(9, CallKind::Function),
            Some(ArgLoc::Stack { offset: 8, size: 4 })
        );
        assert_eq!(l.perf_regs_size, 176);
    }

    #[test]
    fn powerpc64() {
        for name in ["powerpc64", "powerpc64le"] {
            let l = layout(name);
            assert_eq!(at(l, "gpr3"), 24);
            assert_eq!(at(l, "r10"), 80);
            assert_eq!(at(l, "nip"), 256);
            assert_eq!(at(l, "msr"), 264);
            assert_eq!(at(l, "orig_gpr3"), 272);
            assert_eq!(at(l, "ctr"), 280);
            assert_eq!(at(l, "link"), 288);
            assert_eq!(at(l, "lr"), 288);
            assert_eq!(at(l, "softe"), 312);
            assert_eq!(at(l, "trap"), 320);
            assert_eq!(at(l, "result"), 344);
            assert_eq!(l.ip().offset, 256);
            assert_eq!(l.ret().offset, 24);
            assert_eq!(
                l.arg(8, CallKind::Function),
                Some(ArgLoc::Reg(RegSlot {
                    offset: 80,
                    size: 8
                }))
            );
            assert_eq!(l.perf_regs_size, 352);
        }
        let stack9 = |name| layout(name).arg(9, CallKind::Function);
        assert_eq!(
            stack9("powerpc64"),
            Some(ArgLoc::Stack {
                offset: 112,
                size: 8
            })
        );
        assert_eq!(
            stack9("powerpc64le"),
            Some(ArgLoc::Stack {
                offset: 96,
                size: 8
            })
        );
    }

    #[test]
    fn huge_argument_numbers_do_not_overflow() {
        for l in LAYOUTS {
            assert_eq!(l.arg(u32::MAX, CallKind::Function), None);
            assert_eq!(l.stack_entry(u32::MAX), None);
            assert_eq!(l.arg(u32::MAX, CallKind::SyscallWrapper), None);
        }
        assert!(X86_64.reg("").is_none() && X86_64.reg("%").is_none());
    }

    #[test]
    fn narrowing_follows_byte_order() {
        let s = RegSlot {
            offset: 24,
            size: 8,
        };
        assert_eq!(
            s.narrow(1, Endian::Little),
            Some(RegSlot {
                offset: 24,
                size: 1
            })
        );
        assert_eq!(
            s.narrow(4, Endian::Big),
            Some(RegSlot {
                offset: 28,
                size: 4
            })
        );
        assert_eq!(s.narrow(3, Endian::Big), None);
        assert_eq!(RegSlot { offset: 0, size: 4 }.narrow(8, Endian::Big), None);
    }

    const KALLSYMS: &str = "\
ffffffff81000000 T _text
ffffffff81000000 T _stext
ffffffff81001000 t __pfx_vfs_read
ffffffff81001010 T vfs_read
ffffffff81001100 T vfs_write
ffffffff81001200 t vfs_helper.isra.0
ffffffff81001300 t nmi_handle
ffffffff81001400 W abort
ffffffff81001500 D jiffies
bogus line
ffffffffc0001000 t mod_fn\t[my_mod]
ffffffffc0001100 T vfs_mod_hook\t[my_mod]
";

    #[test]
    fn elfv1_dot_symbols_are_the_functions() {
        let k = Kallsyms::parse(
            "c000000001ff0000 D vfs_read\nc000000000400000 T .vfs_read\nc000000000400100 T .ksys_read\n",
        );
        let f = k.lookup("vfs_read").unwrap();
        assert!(f.is_function());
        assert_eq!(f.addr, 0xc000000000400000);
        assert_eq!(
            k.symbolize(0xc000000000400104).as_deref(),
            Some("ksys_read+0x4")
        );
        let bl = KprobeBlacklist::default();
        let names: Vec<&str> = k
            .functions_matching("*_read", &bl)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["ksys_read", "vfs_read"]);
    }

    #[test]
    fn kallsyms_parses_and_symbolizes() {
        let k = Kallsyms::parse(KALLSYMS);
        assert_eq!(k.symbols().len(), 11);
        assert!(!k.addresses_hidden());
        assert_eq!(k.lookup("vfs_write").unwrap().addr, 0xffffffff81001100);
        assert_eq!(
            k.lookup("mod_fn").unwrap().module.as_deref(),
            Some("my_mod")
        );
        assert_eq!(k.symbolize(0xffffffff81001010).unwrap(), "vfs_read");
        assert_eq!(k.symbolize(0xffffffff81001042).unwrap(), "vfs_read+0x32");
        assert_eq!(
            k.symbolize(0xffffffffc0001004).unwrap(),
            "mod_fn+0x4 [my_mod]"
        );
        assert_eq!(k.symbolize(0xffffffff81000000).unwrap(), "_text");
        assert_eq!(k.symbolize(0x1000), None);
        assert_eq!(
            k.symbolize(0xffffffffc0001100).unwrap(),
            "vfs_mod_hook [my_mod]"
        );
        assert_eq!(k.symbolize(0xffffffffc0001101), None);
        let (s, off) = k.symbol(0xffffffff81001250).unwrap();
        assert_eq!((s.name.as_str(), off), ("vfs_helper.isra.0", 0x50));
    }

    #[test]
    fn function_globs_skip_data_stubs_and_the_blacklist() {
        let k = Kallsyms::parse(KALLSYMS);
        let bl = KprobeBlacklist::parse(
            "0xffffffff81001300-0xffffffff81001380\tnmi_handle\n\
             0xffffffff81001100-0xffffffff81001180\tvfs_write\n\
             garbage\n",
        );
        assert_eq!(bl.entries().len(), 2);
        assert!(bl.contains_name("nmi_handle"));
        assert!(bl.contains_addr(0xffffffff81001340));
        assert!(!bl.contains_addr(0xffffffff81001380));
        let names = |glob| -> Vec<String> {
            k.functions_matching(glob, &bl)
                .iter()
                .map(|s| s.name.clone())
                .collect()
        };
        assert_eq!(
            names("vfs_*"),
            ["vfs_helper.isra.0", "vfs_mod_hook", "vfs_read"]
        );
        assert_eq!(names("*"), {
            let mut v = vec!["_stext", "_text", "abort", "mod_fn"];
            v.extend(["vfs_helper.isra.0", "vfs_mod_hook", "vfs_read"]);
            v
        });
        assert!(names("jiffies").is_empty());
        assert_eq!(names("nmi_handl?"), Vec::<String>::new());
        let empty = KprobeBlacklist::default();
        assert_eq!(k.functions_matching("nmi_*", &empty).len(), 1);
    }

    #[test]
    fn hidden_addresses_fall_back_to_names() {
        let k = Kallsyms::parse("0000000000000000 T vfs_read\n0000000000000000 T nmi_handle\n");
        assert!(k.addresses_hidden());
        assert_eq!(k.symbolize(0), None);
        let bl =
            KprobeBlacklist::parse("0x0000000000000000-0x0000000000000000\tnmi_handle [kvm]\n");
        assert_eq!(bl.entries()[0].name, "nmi_handle");
        assert!(!bl.contains_addr(0));
        let found = k.functions_matching("*", &bl);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "vfs_read");
    }

    #[test]
    fn this_machines_kallsyms_parses() {
        // Any Linux host has the file; reading it as non-root gives hidden addresses, which
        // parse just as well.
        let text = std::fs::read_to_string("/proc/kallsyms").expect("/proc/kallsyms");
        let k = Kallsyms::parse(&text);
        assert_eq!(k.symbols().len(), text.lines().count());
        if let Some(s) = k.lookup("vfs_read").filter(|_| !k.addresses_hidden()) {
            assert_eq!(k.symbolize(s.addr + 1).unwrap(), "vfs_read+0x1");
        }
    }
}
