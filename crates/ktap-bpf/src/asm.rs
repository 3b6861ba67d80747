//! The assembler and disassembler for eBPF in the syntax of the kernel's verifier log.
//!
//! [`disasm`] prints each instruction the way the kernel's `kernel/bpf/disasm.c` does in a
//! verifier log or in `bpftool prog dump xlated`, without the `N: (code) ` prefix, which
//! [`disasm_listing`] adds. [`assemble`] reads that text back, so every instruction stream
//! survives `assemble(disasm(p)) == p` exactly, and it also accepts lines pasted from a kernel log.
//!
//! The syntax departs from the kernel's only where the kernel's text loses information:
//!
//! - A 64-bit immediate load prints as `r1 = 0x1122334455667788 ll`. The kernel omits ` ll`,
//!   which leaves `r1 = 0x5` looking like a move; the assembler reads a line without ` ll` as a
//!   64-bit load when its pasted prefix says `(18)` or when the value does not fit a move.
//! - A map reference (`src == BPF_PSEUDO_MAP_FD`) prints as `r1 = map[N] ll`, where `N` is the
//!   index into [`crate::Program::maps`]. Before loading there is no descriptor to show, and the
//!   kernel's `0xffff...` pointer after loading cannot be turned back into a map, so a pasted
//!   kernel line of that kind assembles to a plain 64-bit constant.
//! - A kernel variable (`src == BPF_PSEUDO_BTF_ID`) prints as `r1 = ksym[ID] ll`, `ID` its
//!   vmlinux BTF id; the kernel prints the bare number.
//! - An instruction the kernel's syntax cannot express exactly (an unknown opcode, a nonzero
//!   field the form does not print, a truncated `ld_imm64`) prints as
//!   `raw code=0x8f dst=1 src=2 off=-3 imm=4`, which the assembler accepts. The kernel would print
//!   `BUG_...` or silently drop the stray field.
//! - Helper calls are named from [`crate::helpers`]: `call bpf_map_lookup_elem#1`. Ids ktap does
//!   not know print as the kernel's `call unknown#9999`, and ktap's userspace-only helpers print
//!   under their own names, which have no `bpf_` prefix.
//!
//! Atomic operations follow `disasm.c` word for word: `lock *(u64 *)(r1 +0) += r2` (also `&=`,
//! `|=`, `^=`), `r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)` (also `_and`, `_or`, `_xor`),
//! `r2 = atomic64_xchg((u64 *)(r1 +0), r2)`, `r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)`,
//! `r2 = load_acquire((u64 *)(r1 +0))` and `store_release((u64 *)(r1 +0), r2)`; the 32-bit forms
//! drop the `64` and take a `(u32 *)` pointer, and every register is written `rN`, as the kernel
//! does.

use std::fmt;

use crate::helpers;
use crate::insn::*;

// Encodings the kernel prints that insn.rs has no constant for, because ktap never emits them.
// They are here so that kernel logs and `bpftool` dumps of other programs read back.

/// `BPF_LD` modes of the legacy packet loads of socket filters.
const BPF_ABS: u8 = 0x20;
const BPF_IND: u8 = 0x40;
/// `BPF_ST` mode of the speculation barrier the verifier inserts.
const BPF_NOSPEC: u8 = 0xc0;
/// Jump operation of the conditional pseudo jumps; `src` selects which one.
const BPF_JCOND: u8 = 0xe0;
const BPF_MAY_GOTO: u8 = 0;
/// Atomic `imm` of load-acquire and store-release.
const BPF_LOAD_ACQ: i32 = 0x100;
const BPF_STORE_REL: i32 = 0x110;
/// `src` of a call to a kernel function (kfunc) named by its BTF id.
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
/// `off` that makes a division or modulo signed.
const OFF_SIGNED: i16 = 1;
/// `off` values that turn a 64-bit register move into an arena address-space cast or into the
/// verifier's per-CPU address computation.
const OFF_ADDR_SPACE_CAST: i16 = 1;
const OFF_PERCPU_ADDR: i16 = -1;
/// The opcode of the first slot of `ld_imm64`, which kernel logs show as `(18)`.
const LD_IMM64: u8 = BPF_LD | BPF_DW | BPF_IMM;

/// ALU operations written `dst op= src`, with the kernel's symbols (`BPF_NEG` and `BPF_END`
/// have forms of their own).
const ALU_OPS: [(u8, &str); 12] = [
    (BPF_ADD, "+="),
    (BPF_SUB, "-="),
    (BPF_MUL, "*="),
    (BPF_DIV, "/="),
    (BPF_OR, "|="),
    (BPF_AND, "&="),
    (BPF_LSH, "<<="),
    (BPF_RSH, ">>="),
    (BPF_MOD, "%="),
    (BPF_XOR, "^="),
    (BPF_MOV, "="),
    (BPF_ARSH, "s>>="),
];

/// The signed division and modulo, selected by `off == OFF_SIGNED`.
const SIGNED_OPS: [(u8, &str); 2] = [(BPF_DIV, "s/="), (BPF_MOD, "s%=")];

/// Conditional jumps with the kernel's comparison symbols.
const JMP_OPS: [(u8, &str); 11] = [
    (BPF_JEQ, "=="),
    (BPF_JGT, ">"),
    (BPF_JGE, ">="),
    (BPF_JSET, "&"),
    (BPF_JNE, "!="),
    (BPF_JSGT, "s>"),
    (BPF_JSGE, "s>="),
    (BPF_JLT, "<"),
    (BPF_JLE, "<="),
    (BPF_JSLT, "s<"),
    (BPF_JSLE, "s<="),
];

/// Atomic read-modify-write operations: the `imm` without `BPF_FETCH`, the symbol of the `lock`
/// form and the suffix of the `atomic_fetch_` form.
const ATOMIC_OPS: [(i32, &str, &str); 4] = [
    (BPF_ADD as i32, "+=", "add"),
    (BPF_AND as i32, "&=", "and"),
    (BPF_OR as i32, "|=", "or"),
    (BPF_XOR as i32, "^=", "xor"),
];

/// Access sizes in the order of their encoding (`size >> 3`), each with its unsigned name and,
/// except for 64 bits, the name of its sign-extending load.
const SIZES: [(u8, &str, Option<&str>); 4] = [
    (BPF_W, "u32", Some("s32")),
    (BPF_H, "u16", Some("s16")),
    (BPF_B, "u8", Some("s8")),
    (BPF_DW, "u64", None),
];

/// Byte-order conversions: the mnemonic before the width, and the opcode.
const ENDIAN: [(&str, u8); 3] = [
    ("le", BPF_ALU | BPF_END | BPF_TO_LE),
    ("be", BPF_ALU | BPF_END | BPF_TO_BE),
    ("bswap", BPF_ALU64 | BPF_END | BPF_TO_LE),
];

/// The entry of [`SIZES`] for the size bits of `code`; every code has one.
fn size_of(code: u8) -> (u8, &'static str, Option<&'static str>) {
    SIZES[usize::from((code >> 3) & 3)]
}

// ---------------------------------------------------------------------------------------------
// Disassembler

/// The text of the instruction at `pc`, as one line of a verifier log without its prefix. An
/// `ld_imm64` reads its second slot from `pc + 1`; asking for a second slot on its own prints it
/// as the `raw` instruction it is. A `pc` past the end gives an empty string.
pub fn disasm_one(insns: &[Insn], pc: usize) -> String {
    decode(insns, pc).map(|(text, _)| text).unwrap_or_default()
}

/// One line per instruction; an `ld_imm64` is one line and its second slot gets none.
pub fn disasm(insns: &[Insn]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pc = 0;
    while let Some((text, slots)) = decode(insns, pc) {
        lines.push(text);
        pc += slots;
    }
    lines
}

/// The whole program as the kernel lists it: each line prefixed with its instruction index and
/// its opcode in two hex digits, as in `2: (7b) *(u64 *)(r10 -8) = r1`, and ended by a newline.
pub fn disasm_listing(insns: &[Insn]) -> String {
    let mut out = String::new();
    let mut pc = 0;
    while let Some((text, slots)) = decode(insns, pc) {
        out.push_str(&format!("{pc}: ({:02x}) {text}\n", insns[pc].code));
        pc += slots;
    }
    out
}

/// The text of the instruction at `pc` and the number of slots it covers, or `None` past the end.
fn decode(insns: &[Insn], pc: usize) -> Option<(String, usize)> {
    let insn = insns.get(pc)?;
    Some(canonical(insn, insns.get(pc + 1)).unwrap_or_else(|| (raw_text(insn), 1)))
}

/// The lossless fallback for instructions without an exact kernel form.
fn raw_text(i: &Insn) -> String {
    format!(
        "raw code={:#04x} dst={} src={} off={} imm={}",
        i.code, i.dst, i.src, i.off, i.imm
    )
}

/// The kernel's text for `i` and the slots it covers, or `None` when that text would not name
/// every field of the encoding, so that printing it would lose information.
fn canonical(i: &Insn, next: Option<&Insn>) -> Option<(String, usize)> {
    if i.dst > R10 || (i.src > R10 && !is_call(i)) {
        return None;
    }
    let text = match i.class() {
        BPF_ALU | BPF_ALU64 => alu_text(i),
        BPF_LDX => ldx_text(i),
        BPF_ST => st_text(i),
        BPF_STX => stx_text(i),
        BPF_JMP | BPF_JMP32 => jmp_text(i),
        _ => return ld_text(i, next),
    };
    text.map(|t| (t, 1))
}

/// Calls carry a call kind, not a register, in `src`; [`jmp_text`] checks it.
fn is_call(i: &Insn) -> bool {
    i.code == BPF_JMP | BPF_CALL
}

