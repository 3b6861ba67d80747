//! The first pass, instruction validity: a data table says, for each of the 256 opcodes, what
//! the instruction is and which of its fields must be zero or may hold what; [`decode`] checks
//! every instruction against it and turns the stream into typed [`Op`]s, which the later passes
//! read instead of raw encodings. `ld_imm64` pairs are joined here, and its second slot becomes
//! `None`.

use crate::VerifyError;
use ktap_bpf::insn::*;
use ktap_bpf::MapDef;

/// An instruction after validation. Jump targets are absolute (they may still be out of
/// range; the control-flow pass says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `dst op= src`, 64-bit (`wide`) or 32-bit; `signed` for `s/=` and `s%=`.
    Alu {
        wide: bool,
        op: u8,
        dst: u8,
        src: Src,
        signed: bool,
    },
    Neg {
        wide: bool,
        dst: u8,
    },
    /// A byte swap of the low `bits` bits (`le`, `be` or `bswap`).
    End {
        dst: u8,
    },
    /// `dst = (sN) src`: a sign-extending move.
    MovSx {
        wide: bool,
        dst: u8,
        src: u8,
    },
    LdImm {
        dst: u8,
        value: u64,
    },
    LdMap {
        dst: u8,
        map: u32,
    },
    /// `dst = ksym[btf_id]`: a kernel variable's address (`BPF_PSEUDO_BTF_ID`).
    LdKsym {
        dst: u8,
        btf_id: u32,
    },
    /// `dst = *(size *)(src + off)`, sign-extending when `sx`.
    Ldx {
        size: u32,
        sx: bool,
        dst: u8,
        src: u8,
        off: i16,
    },
    St {
        size: u32,
        dst: u8,
        off: i16,
        imm: i32,
    },
    Stx {
        size: u32,
        dst: u8,
        src: u8,
        off: i16,
    },
    /// An atomic read-modify-write; `imm` is the kernel's operation code.
    Atomic {
        size: u32,
        dst: u8,
        src: u8,
        off: i16,
        imm: i32,
    },
    Ja {
        target: i64,
    },
    Jcond {
        jmp32: bool,
        op: u8,
        dst: u8,
        src: Src,
        target: i64,
    },
    Call {
        helper: i32,
    },
    /// A bpf-to-bpf call of the function starting at `target`.
    CallLocal {
        target: i64,
    },
    Exit,
}

/// The second operand: a register or the immediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    Reg(u8),
    Imm(i32),
}

/// What the opcode is, as the table records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Unknown,
    Alu,
    Neg,
    End,
    Mov,
    LdImm64,
    LdImmNarrow,
    LdPacket,
    Ldx,
    LdxBadMode,
    St,
    StBadMode,
    Stx,
    Atomic,
    StxBadMode,
    Ja,
    Jcond,
    Call,
    Exit,
    JmpBadOp,
    AluBadOp,
}

/// A field rule: what the field may hold for this opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// Must be zero.
    Zero,
    /// A register that is read (`r0`..`r10`).
    Read,
    /// A register that is written (`r0`..`r9`).
    Write,
    /// Anything.
    Any,
    /// 0, or 1 for the signed division and modulo (cpu v4).
    DivSign,
    /// A sign-extension width for a register move: 0, 8, 16 (and 32 for 64-bit moves).
    MovSx,
    /// A byte swap width: 16, 32 or 64.
    EndWidth,
    /// A shift amount below 32 or 64.
    Shift,
    /// A nonzero divisor.
    Divisor,
    /// An `ld_imm64` kind: a plain constant (0) or a map (`BPF_PSEUDO_MAP_FD`).
    LdKind,
    /// A call kind: a helper (0) or a bpf-to-bpf call (`BPF_PSEUDO_CALL`).
    CallKind,
    /// An atomic operation code.
    AtomicOp,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
struct Entry {
    form: Form,
    dst: Rule,
    src: Rule,
    off: Rule,
    imm: Rule,
    /// The instruction group the kernel names when a field breaks a rule (`BPF_ALU uses
    /// reserved fields`).
    group: &'static str,
}

const fn entry(
    form: Form,
    dst: Rule,
    src: Rule,
    off: Rule,
    imm: Rule,
    group: &'static str,
) -> Entry {
    Entry {
        form,
        dst,
        src,
        off,
        imm,
        group,
    }
}

