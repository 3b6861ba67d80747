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
            // The kernel writes `r` for both classes: the conversion always fills the register.
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
                self.pos += 1;
                self.expect("[")?;
                let index = self.unsigned("a map index", u32::MAX)?;
                self.expect("]")?;
                self.eat("ll");
                self.need_wide(dst)?;
                return Ok(Insn::ld_map(dst.n, index).to_vec());
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
