//! SystemTap SDT (USDT) probes: the `.note.stapsdt` notes `<sys/sdt.h>` leaves in a binary,
//! their addresses adjusted by the `.stapsdt.base` rule and turned into file offsets, and their
//! argument strings (`-4@%eax 8@-8(%rbp) 4@$5`) decoded per architecture into register, memory
//! or constant locations, with the register names `ktap_bpf::arch` resolves in `pt_regs`.

use crate::read::{cstr, Reader};
use crate::symbols::{suggest, SymKind};
use crate::{machine, Class, Elf, ElfError};

const SHT_NOTE: u32 = 7;
const NT_STAPSDT: u32 = 3;
/// MIPS `e_flags`: the n32 ABI (64-bit registers in a 32-bit file), named like n64.
const EF_MIPS_ABI2: u32 = 0x20;

/// One SDT probe site. A probe used in several places (or inlined) has a note for each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdtNote<'a> {
    pub provider: &'a str,
    pub name: &'a str,
    /// The probe's address as the note records it.
    pub pc: u64,
    /// The address of `.stapsdt.base` when the note was written.
    pub base: u64,
    /// The semaphore's address as recorded; 0 when the probe has none.
    pub semaphore: u64,
    /// The argument string as recorded, e.g. `-4@%eax 8@-8(%rbp)`.
    pub args_text: &'a str,
    pub args: Vec<SdtArg<'a>>,
    /// Where the probe is now: `pc` moved by however far the file was relocated since the
    /// note was written (prelink), i.e. `pc + (address of .stapsdt.base - base)`.
    pub addr: u64,
    /// The file offset of `addr`, which the uprobe takes; `None` if no loadable segment holds
    /// it (a broken note).
    pub offset: Option<u64>,
    /// The semaphore's address, moved as `addr` is; `None` when the probe has none.
    pub semaphore_addr: Option<u64>,
    /// The semaphore's file offset (the uprobe's `ref_ctr_offset`, a 2-byte counter the kernel
    /// increments while the probe is attached); `None` without a semaphore or if unmapped.
    pub semaphore_offset: Option<u64>,
}

impl SdtNote<'_> {
    /// `provider:name`.
    pub fn full_name(&self) -> String {
        format!("{}:{}", self.provider, self.name)
    }
}

/// One argument of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdtArg<'a> {
    /// The argument's spec as recorded, e.g. `-4@-20(%rbp)`.
    pub text: &'a str,
    /// Bytes: 1, 2, 4 or 8 (0 when the spec has no size).
    pub size: u8,
    pub signed: bool,
    pub loc: SdtLoc,
}

