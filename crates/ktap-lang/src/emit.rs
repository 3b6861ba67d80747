//! Emission: turns allocated IR into eBPF instructions, reloading spilled operands, moving
//! helper arguments into `r1`-`r5`, and resolving labels to jump offsets.
//!
//! The register conventions are those of [`crate::regalloc`]: `r0` and `r1` are free scratch
//! between IR instructions, allocated values live in `r2`-`r9` or in 8-byte stack slots, and
//! values live across a call sit in `r6`-`r9` or on the stack. Every emitted instruction
//! carries the span of the IR instruction it implements.

use crate::ir::{Arg, Base, Inst, IrFunc, Label, Opnd, VReg};
use crate::regalloc::{Allocation, Loc};
use ktap_bpf::insn::*;
use ktap_bpf::{Function, Insn, Span};
use std::collections::HashMap;

/// Emits `f` with the locations of `a`. Fails on IR or an allocation that cannot be emitted:
/// an operand without a location, an unknown opcode or size, more than five call arguments,
/// a label placed twice or never, or a jump whose offset does not fit 16 bits.
pub fn emit(f: &IrFunc, a: &Allocation) -> Result<Function, String> {
    let mut e = Emitter {
        a,
        span: Span::default(),
        out: Function::default(),
        nlabels: f.nlabels,
        labels: HashMap::new(),
        fixups: Vec::new(),
    };
    for (i, (inst, span)) in f.insts.iter().enumerate() {
        e.span = *span;
        if let Inst::Label(l) = *inst {
            e.check_label(l)?;
            if e.labels.insert(l, e.out.insns.len()).is_some() {
                return Err(format!("L{l} is placed twice"));
            }
        } else if matches!(inst, Inst::EntryCtx { .. }) && i != 0 {
            // Only at entry is r1 known to hold the context: scratch use clobbers it after.
            return Err(format!(
                "EntryCtx at instruction {i}: it must be the first instruction"
            ));
        } else if !jumps_to_next(f, i) {
            e.inst(inst)?;
        }
    }
    e.resolve()
}

/// True if instruction `i` is a jump to a label that follows it with only labels in between:
/// such a jump lands where execution would go anyway, so it is left out.
fn jumps_to_next(f: &IrFunc, i: usize) -> bool {
    let target = match f.insts[i].0 {
        Inst::Ja { target } | Inst::Jmp { target, .. } => target,
        _ => return false,
    };
    f.insts[i + 1..]
        .iter()
        .map_while(|(inst, _)| match inst {
            Inst::Label(l) => Some(*l),
            _ => None,
        })
        .any(|l| l == target)
}

struct Emitter<'a> {
    a: &'a Allocation,
    /// The span of the IR instruction being emitted.
    span: Span,
    out: Function,
    nlabels: u32,
    /// The instruction index each label is placed at.
    labels: HashMap<Label, usize>,
    /// Jumps whose offset is patched once all labels are placed: (instruction index, target).
    fixups: Vec<(usize, Label)>,
}