fn alu_text(i: &Insn) -> Option<String> {
    let wide = i.class() == BPF_ALU64;
    let x = if wide { 'r' } else { 'w' };
    let (d, s) = (i.dst, i.src);
    let op = i.code & 0xf0;
    let by_reg = i.code & BPF_X != 0;
    match op {
        BPF_END => {
            // The kernel writes `r` for both classes because the result always fills all 64 bits.
            let ok = s == 0 && i.off == 0 && matches!(i.imm, 16 | 32 | 64);
            let name = ENDIAN
                .iter()
                .find(|(_, code)| *code == i.code)
                .map(|(n, _)| n)?;
            ok.then(|| format!("r{d} = {name}{} r{d}", i.imm))
        }
        BPF_NEG => {
            (!by_reg && s == 0 && i.off == 0 && i.imm == 0).then(|| format!("{x}{d} = -{x}{d}"))
        }
        _ => {
            let signed = matches!(op, BPF_DIV | BPF_MOD) && i.off == OFF_SIGNED;
            let table: &[(u8, &str)] = if signed { &SIGNED_OPS } else { &ALU_OPS };
            let sym = table.iter().find(|(o, _)| *o == op)?.1;
            if !by_reg {
                return (s == 0 && (i.off == 0 || signed))
                    .then(|| format!("{x}{d} {sym} {}", i.imm));
            }
            if op == BPF_MOV && wide && i.off == OFF_ADDR_SPACE_CAST {
                let imm = i.imm as u32;
                return Some(format!(
                    "r{d} = addr_space_cast(r{s}, {}, {})",
                    imm >> 16,
                    imm & 0xffff
                ));
            }
            if i.imm != 0 {
                return None;
            }
            match (op, i.off) {
                (BPF_MOV, 8 | 16) => Some(format!("{x}{d} = (s{}){x}{s}", i.off)),
                (BPF_MOV, 32) if wide => Some(format!("r{d} = (s32)r{s}")),
                (BPF_MOV, OFF_PERCPU_ADDR) if wide => {
                    Some(format!("r{d} = &(void __percpu *)(r{s})"))
                }
                (_, 0) => Some(format!("{x}{d} {sym} {x}{s}")),
                _ => signed.then(|| format!("{x}{d} {sym} {x}{s}")),
            }
        }
    }
}

fn ld_text(i: &Insn, next: Option<&Insn>) -> Option<(String, usize)> {
    let d = i.dst;
    let size = size_of(i.code);
    let not_dw = size.0 != BPF_DW;
    match i.code & 0xe0 {
        BPF_IMM if i.code == LD_IMM64 => {
            let n = next?;
            if n.code != 0 || n.dst != 0 || n.src != 0 || n.off != 0 || i.off != 0 {
                return None;
            }
            let value = (u64::from(n.imm as u32) << 32) | u64::from(i.imm as u32);
            let text = match i.src {
                0 => format!("r{d} = {value:#x} ll"),
                BPF_PSEUDO_MAP_FD if n.imm == 0 => format!("r{d} = map[{}] ll", i.imm as u32),
                BPF_PSEUDO_BTF_ID if n.imm == 0 => format!("r{d} = ksym[{}] ll", i.imm as u32),
                _ => return None,
            };
            Some((text, 2))
        }
        BPF_ABS if not_dw && d == 0 && i.src == 0 && i.off == 0 => {
            Some((format!("r0 = *({} *)skb[{}]", size.1, i.imm), 1))
        }
        BPF_IND if not_dw && d == 0 && i.off == 0 => Some((
            format!("r0 = *({} *)skb[r{} + {}]", size.1, i.src, i.imm),
            1,
        )),
        _ => None,
    }
}

fn ldx_text(i: &Insn) -> Option<String> {
    let size = size_of(i.code);
    let name = match i.code & 0xe0 {
        BPF_MEM => size.1,
        BPF_MEMSX => size.2?,
        _ => return None,
    };
    (i.imm == 0).then(|| format!("r{} = *({name} *)(r{} {:+})", i.dst, i.src, i.off))
}

fn st_text(i: &Insn) -> Option<String> {
    match i.code & 0xe0 {
        BPF_MEM if i.src == 0 => Some(format!(
            "*({} *)(r{} {:+}) = {}",
            size_of(i.code).1,
            i.dst,
            i.off,
            i.imm
        )),
        BPF_NOSPEC if i.code == BPF_ST | BPF_NOSPEC && *i == Insn::new(i.code, 0, 0, 0, 0) => {
            Some("nospec".to_string())
        }
        _ => None,
    }
}