/// Where an argument's value is when the probe fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdtLoc {
    /// In register `reg` (a `ktap_bpf::arch` name: `ax`, `x0`, `r4`, `gpr3`): its low `size`
    /// bytes after a right shift of `shift` bits (8 for x86's `%ah`..`%dh`, else 0).
    Reg { reg: &'static str, shift: u8 },
    /// In memory (user memory, a probe-read) at the value of register `reg` plus `offset`. For
    /// x86's `sym(%rip)` the register is `ip` (the probe's address at run time) and the offset
    /// is the symbol's distance from the probe, so PIEs and libraries need no load address.
    Mem { reg: &'static str, offset: i64 },
    /// The constant itself.
    Const(i64),
    /// A form ktap does not decode (indexed `(%rax,%rbx,8)`, `%fs:` TLS, an unknown
    /// register or symbol); `text` has the spec for the message.
    Unsupported,
}

impl<'a> Elf<'a> {
    /// Every SDT note in the file, in file order; empty when it has none.
    pub fn sdt_notes(&self) -> Result<Vec<SdtNote<'a>>, ElfError> {
        let Some(sec) = self
            .sections
            .iter()
            .find(|s| s.name == ".note.stapsdt" && s.sh_type == SHT_NOTE)
        else {
            return Ok(Vec::new());
        };
        let data = self.section_data(sec)?;
        let r = Reader {
            data,
            ..self.reader()
        };
        let base_now = self.section(".stapsdt.base").map(|s| s.addr);
        let align = if sec.addralign == 8 { 8 } else { 4 };
        let pad = |n: usize| n.checked_add(align - 1).map(|n| n & !(align - 1));
        let symbols = Symbols::new(self);
        let mut notes = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            let (Some(namesz), Some(descsz), Some(ntype)) =
                (r.u32(at), r.u32(at + 4), r.u32(at + 8))
            else {
                return Err(ElfError::Truncated("an SDT note"));
            };
            let name_at = at + 12;
            let desc_at = pad(namesz as usize)
                .and_then(|n| name_at.checked_add(n))
                .ok_or(ElfError::Truncated("an SDT note"))?;
            let next = pad(descsz as usize)
                .and_then(|n| desc_at.checked_add(n))
                .ok_or(ElfError::Truncated("an SDT note"))?;
            let owner = name_at
                .checked_add(namesz as usize)
                .and_then(|end| data.get(name_at..end));
            let desc = desc_at
                .checked_add(descsz as usize)
                .and_then(|end| data.get(desc_at..end))
                .ok_or(ElfError::Truncated("an SDT note"))?;
            at = next;
            if ntype != NT_STAPSDT || owner != Some(b"stapsdt\0".as_slice()) {
                continue;
            }
            let d = Reader { data: desc, ..r };
            let w = d.word_size();
            let (Some(pc), Some(base), Some(semaphore)) = (d.word(0), d.word(w), d.word(2 * w))
            else {
                return Err(ElfError::Truncated("an SDT note"));
            };
            let mut strings = desc.get(3 * w..).unwrap_or(&[]);
            let mut next_str = || {
                let s = cstr(strings)?;
                strings = strings.get(s.len() + 1..).unwrap_or(&[]);
                Some(s)
            };
            let (Some(provider), Some(name)) = (next_str(), next_str()) else {
                return Err(ElfError::Malformed("an SDT note without its names".into()));
            };
            let args_text = next_str().unwrap_or("");
            let shift = base_now.map_or(0, |now| now.wrapping_sub(base));
            let addr = pc.wrapping_add(shift);
            let semaphore_addr = (semaphore != 0).then(|| semaphore.wrapping_add(shift));
            let args = split_args(args_text)
                .map(|text| decode_arg(self, text, addr, &symbols))
                .collect();
            notes.push(SdtNote {
                provider,
                name,
                pc,
                base,
                semaphore,
                args_text,
                args,
                addr,
                offset: self.file_offset(addr).ok(),
                semaphore_addr,
                semaphore_offset: semaphore_addr.and_then(|a| self.file_offset(a).ok()),
            });
        }
        Ok(notes)
    }

    /// The sites of SDT probe `query`: `name` or `provider:name`. None is an error with the
    /// nearest probe names.
    pub fn find_sdt(&self, query: &str) -> Result<Vec<SdtNote<'a>>, ElfError> {
        let (provider, name) = match query.split_once(':') {
            Some((p, n)) => (Some(p), n),
            None => (None, query),
        };
        let all = self.sdt_notes()?;
        let found: Vec<SdtNote<'a>> = all
            .iter()
            .filter(|n| n.name == name && provider.is_none_or(|p| p == n.provider))
            .cloned()
            .collect();
        if found.is_empty() {
            let mut names: Vec<String> = all.iter().map(SdtNote::full_name).collect();
            names.sort();
            names.dedup();
            let wanted = match provider {
                Some(_) => query.to_string(),
                None => all
                    .iter()
                    .find(|n| n.name.len() == name.len())
                    .map_or(query.to_string(), |n| format!("{}:{name}", n.provider)),
            };
            return Err(ElfError::SdtNotFound {
                name: query.to_string(),
                suggestions: suggest(&wanted, names.iter().map(String::as_str)),
            });
        }
        Ok(found)
    }
}