const UNKNOWN: Entry = entry(
    Form::Unknown,
    Rule::Any,
    Rule::Any,
    Rule::Any,
    Rule::Any,
    "",
);

/// The row for one opcode.
const fn row(code: u8) -> Entry {
    use Rule::*;
    let class = code & 0x07;
    let op = code & 0xf0;
    let by_reg = code & BPF_X != 0;
    let size = code & 0x18;
    let mode = code & 0xe0;
    match class {
        BPF_ALU | BPF_ALU64 => match op {
            BPF_NEG => entry(Form::Neg, Write, Zero, Zero, Zero, "BPF_NEG"),
            BPF_END => entry(Form::End, Write, Zero, Zero, EndWidth, "BPF_END"),
            BPF_MOV if by_reg => entry(Form::Mov, Write, Read, MovSx, Zero, "BPF_MOV"),
            BPF_MOV => entry(Form::Mov, Write, Zero, Zero, Any, "BPF_MOV"),
            BPF_DIV | BPF_MOD if by_reg => entry(Form::Alu, Write, Read, DivSign, Zero, "BPF_ALU"),
            BPF_DIV | BPF_MOD => entry(Form::Alu, Write, Zero, DivSign, Divisor, "BPF_ALU"),
            BPF_LSH | BPF_RSH | BPF_ARSH if !by_reg => {
                entry(Form::Alu, Write, Zero, Zero, Shift, "BPF_ALU")
            }
            0xe0 | 0xf0 => entry(Form::AluBadOp, Any, Any, Any, Any, "BPF_ALU"),
            _ if by_reg => entry(Form::Alu, Write, Read, Zero, Zero, "BPF_ALU"),
            _ => entry(Form::Alu, Write, Zero, Zero, Any, "BPF_ALU"),
        },
        BPF_LD => match mode {
            BPF_IMM if size == BPF_DW => {
                entry(Form::LdImm64, Write, LdKind, Zero, Any, "BPF_LD_IMM64")
            }
            BPF_IMM => entry(Form::LdImmNarrow, Any, Any, Any, Any, ""),
            0x20 | 0x40 => entry(Form::LdPacket, Any, Any, Any, Any, ""),
            _ => UNKNOWN,
        },
        BPF_LDX => match mode {
            BPF_MEM => entry(Form::Ldx, Write, Read, Any, Zero, "BPF_LDX"),
            BPF_MEMSX if size != BPF_DW => entry(Form::Ldx, Write, Read, Any, Zero, "BPF_LDX"),
            _ => entry(Form::LdxBadMode, Any, Any, Any, Any, "BPF_LDX"),
        },
        BPF_ST => match mode {
            BPF_MEM => entry(Form::St, Read, Zero, Any, Any, "BPF_ST"),
            _ => entry(Form::StBadMode, Any, Any, Any, Any, "BPF_ST"),
        },
        BPF_STX => match mode {
            BPF_MEM => entry(Form::Stx, Read, Read, Any, Zero, "BPF_STX"),
            BPF_ATOMIC => entry(Form::Atomic, Read, Read, Any, AtomicOp, "BPF_ATOMIC"),
            _ => entry(Form::StxBadMode, Any, Any, Any, Any, "BPF_STX"),
        },
        _ => {
            // BPF_JMP and BPF_JMP32.
            let jmp32 = class == BPF_JMP32;
            match op {
                BPF_JA if by_reg => entry(Form::Ja, Zero, Zero, Any, Zero, "BPF_JA"),
                BPF_JA if jmp32 => entry(Form::Ja, Zero, Zero, Zero, Any, "BPF_JA"),
                BPF_JA => entry(Form::Ja, Zero, Zero, Any, Zero, "BPF_JA"),
                BPF_CALL => entry(Form::Call, Zero, CallKind, Any, Any, "BPF_CALL"),
                BPF_EXIT => entry(Form::Exit, Zero, Zero, Zero, Zero, "BPF_EXIT"),
                0xe0 | 0xf0 => entry(Form::JmpBadOp, Any, Any, Any, Any, "BPF_JMP/JMP32"),
                _ if by_reg => entry(Form::Jcond, Read, Read, Any, Zero, "BPF_JMP/JMP32"),
                _ => entry(Form::Jcond, Read, Zero, Any, Any, "BPF_JMP/JMP32"),
            }
        }
    }
}