fn stx_text(i: &Insn) -> Option<String> {
    let (d, s, off) = (i.dst, i.src, i.off);
    let size = size_of(i.code);
    match i.code & 0xe0 {
        BPF_MEM => (i.imm == 0).then(|| format!("*({} *)(r{d} {off:+}) = r{s}", size.1)),
        BPF_ATOMIC => {
            let ptr = |base: u8| format!("({} *)(r{base} {off:+})", size.1);
            // Read-modify-write atomics exist for 32 and 64 bits only; the `64` in their names
            // is what tells the two apart besides the pointer type.
            let rmw = matches!(size.0, BPF_W | BPF_DW);
            let bits = if size.0 == BPF_DW { "64" } else { "" };
            match i.imm {
                BPF_LOAD_ACQ => Some(format!("r{d} = load_acquire({})", ptr(s))),
                BPF_STORE_REL => Some(format!("store_release({}, r{s})", ptr(d))),
                BPF_XCHG if rmw => Some(format!("r{s} = atomic{bits}_xchg({}, r{s})", ptr(d))),
                BPF_CMPXCHG if rmw => {
                    Some(format!("r0 = atomic{bits}_cmpxchg({}, r0, r{s})", ptr(d)))
                }
                imm if rmw => {
                    let (_, sym, name) = ATOMIC_OPS.iter().find(|o| o.0 == imm & !BPF_FETCH)?;
                    Some(if imm & BPF_FETCH != 0 {
                        format!("r{s} = atomic{bits}_fetch_{name}({}, r{s})", ptr(d))
                    } else {
                        format!("lock *({} *)(r{d} {off:+}) {sym} r{s}", size.1)
                    })
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn jmp_text(i: &Insn) -> Option<String> {
    let (d, s, off, imm) = (i.dst, i.src, i.off, i.imm);
    match i.code {
        c if c == BPF_JMP | BPF_CALL => {
            if d != 0 || off != 0 {
                return None;
            }
            match s {
                0 => Some(format!("call {}#{imm}", helper_name(imm))),
                BPF_PSEUDO_CALL => Some(format!("call pc{imm:+}")),
                BPF_PSEUDO_KFUNC_CALL => Some(format!("call kernel-function#{imm}")),
                _ => None,
            }
        }
        c if c == BPF_JMP | BPF_JA => {
            (d == 0 && s == 0 && imm == 0).then(|| format!("goto pc{off:+}"))
        }
        c if c == BPF_JMP32 | BPF_JA => {
            (d == 0 && s == 0 && off == 0).then(|| format!("gotol pc{imm:+}"))
        }
        c if c == BPF_JMP | BPF_EXIT => (*i == Insn::exit()).then(|| "exit".to_string()),
        c if c == BPF_JMP | BPF_JCOND => {
            (d == 0 && s == BPF_MAY_GOTO && imm == 0).then(|| format!("may_goto pc{off:+}"))
        }
        code => {
            let x = if i.class() == BPF_JMP { 'r' } else { 'w' };
            let sym = JMP_OPS.iter().find(|(op, _)| *op == code & 0xf0)?.1;
            if code & BPF_X != 0 {
                (imm == 0).then(|| format!("if {x}{d} {sym} {x}{s} goto pc{off:+}"))
            } else {
                // The kernel prints the immediate of a comparison as its 32 bits in hex.
                (s == 0).then(|| format!("if {x}{d} {sym} {:#x} goto pc{off:+}", imm as u32))
            }
        }
    }
}

/// The kernel's name for helper `id`: `bpf_` and the helper's name, or `unknown`.
fn helper_name(id: i32) -> String {
    match helpers::lookup(id) {
        Some(h) if h.user_only => h.name.to_string(),
        Some(h) => format!("bpf_{}", h.name),
        None => "unknown".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Assembler

/// Where and why assembly failed. `line` and `col` count from 1; `col` counts characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsmError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.col, self.message
        )
    }
}

impl std::error::Error for AsmError {}

/// Assembles one instruction per line. Besides everything [`disasm`] prints, it accepts decimal
/// or `0x` hex numbers with an optional sign; a kernel log's `N: (xx) ` prefix, whose opcode must
/// then match the instruction; blank lines; comments from `;`, `//`, or a `#` that starts the line
/// or follows a space; `call 1`, `call bpf_map_lookup_elem` and `call map_lookup_elem#1`;
/// `r1 = map[N]` without ` ll`; and `r1 = 5 ll` for a 64-bit load of a small value.
///
/// A 32-bit immediate may be written as any value from `-2^31` to `2^32 - 1` and keeps its low
/// 32 bits, which is how the kernel prints the immediates of comparisons (`0xffffffff` is -1).
/// The one exception is `rN = value` without ` ll`: a value outside the signed 32-bit range
/// cannot be a sign-extended move, so it becomes a 64-bit load.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        out.extend(assemble_line(line, index + 1)?);
    }
    Ok(out)
}

fn assemble_line(line: &str, number: usize) -> Result<Vec<Insn>, AsmError> {
    let chars: Vec<char> = line.chars().collect();
    let chars = &chars[..comment_start(&chars)];
    let (start, prefix) = line_prefix(chars, number)?;
    let toks = lex(chars, start, number)?;
    let Some(last) = toks.last() else {
        return match prefix {
            Some((_, col)) => Err(AsmError {
                line: number,
                col,
                message: "expected an instruction after the line prefix".to_string(),
            }),
            None => Ok(Vec::new()),
        };
    };
    let mut parser = Parser {
        toks: &toks,
        pos: 0,
        line: number,
        eol: last.col + last.text.chars().count(),
    };
    let insns = parser.instruction(prefix.map(|(code, _)| code))?;
    if let Some(t) = parser.peek() {
        return Err(parser.err(
            t.col,
            format!("unexpected '{}' after the instruction", t.text),
        ));
    }
    if let (Some((code, col)), Some(first)) = (prefix, insns.first()) {
        if first.code != code {
            return Err(parser.err(
                col,
                format!(
                    "the prefix says opcode ({code:02x}) but the instruction assembles to ({:02x})",
                    first.code
                ),
            ));
        }
    }
    Ok(insns)
}

/// The index where a comment starts, or the length of the line. A `#` only starts a comment at
/// the start of the line or after a space, because `call bpf_map_lookup_elem#1` uses it.
fn comment_start(chars: &[char]) -> usize {
    (0..chars.len())
        .find(|&p| match chars[p] {
            ';' => true,
            '/' => chars.get(p + 1) == Some(&'/'),
            '#' => p == 0 || chars[p - 1].is_whitespace(),
            _ => false,
        })
        .unwrap_or(chars.len())
}

/// Skips a kernel log's `N: (xx) ` prefix, returning where the instruction starts and, when the
/// prefix shows one, the opcode with its column. No instruction starts with a digit, so a line
/// that starts with digits and a colon always has a prefix.
fn line_prefix(chars: &[char], line: usize) -> Result<(usize, Option<(u8, usize)>), AsmError> {
    let skip_blanks = |p: usize| p + chars[p..].iter().take_while(|c| c.is_whitespace()).count();
    let first = skip_blanks(0);
    let digits_end = first
        + chars[first..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
    if digits_end == first || chars.get(digits_end) != Some(&':') {
        return Ok((0, None));
    }
    let open = skip_blanks(digits_end + 1);
    if chars.get(open) != Some(&'(') {
        return Ok((open, None));
    }
    let hex: String = chars[open + 1..]
        .iter()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    let close = open + 1 + hex.len();
    match u8::from_str_radix(&hex, 16) {
        Ok(code) if hex.len() <= 2 && chars.get(close) == Some(&')') => {
            Ok((close + 1, Some((code, open + 1))))
        }
        _ => Err(AsmError {
            line,
            col: open + 1,
            message: "malformed opcode in the line prefix; expected two hex digits as in '(b7)'"
                .to_string(),
        }),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Punct,
    Num(u64),
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    text: String,
    col: usize,
}

/// Every operator and delimiter, longest first so that `<<=` is not read as `<` `<=`. The ones
/// starting with `s` are the kernel's signed operators; no identifier starts with `s` followed by
/// one of these symbols, so they are tried before identifiers.
const PUNCTS: [&str; 35] = [
    "s>>=", "<<=", ">>=", "s/=", "s%=", "s<=", "s>=", "+=", "-=", "*=", "/=", "|=", "&=", "%=",
    "^=", "==", "!=", "<=", ">=", "s<", "s>", "<", ">", "&", "=", "(", ")", "*", ",", "[", "]",
    "#", ":", "+", "-",
];

fn lex(chars: &[char], start: usize, line: usize) -> Result<Vec<Token>, AsmError> {
    let mut toks = Vec::new();
    let mut p = start;
    while p < chars.len() {
        let c = chars[p];
        let col = p + 1;
        let rest = &chars[p..];
        if c.is_whitespace() {
            p += 1;
            continue;
        }
        let punct = PUNCTS
            .iter()
            .find(|s| rest.len() >= s.len() && rest[..s.len()].iter().copied().eq(s.chars()));
        if let Some(punct) = punct {
            toks.push(Token {
                kind: Kind::Punct,
                text: punct.to_string(),
                col,
            });
            p += punct.len();
            continue;
        }
        let len = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .count();
        let text: String = rest[..len].iter().collect();
        let kind = if c.is_ascii_digit() {
            Kind::Num(parse_number(&text).map_err(|message| AsmError { line, col, message })?)
        } else if len > 0 {
            Kind::Ident
        } else {
            return Err(AsmError {
                line,
                col,
                message: format!("unexpected character '{}'", c.escape_debug()),
            });
        };
        toks.push(Token { kind, text, col });
        p += len;
    }
    Ok(toks)
}

fn parse_number(word: &str) -> Result<u64, String> {
    let (digits, radix) = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (word, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!("malformed number '{word}'"));
    }
    u64::from_str_radix(digits, radix)
        .map_err(|_| format!("number '{word}' does not fit in 64 bits"))
}

#[derive(Clone, Copy, Debug)]
struct Reg {
    n: u8,
    wide: bool,
    col: usize,
}

impl Reg {
    fn name(&self) -> String {
        format!("{}{}", if self.wide { 'r' } else { 'w' }, self.n)
    }
}

/// `r0`..`r10` or `w0`..`w10`, spelled without leading zeros.
fn parse_reg(t: &Token) -> Option<Reg> {
    if t.kind != Kind::Ident {
        return None;
    }
    let wide = match t.text.as_bytes().first() {
        Some(b'r') => true,
        Some(b'w') => false,
        _ => return None,
    };
    let digits = &t.text[1..];
    let n: u8 = digits.parse().ok()?;
    (n <= R10 && n.to_string() == digits).then_some(Reg {
        n,
        wide,
        col: t.col,
    })
}

/// A number as written, with its sign applied, for range checks that quote the source text.
struct Number {
    value: i128,
    text: String,
    col: usize,
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    line: usize,
    /// The column just past the last token, where "found end of line" points.
    eol: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, col: usize, message: impl Into<String>) -> AsmError {
        AsmError {
            line: self.line,
            col,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.pos)
    }

    fn peek_kind(&self) -> Option<Kind> {
        self.peek().map(|t| t.kind)
    }

    fn expected(&self, what: &str) -> AsmError {
        match self.peek() {
            Some(t) => self.err(t.col, format!("expected {what}, found '{}'", t.text)),
            None => self.err(self.eol, format!("expected {what}, found end of line")),
        }
    }

    /// True when the next token is the word or symbol `text`.
    fn is(&self, text: &str) -> bool {
        self.peek()
            .is_some_and(|t| !matches!(t.kind, Kind::Num(_)) && t.text == text)
    }

    fn eat(&mut self, text: &str) -> bool {
        let found = self.is(text);
        self.pos += usize::from(found);
        found
    }

    fn expect(&mut self, text: &str) -> Result<(), AsmError> {
        if self.eat(text) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{text}'")))
        }
    }

    fn ident(&mut self, what: &str) -> Result<&'a Token, AsmError> {
        match self.peek() {
            Some(t) if t.kind == Kind::Ident => {
                self.pos += 1;
                Ok(t)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn reg(&mut self) -> Result<Reg, AsmError> {
        match self.peek().and_then(parse_reg) {
            Some(r) => {
                self.pos += 1;
                Ok(r)
            }
            None => Err(self.expected("a register")),
        }
    }

    /// A register that must be 64-bit: pointers, 64-bit loads and atomic operands.
    fn reg64(&mut self) -> Result<Reg, AsmError> {
        let r = self.reg()?;
        if r.wide {
            Ok(r)
        } else {
            Err(self.err(
                r.col,
                format!("expected a 64-bit register, found '{}'", r.name()),
            ))
        }
    }

    fn same_width(&self, dst: Reg, src: Reg) -> Result<(), AsmError> {
        if dst.wide == src.wide {
            Ok(())
        } else {
            Err(self.err(
                src.col,
                format!(
                    "'{}' and '{}' mix 32- and 64-bit registers",
                    dst.name(),
                    src.name()
                ),
            ))
        }
    }

    fn number(&mut self, what: &str) -> Result<Number, AsmError> {
        let col = self.peek().map_or(self.eol, |t| t.col);
        let sign = if self.eat("-") {
            "-"
        } else if self.eat("+") {
            "+"
        } else {
            ""
        };
        match self.peek() {
            Some(
                t @ Token {
                    kind: Kind::Num(v), ..
                },
            ) => {
                self.pos += 1;
                let magnitude = i128::from(*v);
                Ok(Number {
                    value: if sign == "-" { -magnitude } else { magnitude },
                    text: format!("{sign}{}", t.text),
                    col,
                })
            }
            _ => Err(self.expected(what)),
        }
    }

    fn fit(&self, n: &Number, min: i128, max: i128, field: &str) -> Result<i128, AsmError> {
        if (min..=max).contains(&n.value) {
            Ok(n.value)
        } else {
            Err(self.err(n.col, format!("{} is out of range for {field}", n.text)))
        }
    }

    fn to_imm32(&self, n: &Number) -> Result<i32, AsmError> {
        let v = self.fit(
            n,
            i128::from(i32::MIN),
            i128::from(u32::MAX),
            "a 32-bit immediate",
        )?;
        Ok(v as u32 as i32)
    }

    fn imm32(&mut self, what: &str) -> Result<i32, AsmError> {
        let n = self.number(what)?;
        self.to_imm32(&n)
    }

    fn off16(&mut self, what: &str) -> Result<i16, AsmError> {
        let n = self.number(what)?;
        let v = self.fit(
            &n,
            i128::from(i16::MIN),
            i128::from(i16::MAX),
            "a 16-bit offset",
        )?;
        Ok(v as i16)
    }

    fn unsigned(&mut self, what: &str, max: u32) -> Result<u32, AsmError> {
        let n = self.number(what)?;
        let v = self.fit(&n, 0, i128::from(max), &format!("{what} (0 to {max})"))?;
        Ok(v as u32)
    }

    /// `pc+N`, the target of a jump, as a 16-bit offset.
    fn target16(&mut self) -> Result<i16, AsmError> {
        self.expect("pc")?;
        self.off16("a jump offset as in 'pc+2'")
    }

    /// `(u64 *)`: the size, whether it was a sign-extending `sN`, and its column.
    fn size_cast(&mut self, signed_ok: bool) -> Result<(u8, bool), AsmError> {
        self.expect("(")?;
        let t = self.ident("a size (u8, u16, u32 or u64)")?;
        let found = SIZES.iter().find_map(|&(size, unsigned, signed)| {
            if unsigned == t.text {
                Some((size, false))
            } else if signed == Some(t.text.as_str()) {
                Some((size, true))
            } else {
                None
            }
        });
        let size = match found {
            Some((_, true)) if !signed_ok => {
                return Err(self.err(
                    t.col,
                    format!(
                        "expected an unsigned size (u8, u16, u32 or u64), found '{}'",
                        t.text
                    ),
                ))
            }
            Some(size) => size,
            None => {
                return Err(self.err(
                    t.col,
                    format!("expected a size (u8, u16, u32 or u64), found '{}'", t.text),
                ))
            }
        };
        self.expect("*")?;
        self.expect(")")?;
        Ok(size)
    }

    /// `(r10 -8)`: a base register and an optional signed offset.
    fn mem(&mut self) -> Result<(u8, i16), AsmError> {
        self.expect("(")?;
        let base = self.reg64()?;
        let off = if self.is("+") || self.is("-") {
            self.off16("an offset")?
        } else {
            0
        };
        self.expect(")")?;
        Ok((base.n, off))
    }

    /// Read-modify-write atomics exist only for 32 and 64 bits.
    fn rmw_size(&self, size: u8, col: usize) -> Result<(), AsmError> {
        if matches!(size, BPF_W | BPF_DW) {
            Ok(())
        } else {
            Err(self.err(col, "atomic read-modify-write operations need u32 or u64"))
        }
    }

    fn instruction(&mut self, prefix: Option<u8>) -> Result<Vec<Insn>, AsmError> {
        let Some(first) = self.peek() else {
            return Err(self.expected("an instruction"));
        };
        let one = |insn: Insn| Ok(vec![insn]);
        // Numbers never spell a keyword, so the text alone decides.
        match first.text.as_str() {
            "exit" => {
                self.pos += 1;
                one(Insn::exit())
            }
            "nospec" => {
                self.pos += 1;
                one(Insn::new(BPF_ST | BPF_NOSPEC, 0, 0, 0, 0))
            }
            "goto" => {
                self.pos += 1;
                one(Insn::ja(self.target16()?))
            }
            "gotol" => {
                self.pos += 1;
                self.expect("pc")?;
                let imm = self.imm32("a jump offset as in 'pc+2'")?;
                one(Insn::new(BPF_JMP32 | BPF_JA, 0, 0, 0, imm))
            }
            "may_goto" => {
                self.pos += 1;
                let off = self.target16()?;
                one(Insn::new(BPF_JMP | BPF_JCOND, 0, BPF_MAY_GOTO, off, 0))
            }
            "call" => {
                self.pos += 1;
                one(self.call()?)
            }
            "lock" => {
                self.pos += 1;
                one(self.lock()?)
            }
            "store_release" => {
                self.pos += 1;
                self.expect("(")?;
                let (size, _) = self.size_cast(false)?;
                let (base, off) = self.mem()?;
                self.expect(",")?;
                let src = self.reg64()?;
                self.expect(")")?;
                let code = BPF_STX | BPF_ATOMIC | size;
                one(Insn::new(code, base, src.n, off, BPF_STORE_REL))
            }
            "raw" => {
                self.pos += 1;
                one(self.raw()?)
            }
            "if" => {
                self.pos += 1;
                one(self.branch()?)
            }
            "*" => {
                self.pos += 1;
                one(self.store()?)
            }
            _ => self.assignment(prefix),
        }
    }

    fn call(&mut self) -> Result<Insn, AsmError> {
        let code = BPF_JMP | BPF_CALL;
        if self.eat("pc") {
            let imm = self.imm32("a call offset as in 'pc+5'")?;
            return Ok(Insn::new(code, 0, BPF_PSEUDO_CALL, 0, imm));
        }
        if matches!(self.peek_kind(), Some(Kind::Num(_))) || self.is("-") || self.is("+") {
            return Ok(Insn::call(self.imm32("a helper number")?));
        }
        let name = self.ident("a helper name or number")?;
        if name.text == "kernel" && self.eat("-") {
            self.expect("function")?;
            self.expect("#")?;
            let imm = self.imm32("a BTF id")?;
            return Ok(Insn::new(code, 0, BPF_PSEUDO_KFUNC_CALL, 0, imm));
        }
        let id = if self.eat("#") {
            let col = self.peek().map_or(self.eol, |t| t.col);
            Some((self.imm32("a helper number")?, col))
        } else {
            None
        };
        match (helpers::by_name(&name.text), id) {
            (Some(h), Some((n, col))) if h.id != n => {
                Err(self.err(col, format!("{} is helper #{}, not #{n}", name.text, h.id)))
            }
            (Some(h), _) => Ok(Insn::call(h.id)),
            // The kernel knows helpers ktap's table does not; its log names them with their id.
            (None, Some((n, _))) => Ok(Insn::call(n)),
            (None, None) => Err(self.err(
                name.col,
                format!(
                    "unknown helper '{}'; give its number as in 'call {}#6'",
                    name.text, name.text
                ),
            )),
        }
    }

    /// `lock *(u64 *)(r1 +0) += r2`, after `lock`.
    fn lock(&mut self) -> Result<Insn, AsmError> {
        self.expect("*")?;
        let col = self.peek().map_or(self.eol, |t| t.col);
        let (size, _) = self.size_cast(false)?;
        self.rmw_size(size, col)?;
        let (base, off) = self.mem()?;
        let op = self.peek().and_then(|t| {
            ATOMIC_OPS
                .iter()
                .find(|o| t.kind == Kind::Punct && o.1 == t.text)
        });
        let Some(&(imm, _, _)) = op else {
            return Err(self.expected("an atomic operator ('+=', '&=', '|=' or '^=')"));
        };
        self.pos += 1;
        let src = self.reg64()?;
        Ok(Insn::new(
            BPF_STX | BPF_ATOMIC | size,
            base,
            src.n,
            off,
            imm,
        ))
    }

    /// `raw code=0x8f dst=1 src=2 off=-3 imm=4`, after `raw`.
    fn raw(&mut self) -> Result<Insn, AsmError> {
        let mut field = |name: &str, max: u32| -> Result<u32, AsmError> {
            self.expect(name)?;
            self.expect("=")?;
            self.unsigned(&format!("the value of {name}"), max)
        };
        let code = field("code", 0xff)? as u8;
        let dst = field("dst", 15)? as u8;
        let src = field("src", 15)? as u8;
        self.expect("off")?;
        self.expect("=")?;
        let off = self.off16("the value of off")?;
        self.expect("imm")?;
        self.expect("=")?;
        let imm = self.imm32("the value of imm")?;
        Ok(Insn::new(code, dst, src, off, imm))
    }

    /// `if r1 > 0x5 goto pc+2`, after `if`.
    fn branch(&mut self) -> Result<Insn, AsmError> {
        let dst = self.reg()?;
        let op = self.peek().and_then(|t| {
            JMP_OPS
                .iter()
                .find(|o| t.kind == Kind::Punct && o.1 == t.text)
        });
        let Some(&(op, _)) = op else {
            return Err(self.expected("a comparison such as '==' or 's<'"));
        };
        self.pos += 1;
        let class = if dst.wide { BPF_JMP } else { BPF_JMP32 };
        let insn = if self.peek_kind() == Some(Kind::Ident) {
            let src = self.reg()?;
            self.same_width(dst, src)?;
            Insn::new(class | op | BPF_X, dst.n, src.n, 0, 0)
        } else {
            let imm = self.imm32("a register or a number")?;
            Insn::new(class | op | BPF_K, dst.n, 0, 0, imm)
        };
        self.expect("goto")?;
        let off = self.target16()?;
        Ok(Insn { off, ..insn })
    }

    /// `*(u64 *)(r10 -8) = r1` or `= 0`, after the leading `*`.
    fn store(&mut self) -> Result<Insn, AsmError> {
        let (size, _) = self.size_cast(false)?;
        let (base, off) = self.mem()?;
        self.expect("=")?;
        if self.peek_kind() == Some(Kind::Ident) {
            let src = self.reg64()?;
            Ok(Insn::new(BPF_STX | BPF_MEM | size, base, src.n, off, 0))
        } else {
            let imm = self.imm32("a register or a number")?;
            Ok(Insn::new(BPF_ST | BPF_MEM | size, base, 0, off, imm))
        }
    }

    /// Every form that starts with a register: ALU operations, moves, loads and the atomics
    /// that return a value.
    fn assignment(&mut self, prefix: Option<u8>) -> Result<Vec<Insn>, AsmError> {
        let dst = self.reg()?;
        if self.eat("=") {
            return self.assign(dst, prefix);
        }
        let class = if dst.wide { BPF_ALU64 } else { BPF_ALU };
        let op = self.peek().filter(|t| t.kind == Kind::Punct).and_then(|t| {
            let plain = ALU_OPS.iter().find(|o| o.1 == t.text).map(|o| (o.0, 0));
            plain.or_else(|| {
                SIGNED_OPS
                    .iter()
                    .find(|o| o.1 == t.text)
                    .map(|o| (o.0, OFF_SIGNED))
            })
        });
        let Some((op, off)) = op else {
            return Err(self.expected("an operator such as '=' or '+='"));
        };
        self.pos += 1;
        let insn = if self.peek_kind() == Some(Kind::Ident) {
            let src = self.reg()?;
            self.same_width(dst, src)?;
            Insn::new(class | op | BPF_X, dst.n, src.n, off, 0)
        } else {
            let imm = self.imm32("a register or a number")?;
            Insn::new(class | op | BPF_K, dst.n, 0, off, imm)
        };
        Ok(vec![insn])
    }

    /// The right-hand side of `dst = ...`.
    fn assign(&mut self, dst: Reg, prefix: Option<u8>) -> Result<Vec<Insn>, AsmError> {
        let class = if dst.wide { BPF_ALU64 } else { BPF_ALU };
        let Some(t) = self.peek() else {
            return Err(self.expected("a value"));
        };
        let next_is_ident = self.toks.get(self.pos + 1).map(|t| t.kind) == Some(Kind::Ident);
        let insn = match (t.kind, t.text.as_str()) {
            (Kind::Punct, "-") if next_is_ident => {
                self.pos += 1;
                let src = self.reg()?;
                if src.n != dst.n || src.wide != dst.wide {
                    return Err(self.err(
                        src.col,
                        format!("negation works in place: write '{0} = -{0}'", dst.name()),
                    ));
                }
                Insn::new(class | BPF_NEG | BPF_K, dst.n, 0, 0, 0)
            }
            (Kind::Num(_), _) | (Kind::Punct, "-" | "+") => return self.constant(dst, prefix),
            (Kind::Punct, "*") => {
                self.pos += 1;
                return self.load(dst).map(|i| vec![i]);
            }
            (Kind::Punct, "(") => {
                self.pos += 1;
                let cast = self.ident("s8, s16 or s32")?;
                let bits = match cast.text.as_str() {
                    "s8" => 8,
                    "s16" => 16,
                    "s32" if dst.wide => 32,
                    "s32" => {
                        return Err(
                            self.err(cast.col, "a 32-bit move sign-extends only from s8 or s16")
                        )
                    }
                    _ => {
                        return Err(self.err(
                            cast.col,
                            format!("expected s8, s16 or s32, found '{}'", cast.text),
                        ))
                    }
                };
                self.expect(")")?;
                let src = self.reg()?;
                self.same_width(dst, src)?;
                Insn::new(class | BPF_MOV | BPF_X, dst.n, src.n, bits, 0)
            }
            (Kind::Punct, "&") => {
                self.pos += 1;
                for word in ["(", "void", "__percpu", "*", ")", "("] {
                    self.expect(word)?;
                }
                let src = self.reg64()?;
                self.expect(")")?;
                self.need_wide(dst)?;
                Insn::new(
                    BPF_ALU64 | BPF_MOV | BPF_X,
                    dst.n,
                    src.n,
                    OFF_PERCPU_ADDR,
                    0,
                )
            }
            (Kind::Ident, "map") => {
                let index = self.pseudo_index(dst, "a map index")?;
                return Ok(Insn::ld_map(dst.n, index).to_vec());
            }
            (Kind::Ident, "ksym") => {
                let id = self.pseudo_index(dst, "a BTF id")?;
                return Ok(Insn::ld_ksym(dst.n, id).to_vec());
            }
            (Kind::Ident, "load_acquire") => {
                self.pos += 1;
                self.expect("(")?;
                let (size, _) = self.size_cast(false)?;
                let (base, off) = self.mem()?;
                self.expect(")")?;
                self.need_wide(dst)?;
                Insn::new(BPF_STX | BPF_ATOMIC | size, dst.n, base, off, BPF_LOAD_ACQ)
            }
            (Kind::Ident, "addr_space_cast") => {
                self.pos += 1;
                self.expect("(")?;
                let src = self.reg64()?;
                self.expect(",")?;
                let to = self.unsigned("an address space", 0xffff)?;
                self.expect(",")?;
                let from = self.unsigned("an address space", 0xffff)?;
                self.expect(")")?;
                self.need_wide(dst)?;
                let imm = ((to << 16) | from) as i32;
                let code = BPF_ALU64 | BPF_MOV | BPF_X;
                Insn::new(code, dst.n, src.n, OFF_ADDR_SPACE_CAST, imm)
            }
            (Kind::Ident, word) => {
                if let Some(src) = parse_reg(t) {
                    self.pos += 1;
                    self.same_width(dst, src)?;
                    Insn::new(class | BPF_MOV | BPF_X, dst.n, src.n, 0, 0)
                } else if let Some((code, bits)) = endian(word) {
                    self.pos += 1;
                    let src = self.reg()?;
                    if !dst.wide || src.n != dst.n || !src.wide {
                        return Err(self.err(
                            src.col,
                            format!(
                                "byte swaps work in place: write 'r{0} = {word} r{0}'",
                                dst.n
                            ),
                        ));
                    }
                    Insn::new(code, dst.n, 0, 0, bits)
                } else if let Some(op) = atomic(word) {
                    self.pos += 1;
                    return self.atomic(dst, word, op).map(|i| vec![i]);
                } else {
                    // Anything else after `=` is most likely a misspelt register.
                    return Err(self.expected("a register"));
                }
            }
            _ => return Err(self.expected("a value")),
        };
        Ok(vec![insn])
    }

    /// `map[N] ll` and `ksym[N] ll` after `dst =`, from the keyword on: N, which the two-slot
    /// load carries in its immediate (a map's index, a variable's BTF id). `what` names N in errors.
    fn pseudo_index(&mut self, dst: Reg, what: &str) -> Result<u32, AsmError> {
        self.pos += 1;
        self.expect("[")?;
        let n = self.unsigned(what, u32::MAX)?;
        self.expect("]")?;
        self.eat("ll");
        self.need_wide(dst)?;
        Ok(n)
    }

    fn need_wide(&self, dst: Reg) -> Result<(), AsmError> {
        if dst.wide {
            Ok(())
        } else {
            Err(self.err(
                dst.col,
                format!("this form needs a 64-bit register, found '{}'", dst.name()),
            ))
        }
    }

    /// `dst = 5`, `dst = 5 ll` or a pasted kernel `dst = 0xffff...`.
    fn constant(&mut self, dst: Reg, prefix: Option<u8>) -> Result<Vec<Insn>, AsmError> {
        let n = self.number("a number")?;
        let ll = self.eat("ll");
        let fits_move = (i128::from(i32::MIN)..=i128::from(i32::MAX)).contains(&n.value);
        if ll || prefix == Some(LD_IMM64) || (dst.wide && !fits_move) {
            self.need_wide(dst)?;
            let range = (i128::from(i64::MIN), i128::from(u64::MAX));
            let v = self.fit(&n, range.0, range.1, "a 64-bit value")?;
            return Ok(Insn::ld_imm64(dst.n, 0, v as u64).to_vec());
        }
        let imm = self.to_imm32(&n)?;
        let class = if dst.wide { BPF_ALU64 } else { BPF_ALU };
        Ok(vec![Insn::new(class | BPF_MOV | BPF_K, dst.n, 0, 0, imm)])
    }

    /// `dst = *(u64 *)(r10 -8)`, `*(s32 *)...` or a packet load `*(u32 *)skb[...]`, after `*`.
    fn load(&mut self, dst: Reg) -> Result<Insn, AsmError> {
        let col = self.peek().map_or(self.eol, |t| t.col);
        let (size, signed) = self.size_cast(true)?;
        self.need_wide(dst)?;
        if self.eat("skb") {
            if signed || size == BPF_DW || dst.n != R0 {
                return Err(self.err(col, "packet loads read u8, u16 or u32 into r0"));
            }
            self.expect("[")?;
            let insn = if self.peek_kind() == Some(Kind::Ident) {
                let src = self.reg64()?;
                if !self.is("-") {
                    self.expect("+")?;
                }
                let imm = self.imm32("a packet offset")?;
                Insn::new(BPF_LD | BPF_IND | size, R0, src.n, 0, imm)
            } else {
                let imm = self.imm32("a packet offset")?;
                Insn::new(BPF_LD | BPF_ABS | size, R0, 0, 0, imm)
            };
            self.expect("]")?;
            return Ok(insn);
        }
        let (base, off) = self.mem()?;
        let mode = if signed { BPF_MEMSX } else { BPF_MEM };
        Ok(Insn::new(BPF_LDX | mode | size, dst.n, base, off, 0))
    }

    /// The rest of `r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)`, `..._xchg(...)` or
    /// `r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)`, after the name.
    fn atomic(&mut self, dst: Reg, name: &str, imm: i32) -> Result<Insn, AsmError> {
        let wide = name.starts_with("atomic64_");
        self.expect("(")?;
        let col = self.peek().map_or(self.eol, |t| t.col);
        let (size, _) = self.size_cast(false)?;
        self.rmw_size(size, col)?;
        if wide != (size == BPF_DW) {
            let want = if wide { "u64" } else { "u32" };
            return Err(self.err(col, format!("{name} works on ({want} *)")));
        }
        let (base, off) = self.mem()?;
        self.expect(",")?;
        if imm == BPF_CMPXCHG {
            let expected = self.reg64()?;
            if expected.n != R0 {
                return Err(self.err(expected.col, "cmpxchg always compares with r0"));
            }
            self.expect(",")?;
        }
        let src = self.reg64()?;
        self.expect(")")?;
        let result = if imm == BPF_CMPXCHG { R0 } else { src.n };
        if !dst.wide || dst.n != result {
            return Err(self.err(
                dst.col,
                format!(
                    "{name} returns the old value in r{result}, not in '{}'",
                    dst.name()
                ),
            ));
        }
        Ok(Insn::new(
            BPF_STX | BPF_ATOMIC | size,
            base,
            src.n,
            off,
            imm,
        ))
    }
}

/// The opcode and width of a byte-order mnemonic such as `be16` or `bswap64`.
fn endian(word: &str) -> Option<(u8, i32)> {
    ENDIAN.iter().find_map(|&(name, code)| {
        let bits = match word.strip_prefix(name)? {
            "16" => 16,
            "32" => 32,
            "64" => 64,
            _ => return None,
        };
        Some((code, bits))
    })
}

/// The `imm` of an atomic function name such as `atomic64_fetch_add` or `atomic_xchg`.
fn atomic(word: &str) -> Option<i32> {
    let op = word
        .strip_prefix("atomic64_")
        .or_else(|| word.strip_prefix("atomic_"))?;
    match op {
        "xchg" => Some(BPF_XCHG),
        "cmpxchg" => Some(BPF_CMPXCHG),
        _ => {
            let name = op.strip_prefix("fetch_")?;
            let found = ATOMIC_OPS.iter().find(|o| o.2 == name)?;
            Some(found.0 | BPF_FETCH)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpers::{MAP_LOOKUP_ELEM, USER_MAP_COUNT};

    /// A small deterministic generator (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
        /// `v` or, half the time, zero.
        fn half(&mut self, v: u64) -> u64 {
            if self.below(2) == 0 {
                0
            } else {
                v
            }
        }
        fn reg(&mut self) -> u8 {
            self.below(11) as u8
        }
        /// Mostly small values, sometimes extremes, so both short and long texts appear.
        fn i32(&mut self) -> i32 {
            match self.below(4) {
                0 => self.below(33) as i32 - 16,
                1 => self.pick(&[i32::MIN, i32::MAX, -1, 0]),
                _ => self.next() as i32,
            }
        }
        fn i16(&mut self) -> i16 {
            match self.below(3) {
                0 => self.below(33) as i16 - 16,
                1 => self.pick(&[i16::MIN, i16::MAX, -1, 0]),
                _ => self.next() as i16,
            }
        }
    }

    fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Vec<Insn> {
        vec![Insn::new(code, dst, src, off, imm)]
    }

    /// Every form the disassembler prints, with its exact text.
    fn golden() -> Vec<(Vec<Insn>, &'static str)> {
        let atomic =
            |size: u8, dst, src, off, imm| ins(BPF_STX | BPF_ATOMIC | size, dst, src, off, imm);
        vec![
            (vec![Insn::mov64_imm(R0, 0)], "r0 = 0"),
            (vec![Insn::alu32_imm(BPF_MOV, R0, -1)], "w0 = -1"),
            (vec![Insn::mov64_reg(R1, R10)], "r1 = r10"),
            (vec![Insn::alu32_reg(BPF_MOV, R2, R3)], "w2 = w3"),
            (vec![Insn::alu64_imm(BPF_ADD, R1, -8)], "r1 += -8"),
            (vec![Insn::alu32_imm(BPF_AND, R2, 255)], "w2 &= 255"),
            (vec![Insn::alu64_reg(BPF_SUB, R3, R4)], "r3 -= r4"),
            (vec![Insn::alu32_reg(BPF_MUL, R3, R4)], "w3 *= w4"),
            (vec![Insn::alu64_imm(BPF_DIV, R1, 10)], "r1 /= 10"),
            (vec![Insn::alu64_reg(BPF_OR, R1, R2)], "r1 |= r2"),
            (vec![Insn::alu64_imm(BPF_LSH, R1, 32)], "r1 <<= 32"),
            (vec![Insn::alu32_imm(BPF_RSH, R1, 3)], "w1 >>= 3"),
            (vec![Insn::alu64_imm(BPF_ARSH, R1, 32)], "r1 s>>= 32"),
            (vec![Insn::alu32_reg(BPF_XOR, R5, R6)], "w5 ^= w6"),
            (vec![Insn::alu64_reg(BPF_MOD, R1, R2)], "r1 %= r2"),
            (ins(BPF_ALU64 | BPF_NEG, R0, 0, 0, 0), "r0 = -r0"),
            (ins(BPF_ALU | BPF_NEG, R7, 0, 0, 0), "w7 = -w7"),
            (ins(BPF_ALU64 | BPF_DIV | BPF_X, R1, R2, 1, 0), "r1 s/= r2"),
            (ins(BPF_ALU64 | BPF_MOD | BPF_X, R1, R2, 1, 0), "r1 s%= r2"),
            (ins(BPF_ALU | BPF_DIV | BPF_K, R1, 0, 1, -3), "w1 s/= -3"),
            (
                ins(BPF_ALU64 | BPF_MOV | BPF_X, R1, R2, 8, 0),
                "r1 = (s8)r2",
            ),
            (
                ins(BPF_ALU | BPF_MOV | BPF_X, R1, R2, 16, 0),
                "w1 = (s16)w2",
            ),
            (
                ins(BPF_ALU64 | BPF_MOV | BPF_X, R3, R4, 32, 0),
                "r3 = (s32)r4",
            ),
            (
                ins(BPF_ALU | BPF_END | BPF_TO_BE, R0, 0, 0, 16),
                "r0 = be16 r0",
            ),
            (
                ins(BPF_ALU | BPF_END | BPF_TO_LE, R0, 0, 0, 64),
                "r0 = le64 r0",
            ),
            (ins(BPF_ALU64 | BPF_END, R0, 0, 0, 32), "r0 = bswap32 r0"),
            (
                ins(BPF_ALU64 | BPF_MOV | BPF_X, R1, R2, 1, 1),
                "r1 = addr_space_cast(r2, 0, 1)",
            ),
            (
                ins(BPF_ALU64 | BPF_MOV | BPF_X, R1, R1, -1, 0),
                "r1 = &(void __percpu *)(r1)",
            ),
            (
                Insn::ld_imm64(R1, 0, 0x1122_3344_5566_7788).to_vec(),
                "r1 = 0x1122334455667788 ll",
            ),
            (Insn::ld_imm64(R2, 0, 0).to_vec(), "r2 = 0x0 ll"),
            (Insn::ld_map(R1, 3).to_vec(), "r1 = map[3] ll"),
            (Insn::ld_ksym(R1, 8435).to_vec(), "r1 = ksym[8435] ll"),
            (
                vec![Insn::ldx(BPF_DW, R1, R10, -8)],
                "r1 = *(u64 *)(r10 -8)",
            ),
            (vec![Insn::ldx(BPF_B, R2, R1, 0)], "r2 = *(u8 *)(r1 +0)"),
            (
                ins(BPF_LDX | BPF_MEMSX | BPF_W, R1, R2, 4, 0),
                "r1 = *(s32 *)(r2 +4)",
            ),
            (
                ins(BPF_LDX | BPF_MEMSX | BPF_H, R1, R2, -2, 0),
                "r1 = *(s16 *)(r2 -2)",
            ),
            (
                vec![Insn::stx(BPF_DW, R10, -8, R1)],
                "*(u64 *)(r10 -8) = r1",
            ),
            (vec![Insn::st(BPF_W, R10, -4, 0)], "*(u32 *)(r10 -4) = 0"),
            (vec![Insn::st(BPF_H, R10, -2, -1)], "*(u16 *)(r10 -2) = -1"),
            (
                vec![Insn::atomic_add(BPF_DW, R1, 0, R2)],
                "lock *(u64 *)(r1 +0) += r2",
            ),
            (
                atomic(BPF_W, R1, R3, 8, BPF_AND as i32),
                "lock *(u32 *)(r1 +8) &= r3",
            ),
            (
                atomic(BPF_DW, R1, R2, 0, BPF_OR as i32),
                "lock *(u64 *)(r1 +0) |= r2",
            ),
            (
                atomic(BPF_DW, R1, R2, 0, BPF_XOR as i32),
                "lock *(u64 *)(r1 +0) ^= r2",
            ),
            (
                atomic(BPF_DW, R1, R2, 0, BPF_FETCH),
                "r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)",
            ),
            (
                atomic(BPF_W, R10, R3, -4, BPF_XOR as i32 | BPF_FETCH),
                "r3 = atomic_fetch_xor((u32 *)(r10 -4), r3)",
            ),
            (
                atomic(BPF_DW, R2, R1, 16, BPF_XCHG),
                "r1 = atomic64_xchg((u64 *)(r2 +16), r1)",
            ),
            (
                atomic(BPF_DW, R1, R2, 0, BPF_CMPXCHG),
                "r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)",
            ),
            (
                atomic(BPF_W, R1, R2, 0, BPF_CMPXCHG),
                "r0 = atomic_cmpxchg((u32 *)(r1 +0), r0, r2)",
            ),
            (
                atomic(BPF_DW, R2, R1, 0, BPF_LOAD_ACQ),
                "r2 = load_acquire((u64 *)(r1 +0))",
            ),
            (
                atomic(BPF_B, R1, R2, 3, BPF_STORE_REL),
                "store_release((u8 *)(r1 +3), r2)",
            ),
            (
                ins(BPF_LD | BPF_ABS | BPF_H, R0, 0, 0, 12),
                "r0 = *(u16 *)skb[12]",
            ),
            (
                ins(BPF_LD | BPF_IND | BPF_B, R0, R6, 0, -2),
                "r0 = *(u8 *)skb[r6 + -2]",
            ),
            (ins(BPF_ST | BPF_NOSPEC, 0, 0, 0, 0), "nospec"),
            (
                vec![Insn::jmp_imm(BPF_JGT, R1, 5, 2)],
                "if r1 > 0x5 goto pc+2",
            ),
            (
                vec![Insn::jmp_imm(BPF_JEQ, R0, 0, 1)],
                "if r0 == 0x0 goto pc+1",
            ),
            (
                vec![Insn::jmp_imm(BPF_JNE, R1, -1, 0)],
                "if r1 != 0xffffffff goto pc+0",
            ),
            (
                ins(BPF_JMP32 | BPF_JSLT | BPF_X, R1, R2, -3, 0),
                "if w1 s< w2 goto pc-3",
            ),
            (
                vec![Insn::jmp_reg(BPF_JSET, R3, R4, 7)],
                "if r3 & r4 goto pc+7",
            ),
            (
                ins(BPF_JMP32 | BPF_JSGE | BPF_K, R0, 0, 1, 16),
                "if w0 s>= 0x10 goto pc+1",
            ),
            (
                vec![Insn::jmp_reg(BPF_JSLE, R9, R8, -100)],
                "if r9 s<= r8 goto pc-100",
            ),
            (vec![Insn::ja(-1)], "goto pc-1"),
            (ins(BPF_JMP32 | BPF_JA, 0, 0, 0, 70000), "gotol pc+70000"),
            (ins(BPF_JMP | BPF_JCOND, 0, 0, 4, 0), "may_goto pc+4"),
            (
                vec![Insn::call(MAP_LOOKUP_ELEM)],
                "call bpf_map_lookup_elem#1",
            ),
            (vec![Insn::call(9999)], "call unknown#9999"),
            (
                vec![Insn::call(USER_MAP_COUNT)],
                "call ktap_map_count#1879048194",
            ),
            (
                ins(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, 5),
                "call pc+5",
            ),
            (
                ins(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, 1234),
                "call kernel-function#1234",
            ),
            (vec![Insn::exit()], "exit"),
            (
                ins(0x8f, 1, 2, -3, 4),
                "raw code=0x8f dst=1 src=2 off=-3 imm=4",
            ),
            // A move with a stray offset would lose the offset in the kernel's text.
            (
                ins(BPF_ALU64 | BPF_MOV | BPF_K, 1, 0, 7, 5),
                "raw code=0xb7 dst=1 src=0 off=7 imm=5",
            ),
        ]
    }

    #[test]
    fn golden_text_both_ways() {
        for (insns, text) in golden() {
            assert_eq!(disasm(&insns), vec![text.to_string()], "{insns:?}");
            assert_eq!(disasm_one(&insns, 0), text);
            assert_eq!(assemble(text).as_ref(), Ok(&insns), "{text}");
        }
    }

    #[test]
    fn program_with_every_form_round_trips() {
        let forms = golden();
        let prog: Vec<Insn> = forms.iter().flat_map(|(i, _)| i.clone()).collect();
        let lines = disasm(&prog);
        let texts: Vec<&str> = forms.iter().map(|(_, t)| *t).collect();
        assert_eq!(lines, texts);
        assert_eq!(assemble(&lines.join("\n")), Ok(prog.clone()));
        // The listing numbers instructions by slot, as the kernel does, so a pasted listing is
        // the same program.
        let listing = disasm_listing(&prog);
        assert_eq!(assemble(&listing), Ok(prog));
    }

    #[test]
    fn listing_has_the_kernel_prefix() {
        let mut prog = vec![Insn::mov64_imm(R0, 0)];
        prog.extend(Insn::ld_map(R1, 0));
        prog.push(Insn::stx(BPF_DW, R10, -8, R1));
        prog.push(Insn::exit());
        assert_eq!(
            disasm_listing(&prog),
            "0: (b7) r0 = 0\n1: (18) r1 = map[0] ll\n3: (7b) *(u64 *)(r10 -8) = r1\n4: (95) exit\n"
        );
        // The second slot alone is only a raw instruction; past the end there is nothing.
        assert_eq!(
            disasm_one(&prog, 2),
            "raw code=0x00 dst=0 src=0 off=0 imm=0"
        );
        assert_eq!(disasm_one(&prog, 5), "");
        assert_eq!(disasm(&[]), Vec::<String>::new());
    }

    #[test]
    fn malformed_ld_imm64_falls_back_to_raw() {
        // Truncated: no second slot.
        let [first, _] = Insn::ld_imm64(R1, 0, 5);
        assert_eq!(
            disasm(&[first]),
            vec!["raw code=0x18 dst=1 src=0 off=0 imm=5"]
        );
        // A second slot with a stray register, and a pseudo source ktap does not print.
        let bad = [first, Insn::new(0, 1, 0, 0, 0)];
        assert_eq!(disasm(&bad).len(), 2);
        assert_eq!(assemble(&disasm(&bad).join("\n")), Ok(bad.to_vec()));
        let value = Insn::ld_imm64(R1, 2, 5);
        assert!(disasm(&value).iter().all(|l| l.starts_with("raw ")));
        assert_eq!(assemble(&disasm(&value).join("\n")), Ok(value.to_vec()));
    }

    /// One instruction (or `ld_imm64` pair) of every form with random operands.
    fn random_form(rng: &mut Rng) -> Vec<Insn> {
        let (d, s, off, imm) = (rng.reg(), rng.reg(), rng.i16(), rng.i32());
        let size = rng.pick(&[BPF_B, BPF_H, BPF_W, BPF_DW]);
        let narrow = rng.pick(&[BPF_B, BPF_H, BPF_W]);
        let rmw = rng.pick(&[BPF_W, BPF_DW]);
        let alu = rng.pick(&[BPF_ALU, BPF_ALU64]);
        let jmp = rng.pick(&[BPF_JMP, BPF_JMP32]);
        let alu_op = rng.pick(&ALU_OPS).0;
        let jmp_op = rng.pick(&JMP_OPS).0;
        let signed_op = rng.pick(&[BPF_DIV, BPF_MOD]);
        let width = rng.pick(&[16, 32, 64]);
        let atomic_op = rng.pick(&ATOMIC_OPS).0 | rng.pick(&[0, BPF_FETCH]);
        match rng.below(26) {
            0 => ins(alu | alu_op | BPF_K, d, 0, 0, imm),
            1 => ins(alu | alu_op | BPF_X, d, s, 0, 0),
            2 => ins(alu | signed_op | BPF_K, d, 0, 1, imm),
            3 => ins(alu | signed_op | BPF_X, d, s, 1, 0),
            4 => ins(alu | BPF_NEG, d, 0, 0, 0),
            5 => {
                let code = rng.pick(&ENDIAN).1;
                ins(code, d, 0, 0, width)
            }
            6 => {
                let bits = if alu == BPF_ALU64 {
                    rng.pick(&[8, 16, 32])
                } else {
                    rng.pick(&[8, 16])
                };
                ins(alu | BPF_MOV | BPF_X, d, s, bits, 0)
            }
            7 => ins(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 1, imm),
            8 => ins(BPF_ALU64 | BPF_MOV | BPF_X, d, s, -1, 0),
            9 => Insn::ld_imm64(d, 0, rng.next() >> rng.below(64)).to_vec(),
            10 if rng.below(2) == 0 => {
                Insn::ld_ksym(d, rng.next() as u32 >> rng.below(32)).to_vec()
            }
            10 => Insn::ld_map(d, rng.next() as u32 >> rng.below(32)).to_vec(),
            11 => ins(BPF_LD | BPF_ABS | narrow, 0, 0, 0, imm),
            12 => ins(BPF_LD | BPF_IND | narrow, 0, s, 0, imm),
            13 => vec![Insn::ldx(size, d, s, off)],
            14 => ins(BPF_LDX | BPF_MEMSX | narrow, d, s, off, 0),
            15 => vec![Insn::stx(size, d, off, s)],
            16 => vec![Insn::st(size, d, off, imm)],
            17 => ins(BPF_STX | BPF_ATOMIC | rmw, d, s, off, atomic_op),
            18 => {
                let op = rng.pick(&[BPF_XCHG, BPF_CMPXCHG]);
                ins(BPF_STX | BPF_ATOMIC | rmw, d, s, off, op)
            }
            19 => {
                let op = rng.pick(&[BPF_LOAD_ACQ, BPF_STORE_REL]);
                ins(BPF_STX | BPF_ATOMIC | size, d, s, off, op)
            }
            20 => ins(BPF_ST | BPF_NOSPEC, 0, 0, 0, 0),
            21 => ins(jmp | jmp_op | BPF_K, d, 0, off, imm),
            22 => ins(jmp | jmp_op | BPF_X, d, s, off, 0),
            23 => match rng.below(3) {
                0 => vec![Insn::ja(off)],
                1 => ins(BPF_JMP32 | BPF_JA, 0, 0, 0, imm),
                _ => ins(BPF_JMP | BPF_JCOND, 0, BPF_MAY_GOTO, off, 0),
            },
            24 => {
                let kind = rng.pick(&[0, 0, BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL]);
                let id = if rng.below(2) == 0 {
                    rng.pick(helpers::HELPERS).id
                } else {
                    imm
                };
                ins(BPF_JMP | BPF_CALL, 0, kind, 0, id)
            }
            _ => vec![Insn::exit()],
        }
    }

    #[test]
    fn random_well_formed_streams_round_trip() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let n = 1 + rng.below(24);
            let prog: Vec<Insn> = (0..n).flat_map(|_| random_form(&mut rng)).collect();
            let lines = disasm(&prog);
            assert!(
                lines.iter().all(|l| !l.starts_with("raw ")),
                "a well-formed instruction printed raw: {prog:?}\n{lines:#?}"
            );
            assert_eq!(assemble(&lines.join("\n")), Ok(prog.clone()), "{lines:#?}");
            assert_eq!(assemble(&disasm_listing(&prog)), Ok(prog));
        }
    }

    #[test]
    fn arbitrary_streams_round_trip() {
        // Any bits at all survive, through the raw fallback where the kernel syntax falls short.
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..3000 {
            let n = 1 + rng.below(8);
            let prog: Vec<Insn> = (0..n)
                .map(|_| {
                    let code = if rng.below(4) == 0 {
                        LD_IMM64
                    } else {
                        rng.next() as u8
                    };
                    // Half the fields are zero, so that many instructions are nearly valid.
                    let v = rng.next() % 16;
                    let dst = rng.half(v) as u8;
                    let v = rng.next() % 16;
                    let src = rng.half(v) as u8;
                    let v = rng.i16() as u64;
                    let off = rng.half(v) as i16;
                    let v = rng.i32() as u64;
                    let imm = rng.half(v) as i32;
                    Insn::new(code, dst, src, off, imm)
                })
                .collect();
            let text = disasm(&prog).join("\n");
            assert_eq!(assemble(&text), Ok(prog), "{text}");
        }
    }

    #[test]
    fn kernel_verifier_log_pastes_in() {
        // The shape of a 6.x verifier log: source lines and register state are `;` comments,
        // map pointers are shown as addresses.
        let log = "\
func#0 @0
0: R1=ctx() R10=fp0
; int count(void *ctx) @ count.bpf.c:12
0: (b7) r1 = 0                        ; R1_w=0
1: (7b) *(u64 *)(r10 -8) = r1         ; R1_w=0 R10=fp0 fp-8_w=0
2: (bf) r2 = r10                      ; R2_w=fp0 R10=fp0
3: (07) r2 += -8                      ; R2_w=fp-8
4: (18) r1 = 0xffff9a4c4a3e7000       ; R1_w=map_ptr(map=counts,ks=8,vs=8)
6: (85) call bpf_map_lookup_elem#1    ; R0_w=map_value_or_null(id=1,map=counts,ks=8,vs=8)
7: (15) if r0 == 0x0 goto pc+2        ; R0_w=map_value(map=counts,ks=8,vs=8)
8: (b7) r1 = 1                        ; R1_w=1
9: (db) lock *(u64 *)(r0 +0) += r1    ; R0_w=map_value(map=counts,ks=8,vs=8) R1_w=1
10: (b7) r0 = 0                       ; R0_w=0
11: (95) exit
processed 12 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1";
        // The lines that are not instructions are dropped by hand, as a user would.
        let insns: Vec<&str> = log.lines().filter(|l| l.contains(": (")).collect();
        let prog = assemble(&insns.join("\n")).unwrap();
        let mut want = vec![
            Insn::mov64_imm(R1, 0),
            Insn::stx(BPF_DW, R10, -8, R1),
            Insn::mov64_reg(R2, R10),
            Insn::alu64_imm(BPF_ADD, R2, -8),
        ];
        want.extend(Insn::ld_imm64(R1, 0, 0xffff_9a4c_4a3e_7000));
        want.extend([
            Insn::call(MAP_LOOKUP_ELEM),
            Insn::jmp_imm(BPF_JEQ, R0, 0, 2),
            Insn::mov64_imm(R1, 1),
            Insn::atomic_add(BPF_DW, R0, 0, R1),
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ]);
        assert_eq!(prog, want);
        // The lines that are not instructions fail with a position rather than being guessed at.
        let err = assemble("func#0 @0").unwrap_err();
        assert_eq!((err.line, err.col), (1, 8));

        // A `bpftool prog dump xlated` listing, indented and with 32-bit atomics.
        let xlated = "   0: (bf) r6 = r1
   1: (85) call bpf_get_current_pid_tgid#14
   2: (77) r0 >>= 32
   3: (63) *(u32 *)(r10 -4) = r0
   4: (bf) r2 = r10
   5: (07) r2 += -4
   6: (dc) r0 = be32 r0
   7: (b4) w1 = 1
   8: (c3) r1 = atomic_fetch_add((u32 *)(r2 +0), r1)
   9: (bc) w3 = (s8)w1
  10: (91) r4 = *(s8 *)(r6 +16)
  11: (3f) r4 s/= r3
  12: (ae) if w4 < w3 goto pc-3
  13: (85) call bpf_trace_printk#6
  14: (85) call pc+1
  15: (95) exit
  16: (95) exit";
        let prog = assemble(xlated).unwrap();
        assert_eq!(prog.len(), 17);
        assert_eq!(prog[1], Insn::call(14));
        assert_eq!(prog[8], Insn::new(0xc3, R2, R1, 0, BPF_FETCH));
        assert_eq!(prog[11], Insn::new(0x3f, R4, R3, 1, 0));
        assert_eq!(prog[13], Insn::call(6));
        // The helper ktap does not know comes back under the kernel's fallback name.
        assert_eq!(disasm_one(&prog, 13), "call unknown#6");
    }

    #[test]
    fn prefix_opcode_must_agree() {
        let err = assemble("0: (07) r0 = 0").unwrap_err();
        assert_eq!(err.line, 1);
        assert_eq!(err.col, 4);
        assert!(
            err.message.contains("(07)") && err.message.contains("(b7)"),
            "{err}"
        );
        // `(18)` turns a value that would fit a move into a 64-bit load, as the kernel prints it.
        assert_eq!(
            assemble("5: (18) r3 = 0x5"),
            Ok(Insn::ld_imm64(R3, 0, 5).to_vec())
        );
        assert!(assemble("0: (zz) exit").is_err());
        assert!(assemble("0: (b7)").is_err());
        assert!(assemble("0: (123) exit").is_err());
    }

    #[test]
    fn accepted_spellings() {
        let one = |text: &str| assemble(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let call = vec![Insn::call(MAP_LOOKUP_ELEM)];
        for text in [
            "call 1",
            "call 0x1",
            "call bpf_map_lookup_elem",
            "call map_lookup_elem",
            "call map_lookup_elem#1",
        ] {
            assert_eq!(one(text), call, "{text}");
        }
        assert_eq!(one("call ktap_map_count"), vec![Insn::call(USER_MAP_COUNT)]);
        assert_eq!(one("call unknown#77"), vec![Insn::call(77)]);
        assert_eq!(one("r1 = map[2]"), Insn::ld_map(R1, 2).to_vec());
        assert_eq!(one("r1 = 5 ll"), Insn::ld_imm64(R1, 0, 5).to_vec());
        assert_eq!(one("r1 = -1 ll"), Insn::ld_imm64(R1, 0, u64::MAX).to_vec());
        assert_eq!(
            one("r1 = 0x100000000"),
            Insn::ld_imm64(R1, 0, 1 << 32).to_vec()
        );
        assert_eq!(
            one("r1 = 0xffffffff"),
            Insn::ld_imm64(R1, 0, 0xffff_ffff).to_vec()
        );
        assert_eq!(one("r1 = -0x80000000"), vec![Insn::mov64_imm(R1, i32::MIN)]);
        assert_eq!(
            one("w1 = 0xffffffff"),
            vec![Insn::alu32_imm(BPF_MOV, R1, -1)]
        );
        assert_eq!(one("r1 += 0x10"), vec![Insn::alu64_imm(BPF_ADD, R1, 16)]);
        assert_eq!(
            one("if r1 == 0xffffffff goto pc+0"),
            vec![Insn::jmp_imm(BPF_JEQ, R1, -1, 0)]
        );
        assert_eq!(
            one("if r1 s> -1 goto pc-0x10"),
            vec![Insn::jmp_imm(BPF_JSGT, R1, -1, -16)]
        );
        assert_eq!(
            one("r1=*(u64*)(r10-8)"),
            vec![Insn::ldx(BPF_DW, R1, R10, -8)]
        );
        assert_eq!(
            one("r1 = *(u64 *)(r10)"),
            vec![Insn::ldx(BPF_DW, R1, R10, 0)]
        );
        assert_eq!(
            one("*(u8 *)(r1 + 3) = -0x1"),
            vec![Insn::st(BPF_B, R1, 3, -1)]
        );
        assert_eq!(
            one("r0 = *(u32 *)skb[r1 - 4]"),
            ins(BPF_LD | BPF_IND, R0, R1, 0, -4)
        );
        assert_eq!(
            one(
                "\r\n\n  ; comment\n# comment\n// comment\nexit # done\nexit // done\nexit;\n\t \n"
            ),
            vec![Insn::exit(); 3]
        );
    }

    /// `(line, col, message)` of the error for `text`.
    fn error(text: &str) -> (usize, usize, String) {
        let e = assemble(text).unwrap_err();
        assert!(e
            .to_string()
            .starts_with(&format!("line {}, column {}: ", e.line, e.col)));
        (e.line, e.col, e.message)
    }

    #[test]
    fn errors_say_where_and_why() {
        let cases: &[(&str, usize, usize, &str)] = &[
            (
                "exit\nexit\nr1 += x1",
                3,
                7,
                "expected a register, found 'x1'",
            ),
            ("r1 = x1", 1, 6, "expected a register, found 'x1'"),
            ("r11 = 0", 1, 1, "expected a register, found 'r11'"),
            (
                "w1 += r2",
                1,
                7,
                "'w1' and 'r2' mix 32- and 64-bit registers",
            ),
            (
                "if r1 > w2 goto pc+1",
                1,
                9,
                "'r1' and 'w2' mix 32- and 64-bit registers",
            ),
            (
                "r1 = *(u64 *)(r10 -8",
                1,
                21,
                "expected ')', found end of line",
            ),
            (
                "r1 = *(u128 *)(r10 -8)",
                1,
                8,
                "expected a size (u8, u16, u32 or u64), found 'u128'",
            ),
            (
                "*(s8 *)(r1 +0) = 1",
                1,
                3,
                "expected an unsigned size (u8, u16, u32 or u64), found 's8'",
            ),
            (
                "r1 = *(u64 *)(w10 -8)",
                1,
                15,
                "expected a 64-bit register, found 'w10'",
            ),
            (
                "r1 = *(u64 *)(r10 -40000)",
                1,
                19,
                "-40000 is out of range for a 16-bit offset",
            ),
            (
                "r1 += 0x100000000",
                1,
                7,
                "0x100000000 is out of range for a 32-bit immediate",
            ),
            (
                "w1 = 5 ll",
                1,
                1,
                "this form needs a 64-bit register, found 'w1'",
            ),
            (
                "r1 = 99999999999999999999",
                1,
                6,
                "number '99999999999999999999' does not fit in 64 bits",
            ),
            ("r1 = 0x", 1, 6, "malformed number '0x'"),
            ("r1 = 12ab", 1, 6, "malformed number '12ab'"),
            ("r1 = 1 @", 1, 8, "unexpected character '@'"),
            ("r1 = 1 2", 1, 8, "unexpected '2' after the instruction"),
            (
                "call nosuch",
                1,
                6,
                "unknown helper 'nosuch'; give its number as in 'call nosuch#6'",
            ),
            (
                "call bpf_map_lookup_elem#2",
                1,
                26,
                "bpf_map_lookup_elem is helper #1, not #2",
            ),
            ("goto 5", 1, 6, "expected 'pc', found '5'"),
            ("if r1 ~ 2 goto pc+1", 1, 7, "unexpected character '~'"),
            (
                "if r1 = 2 goto pc+1",
                1,
                7,
                "expected a comparison such as '==' or 's<', found '='",
            ),
            (
                "r1 = -r2",
                1,
                7,
                "negation works in place: write 'r1 = -r1'",
            ),
            (
                "r0 = be16 r1",
                1,
                11,
                "byte swaps work in place: write 'r0 = be16 r0'",
            ),
            (
                "w1 = (s32)w2",
                1,
                7,
                "a 32-bit move sign-extends only from s8 or s16",
            ),
            (
                "lock *(u8 *)(r1 +0) += r2",
                1,
                7,
                "atomic read-modify-write operations need u32 or u64",
            ),
            (
                "lock *(u64 *)(r1 +0) -= r2",
                1,
                22,
                "expected an atomic operator ('+=', '&=', '|=' or '^='), found '-='",
            ),
            (
                "r3 = atomic64_fetch_add((u64 *)(r1 +0), r2)",
                1,
                1,
                "atomic64_fetch_add returns the old value in r2, not in 'r3'",
            ),
            (
                "r2 = atomic_fetch_add((u64 *)(r1 +0), r2)",
                1,
                23,
                "atomic_fetch_add works on (u32 *)",
            ),
            (
                "r0 = atomic64_cmpxchg((u64 *)(r1 +0), r1, r2)",
                1,
                39,
                "cmpxchg always compares with r0",
            ),
            (
                "r1 = *(u32 *)skb[4]",
                1,
                7,
                "packet loads read u8, u16 or u32 into r0",
            ),
            (
                "raw code=0x100 dst=0 src=0 off=0 imm=0",
                1,
                10,
                "0x100 is out of range for the value of code (0 to 255)",
            ),
            (
                "raw code=0 dst=0 src=0 imm=0",
                1,
                24,
                "expected 'off', found 'imm'",
            ),
            (
                "r1 = map[-1]",
                1,
                10,
                "-1 is out of range for a map index (0 to 4294967295)",
            ),
            (
                "r1",
                1,
                3,
                "expected an operator such as '=' or '+=', found end of line",
            ),
            ("r1 =", 1, 5, "expected a value, found end of line"),
            ("5", 1, 1, "expected a register, found '5'"),
        ];
        for &(text, line, col, message) in cases {
            assert_eq!(error(text), (line, col, message.to_string()), "{text}");
        }
    }

    /// Checks the contract on one input: no panic, and anything accepted is a stable program.
    fn check(text: &str) {
        if let Ok(prog) = assemble(text) {
            let lines = disasm(&prog);
            assert_eq!(assemble(&lines.join("\n")), Ok(prog), "{text:?}");
            if !text.contains("raw") {
                assert!(
                    lines.iter().all(|l| !l.starts_with("raw ")),
                    "{text:?} assembled to a form the disassembler cannot print: {lines:?}"
                );
            }
        }
    }

    #[test]
    fn garbage_and_truncated_input_never_panics() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        let lines: Vec<&str> = golden().into_iter().map(|(_, t)| t).collect();
        for line in &lines {
            let chars: Vec<char> = line.chars().collect();
            for cut in 0..=chars.len() {
                check(&chars[..cut].iter().collect::<String>());
                check(&chars[cut..].iter().collect::<String>());
            }
        }
        let alphabet: Vec<char> =
            "rw0123456789x =+-*/%&|^<>!s()[],#:;.@ ablqu_\t\n\u{e9}\u{1f600}\0"
                .chars()
                .collect();
        let words = [
            "r1",
            "w2",
            "r10",
            "r11",
            "=",
            "+=",
            "s>>=",
            "*",
            "(",
            ")",
            "u64",
            "s8",
            "0x",
            "12",
            "-",
            "+",
            ",",
            "[",
            "]",
            "#",
            "call",
            "goto",
            "pc",
            "if",
            "exit",
            "lock",
            "map",
            "ksym",
            "ll",
            "atomic64_fetch_add",
            "atomic_cmpxchg",
            "be16",
            "bswap64",
            "skb",
            "raw",
            "code=",
            "load_acquire",
            "store_release",
            "&",
            "void",
            "__percpu",
            "0xffffffffffffffff",
            "99999999999999999999",
            "kernel-function",
            "5: (b7)",
            "addr_space_cast",
            "nospec",
        ];
        for _ in 0..50000 {
            let mut text: String = match rng.below(3) {
                0 => (0..rng.below(30)).map(|_| rng.pick(&alphabet)).collect(),
                1 => (0..rng.below(10))
                    .map(|_| rng.pick(&words))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => rng.pick(&lines).to_string(),
            };
            for _ in 0..rng.below(4) {
                let mut chars: Vec<char> = text.chars().collect();
                let at = rng.below(chars.len() + 1);
                match rng.below(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => chars[at] = rng.pick(&alphabet),
                    _ => chars.insert(at, rng.pick(&alphabet)),
                }
                text = chars.into_iter().collect();
            }
            check(&text);
        }
    }
}