/// The argument specs of `text`, split at spaces outside brackets (arm64 writes `[sp, 16]`).
fn split_args(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text.trim();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut depth = 0i32;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                c == ' ' && depth <= 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let (arg, tail) = rest.split_at(end);
        rest = tail.trim_start();
        Some(arg)
    })
}

/// Object and function addresses by name, for x86's `sym(%rip)` operands.
struct Symbols<'e, 'a> {
    elf: Option<&'e Elf<'a>>,
    /// Sorted by name, gathered the first time an argument names a symbol: most markers'
    /// arguments are registers and constants, and a C++ library has tens of thousands.
    list: std::cell::OnceCell<Vec<(&'a str, u64)>>,
}

impl<'e, 'a> Symbols<'e, 'a> {
    fn new(elf: &'e Elf<'a>) -> Symbols<'e, 'a> {
        Symbols {
            elf: Some(elf),
            list: std::cell::OnceCell::new(),
        }
    }

    fn get(&self, name: &str) -> Option<u64> {
        let list = self.list.get_or_init(|| {
            let mut list: Vec<(&str, u64)> = self
                .elf
                .and_then(|elf| elf.symbols().ok())
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s.is_defined() && matches!(s.kind, SymKind::Object | SymKind::Func))
                .map(|s| (s.name, s.value))
                .collect();
            list.sort();
            list
        });
        let i = list.partition_point(|(n, _)| *n < name);
        list.get(i).filter(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

fn decode_arg<'a>(elf: &Elf<'a>, text: &'a str, probe: u64, symbols: &Symbols) -> SdtArg<'a> {
    let unsupported = SdtArg {
        text,
        size: 0,
        signed: false,
        loc: SdtLoc::Unsupported,
    };
    let Some((size, spec)) = text.split_once('@') else {
        return unsupported;
    };
    let (signed, size) = match size.strip_prefix('-') {
        Some(s) => (true, s),
        None => (false, size),
    };
    let size = match size.parse::<u8>() {
        Ok(s @ (1 | 2 | 4 | 8)) => s,
        _ => return unsupported,
    };
    let loc = match elf.machine {
        machine::X86_64 => x86_loc(spec, probe, symbols),
        machine::AARCH64 => arm64_loc(spec),
        machine::ARM => arm_loc(spec),
        machine::MIPS => {
            let n64_names = elf.class == Class::Elf64 || elf.flags & EF_MIPS_ABI2 != 0;
            mips_loc(spec, n64_names)
        }
        machine::PPC | machine::PPC64 => ppc_loc(spec),
        _ => None,
    };
    SdtArg {
        text,
        size,
        signed,
        loc: loc.unwrap_or(SdtLoc::Unsupported),
    }
}

/// A decimal or `0x` hexadecimal integer with an optional sign.
fn int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()? as i64,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse::<u64>().ok()? as i64
        }
        None => return None,
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// x86-64 (AT&T syntax): `%reg`, `OFF(%reg)`, `(%reg)`, `$CONST`, `SYM+OFF(%rip)`.
fn x86_loc(spec: &str, probe: u64, symbols: &Symbols) -> Option<SdtLoc> {
    if let Some(c) = spec.strip_prefix('$') {
        return int(c).map(SdtLoc::Const);
    }
    if let Some(r) = spec.strip_prefix('%') {
        let (reg, shift) = x86_reg(r)?;
        return Some(SdtLoc::Reg { reg, shift });
    }
    let (disp, inner) = spec.strip_suffix(')')?.split_once('(')?;
    let (reg, 0) = x86_reg(inner.strip_prefix('%')?)? else {
        return None;
    };
    if reg == "ip" {
        // RIP-relative: the operand's address is SYM+OFF's link-time address, which is at a
        // fixed distance from the probe wherever the file is loaded.
        let (sym, off) = displacement(disp)?;
        let target = symbols.get(sym?)?.wrapping_add(off as u64);
        return Some(SdtLoc::Mem {
            reg,
            offset: target.wrapping_sub(probe) as i64,
        });
    }
    let offset = match displacement(disp)? {
        (None, off) => off,
        (Some(_), _) => return None,
    };
    Some(SdtLoc::Mem { reg, offset })
}

/// An assembler displacement: integers and at most one symbol joined by `+` and `-`
/// (`-8`, `16+foo`, `foo-4`, empty for 0).
fn displacement(s: &str) -> Option<(Option<&str>, i64)> {
    let mut sym = None;
    let mut total = 0i64;
    let mut rest = s.trim();
    while !rest.is_empty() {
        // Each term runs to the next sign after its own first character.
        let split = rest
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '+' || c == '-')
            .map_or(rest.len(), |(i, _)| i);
        let (term, tail) = rest.split_at(split);
        let (neg, body) = match term.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, term.strip_prefix('+').unwrap_or(term)),
        };
        match int(body) {
            Some(v) => total = total.wrapping_add(if neg { v.wrapping_neg() } else { v }),
            None if sym.is_none() && !neg && is_symbol(body) => sym = Some(body),
            None => return None,
        }
        rest = tail;
    }
    Some((sym, total))
}