impl Emitter<'_> {
    fn push(&mut self, insn: Insn) {
        self.out.insns.push(insn);
        self.out.spans.push(self.span);
    }

    fn push2(&mut self, pair: [Insn; 2]) {
        for insn in pair {
            self.push(insn);
        }
    }

    fn check_label(&self, l: Label) -> Result<(), String> {
        if l < self.nlabels {
            Ok(())
        } else {
            Err(format!(
                "L{l} is out of range: the function has {} labels",
                self.nlabels
            ))
        }
    }

    fn loc(&self, v: VReg) -> Result<Loc, String> {
        match self.a.loc(v) {
            Some(Loc::Reg(r)) if !(R2..=R9).contains(&r) => {
                Err(format!("v{v} is allocated r{r}, outside r2-r9"))
            }
            Some(l) => Ok(l),
            None => Err(format!("v{v} has no location")),
        }
    }

    /// The register holding `v`, loading it into `scratch` first if it is spilled.
    fn read(&mut self, v: VReg, scratch: u8) -> Result<u8, String> {
        Ok(match self.loc(v)? {
            Loc::Reg(r) => r,
            Loc::Stack(off) => {
                self.push(Insn::ldx(BPF_DW, scratch, R10, off));
                scratch
            }
        })
    }

    /// The register to compute `v` into, and the slot to store it to afterwards (see
    /// [`Emitter::commit`]) if it is spilled, in which case the register is `scratch`.
    fn target(&self, v: VReg, scratch: u8) -> Result<(u8, Option<i16>), String> {
        Ok(match self.loc(v)? {
            Loc::Reg(r) => (r, None),
            Loc::Stack(off) => (scratch, Some(off)),
        })
    }

    /// Stores a result computed into `reg` back to its stack slot, if it has one.
    fn commit(&mut self, reg: u8, slot: Option<i16>) {
        if let Some(off) = slot {
            self.push(Insn::stx(BPF_DW, R10, off, reg));
        }
    }

    /// `dst = imm` for any 64-bit constant.
    fn constant(&mut self, dst: u8, imm: i64) {
        match i32::try_from(imm) {
            Ok(k) => self.push(Insn::mov64_imm(dst, k)),
            Err(_) => self.push2(Insn::ld_imm64(dst, 0, imm as u64)),
        }
    }

    /// `dst = r10 + off`.
    fn fp_addr(&mut self, dst: u8, off: i16) {
        self.push(Insn::mov64_reg(dst, R10));
        if off != 0 {
            self.push(Insn::alu64_imm(BPF_ADD, dst, off.into()));
        }
    }

    fn inst(&mut self, inst: &Inst) -> Result<(), String> {
        match *inst {
            Inst::EntryCtx { dst } => {
                let (d, slot) = self.target(dst, R1)?;
                if d != R1 {
                    self.push(Insn::mov64_reg(d, R1));
                }
                self.commit(d, slot);
            }
            Inst::Mov { dst, src } => self.mov(dst, src)?,
            Inst::Const { dst, imm } => {
                let (d, slot) = self.target(dst, R0)?;
                self.constant(d, imm);
                self.commit(d, slot);
            }
            Inst::LdMap { dst, map } => {
                let (d, slot) = self.target(dst, R0)?;
                self.push2(Insn::ld_map(d, map));
                self.commit(d, slot);
            }
            Inst::FpAddr { dst, off } => {
                let (d, slot) = self.target(dst, R0)?;
                self.fp_addr(d, off);
                self.commit(d, slot);
            }
            Inst::Alu { op, dst, src, w32 } => {
                if op & 0x0f != 0 || op > BPF_ARSH || op == BPF_MOV {
                    return Err(format!("ALU operation {op:#x} is not one the IR allows"));
                }
                let (d, slot) = self.target(dst, R0)?;
                // The destination is also an operand, so a spilled one is loaded first.
                self.read(dst, R0)?;
                let insn = match src {
                    _ if op == BPF_NEG => alu_imm(w32, op, d, 0),
                    Opnd::Imm(k) => alu_imm(w32, op, d, k),
                    Opnd::V(s) => {
                        let s = self.read(s, R1)?;
                        if w32 {
                            Insn::alu32_reg(op, d, s)
                        } else {
                            Insn::alu64_reg(op, d, s)
                        }
                    }
                };
                self.push(insn);
                self.commit(d, slot);
            }
            Inst::Load {
                size,
                dst,
                base,
                off,
            } => {
                check_size(size)?;
                let b = self.base(base, R1)?;
                let (d, slot) = self.target(dst, R0)?;
                self.push(Insn::ldx(size, d, b, off));
                self.commit(d, slot);
            }
            Inst::Store {
                size,
                base,
                off,
                src,
            } => {
                check_size(size)?;
                let b = self.base(base, R0)?;
                match src {
                    Opnd::Imm(k) => self.push(Insn::st(size, b, off, k)),
                    Opnd::V(s) => {
                        let s = self.read(s, R1)?;
                        self.push(Insn::stx(size, b, off, s));
                    }
                }
            }
            Inst::AtomicAdd { base, off, src } => {
                let b = self.read(base, R0)?;
                let s = self.read(src, R1)?;
                self.push(Insn::atomic_add(BPF_DW, b, off, s));
            }
            Inst::Call {
                helper,
                ref args,
                dst,
            } => {
                self.call_args(args)?;
                self.push(Insn::call(helper));
                if let Some(dst) = dst {
                    match self.loc(dst)? {
                        Loc::Reg(r) => self.push(Insn::mov64_reg(r, R0)),
                        Loc::Stack(off) => self.push(Insn::stx(BPF_DW, R10, off, R0)),
                    }
                }
            }
            Inst::Jmp { op, a, b, target } => {
                if !CONDITIONS.contains(&op) {
                    return Err(format!("jump condition {op:#x} is not a BPF_J* comparison"));
                }
                let a = self.read(a, R0)?;
                let insn = match b {
                    Opnd::Imm(k) => Insn::jmp_imm(op, a, k, 0),
                    Opnd::V(b) => Insn::jmp_reg(op, a, self.read(b, R1)?, 0),
                };
                self.jump(insn, target)?;
            }
            Inst::Ja { target } => self.jump(Insn::ja(0), target)?,
            // Labels are placed by `emit` before this is reached; they emit nothing.
            Inst::Label(_) => {}
            Inst::Exit { code } => {
                match code {
                    Opnd::Imm(k) => self.push(Insn::mov64_imm(R0, k)),
                    Opnd::V(v) => match self.loc(v)? {
                        Loc::Reg(r) => self.push(Insn::mov64_reg(R0, r)),
                        Loc::Stack(off) => self.push(Insn::ldx(BPF_DW, R0, R10, off)),
                    },
                }
                self.push(Insn::exit());
            }
        }
        Ok(())
    }

    fn mov(&mut self, dst: VReg, src: Opnd) -> Result<(), String> {
        let d = self.loc(dst)?;
        match (d, src) {
            (Loc::Reg(d), Opnd::Imm(k)) => self.push(Insn::mov64_imm(d, k)),
            // A register store keeps the constant visible to the kernel verifier when the slot
            // is read back, which an immediate store does not on older kernels.
            (Loc::Stack(off), Opnd::Imm(k)) => {
                self.push(Insn::mov64_imm(R0, k));
                self.push(Insn::stx(BPF_DW, R10, off, R0));
            }
            (d, Opnd::V(s)) => match (d, self.loc(s)?) {
                (Loc::Reg(d), Loc::Reg(s)) if d == s => {}
                (Loc::Reg(d), Loc::Reg(s)) => self.push(Insn::mov64_reg(d, s)),
                (Loc::Reg(d), Loc::Stack(off)) => self.push(Insn::ldx(BPF_DW, d, R10, off)),
                (Loc::Stack(off), Loc::Reg(s)) => self.push(Insn::stx(BPF_DW, R10, off, s)),
                (Loc::Stack(d), Loc::Stack(s)) if d == s => {}
                (Loc::Stack(d), Loc::Stack(s)) => {
                    self.push(Insn::ldx(BPF_DW, R0, R10, s));
                    self.push(Insn::stx(BPF_DW, R10, d, R0));
                }
            },
        }
        Ok(())
    }

    /// The register a memory access is based on, loading a spilled pointer into `scratch`.
    fn base(&mut self, base: Base, scratch: u8) -> Result<u8, String> {
        match base {
            Base::Fp => Ok(R10),
            Base::V(v) => self.read(v, scratch),
        }
    }

    /// Puts the arguments of a call into `r1`-`r5`. Virtual-register arguments form a parallel
    /// move: a destination may hold another argument's source, so a move is made only once
    /// nothing still pending reads its destination, and a cycle is broken by saving one
    /// destination in `r0`, which is free before a call. Spilled arguments and the ones that
    /// read no register are loaded afterwards, when no pending move can be disturbed.
    fn call_args(&mut self, args: &[Arg]) -> Result<(), String> {
        if args.len() > 5 {
            return Err(format!(
                "a helper call has {} arguments, at most 5 fit in r1-r5",
                args.len()
            ));
        }
        let mut moves: Vec<(u8, u8)> = Vec::new();
        let mut later: Vec<(u8, Arg)> = Vec::new();
        for (r, &arg) in (R1..).zip(args) {
            match arg {
                Arg::V(v) => match self.loc(v)? {
                    Loc::Reg(s) if s == r => {}
                    Loc::Reg(s) => moves.push((r, s)),
                    Loc::Stack(_) => later.push((r, arg)),
                },
                _ => later.push((r, arg)),
            }
        }
        while !moves.is_empty() {
            let ready = moves
                .iter()
                .position(|&(d, _)| moves.iter().all(|&(_, s)| s != d));
            match ready {
                Some(k) => {
                    let (d, s) = moves.remove(k);
                    self.push(Insn::mov64_reg(d, s));
                }
                None => {
                    // Every pending destination is still read by a pending move, so the moves
                    // form cycles; freeing one destination turns its cycle into a chain.
                    let d = moves[0].0;
                    self.push(Insn::mov64_reg(R0, d));
                    for m in &mut moves {
                        if m.1 == d {
                            m.1 = R0;
                        }
                    }
                }
            }
        }
        for (r, arg) in later {
            match arg {
                Arg::V(v) => {
                    self.read(v, r)?;
                }
                Arg::Imm(k) => self.constant(r, k),
                Arg::Map(m) => self.push2(Insn::ld_map(r, m)),
                Arg::Ksym(id) => self.push2(Insn::ld_ksym(r, id)),
                Arg::Fp(off) => self.fp_addr(r, off),
            }
        }
        Ok(())
    }

    /// Emits a jump whose offset is filled in by [`Emitter::resolve`].
    fn jump(&mut self, insn: Insn, target: Label) -> Result<(), String> {
        self.check_label(target)?;
        self.fixups.push((self.out.insns.len(), target));
        self.push(insn);
        Ok(())
    }

    /// Patches every jump's offset, relative to the instruction after the jump.
    fn resolve(mut self) -> Result<Function, String> {
        let len = self.out.insns.len();
        for &(at, l) in &self.fixups {
            let target = match self.labels.get(&l) {
                Some(&t) if t < len => t,
                Some(_) => return Err(format!("L{l} is placed after the last instruction")),
                None => return Err(format!("a jump targets L{l}, which is never placed")),
            };
            let off = target as i64 - (at as i64 + 1);
            self.out.insns[at].off = i16::try_from(off).map_err(|_| {
                format!("a jump to L{l} spans {off} instructions, more than eBPF's 16-bit offset")
            })?;
        }
        Ok(self.out)
    }
}