const fn build() -> [Entry; 256] {
    let mut t = [UNKNOWN; 256];
    let mut code = 0;
    while code < 256 {
        t[code] = row(code as u8);
        code += 1;
    }
    t
}

/// The table: one row per opcode.
static TABLE: [Entry; 256] = build();

/// Bytes moved by the size bits of a load or store.
fn size_bytes(code: u8) -> u32 {
    match code & 0x18 {
        BPF_W => 4,
        BPF_H => 2,
        BPF_B => 1,
        _ => 8,
    }
}

/// Checks every instruction; the result has one entry per slot, `None` for the second slot of
/// an `ld_imm64`.
pub fn decode(insns: &[Insn], maps: &[MapDef], v4: bool) -> Result<Vec<Option<Op>>, VerifyError> {
    let mut out = Vec::with_capacity(insns.len());
    let mut pc = 0;
    while pc < insns.len() {
        let op = one(insns, pc, maps, v4).map_err(|m| VerifyError::validity(pc, m))?;
        let wide = matches!(op, Op::LdImm { .. } | Op::LdMap { .. } | Op::LdKsym { .. });
        out.push(Some(op));
        if wide {
            out.push(None);
            pc += 1;
        }
        pc += 1;
    }
    Ok(out)
}

fn one(insns: &[Insn], pc: usize, maps: &[MapDef], v4: bool) -> Result<Op, String> {
    let i = insns[pc];
    let e = TABLE[usize::from(i.code)];
    let reserved = || format!("{} uses reserved fields", e.group);
    let needs_v4 = |what: &str| {
        if v4 {
            Ok(())
        } else {
            Err(format!(
                "{what} needs cpu v4 instructions (Linux 6.6 or later); the target kernel has none"
            ))
        }
    };
    match e.form {
        Form::Unknown => return Err(format!("unknown opcode {:02x}", i.code)),
        Form::AluBadOp => return Err(format!("invalid BPF_ALU opcode {:x}", i.code & 0xf0)),
        Form::JmpBadOp if i.code & 0xf0 == 0xe0 => {
            return Err("may_goto is not supported: loops must end by their own bounds".into())
        }
        Form::JmpBadOp => return Err(format!("invalid BPF_JMP/JMP32 opcode {:x}", i.code & 0xf0)),
        Form::LdImmNarrow => return Err("invalid BPF_LD_IMM insn".into()),
        Form::LdPacket => {
            return Err("legacy packet loads (BPF_LD | BPF_ABS/BPF_IND) are not supported".into())
        }
        Form::LdxBadMode | Form::StBadMode | Form::StxBadMode => return Err(reserved()),
        _ => {}
    }
    // Register fields first: the kernel names a bad register before anything else about it.
    for (rule, reg) in [(e.dst, i.dst), (e.src, i.src)] {
        match rule {
            Rule::Read | Rule::Write if reg > R10 => return Err(format!("R{reg} is invalid")),
            Rule::Write if reg == R10 => return Err("frame pointer is read only".into()),
            _ => {}
        }
    }
    let wide = i.class() == BPF_ALU64;
    let field_ok = |rule: Rule, v: i64| -> bool {
        match rule {
            Rule::Zero => v == 0,
            Rule::DivSign => v == 0 || v == 1,
            Rule::MovSx => matches!(v, 0 | 8 | 16) || (wide && v == 32),
            Rule::EndWidth => matches!(v, 16 | 32 | 64),
            _ => true,
        }
    };
    if !field_ok(e.dst, i64::from(i.dst))
        || !field_ok(e.src, i64::from(i.src))
        || !field_ok(e.off, i64::from(i.off))
        || !field_ok(e.imm, i64::from(i.imm))
    {
        return Err(reserved());
    }
    let src = if i.code & BPF_X != 0 {
        Src::Reg(i.src)
    } else {
        Src::Imm(i.imm)
    };
    let op = i.code & 0xf0;
    Ok(match e.form {
        Form::Alu => {
            if e.imm == Rule::Divisor && i.imm == 0 {
                return Err("div by zero".into());
            }
            if e.imm == Rule::Shift {
                let bits = if wide { 64 } else { 32 };
                if i.imm < 0 || i.imm >= bits {
                    return Err(format!("invalid shift {}", i.imm));
                }
            }
            if i.off == 1 {
                needs_v4("signed division")?;
            }
            Op::Alu {
                wide,
                op,
                dst: i.dst,
                src,
                signed: i.off == 1,
            }
        }
        Form::Mov if i.off != 0 => {
            needs_v4("a sign-extending move")?;
            Op::MovSx {
                wide,
                dst: i.dst,
                src: i.src,
            }
        }
        Form::Mov => Op::Alu {
            wide,
            op: BPF_MOV,
            dst: i.dst,
            src,
            signed: false,
        },
        Form::Neg => {
            if i.code & BPF_X != 0 {
                return Err(reserved());
            }
            Op::Neg { wide, dst: i.dst }
        }
        Form::End => {
            if wide {
                if i.code & BPF_X != 0 {
                    return Err(reserved());
                }
                needs_v4("bswap")?;
            }
            Op::End { dst: i.dst }
        }
        Form::LdImm64 => {
            let Some(next) = insns.get(pc + 1) else {
                return Err("invalid bpf_ld_imm64 insn".into());
            };
            if next.code != 0 || next.dst != 0 || next.src != 0 || next.off != 0 {
                return Err("invalid bpf_ld_imm64 insn".into());
            }
            match i.src {
                0 => Op::LdImm {
                    dst: i.dst,
                    value: (u64::from(next.imm as u32) << 32) | u64::from(i.imm as u32),
                },
                BPF_PSEUDO_MAP_FD => {
                    if next.imm != 0 {
                        return Err("unrecognized bpf_ld_imm64 insn".into());
                    }
                    let map = i.imm as u32;
                    if map as usize >= maps.len() {
                        return Err(format!(
                            "map[{map}] does not exist: the program has {} maps",
                            maps.len()
                        ));
                    }
                    Op::LdMap { dst: i.dst, map }
                }
                BPF_PSEUDO_BTF_ID => {
                    // The second half names the BTF object: 0 is vmlinux, the only one ktap uses.
                    if next.imm != 0 {
                        return Err("unrecognized bpf_ld_imm64 insn".into());
                    }
                    Op::LdKsym {
                        dst: i.dst,
                        btf_id: i.imm as u32,
                    }
                }
                _ => return Err("unrecognized bpf_ld_imm64 insn".into()),
            }
        }
        Form::Ldx => {
            let sx = i.code & 0xe0 == BPF_MEMSX;
            if sx {
                needs_v4("a sign-extending load")?;
            }
            Op::Ldx {
                size: size_bytes(i.code),
                sx,
                dst: i.dst,
                src: i.src,
                off: i.off,
            }
        }
        Form::St => Op::St {
            size: size_bytes(i.code),
            dst: i.dst,
            off: i.off,
            imm: i.imm,
        },
        Form::Stx => Op::Stx {
            size: size_bytes(i.code),
            dst: i.dst,
            src: i.src,
            off: i.off,
        },
        Form::Atomic => {
            let size = size_bytes(i.code);
            if size != 4 && size != 8 {
                return Err("invalid atomic operand size".into());
            }
            let base = i.imm & !BPF_FETCH;
            let known = matches!(i.imm, BPF_XCHG | BPF_CMPXCHG)
                || matches!(base as u8, BPF_ADD | BPF_AND | BPF_OR | BPF_XOR) && base < 0x100;
            if !known {
                return Err(format!(
                    "BPF_ATOMIC uses invalid atomic opcode {:02x}",
                    i.imm
                ));
            }
            if i.imm & BPF_FETCH != 0 && i.src == R10 && i.imm != BPF_CMPXCHG {
                return Err("frame pointer is read only".into());
            }
            Op::Atomic {
                size,
                dst: i.dst,
                src: i.src,
                off: i.off,
                imm: i.imm,
            }
        }
        Form::Ja => {
            if i.code & BPF_X != 0 {
                return Err(reserved());
            }
            let jmp32 = i.class() == BPF_JMP32;
            if jmp32 {
                needs_v4("gotol")?;
            }
            let off = if jmp32 {
                i64::from(i.imm)
            } else {
                i64::from(i.off)
            };
            Op::Ja {
                target: pc as i64 + off + 1,
            }
        }
        Form::Jcond => Op::Jcond {
            jmp32: i.class() == BPF_JMP32,
            op,
            dst: i.dst,
            src,
            target: pc as i64 + i64::from(i.off) + 1,
        },
        Form::Call => {
            if i.class() == BPF_JMP32 || i.code & BPF_X != 0 {
                return Err(reserved());
            }
            match i.src {
                0 if i.off == 0 => Op::Call { helper: i.imm },
                BPF_PSEUDO_CALL if i.off == 0 => Op::CallLocal {
                    target: pc as i64 + i64::from(i.imm) + 1,
                },
                2 => return Err("calls of kernel functions (kfuncs) are not supported".into()),
                _ => return Err(reserved()),
            }
        }
        Form::Exit => {
            if i.class() == BPF_JMP32 || i.code & BPF_X != 0 {
                return Err(reserved());
            }
            Op::Exit
        }
        _ => return Err(format!("unknown opcode {:02x}", i.code)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(insns: &[Insn]) -> Result<Vec<Option<Op>>, String> {
        decode(insns, &[], false).map_err(|e| e.message)
    }

    #[test]
    fn every_opcode_has_a_row_and_none_panics() {
        for code in 0..=255u8 {
            for (dst, src, off, imm) in [(0, 0, 0, 0), (11, 12, 1, -1), (10, 1, 8, 64)] {
                let _ = check(&[Insn::new(code, dst, src, off, imm), Insn::exit()]);
            }
        }
    }

    #[test]
    fn kernel_words_for_bad_fields() {
        let e = |i: Insn| check(&[i, Insn::exit()]).unwrap_err();
        assert_eq!(e(Insn::new(0x60, 0, 0, 0, 0)), "unknown opcode 60");
        assert_eq!(
            e(Insn::new(0x8f, 0, 0, 0, 0)),
            "BPF_NEG uses reserved fields"
        );
        assert_eq!(
            e(Insn::new(BPF_ALU64 | BPF_ADD | BPF_K, 1, 2, 0, 0)),
            "BPF_ALU uses reserved fields"
        );
        assert_eq!(e(Insn::mov64_imm(R10, 0)), "frame pointer is read only");
        assert_eq!(
            e(Insn::new(BPF_ALU64 | BPF_MOV | BPF_X, 12, 0, 0, 0)),
            "R12 is invalid"
        );
        assert_eq!(e(Insn::alu64_imm(BPF_DIV, 1, 0)), "div by zero");
        assert_eq!(e(Insn::alu32_imm(BPF_LSH, 1, 32)), "invalid shift 32");
        assert_eq!(
            e(Insn::new(BPF_JMP | BPF_EXIT, 1, 0, 0, 0)),
            "BPF_EXIT uses reserved fields"
        );
        assert_eq!(
            e(Insn::new(BPF_JMP | BPF_CALL, 1, 0, 0, 1)),
            "BPF_CALL uses reserved fields"
        );
        assert_eq!(
            e(Insn::new(BPF_LDX | BPF_MEM | BPF_DW, 1, 2, 0, 3)),
            "BPF_LDX uses reserved fields"
        );
        assert_eq!(e(Insn::new(0xe4, 0, 0, 0, 0)), "invalid BPF_ALU opcode e0");
        assert!(e(Insn::new(BPF_ALU64 | BPF_MOV | BPF_X, 1, 2, 8, 0)).contains("cpu v4"));
        let truncated = check(&[Insn::ld_imm64(1, 0, 5)[0]]).unwrap_err();
        assert_eq!(truncated, "invalid bpf_ld_imm64 insn");
        let no_map = check(&Insn::ld_map(1, 0)).unwrap_err();
        assert!(no_map.contains("map[0] does not exist"), "{no_map}");
    }

    #[test]
    fn pairs_are_joined() {
        let p = Insn::ld_imm64(3, 0, 0x1122_3344_5566_7788);
        let ops = check(&[p[0], p[1], Insn::exit()]).unwrap();
        assert_eq!(
            ops,
            vec![
                Some(Op::LdImm {
                    dst: 3,
                    value: 0x1122_3344_5566_7788
                }),
                None,
                Some(Op::Exit)
            ]
        );
    }
}