fn is_symbol(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'.')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'$')
}

/// An x86 register name (without `%`) as the kernel's pt_regs name, with the bit shift of the
/// high-byte registers.
fn x86_reg(r: &str) -> Option<(&'static str, u8)> {
    const LEGACY: &[(&str, [&str; 4], Option<&str>)] = &[
        ("ax", ["rax", "eax", "ax", "al"], Some("ah")),
        ("bx", ["rbx", "ebx", "bx", "bl"], Some("bh")),
        ("cx", ["rcx", "ecx", "cx", "cl"], Some("ch")),
        ("dx", ["rdx", "edx", "dx", "dl"], Some("dh")),
        ("si", ["rsi", "esi", "si", "sil"], None),
        ("di", ["rdi", "edi", "di", "dil"], None),
        ("bp", ["rbp", "ebp", "bp", "bpl"], None),
        ("sp", ["rsp", "esp", "sp", "spl"], None),
        ("ip", ["rip", "eip", "ip", "ip"], None),
    ];
    for (name, forms, high) in LEGACY {
        if forms.contains(&r) {
            return Some((name, 0));
        }
        if *high == Some(r) {
            return Some((name, 8));
        }
    }
    const NUMBERED: [&str; 8] = ["r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];
    let digits = r.strip_prefix('r')?;
    let n = digits.trim_end_matches(['d', 'w', 'b', 'l']);
    if n.len() + 1 < digits.len() {
        return None;
    }
    NUMBERED
        .iter()
        .find(|name| name[1..] == *n)
        .map(|&name| (name, 0))
}

const ARM64_X: [&str; 31] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27",
    "x28", "x29", "x30",
];

fn arm64_reg(r: &str) -> Option<&'static str> {
    match r.trim() {
        "sp" | "wsp" => Some("sp"),
        "fp" => Some("x29"),
        "lr" => Some("x30"),
        r => {
            let n: usize = r.strip_prefix(['x', 'w'])?.parse().ok()?;
            ARM64_X.get(n).copied()
        }
    }
}

/// AArch64: `xN`/`wN`, `[reg]`, `[reg, OFF]` (`#` optional), constants bare or with `#`.
fn arm64_loc(spec: &str) -> Option<SdtLoc> {
    if let Some(inner) = spec.strip_prefix('[') {
        return bracket_mem(inner, arm64_reg);
    }
    if let Some(c) = int(spec.strip_prefix('#').unwrap_or(spec)) {
        return Some(SdtLoc::Const(c));
    }
    arm64_reg(spec).map(|reg| SdtLoc::Reg { reg, shift: 0 })
}

