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

/// Emits `f` with the locations of `a`. Fails on IR or an allocation that cannot be emitted:
/// an operand without a location, an unknown opcode or size, more than five call arguments,
/// a label placed twice or never, or a jump whose offset does not fit 16 bits.
pub fn emit(f: &IrFunc, a: &Allocation) -> Result<Function, String> {
    let mut e = Emitter {
        a,
        span: Span::default(),
        out: Function::default(),
        labels: vec![None; f.nlabels as usize],
        fixups: Vec::new(),
    };
    for (i, (inst, span)) in f.insts.iter().enumerate() {
        e.span = *span;
        if let Inst::Label(l) = inst {
            let here = e.out.insns.len();
            let slot = e.label(*l)?;
            if slot.is_some() {
                return Err(format!("L{l} is placed twice"));
            }
            *slot = Some(here);
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
    /// The instruction index each label is placed at.
    labels: Vec<Option<usize>>,
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

    fn label(&mut self, l: Label) -> Result<&mut Option<usize>, String> {
        let n = self.labels.len();
        self.labels
            .get_mut(l as usize)
            .ok_or_else(|| format!("L{l} is out of range: the function has {n} labels"))
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
                Arg::Fp(off) => self.fp_addr(r, off),
            }
        }
        Ok(())
    }

    /// Emits a jump whose offset is filled in by [`Emitter::resolve`].
    fn jump(&mut self, insn: Insn, target: Label) -> Result<(), String> {
        self.label(target)?;
        self.fixups.push((self.out.insns.len(), target));
        self.push(insn);
        Ok(())
    }

    /// Patches every jump's offset, relative to the instruction after the jump.
    fn resolve(mut self) -> Result<Function, String> {
        let len = self.out.insns.len();
        for &(at, l) in &self.fixups {
            let target = match self.labels[l as usize] {
                Some(t) if t < len => t,
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