/// The conditions a `Jmp` may use: every `BPF_J*` comparison.
const CONDITIONS: [u8; 11] = [
    BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE, BPF_JSLT,
    BPF_JSLE,
];

fn alu_imm(w32: bool, op: u8, dst: u8, imm: i32) -> Insn {
    if w32 {
        Insn::alu32_imm(op, dst, imm)
    } else {
        Insn::alu64_imm(op, dst, imm)
    }
}

fn check_size(size: u8) -> Result<(), String> {
    if [BPF_B, BPF_H, BPF_W, BPF_DW].contains(&size) {
        Ok(())
    } else {
        Err(format!(
            "memory access size {size:#x} is not BPF_B, BPF_H, BPF_W or BPF_DW"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regalloc::allocate;
    use crate::regalloc::tests::{add, exit, func, konst, random_func, twelve_live, Rng};

    /// Emits `insts` with the given locations of v0, v1, ... (not from the allocator, so each
    /// case can place its operands where it needs them).
    fn emit_at(insts: Vec<Inst>, locs: &[Loc]) -> Result<Vec<Insn>, String> {
        let a = Allocation {
            locs: locs.iter().copied().map(Some).collect(),
            frame: 64,
        };
        emit(&func(insts), &a).map(|f| f.insns)
    }

    fn emit_ok(insts: Vec<Inst>, locs: &[Loc]) -> Vec<Insn> {
        emit_at(insts, locs).unwrap()
    }

    /// Both slots of an `ld_imm64`, as a vector to splice into expectations.
    fn two(pair: [Insn; 2]) -> Vec<Insn> {
        pair.to_vec()
    }

    const S8: Loc = Loc::Stack(-8);
    const S16: Loc = Loc::Stack(-16);
    const S24: Loc = Loc::Stack(-24);

    #[test]
    fn a_small_function_end_to_end() {
        let f = func(vec![
            Inst::EntryCtx { dst: 0 },
            Inst::Load {
                size: BPF_DW,
                dst: 1,
                base: Base::V(0),
                off: 8,
            },
            konst(2, 7),
            add(1, 2),
            exit(1),
        ]);
        let a = allocate(&f).unwrap();
        let out = emit(&f, &a).unwrap();
        assert_eq!(
            out.insns,
            [
                Insn::mov64_reg(R2, R1),
                Insn::ldx(BPF_DW, R2, R2, 8),
                Insn::mov64_imm(R3, 7),
                Insn::alu64_reg(BPF_ADD, R2, R3),
                Insn::mov64_reg(R0, R2),
                Insn::exit(),
            ]
        );
        let spans: Vec<u32> = out.spans.iter().map(|s| s.lo).collect();
        assert_eq!(spans, [0, 1, 2, 3, 4, 4]);
    }

    #[test]
    fn jump_offsets_count_both_slots_of_ld_imm64() {
        let f = func(vec![
            konst(0, 0),
            Inst::Label(0),
            Inst::Jmp {
                op: BPF_JEQ,
                a: 0,
                b: Opnd::Imm(3),
                target: 1,
            },
            konst(1, 1 << 40),
            add(0, 1),
            Inst::Ja { target: 0 },
            Inst::Label(1),
            exit(0),
        ]);
        let a = allocate(&f).unwrap();
        let out = emit(&f, &a).unwrap();
        let mut want = vec![Insn::mov64_imm(R2, 0), Insn::jmp_imm(BPF_JEQ, R2, 3, 4)];
        want.extend(two(Insn::ld_imm64(R3, 0, 1 << 40)));
        want.extend([
            Insn::alu64_reg(BPF_ADD, R2, R3),
            Insn::ja(-5),
            Insn::mov64_reg(R0, R2),
            Insn::exit(),
        ]);
        assert_eq!(out.insns, want);
        // Both slots of the ld_imm64 carry the span of the Const.
        assert_eq!(out.spans[2], out.spans[3]);
        assert_eq!(out.spans[2].lo, 3);
    }

    #[test]
    fn jumps_to_the_next_instruction_are_left_out() {
        let insts = vec![
            konst(0, 1),
            Inst::Ja { target: 1 },
            Inst::Label(0),
            Inst::Label(1),
            Inst::Jmp {
                op: BPF_JNE,
                a: 0,
                b: Opnd::Imm(0),
                target: 2,
            },
            Inst::Label(2),
            exit(0),
        ];
        assert_eq!(
            emit_ok(insts, &[Loc::Reg(R2)]),
            [
                Insn::mov64_imm(R2, 1),
                Insn::mov64_reg(R0, R2),
                Insn::exit()
            ]
        );
    }

    #[test]
    fn spilled_operands_go_through_r0_and_r1() {
        let alu = |dst, src, op, w32| Inst::Alu { op, dst, src, w32 };
        assert_eq!(
            emit_ok(vec![alu(0, Opnd::V(1), BPF_ADD, false)], &[S8, S16]),
            [
                Insn::ldx(BPF_DW, R0, R10, -8),
                Insn::ldx(BPF_DW, R1, R10, -16),
                Insn::alu64_reg(BPF_ADD, R0, R1),
                Insn::stx(BPF_DW, R10, -8, R0),
            ]
        );
        assert_eq!(
            emit_ok(vec![alu(0, Opnd::Imm(3), BPF_SUB, true)], &[S8]),
            [
                Insn::ldx(BPF_DW, R0, R10, -8),
                Insn::alu32_imm(BPF_SUB, R0, 3),
                Insn::stx(BPF_DW, R10, -8, R0),
            ]
        );
        assert_eq!(
            emit_ok(
                vec![alu(0, Opnd::V(1), BPF_NEG, false)],
                &[Loc::Reg(R4), S8]
            ),
            [Insn::alu64_imm(BPF_NEG, R4, 0)]
        );
        let load = |size, dst, base, off| Inst::Load {
            size,
            dst,
            base,
            off,
        };
        assert_eq!(
            emit_ok(vec![load(BPF_W, 0, Base::V(1), 4)], &[S8, S24]),
            [
                Insn::ldx(BPF_DW, R1, R10, -24),
                Insn::ldx(BPF_W, R0, R1, 4),
                Insn::stx(BPF_DW, R10, -8, R0),
            ]
        );
        assert_eq!(
            emit_ok(vec![load(BPF_B, 0, Base::Fp, -3)], &[Loc::Reg(R5)]),
            [Insn::ldx(BPF_B, R5, R10, -3)]
        );
        let store = |size, base, off, src| Inst::Store {
            size,
            base,
            off,
            src,
        };
        assert_eq!(
            emit_ok(vec![store(BPF_H, Base::V(0), 2, Opnd::V(1))], &[S24, S8]),
            [
                Insn::ldx(BPF_DW, R0, R10, -24),
                Insn::ldx(BPF_DW, R1, R10, -8),
                Insn::stx(BPF_H, R0, 2, R1),
            ]
        );
        assert_eq!(
            emit_ok(vec![store(BPF_B, Base::Fp, -1, Opnd::Imm(7))], &[]),
            [Insn::st(BPF_B, R10, -1, 7)]
        );
        let atomic = Inst::AtomicAdd {
            base: 0,
            off: 16,
            src: 1,
        };
        assert_eq!(
            emit_ok(vec![atomic], &[S24, Loc::Reg(R4)]),
            [
                Insn::ldx(BPF_DW, R0, R10, -24),
                Insn::atomic_add(BPF_DW, R0, 16, R4),
            ]
        );
        let jmp = Inst::Jmp {
            op: BPF_JGT,
            a: 0,
            b: Opnd::V(1),
            target: 0,
        };
        assert_eq!(
            emit_ok(vec![jmp, exit(0), Inst::Label(0), exit(1)], &[S8, S16]),
            [
                Insn::ldx(BPF_DW, R0, R10, -8),
                Insn::ldx(BPF_DW, R1, R10, -16),
                Insn::jmp_reg(BPF_JGT, R0, R1, 2),
                Insn::ldx(BPF_DW, R0, R10, -8),
                Insn::exit(),
                Insn::ldx(BPF_DW, R0, R10, -16),
                Insn::exit(),
            ]
        );
    }

    #[test]
    fn moves_between_every_kind_of_location() {
        let mov = |dst, src| Inst::Mov { dst, src };
        let r4 = Loc::Reg(R4);
        let cases: Vec<(Inst, Vec<Insn>)> = vec![
            (mov(0, Opnd::V(1)), vec![Insn::mov64_reg(R4, R3)]),
            (mov(0, Opnd::V(0)), vec![]),
            (mov(2, Opnd::V(2)), vec![]),
            (mov(0, Opnd::V(2)), vec![Insn::ldx(BPF_DW, R4, R10, -8)]),
            (mov(2, Opnd::V(0)), vec![Insn::stx(BPF_DW, R10, -8, R4)]),
            (
                mov(2, Opnd::V(3)),
                vec![
                    Insn::ldx(BPF_DW, R0, R10, -16),
                    Insn::stx(BPF_DW, R10, -8, R0),
                ],
            ),
            (mov(0, Opnd::Imm(-9)), vec![Insn::mov64_imm(R4, -9)]),
            (
                mov(2, Opnd::Imm(9)),
                vec![Insn::mov64_imm(R0, 9), Insn::stx(BPF_DW, R10, -8, R0)],
            ),
            (konst(0, -(1 << 31)), vec![Insn::mov64_imm(R4, i32::MIN)]),
            (
                konst(2, 1 << 31),
                [
                    two(Insn::ld_imm64(R0, 0, 1 << 31)),
                    vec![Insn::stx(BPF_DW, R10, -8, R0)],
                ]
                .concat(),
            ),
            (Inst::LdMap { dst: 0, map: 3 }, two(Insn::ld_map(R4, 3))),
            (
                Inst::FpAddr { dst: 2, off: -16 },
                vec![
                    Insn::mov64_reg(R0, R10),
                    Insn::alu64_imm(BPF_ADD, R0, -16),
                    Insn::stx(BPF_DW, R10, -8, R0),
                ],
            ),
            (
                Inst::FpAddr { dst: 0, off: 0 },
                vec![Insn::mov64_reg(R4, R10)],
            ),
            (
                Inst::EntryCtx { dst: 2 },
                vec![Insn::stx(BPF_DW, R10, -8, R1)],
            ),
            (
                Inst::Exit {
                    code: Opnd::Imm(-1),
                },
                vec![Insn::mov64_imm(R0, -1), Insn::exit()],
            ),
        ];
        for (inst, want) in cases {
            let got = emit_ok(vec![inst.clone()], &[r4, Loc::Reg(R3), S8, S16]);
            assert_eq!(got, want, "{inst:?}");
        }
    }

    #[test]
    fn call_arguments_of_every_kind() {
        let call = Inst::Call {
            helper: 5,
            args: vec![
                Arg::V(0),
                Arg::Imm(1 << 33),
                Arg::Map(2),
                Arg::Fp(-16),
                Arg::V(1),
            ],
            dst: Some(2),
        };
        let want = [
            vec![
                // The register move first: r4 is about to be overwritten by the Fp argument.
                Insn::mov64_reg(R5, R4),
                Insn::ldx(BPF_DW, R1, R10, -8),
            ],
            two(Insn::ld_imm64(R2, 0, 1 << 33)),
            two(Insn::ld_map(R3, 2)),
            vec![
                Insn::mov64_reg(R4, R10),
                Insn::alu64_imm(BPF_ADD, R4, -16),
                Insn::call(5),
                Insn::stx(BPF_DW, R10, -16, R0),
            ],
        ]
        .concat();
        assert_eq!(emit_ok(vec![call], &[S8, Loc::Reg(R4), S16]), want);
        let call = Inst::Call {
            helper: 6,
            args: vec![Arg::Imm(-1), Arg::V(0)],
            dst: Some(0),
        };
        assert_eq!(
            emit_ok(vec![call], &[Loc::Reg(R2)]),
            [
                Insn::mov64_imm(R1, -1),
                Insn::call(6),
                Insn::mov64_reg(R2, R0)
            ]
        );
    }

    #[test]
    fn a_cycle_of_argument_moves_is_broken_through_r0() {
        // x sits in r3 and goes to r2; y sits in r2 and goes to r3.
        let call = Inst::Call {
            helper: 1,
            args: vec![Arg::Imm(7), Arg::V(0), Arg::V(1)],
            dst: None,
        };
        assert_eq!(
            emit_ok(vec![call], &[Loc::Reg(R3), Loc::Reg(R2)]),
            [
                Insn::mov64_reg(R0, R2),
                Insn::mov64_reg(R2, R3),
                Insn::mov64_reg(R3, R0),
                Insn::mov64_imm(R1, 7),
                Insn::call(1),
            ]
        );
        // r1 <- r4 must happen before r4 <- r2, which must happen before the r2/r3 swap.
        let call = Inst::Call {
            helper: 1,
            args: vec![Arg::V(2), Arg::V(1), Arg::V(0), Arg::V(0)],
            dst: None,
        };
        assert_eq!(
            emit_ok(vec![call], &[Loc::Reg(R2), Loc::Reg(R3), Loc::Reg(R4)]),
            [
                Insn::mov64_reg(R1, R4),
                Insn::mov64_reg(R4, R2),
                Insn::mov64_reg(R0, R2),
                Insn::mov64_reg(R2, R3),
                Insn::mov64_reg(R3, R0),
                Insn::call(1),
            ]
        );
    }

    #[test]
    fn every_register_argument_permutation_arrives() {
        // vN lives in r(N+2). For every choice of sources for up to five arguments, track which
        // value each register holds through the emitted moves.
        let locs: Vec<Loc> = (R2..=R9).map(Loc::Reg).collect();
        for n in 1..=5u32 {
            for code in 0..8u32.pow(n) {
                let srcs: Vec<VReg> = (0..n).map(|k| code / 8u32.pow(k) % 8).collect();
                let call = Inst::Call {
                    helper: 1,
                    args: srcs.iter().map(|&v| Arg::V(v)).collect(),
                    dst: None,
                };
                let insns = emit_ok(vec![call], &locs);
                let mut holds: [Option<u32>; 11] = [None; 11];
                for r in R2..=R9 {
                    holds[r as usize] = Some(r as u32 - 2);
                }
                let (call, moves) = insns.split_last().unwrap();
                assert_eq!(*call, Insn::call(1));
                for m in moves {
                    assert_eq!(m.code, BPF_ALU64 | BPF_MOV | BPF_X, "{srcs:?}: {m:?}");
                    holds[m.dst as usize] = holds[m.src as usize];
                }
                for (k, &v) in srcs.iter().enumerate() {
                    assert_eq!(holds[k + 1], Some(v), "{srcs:?}: {insns:?}");
                }
                for r in R6..=R9 {
                    assert_eq!(
                        holds[r as usize],
                        Some(r as u32 - 2),
                        "{srcs:?} clobbers r{r}"
                    );
                }
                let needed = (R1..).zip(&srcs).filter(|(r, &v)| v + 2 != *r as u32);
                assert!(moves.len() <= needed.count() + 2, "{srcs:?}: {insns:?}");
            }
        }
    }

    #[test]
    fn twelve_live_values_emit_spill_code() {
        let f = twelve_live();
        let a = allocate(&f).unwrap();
        let out = emit(&f, &a).unwrap();
        // v0 += v9 with both spilled, exactly as it must read and write the slots.
        let want = [
            Insn::ldx(BPF_DW, R0, R10, -24),
            Insn::ldx(BPF_DW, R1, R10, -32),
            Insn::alu64_reg(BPF_ADD, R0, R1),
            Insn::stx(BPF_DW, R10, -24, R0),
        ];
        assert!(out.insns.windows(4).any(|w| w == want), "{:?}", out.insns);
        assert_eq!(out.insns.len(), out.spans.len());
    }

    #[test]
    fn a_jump_too_far_for_16_bits_is_an_error() {
        let mut insts = vec![konst(0, 1), Inst::Ja { target: 0 }];
        insts.extend((0..40_000).map(|_| konst(1, 2)));
        insts.extend([Inst::Label(0), exit(0)]);
        let f = func(insts);
        let a = allocate(&f).unwrap();
        let e = emit(&f, &a).unwrap_err();
        assert!(e.contains("spans 40000 instructions"), "{e}");
    }

    #[test]
    fn unemittable_input_is_an_error() {
        let jmp = |op, target| Inst::Jmp {
            op,
            a: 0,
            b: Opnd::Imm(0),
            target,
        };
        let alu = |op| Inst::Alu {
            op,
            dst: 0,
            src: Opnd::Imm(1),
            w32: false,
        };
        let r2 = [Loc::Reg(R2)];
        let cases: Vec<(Vec<Inst>, &[Loc], &str)> = vec![
            (vec![exit(1)], &r2, "v1 has no location"),
            (vec![exit(0)], &[Loc::Reg(R1)], "outside r2-r9"),
            (
                vec![Inst::Call {
                    helper: 1,
                    args: vec![Arg::Imm(0); 6],
                    dst: None,
                }],
                &[],
                "6 arguments",
            ),
            (
                vec![Inst::Label(0), Inst::Label(0), exit(0)],
                &r2,
                "placed twice",
            ),
            (
                vec![jmp(BPF_JEQ, 0), exit(0), Inst::Label(0)],
                &r2,
                "after the last",
            ),
            (
                vec![jmp(BPF_JEQ, 1), exit(0), Inst::Label(0)],
                &r2,
                "never placed",
            ),
            (
                vec![jmp(BPF_JA, 0), exit(0), Inst::Label(0)],
                &r2,
                "condition 0x0",
            ),
            (
                vec![konst(0, 1), Inst::EntryCtx { dst: 0 }],
                &r2,
                "must be the first",
            ),
            (vec![alu(BPF_MOV)], &r2, "ALU operation 0xb0"),
            (vec![alu(BPF_END)], &r2, "ALU operation 0xd0"),
            (vec![alu(0x08)], &r2, "ALU operation 0x8"),
            (
                vec![Inst::Load {
                    size: 0x20,
                    dst: 0,
                    base: Base::Fp,
                    off: 0,
                }],
                &r2,
                "size 0x20",
            ),
        ];
        for (insts, locs, msg) in cases {
            let e = emit_at(insts, locs).unwrap_err();
            assert!(e.contains(msg), "{e:?} lacks {msg:?}");
        }
        let mut f = func(vec![Inst::Ja { target: 0 }, Inst::Label(0)]);
        f.nlabels = 0;
        let a = Allocation {
            locs: vec![],
            frame: 0,
        };
        assert!(emit(&f, &a).unwrap_err().contains("out of range"));
    }

    #[test]
    fn random_functions_emit_well_formed_code() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..100 {
            let f = random_func(&mut rng);
            let a = allocate(&f).unwrap();
            let out = emit(&f, &a).unwrap();
            assert_eq!(out.insns.len(), out.spans.len());
            let second_slots: Vec<bool> = std::iter::once(false)
                .chain(out.insns.iter().map(Insn::is_ld_imm64))
                .collect();
            for (i, insn) in out.insns.iter().enumerate() {
                if second_slots[i] {
                    continue;
                }
                // Registers: the allocator's, the scratch ones and the frame pointer, which is
                // only ever a base or a source.
                let class = insn.class();
                let writes = [BPF_ALU, BPF_ALU64, BPF_LDX, BPF_LD].contains(&class);
                assert!(
                    insn.dst <= R9 || !writes && insn.dst == R10,
                    "{i}: {insn:?}"
                );
                assert!(insn.src <= R10, "{i}: {insn:?}");
                let op = insn.code & 0xf0;
                if class == BPF_JMP && op != BPF_CALL && op != BPF_EXIT {
                    let t = i as i64 + 1 + insn.off as i64;
                    assert!(t >= 0 && (t as usize) < out.insns.len(), "{i}: {insn:?}");
                    assert!(!second_slots[t as usize], "{i} jumps into an ld_imm64");
                    assert_ne!(t, i as i64 + 1, "{i}: a jump to the next instruction");
                }
            }
            assert_eq!(out.insns.last(), Some(&Insn::exit()));
        }
    }

    /// Runs `f` through allocation and emission in the VM, and returns its `r0`.
    fn run_vm(f: &IrFunc, a: &Allocation) -> u64 {
        let code = emit(f, a).unwrap();
        let endian = ktap_bpf::Endian::host();
        let env = ktap_vm::RunEnv::new(&[], endian);
        let mut host = ktap_vm::MemHost::new(&[], endian);
        host.ktime_ns = 1000;
        ktap_vm::run(&code, &mut [0; 8], &env, &mut host).unwrap()
    }

    #[test]
    fn the_vm_runs_a_loop_with_a_value_from_before_it() {
        let f = func(vec![
            konst(0, 5),
            konst(1, 0),
            konst(2, 0),
            Inst::Label(0),
            add(1, 0),
            konst(3, 1),
            add(2, 3),
            Inst::Jmp {
                op: BPF_JLT,
                a: 2,
                b: Opnd::Imm(10),
                target: 0,
            },
            exit(1),
        ]);
        assert_eq!(run_vm(&f, &allocate(&f).unwrap()), 50);
    }

    #[test]
    fn the_vm_runs_spilled_values_and_values_across_calls() {
        let f = twelve_live();
        assert_eq!(run_vm(&f, &allocate(&f).unwrap()), 78);
        // Six values live across two calls and the first call's result across the second:
        // four in r6-r9, three on the stack.
        let mut insts: Vec<Inst> = (0..6).map(|v| konst(v, 1 << v)).collect();
        let ktime = |dst| Inst::Call {
            helper: ktap_bpf::helpers::KTIME_GET_NS,
            args: vec![],
            dst: Some(dst),
        };
        insts.extend([ktime(6), ktime(7), add(6, 7)]);
        insts.extend((0..6).map(|v| add(6, v)));
        insts.push(exit(6));
        let f = func(insts);
        let a = allocate(&f).unwrap();
        assert_eq!(a.frame, 24);
        assert_eq!(run_vm(&f, &a), 2000 + 63);
    }

    #[test]
    fn the_vm_runs_a_call_whose_arguments_form_a_cycle() {
        // probe_read(fp - 8, 8, fp - 16) with the size in r3 and the source in r2: r2 and r3
        // must swap on the way into the call.
        let f = func(vec![
            Inst::Store {
                size: BPF_DW,
                base: Base::Fp,
                off: -16,
                src: Opnd::Imm(0x1234),
            },
            Inst::FpAddr { dst: 0, off: -8 },
            konst(1, 8),
            Inst::FpAddr { dst: 2, off: -16 },
            Inst::Call {
                helper: ktap_bpf::helpers::PROBE_READ,
                args: vec![Arg::V(0), Arg::V(1), Arg::V(2)],
                dst: Some(3),
            },
            Inst::Load {
                size: BPF_DW,
                dst: 4,
                base: Base::Fp,
                off: -8,
            },
            exit(4),
        ]);
        let a = Allocation {
            locs: [R4, R3, R2, R5, R2].map(|r| Some(Loc::Reg(r))).to_vec(),
            frame: 16,
        };
        crate::regalloc::tests::check(&f, &a);
        let code = emit(&f, &a).unwrap();
        let swap = [
            Insn::mov64_reg(R0, R2),
            Insn::mov64_reg(R2, R3),
            Insn::mov64_reg(R3, R0),
        ];
        assert!(code.insns.windows(3).any(|w| w == swap), "{:?}", code.insns);
        assert_eq!(run_vm(&f, &a), 0x1234);
    }
}