/// `[reg]` or `[reg, #OFF]` after the `[`.
fn bracket_mem(inner: &str, reg: fn(&str) -> Option<&'static str>) -> Option<SdtLoc> {
    let inner = inner.strip_suffix(']')?;
    let (base, offset) = match inner.split_once(',') {
        Some((b, o)) => {
            let o = o.trim();
            (b, int(o.strip_prefix('#').unwrap_or(o))?)
        }
        None => (inner, 0),
    };
    Some(SdtLoc::Mem {
        reg: reg(base)?,
        offset,
    })
}

fn arm_reg(r: &str) -> Option<&'static str> {
    const NAMES: [&str; 16] = [
        "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "fp", "ip", "sp", "lr",
        "pc",
    ];
    match r.trim() {
        "fp" => Some("fp"),
        "ip" => Some("ip"),
        "sp" => Some("sp"),
        "lr" => Some("lr"),
        "pc" => Some("pc"),
        // GCC's names for r9 and r10 in some ABIs.
        "sb" => Some("r9"),
        "sl" => Some("r10"),
        r => {
            let n: usize = r.strip_prefix('r')?.parse().ok()?;
            NAMES.get(n).copied()
        }
    }
}

/// 32-bit ARM: `rN`/`fp`/`sp`..., `[reg]`, `[reg, #OFF]`, `#CONST`.
fn arm_loc(spec: &str) -> Option<SdtLoc> {
    if let Some(inner) = spec.strip_prefix('[') {
        return bracket_mem(inner, arm_reg);
    }
    if let Some(c) = spec.strip_prefix('#') {
        return int(c).map(SdtLoc::Const);
    }
    arm_reg(spec).map(|reg| SdtLoc::Reg { reg, shift: 0 })
}

const MIPS_R: [&str; 32] = [
    "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
    "r15", "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24", "r25", "r26", "r27",
    "r28", "r29", "r30", "r31",
];

/// A MIPS register (`$2`, `$sp`, `$a0`) as `rN`. `$8`-`$15` have ABI-dependent names.
fn mips_reg(r: &str, n64_names: bool) -> Option<&'static str> {
    let name = r.trim().strip_prefix('$')?;
    if let Ok(n) = name.parse::<usize>() {
        return MIPS_R.get(n).copied();
    }
    let n = match name {
        "zero" => 0,
        "at" => 1,
        "gp" => 28,
        "sp" => 29,
        "fp" | "s8" => 30,
        "ra" => 31,
        _ => {
            let mut chars = name.chars();
            let class = chars.next()?;
            let d: usize = chars.as_str().parse().ok()?;
            match (class, n64_names) {
                ('v', _) if d < 2 => 2 + d,
                ('a', false) if d < 4 => 4 + d,
                ('a', true) if d < 8 => 4 + d,
                ('t', false) if d < 8 => 8 + d,
                ('t', true) if d < 4 => 12 + d,
                ('t', _) if d == 8 || d == 9 => 16 + d,
                ('s', _) if d < 8 => 16 + d,
                ('k', _) if d < 2 => 26 + d,
                _ => return None,
            }
        }
    };
    MIPS_R.get(n).copied()
}

/// MIPS: `$reg`, `OFF($reg)`, `($reg)`, bare constants.
fn mips_loc(spec: &str, n64_names: bool) -> Option<SdtLoc> {
    if let Some(c) = int(spec) {
        return Some(SdtLoc::Const(c));
    }
    if let Some((disp, inner)) = spec.strip_suffix(')').and_then(|s| s.split_once('(')) {
        let offset = if disp.is_empty() { 0 } else { int(disp)? };
        return Some(SdtLoc::Mem {
            reg: mips_reg(inner, n64_names)?,
            offset,
        });
    }
    mips_reg(spec, n64_names).map(|reg| SdtLoc::Reg { reg, shift: 0 })
}

const PPC_GPR: [&str; 32] = [
    "gpr0", "gpr1", "gpr2", "gpr3", "gpr4", "gpr5", "gpr6", "gpr7", "gpr8", "gpr9", "gpr10",
    "gpr11", "gpr12", "gpr13", "gpr14", "gpr15", "gpr16", "gpr17", "gpr18", "gpr19", "gpr20",
    "gpr21", "gpr22", "gpr23", "gpr24", "gpr25", "gpr26", "gpr27", "gpr28", "gpr29", "gpr30",
    "gpr31",
];

/// A PowerPC GPR: `%r3`, `r3` or, as GCC prints it without `-mregnames`, a bare `3`.
fn ppc_reg(r: &str) -> Option<&'static str> {
    let r = r.trim();
    let r = r.strip_prefix('%').unwrap_or(r);
    let r = r.strip_prefix('r').unwrap_or(r);
    PPC_GPR.get(r.parse::<usize>().ok()?).copied()
}

/// PowerPC: registers as above, `OFF(reg)`, and constants marked `i` (sdt.h prints operands
/// with `%I`, which writes `i` before an immediate, so a bare number is a register).
fn ppc_loc(spec: &str) -> Option<SdtLoc> {
    if let Some(c) = spec.strip_prefix('i') {
        return int(c).map(SdtLoc::Const);
    }
    if let Some((disp, inner)) = spec.strip_suffix(')').and_then(|s| s.split_once('(')) {
        let offset = if disp.is_empty() { 0 } else { int(disp)? };
        return Some(SdtLoc::Mem {
            reg: ppc_reg(inner)?,
            offset,
        });
    }
    ppc_reg(spec).map(|reg| SdtLoc::Reg { reg, shift: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(reg: &'static str) -> Option<SdtLoc> {
        Some(SdtLoc::Reg { reg, shift: 0 })
    }

    fn mem(reg: &'static str, offset: i64) -> Option<SdtLoc> {
        Some(SdtLoc::Mem { reg, offset })
    }

    #[test]
    fn splits_at_spaces_outside_brackets() {
        let v: Vec<&str> = split_args(" -4@x0  8@[sp, 16] -8@[x1] ").collect();
        assert_eq!(v, ["-4@x0", "8@[sp, 16]", "-8@[x1]"]);
        assert_eq!(split_args("").count(), 0);
        assert_eq!(split_args("8@]] 4@[[").count(), 2);
    }

    #[test]
    fn x86_forms() {
        let syms = Symbols {
            elf: None,
            list: vec![("CheckpointStats", 0x2000), ("NBuffers", 0x3000)].into(),
        };
        let x = |s| x86_loc(s, 0x1000, &syms);
        assert_eq!(x("%eax"), reg("ax"));
        assert_eq!(x("%rdi"), reg("di"));
        assert_eq!(x("%r12d"), reg("r12"));
        assert_eq!(x("%r8b"), reg("r8"));
        assert_eq!(x("%r15w"), reg("r15"));
        assert_eq!(x("%dil"), reg("di"));
        assert_eq!(
            x("%ah"),
            Some(SdtLoc::Reg {
                reg: "ax",
                shift: 8
            })
        );
        assert_eq!(x("-24(%rbp)"), mem("bp", -24));
        assert_eq!(x("112(%rsp)"), mem("sp", 112));
        assert_eq!(x("(%rdi)"), mem("di", 0));
        assert_eq!(x("0x10(%r13)"), mem("r13", 16));
        assert_eq!(x("$5"), Some(SdtLoc::Const(5)));
        assert_eq!(x("$-1"), Some(SdtLoc::Const(-1)));
        assert_eq!(x("CheckpointStats(%rip)"), mem("ip", 0x1000));
        assert_eq!(x("4+CheckpointStats(%rip)"), mem("ip", 0x1004));
        assert_eq!(x("NBuffers-8(%rip)"), mem("ip", 0x1ff8));
        assert_eq!(x("Unknown(%rip)"), None);
        assert_eq!(x("8(%rax,%rbx,8)"), None);
        assert_eq!(x("%fs:16"), None);
        assert_eq!(x("%r16"), None);
        assert_eq!(x("%r1"), None);
        assert_eq!(x("%xmm0"), None);
        assert_eq!(x("foo(%rbp)"), None);
    }

    #[test]
    fn arm_forms() {
        assert_eq!(arm64_loc("x0"), reg("x0"));
        assert_eq!(arm64_loc("w19"), reg("x19"));
        assert_eq!(arm64_loc("x30"), reg("x30"));
        assert_eq!(arm64_loc("x31"), None);
        assert_eq!(arm64_loc("[sp, 16]"), mem("sp", 16));
        assert_eq!(arm64_loc("[x29, #-8]"), mem("x29", -8));
        assert_eq!(arm64_loc("[x10]"), mem("x10", 0));
        assert_eq!(arm64_loc("42"), Some(SdtLoc::Const(42)));
        assert_eq!(arm64_loc("#-3"), Some(SdtLoc::Const(-3)));
        assert_eq!(arm_loc("r0"), reg("r0"));
        assert_eq!(arm_loc("r11"), reg("fp"));
        assert_eq!(arm_loc("[fp, #-8]"), mem("fp", -8));
        assert_eq!(arm_loc("[r12]"), mem("ip", 0));
        assert_eq!(arm_loc("#42"), Some(SdtLoc::Const(42)));
        assert_eq!(arm_loc("[r3, r2]"), None);
        assert_eq!(arm_loc("r16"), None);
    }

    #[test]
    fn mips_forms() {
        assert_eq!(mips_loc("$2", false), reg("r2"));
        assert_eq!(mips_loc("$a0", false), reg("r4"));
        assert_eq!(mips_loc("$t0", false), reg("r8"));
        assert_eq!(mips_loc("$t0", true), reg("r12"));
        assert_eq!(mips_loc("$a4", true), reg("r8"));
        assert_eq!(mips_loc("$a4", false), None);
        assert_eq!(mips_loc("$t9", false), reg("r25"));
        assert_eq!(mips_loc("16($sp)", false), mem("r29", 16));
        assert_eq!(mips_loc("-8($fp)", true), mem("r30", -8));
        assert_eq!(mips_loc("($4)", false), mem("r4", 0));
        assert_eq!(mips_loc("42", false), Some(SdtLoc::Const(42)));
        assert_eq!(mips_loc("$32", false), None);
    }

    #[test]
    fn ppc_forms() {
        assert_eq!(ppc_loc("%r3"), reg("gpr3"));
        assert_eq!(ppc_loc("3"), reg("gpr3"));
        assert_eq!(ppc_loc("r31"), reg("gpr31"));
        assert_eq!(ppc_loc("-16(%r31)"), mem("gpr31", -16));
        assert_eq!(ppc_loc("0(4)"), mem("gpr4", 0));
        assert_eq!(ppc_loc("i42"), Some(SdtLoc::Const(42)));
        assert_eq!(ppc_loc("i-1"), Some(SdtLoc::Const(-1)));
        assert_eq!(ppc_loc("32"), None);
    }

    #[test]
    fn integers_and_displacements() {
        assert_eq!(int("-0x10"), Some(-16));
        assert_eq!(int("18446744073709551615"), Some(-1));
        assert_eq!(int(""), None);
        assert_eq!(int("-"), None);
        assert_eq!(int("1e3"), None);
        assert_eq!(displacement(""), Some((None, 0)));
        assert_eq!(displacement("-8"), Some((None, -8)));
        assert_eq!(displacement("16+foo"), Some((Some("foo"), 16)));
        assert_eq!(displacement("foo-4"), Some((Some("foo"), -4)));
        assert_eq!(displacement("foo+bar"), None);
        assert_eq!(displacement("-foo"), None);
    }
}
