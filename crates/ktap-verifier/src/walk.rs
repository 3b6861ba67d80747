//! The third pass, the path walk: follows every path from the entry with an abstract state
//! (see [`crate::state`]), checks each instruction against it, and forks at conditional jumps
//! whose outcome the state does not decide. At prune points a path stops when a state already
//! proven safe there covers its own; a state identical to one of its own ancestors at a loop
//! head means the loop never ends. Loops are otherwise unrolled, so a loop ends when its
//! bounds make the walk leave it, within the instruction budget.

use crate::cfg::Cfg;
use crate::ctx::ProgType;
use crate::op::{Op, Src};
use crate::scalar::Scalar;
use crate::state::{covers, Byte, Frame, Ptr, PtrKind, Reg, Slot, State};
use crate::tnum::Tnum;
use crate::{Limits, VerifyError};
use ktap_bpf::helpers::{self, Arg, Helper, Ret};
use ktap_bpf::insn::*;
use ktap_bpf::{MapDef, MapKind};
use std::hash::Hasher;

/// Call frames a path may hold at once (`MAX_CALL_FRAMES`).
const MAX_FRAMES: usize = 8;
/// Paths waiting to be walked (`BPF_COMPLEXITY_LIMIT_JMP_SEQ`).
const MAX_PENDING: usize = 8192;
/// States kept per instruction, and in all; past these the walk keeps no more (it stays
/// correct, it only prunes less) so that a pathological program cannot exhaust memory.
const STATES_PER_INSN: usize = 64;
const MAX_STORED: usize = 32768;
/// The kernel's bound on pointer offsets and on variable sizes (`BPF_MAX_VAR_OFF`,
/// `BPF_MAX_VAR_SIZ`).
const MAX_VAR_OFF: i64 = 1 << 29;
const MAX_VAR_SIZE: u64 = 1 << 29;
/// Bytes of stack per frame (`MAX_BPF_STACK`).
const STACK: i64 = STACK_SIZE as i64;

/// What the walk found besides "safe".
pub struct Walked {
    pub processed: u64,
    pub states: usize,
    pub max_states_per_insn: usize,
    /// The deepest stack offset each function uses, in bytes.
    pub depth: Vec<u32>,
}

/// A state kept at a prune point, and the kept state its path came through.
struct Stored {
    state: State,
    parent: Option<usize>,
}

struct Pending {
    pc: usize,
    state: State,
    parent: Option<usize>,
}

enum Flow {
    Next(usize),
    Jump(usize),
    /// Both outcomes of a conditional jump: the current state continues at `fall`, `other`
    /// at `taken`.
    Fork {
        fall: usize,
        taken: usize,
        other: State,
    },
    Done,
}

/// When a map value access must be aligned: instructions on kernels that demand it (and
/// atomics always); helpers copy bytes at any offset.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Never,
    IfStrict,
    Always,
}

/// What a store writes.
#[derive(Clone, Copy)]
enum Val {
    Reg(Reg),
    Imm(i32),
}

pub fn walk(
    ops: &[Option<Op>],
    cfg: &Cfg,
    prog: ProgType,
    maps: &[MapDef],
    limits: &Limits,
) -> Result<Walked, VerifyError> {
    let mut w = Walker {
        ops,
        cfg,
        prog,
        maps,
        limits,
        stored: Vec::new(),
        branches: Vec::new(),
        at: vec![Vec::new(); ops.len()],
        pending: vec![Pending {
            pc: 0,
            state: State::entry(),
            parent: None,
        }],
        processed: 0,
        next_id: 1,
        insns_since: 0,
        jumps_since: 0,
        depth: vec![0; cfg.funcs.len()],
    };
    while let Some(p) = w.pending.pop() {
        w.path(p)?;
    }
    Ok(Walked {
        processed: w.processed,
        states: w.stored.len(),
        max_states_per_insn: w.at.iter().map(Vec::len).max().unwrap_or(0),
        depth: w.depth,
    })
}

struct Walker<'a> {
    ops: &'a [Option<Op>],
    cfg: &'a Cfg,
    prog: ProgType,
    maps: &'a [MapDef],
    limits: &'a Limits,
    stored: Vec<Stored>,
    /// Per kept state, the paths from it still being walked; at zero every path from it has
    /// been proven safe, and it may prune others. Kept apart from the states, with `at`, so
    /// that the scans at every prune point stay in a few cache lines.
    branches: Vec<u32>,
    /// The kept states of each instruction, with their hash (zero except at loop heads).
    at: Vec<Vec<(u64, usize)>>,
    pending: Vec<Pending>,
    processed: u64,
    next_id: u32,
    insns_since: u64,
    jumps_since: u64,
    depth: Vec<u32>,
}

enum Visit {
    Pruned,
    Kept(usize),
    Continue,
}

fn get(st: &State, r: u8) -> Result<Reg, String> {
    match st.cur().regs.get(usize::from(r)) {
        Some(Reg::Uninit) | None => Err(format!("R{r} !read_ok")),
        Some(v) => Ok(*v),
    }
}

fn set(st: &mut State, r: u8, v: Reg) {
    if let Some(slot) = st.cur_mut().regs.get_mut(usize::from(r)) {
        *slot = v;
    }
}

/// A hash of the registers of every frame, to find candidates for "the same state" fast; the
/// stack is left to the full comparison that follows a match.
fn hash(st: &State) -> u64 {
    let mut h = FxHasher(0);
    for f in &st.frames {
        for r in &f.regs {
            match r {
                Reg::Uninit => h.write_u64(0),
                Reg::Scalar(x) => {
                    h.write_u64(x.var.value);
                    h.write_u64(x.var.mask ^ x.umax);
                }
                Reg::Ptr(p) => {
                    h.write_u64(p.off as u64);
                    h.write_u64(p.var.var.value ^ p.var.umax);
                }
            }
        }
        h.write_usize(f.stack.len());
    }
    h.finish()
}

/// A multiply-rotate hasher: loop heads hash the state on every visit, and SipHash's strength
/// is of no use here (nor for the program cache of `verify_program`).
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u32 as u64);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The immediate of an ALU or jump instruction as its operation reads it.
fn imm(i: i32, wide: bool) -> Scalar {
    if wide {
        Scalar::known(i as i64 as u64)
    } else {
        Scalar::known(u64::from(i as u32))
    }
}

/// The kernel's spelling of an ALU operation in messages.
fn op_name(op: u8) -> &'static str {
    match op {
        BPF_ADD => "+=",
        BPF_SUB => "-=",
        BPF_MUL => "*=",
        BPF_DIV => "/=",
        BPF_OR => "|=",
        BPF_AND => "&=",
        BPF_LSH => "<<=",
        BPF_RSH => ">>=",
        BPF_NEG => "neg",
        BPF_MOD => "%=",
        BPF_XOR => "^=",
        BPF_MOV => "=",
        BPF_ARSH => "s>>=",
        _ => "endian",
    }
}

fn helper_name(h: &Helper) -> String {
    format!("bpf_{}", h.name)
}

impl Walker<'_> {
    fn path(&mut self, p: Pending) -> Result<(), VerifyError> {
        let Pending {
            mut pc,
            mut state,
            mut parent,
        } = p;
        loop {
            if self.cfg.prune.get(pc).copied().unwrap_or(false) {
                match self.visit(pc, &state, parent)? {
                    Visit::Pruned => {
                        self.finish(parent);
                        return Ok(());
                    }
                    Visit::Kept(id) => parent = Some(id),
                    Visit::Continue => {}
                }
            }
            self.processed += 1;
            self.insns_since += 1;
            if self.processed > self.limits.max_processed {
                let why = self
                    .cfg
                    .loop_around(pc)
                    .map(|(from, to)| {
                        format!("; the loop closed by the back-edge from insn {from} to {to} does not end within the kernel's budget")
                    })
                    .unwrap_or_default();
                return Err(self.fail(
                    pc,
                    &state,
                    format!(
                        "BPF program is too large. Processed {} insn{why}",
                        self.processed
                    ),
                ));
            }
            let flow = self
                .step(pc, &mut state)
                .map_err(|m| self.fail(pc, &state, m))?;
            match flow {
                Flow::Next(n) => pc = n,
                Flow::Jump(n) => {
                    self.jumps_since += 1;
                    pc = n;
                }
                Flow::Fork { fall, taken, other } => {
                    self.jumps_since += 1;
                    if self.pending.len() >= MAX_PENDING {
                        return Err(self.fail(
                            pc,
                            &state,
                            format!("The sequence of {} jumps is too complex.", MAX_PENDING + 1),
                        ));
                    }
                    if let Some(id) = parent {
                        self.branches[id] += 1;
                    }
                    self.pending.push(Pending {
                        pc: taken,
                        state: other,
                        parent,
                    });
                    pc = fall;
                }
                Flow::Done => {
                    self.finish(parent);
                    return Ok(());
                }
            }
        }
    }

    fn fail(&self, pc: usize, st: &State, message: String) -> VerifyError {
        VerifyError::walk(pc, message, st.describe(self.maps))
    }

    /// A path ended safely: every kept state it came through has one path fewer to wait for.
    fn finish(&mut self, mut parent: Option<usize>) {
        while let Some(id) = parent {
            let b = &mut self.branches[id];
            *b = b.saturating_sub(1);
            if *b > 0 {
                return;
            }
            parent = self.stored[id].parent;
        }
    }

    /// The live registers of each frame of `st` at `pc`: the innermost frame's from the
    /// liveness pass, each caller's from its return site, where only `r6`-`r9` (and `r10`)
    /// survive the call.
    fn live(&self, pc: usize, st: &State) -> [u16; MAX_FRAMES] {
        let mut live = [u16::MAX; MAX_FRAMES];
        let n = st.frames.len().min(MAX_FRAMES);
        for (k, l) in live.iter_mut().enumerate().take(n) {
            *l = if k + 1 == n {
                self.cfg.live[pc]
            } else {
                let ret = st.frames[k + 1].callsite + 1;
                self.cfg.live.get(ret).copied().unwrap_or(u16::MAX) & !0x3f
            };
        }
        live
    }

    fn visit(
        &mut self,
        pc: usize,
        st: &State,
        parent: Option<usize>,
    ) -> Result<Visit, VerifyError> {
        // A loop that never ends passes its head again with the same state; only heads keep
        // a hash, and only they are checked.
        let head = self.cfg.loop_head[pc];
        let h = if head { hash(st) } else { 0 };
        if head {
            for &(kept, id) in &self.at[pc] {
                if kept == h && self.branches[id] > 0 && self.stored[id].state == *st {
                    let edge = self
                        .cfg
                        .back_edges
                        .iter()
                        .find(|e| e.1 == pc)
                        .map(|(from, to)| {
                            format!(": the loop closed by the back-edge from insn {from} to {to} comes back to the same state, so nothing makes it end")
                        })
                        .unwrap_or_default();
                    return Err(self.fail(
                        pc,
                        st,
                        format!("infinite loop detected at insn {pc}{edge}"),
                    ));
                }
            }
        }
        if !self.at[pc].is_empty() {
            let live = self.live(pc, st);
            for &(_, id) in &self.at[pc] {
                if self.branches[id] == 0 && covers(&self.stored[id].state, st, &live) {
                    return Ok(Visit::Pruned);
                }
            }
        }
        let due = self.insns_since >= 8 && (self.jumps_since >= 2 || head);
        if due && self.at[pc].len() < STATES_PER_INSN && self.stored.len() < MAX_STORED {
            let id = self.stored.len();
            self.stored.push(Stored {
                state: st.clone(),
                parent,
            });
            self.branches.push(1);
            self.at[pc].push((h, id));
            self.insns_since = 0;
            self.jumps_since = 0;
            return Ok(Visit::Kept(id));
        }
        Ok(Visit::Continue)
    }

    fn step(&mut self, pc: usize, st: &mut State) -> Result<Flow, String> {
        let Some(Some(op)) = self.ops.get(pc).copied() else {
            return Err(format!(
                "jump into the middle of ldimm64 insn {}",
                pc.saturating_sub(1)
            ));
        };
        let next = pc + 1;
        match op {
            Op::Alu {
                wide,
                op,
                dst,
                src,
                signed,
            } => {
                let s = match src {
                    Src::Reg(r) => get(st, r)?,
                    Src::Imm(i) => Reg::Scalar(imm(i, wide)),
                };
                let v = if op == BPF_MOV {
                    match (s, wide) {
                        (s, true) => s,
                        (Reg::Scalar(x), false) => Reg::Scalar(x.low32()),
                        // A 32-bit copy of a pointer is just a number.
                        (_, false) => Reg::Scalar(Scalar::unknown_bytes(4)),
                    }
                } else {
                    let d = get(st, dst)?;
                    self.alu(dst, d, s, op, wide, signed)?
                };
                set(st, dst, v);
                Ok(Flow::Next(next))
            }
            Op::Neg { dst, .. } | Op::MovSx { dst, .. } => {
                let read = match op {
                    Op::MovSx { src, .. } => src,
                    _ => dst,
                };
                if let Reg::Ptr(_) = get(st, read)? {
                    return Err(match op {
                        Op::MovSx { .. } => format!("R{read} sign-extension part of pointer"),
                        _ => format!("R{dst} pointer arithmetic with neg operator prohibited"),
                    });
                }
                // Linux 6.1 leaves a negated value unknown in all 64 bits; a sign-extending
                // move's result is a 32-bit value or a 64-bit one.
                let v = match op {
                    Op::MovSx { wide: false, .. } => Scalar::unknown_bytes(4),
                    _ => Scalar::UNKNOWN,
                };
                set(st, dst, Reg::Scalar(v));
                Ok(Flow::Next(next))
            }
            Op::End { dst } => {
                if let Reg::Ptr(_) = get(st, dst)? {
                    return Err(format!(
                        "R{dst} pointer arithmetic with endian operator prohibited"
                    ));
                }
                set(st, dst, Reg::Scalar(Scalar::UNKNOWN));
                Ok(Flow::Next(next))
            }
            Op::LdImm { dst, value } => {
                set(st, dst, Reg::Scalar(Scalar::known(value)));
                Ok(Flow::Next(pc + 2))
            }
            Op::LdMap { dst, map } => {
                set(st, dst, Reg::Ptr(Ptr::new(PtrKind::Map { map })));
                Ok(Flow::Next(pc + 2))
            }
            Op::LdKsym { dst, btf_id } => {
                set(st, dst, Reg::Ptr(Ptr::new(PtrKind::Ksym { btf_id })));
                Ok(Flow::Next(pc + 2))
            }
            Op::Ldx {
                size,
                sx,
                dst,
                src,
                off,
            } => {
                let base = get(st, src)?;
                let mut v = self.load(st, src, base, off, size)?;
                if sx {
                    if let Reg::Scalar(_) = v {
                        v = Reg::Scalar(Scalar::unknown_signed(size));
                    }
                }
                set(st, dst, v);
                Ok(Flow::Next(next))
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => {
                let base = get(st, dst)?;
                if let Reg::Ptr(Ptr {
                    kind: PtrKind::Ctx, ..
                }) = base
                {
                    return Err(format!("BPF_ST stores into R{dst} ctx is not allowed"));
                }
                self.store(st, dst, base, off, size, Val::Imm(imm))?;
                Ok(Flow::Next(next))
            }
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => {
                let base = get(st, dst)?;
                let v = get(st, src)?;
                self.store(st, dst, base, off, size, Val::Reg(v))?;
                Ok(Flow::Next(next))
            }
            Op::Atomic {
                size,
                dst,
                src,
                off,
                imm,
            } => {
                self.atomic(st, dst, src, off, size, imm)?;
                Ok(Flow::Next(next))
            }
            Op::Ja { target } => Ok(Flow::Jump(target as usize)),
            Op::Jcond { .. } => self.branch(pc, st, op),
            Op::Call { helper } => {
                self.call(st, helper)?;
                Ok(Flow::Next(next))
            }
            Op::CallLocal { target } => {
                if st.frames.len() >= MAX_FRAMES {
                    return Err(format!(
                        "the call stack of {} frames is too deep",
                        st.frames.len() + 1
                    ));
                }
                let target = target as usize;
                let index = st.frames.len() as u8;
                let mut frame = Frame::new(index, pc, self.cfg.func_of[target]);
                frame.regs[1..=5].copy_from_slice(&st.cur().regs[1..=5]);
                st.frames.push(frame);
                Ok(Flow::Jump(target))
            }
            Op::Exit => {
                if st.frames.len() == 1 {
                    get(st, R0)?;
                    return Ok(Flow::Done);
                }
                // The kernel lets a function return without setting r0 and objects only when
                // the caller reads it; ktap says so where the mistake is.
                let r0 = get(st, R0).map_err(|m| {
                    let start = self.cfg.funcs[st.cur().func];
                    format!("{m}: the function at insn {start} returns without setting r0")
                })?;
                let top = st.frames.len() - 1;
                if let Reg::Ptr(Ptr {
                    kind: PtrKind::Stack { frame },
                    ..
                }) = r0
                {
                    if usize::from(frame) == top {
                        return Err("cannot return stack pointer to the caller".into());
                    }
                }
                let callsite = st.frames[top].callsite;
                st.frames.pop();
                let caller = st.cur_mut();
                caller.regs[0] = r0;
                caller.regs[1..=5].fill(Reg::Uninit);
                Ok(Flow::Jump(callsite + 1))
            }
        }
    }

    /// `dst op= src` where at least the result's type has to be worked out.
    fn alu(
        &self,
        dst: u8,
        d: Reg,
        s: Reg,
        op: u8,
        wide: bool,
        signed: bool,
    ) -> Result<Reg, String> {
        match (d, s) {
            // Signed division is not tracked: unknown in all 64 bits, as the kernel leaves it.
            (Reg::Scalar(a), Reg::Scalar(b)) => Ok(Reg::Scalar(if signed {
                Scalar::UNKNOWN
            } else {
                a.alu(op, b, wide)
            })),
            // The difference of two pointers is a number; nothing else combines them.
            (Reg::Ptr(_), Reg::Ptr(_)) if op == BPF_SUB => Ok(Reg::Scalar(Scalar::UNKNOWN)),
            (Reg::Ptr(_), Reg::Ptr(_)) => {
                Err(format!("R{dst} pointer {} pointer prohibited", op_name(op)))
            }
            (Reg::Ptr(p), Reg::Scalar(k)) => self.ptr_alu(dst, p, k, op, wide, false),
            (Reg::Scalar(k), Reg::Ptr(p)) => self.ptr_alu(dst, p, k, op, wide, true),
            _ => Err(format!("R{dst} !read_ok")),
        }
    }

    /// Pointer arithmetic, as the kernel allows it: adding or subtracting a scalar to a
    /// pointer into the context, the stack or a map value, within sane offsets.
    fn ptr_alu(
        &self,
        dst: u8,
        p: Ptr,
        k: Scalar,
        op: u8,
        wide: bool,
        scalar_is_dst: bool,
    ) -> Result<Reg, String> {
        if !wide {
            return if op == BPF_SUB {
                Ok(Reg::Scalar(Scalar::UNKNOWN))
            } else {
                Err(format!("R{dst} 32-bit pointer arithmetic prohibited"))
            };
        }
        let tname = Reg::Ptr(p).type_name();
        match p.kind {
            PtrKind::MapValueOrNull { .. } => {
                return Err(format!(
                    "R{dst} pointer arithmetic on {tname} prohibited, null-check it first"
                ))
            }
            PtrKind::Map { .. } => {
                return if k.value() == Some(0) && op == BPF_ADD {
                    Ok(Reg::Ptr(p))
                } else {
                    Err(format!("R{dst} pointer arithmetic on {tname} prohibited"))
                }
            }
            _ => {}
        }
        match op {
            BPF_ADD => {}
            BPF_SUB if scalar_is_dst => {
                return Err(format!("R{dst} tried to subtract pointer from scalar"))
            }
            BPF_SUB if matches!(p.kind, PtrKind::Stack { .. }) => {
                return Err(format!("R{dst} subtraction from stack pointer prohibited"))
            }
            BPF_SUB => {}
            BPF_AND | BPF_OR | BPF_XOR => {
                return Err(format!(
                    "R{dst} bitwise operator {} on pointer prohibited",
                    op_name(op)
                ))
            }
            _ => {
                return Err(format!(
                    "R{dst} pointer arithmetic with {} operator prohibited",
                    op_name(op)
                ))
            }
        }
        sane_offset(&k, 0, tname)?;
        sane_offset(&p.var, p.off, tname)?;
        let mut r = p;
        let fixed = k.value().and_then(|v| {
            let v = v as i64;
            let off = i64::from(p.off);
            let new = if op == BPF_ADD {
                off.checked_add(v)
            } else {
                off.checked_sub(v)
            }?;
            i32::try_from(new).ok()
        });
        match fixed {
            Some(off) => r.off = off,
            None => r.var = p.var.alu(op, k, true),
        }
        sane_offset(&r.var, r.off, tname)?;
        Ok(Reg::Ptr(r))
    }

    /// A conditional jump `jcond`: one outcome, or both with what each tells about the
    /// registers compared.
    fn branch(&mut self, pc: usize, st: &mut State, jcond: Op) -> Result<Flow, String> {
        let Op::Jcond {
            jmp32,
            op,
            dst,
            src,
            target,
        } = jcond
        else {
            return Err("not a conditional jump".into());
        };
        let taken = target as usize;
        let fall = pc + 1;
        let d = get(st, dst)?;
        let s = match src {
            Src::Reg(r) => get(st, r)?,
            Src::Imm(i) => Reg::Scalar(imm(i, !jmp32)),
        };
        let c = match s {
            Reg::Scalar(x) if jmp32 => x.value32().map(u64::from),
            Reg::Scalar(x) => x.value(),
            _ => None,
        };
        let both = |st: &State| Flow::Fork {
            fall,
            taken,
            other: st.clone(),
        };
        match d {
            Reg::Scalar(x) => {
                let Some(c) = c else {
                    return Ok(both(st));
                };
                match x.branch(op, c, jmp32) {
                    Some(true) => Ok(Flow::Jump(taken)),
                    Some(false) => Ok(Flow::Next(fall)),
                    None => {
                        let mut other = st.clone();
                        set(&mut other, dst, Reg::Scalar(x.refine(op, c, jmp32, true)));
                        set(st, dst, Reg::Scalar(x.refine(op, c, jmp32, false)));
                        Ok(Flow::Fork { fall, taken, other })
                    }
                }
            }
            Reg::Ptr(p) => {
                let eq_ne = op == BPF_JEQ || op == BPF_JNE;
                match p.kind {
                    // The null test: only `if rX == 0` / `!= 0` with the immediate, 64-bit.
                    PtrKind::MapValueOrNull { map, id }
                        if eq_ne && !jmp32 && matches!(src, Src::Imm(0)) =>
                    {
                        let mut other = st.clone();
                        settle(&mut other, id, map, op == BPF_JEQ);
                        settle(st, id, map, op == BPF_JNE);
                        Ok(Flow::Fork { fall, taken, other })
                    }
                    // A map value is never null.
                    PtrKind::MapValue { .. } if eq_ne && c == Some(0) => Ok(if op == BPF_JNE {
                        Flow::Jump(taken)
                    } else {
                        Flow::Next(fall)
                    }),
                    _ => Ok(both(st)),
                }
            }
            Reg::Uninit => Err(format!("R{dst} !read_ok")),
        }
    }

    fn load(
        &mut self,
        st: &mut State,
        regno: u8,
        base: Reg,
        off: i16,
        size: u32,
    ) -> Result<Reg, String> {
        let p = self.mem_base(regno, base)?;
        match p.kind {
            PtrKind::Ctx => {
                ctx_base(regno, &p)?;
                self.prog.ctx_access(i64::from(off), size, false)?;
                Ok(Reg::Scalar(Scalar::unknown_bytes(size)))
            }
            PtrKind::MapValue { map } => {
                self.map_value(
                    regno,
                    &p,
                    map,
                    i64::from(off),
                    u64::from(size),
                    Align::IfStrict,
                )?;
                Ok(Reg::Scalar(Scalar::unknown_bytes(size)))
            }
            PtrKind::RdonlyMem => {
                rdonly_mem(regno, &p, off, size)?;
                Ok(Reg::Scalar(Scalar::unknown_bytes(size)))
            }
            PtrKind::Stack { frame } => {
                let o = stack_off(regno, &p, off, size)?;
                self.note_depth(st, frame, o)?;
                let f = frame_of(st, frame)?;
                let (i, b) = slot_of(o);
                match f.slot(i) {
                    Slot::Spill(r) if size == 8 => Ok(*r),
                    Slot::Spill(Reg::Scalar(_)) => Ok(Reg::Scalar(Scalar::unknown_bytes(size))),
                    Slot::Spill(_) => Err("invalid size of register fill".into()),
                    Slot::Bytes(bytes) => {
                        if bytes[b..b + size as usize].contains(&Byte::Invalid) {
                            return Err(format!(
                                "invalid read from stack R{regno} off={o} size={size}"
                            ));
                        }
                        Ok(Reg::Scalar(Scalar::unknown_bytes(size)))
                    }
                }
            }
            _ => Err(format!(
                "R{regno} invalid mem access '{}'",
                Reg::Ptr(p).type_name()
            )),
        }
    }

    fn store(
        &mut self,
        st: &mut State,
        regno: u8,
        base: Reg,
        off: i16,
        size: u32,
        v: Val,
    ) -> Result<(), String> {
        let p = self.mem_base(regno, base)?;
        match p.kind {
            PtrKind::Ctx => {
                ctx_base(regno, &p)?;
                self.prog.ctx_access(i64::from(off), size, true)
            }
            PtrKind::MapValue { map } => self.map_value(
                regno,
                &p,
                map,
                i64::from(off),
                u64::from(size),
                Align::IfStrict,
            ),
            PtrKind::RdonlyMem => Err(format!("R{regno} cannot write into rdonly_mem")),
            PtrKind::Stack { frame } => {
                let o = stack_off(regno, &p, off, size)?;
                self.note_depth(st, frame, o)?;
                let cur = st.frames.len() - 1;
                let f = frame_of_mut(st, frame)?;
                let (i, b) = slot_of(o);
                match v {
                    Val::Reg(Reg::Ptr(q)) => {
                        if size != 8 {
                            return Err("invalid size of register spill".into());
                        }
                        if usize::from(frame) != cur && matches!(q.kind, PtrKind::Stack { .. }) {
                            return Err(
                                "cannot spill pointers to stack into stack frame of the caller"
                                    .into(),
                            );
                        }
                        *f.slot_mut(i) = Slot::Spill(Reg::Ptr(q));
                    }
                    Val::Reg(Reg::Scalar(x)) if size == 8 => {
                        *f.slot_mut(i) = Slot::Spill(Reg::Scalar(x));
                    }
                    _ => {
                        let zero = match v {
                            Val::Reg(Reg::Scalar(x)) => x.value() == Some(0),
                            Val::Imm(k) => k == 0,
                            _ => false,
                        };
                        let byte = if zero { Byte::Zero } else { Byte::Misc };
                        write_bytes(f.slot_mut(i), b, size as usize, byte);
                    }
                }
                Ok(())
            }
            _ => Err(format!(
                "R{regno} invalid mem access '{}'",
                Reg::Ptr(p).type_name()
            )),
        }
    }

    fn atomic(
        &mut self,
        st: &mut State,
        dst: u8,
        src: u8,
        off: i16,
        size: u32,
        imm: i32,
    ) -> Result<(), String> {
        let base = get(st, dst)?;
        get(st, src)?;
        let cmpxchg = imm == BPF_CMPXCHG;
        if cmpxchg {
            get(st, R0)?;
        }
        let p = self.mem_base(dst, base)?;
        match p.kind {
            PtrKind::Ctx => {
                return Err(format!("BPF_ATOMIC stores into R{dst} ctx is not allowed"))
            }
            PtrKind::MapValue { map } => {
                self.map_value(dst, &p, map, i64::from(off), u64::from(size), Align::Always)?;
            }
            PtrKind::Stack { frame } => {
                let o = stack_off(dst, &p, off, size)?;
                self.note_depth(st, frame, o)?;
                let f = frame_of_mut(st, frame)?;
                let (i, b) = slot_of(o);
                let slot = f.slot_mut(i);
                match *slot {
                    Slot::Spill(Reg::Ptr(_)) => {
                        return Err("atomic operations on a spilled pointer are not allowed".into())
                    }
                    Slot::Bytes(bytes) if bytes[b..b + size as usize].contains(&Byte::Invalid) => {
                        return Err(format!(
                            "invalid read from stack R{dst} off={o} size={size}"
                        ))
                    }
                    _ => write_bytes(slot, b, size as usize, Byte::Misc),
                }
            }
            _ => {
                return Err(format!(
                    "R{dst} invalid mem access '{}'",
                    Reg::Ptr(p).type_name()
                ))
            }
        }
        if cmpxchg {
            set(st, R0, Reg::Scalar(Scalar::unknown_bytes(size)));
        } else if imm & BPF_FETCH != 0 {
            set(st, src, Reg::Scalar(Scalar::unknown_bytes(size)));
        }
        Ok(())
    }

    /// The pointer a load or store goes through, or the kernel's complaint about its type.
    fn mem_base(&self, regno: u8, base: Reg) -> Result<Ptr, String> {
        match base {
            Reg::Ptr(p) => Ok(p),
            other => Err(format!(
                "R{regno} invalid mem access '{}'",
                other.type_name()
            )),
        }
    }

    /// Checks `size` bytes at `off` past the map value pointer `p` (`check_map_access`).
    fn map_value(
        &self,
        regno: u8,
        p: &Ptr,
        map: u32,
        off: i64,
        size: u64,
        align: Align,
    ) -> Result<(), String> {
        let vs = i64::from(self.maps.get(map as usize).map_or(0, |m| m.value_size));
        let size_i = size as i64;
        let off = off + i64::from(p.off);
        let strict = match align {
            Align::Never => false,
            Align::IfStrict => self.limits.strict_alignment,
            Align::Always => true,
        };
        if strict && size > 0 {
            let at = p.var.var.add(Tnum::known(off as u64));
            if !at.is_aligned(size) {
                return Err(format!(
                    "misaligned value access off {}+{}+{} size {}",
                    var_off(&p.var),
                    p.off,
                    off - i64::from(p.off),
                    size
                ));
            }
        }
        let smin = p.var.smin;
        if smin < 0
            && (smin == i64::MIN
                || i32::try_from(off.saturating_add(smin)).is_err()
                || smin.saturating_add(off) < 0)
        {
            return Err(format!(
                "R{regno} min value is negative, either use unsigned index or do a if (index >=0) check."
            ));
        }
        let lo = smin.saturating_add(off);
        if lo < 0 || lo.saturating_add(size_i) > vs {
            return Err(format!(
                "invalid access to map value, value_size={vs} off={lo} size={size}; R{regno} min value is outside of the allowed memory range"
            ));
        }
        if p.var.umax >= MAX_VAR_OFF as u64 {
            return Err(format!(
                "R{regno} unbounded memory access, make sure to bounds check any such access"
            ));
        }
        let hi = (p.var.umax as i64).saturating_add(off);
        if hi < 0 || hi.saturating_add(size_i) > vs {
            return Err(format!(
                "invalid access to map value, value_size={vs} off={hi} size={size}; R{regno} max value is outside of the allowed memory range"
            ));
        }
        Ok(())
    }

    /// Records how deep a frame's function reaches into its stack.
    fn note_depth(&mut self, st: &State, frame: u8, off: i64) -> Result<(), String> {
        let f = frame_of(st, frame)?;
        let d = &mut self.depth[f.func];
        *d = (*d).max((-off) as u32);
        Ok(())
    }

    fn call(&mut self, st: &mut State, id: i32) -> Result<(), String> {
        let Some(h) = helpers::lookup(id) else {
            return Err(format!("invalid func unknown#{id}"));
        };
        if !self.prog.allows(h) {
            let name = if h.user_only {
                h.name.to_string()
            } else {
                helper_name(h)
            };
            return Err(format!(
                "program of this type cannot use helper {name}#{id}"
            ));
        }
        let mut map: Option<u32> = None;
        let mut mem: Option<(u8, Ptr, bool)> = None;
        for (i, arg) in h.args.iter().enumerate() {
            let r = (i + 1) as u8;
            let reg = get(st, r)?;
            let expected = |what: &str| format!("R{r} type={} expected={what}", reg.type_name());
            match arg {
                Arg::Scalar => {
                    if !matches!(reg, Reg::Scalar(_)) {
                        return Err(expected("scalar"));
                    }
                }
                Arg::Anything => {}
                Arg::Map => match reg {
                    Reg::Ptr(Ptr {
                        kind: PtrKind::Map { map: m },
                        ..
                    }) => map = Some(m),
                    _ => return Err(expected("map_ptr")),
                },
                Arg::MapKey | Arg::MapValue => {
                    let Some(m) = map else {
                        return Err("invalid map_ptr to access map->key".into());
                    };
                    let def = self.maps.get(m as usize);
                    let size = match arg {
                        Arg::MapKey => def.map_or(0, |d| d.key_size),
                        _ => def.map_or(0, |d| d.value_size),
                    };
                    let p = mem_arg(r, reg)?;
                    self.helper_mem(st, r, p, u64::from(size), false)?;
                }
                Arg::Ctx => match reg {
                    Reg::Ptr(p) if p.kind == PtrKind::Ctx => ctx_base(r, &p)?,
                    _ => return Err(expected("ctx")),
                },
                Arg::Ksym => match reg {
                    Reg::Ptr(Ptr {
                        kind: PtrKind::Ksym { .. },
                        off: 0,
                        ..
                    }) => {}
                    _ => return Err(expected("percpu_ptr_")),
                },
                Arg::Mem | Arg::UninitMem => {
                    mem = Some((r, mem_arg(r, reg)?, *arg == Arg::UninitMem));
                }
                Arg::Size | Arg::SizeOrZero => {
                    let Reg::Scalar(s) = reg else {
                        return Err(expected("scalar"));
                    };
                    let Some((mr, p, write)) = mem.take() else {
                        return Err(format!("helper {}#{id} has a size without memory", h.name));
                    };
                    if s.smin < 0 {
                        return Err(format!(
                            "R{r} min value is negative, either use unsigned or 'var &= const'"
                        ));
                    }
                    if s.umin == 0 && *arg == Arg::Size {
                        return Err(format!(
                            "R{r} invalid zero-sized read: u64=[{},{}]",
                            s.umin, s.umax
                        ));
                    }
                    if s.umax >= MAX_VAR_SIZE {
                        return Err(format!(
                            "R{r} unbounded memory access, use 'var &= const' or 'if (var < const)'"
                        ));
                    }
                    self.helper_mem(st, mr, p, s.umax, write)?;
                }
            }
        }
        if mem.is_some() {
            return Err(format!("helper {}#{id} has memory without a size", h.name));
        }
        if let Some(m) = map {
            let kind = self.maps.get(m as usize).map_or(MapKind::Hash, |d| d.kind);
            let perf = kind == MapKind::PerfEventArray;
            let stacks = kind == MapKind::StackTrace;
            if perf != (id == helpers::PERF_EVENT_OUTPUT) || stacks != (id == helpers::GET_STACKID)
            {
                return Err(format!(
                    "cannot pass map_type {} into func {}#{id}",
                    kind as u32,
                    helper_name(h)
                ));
            }
        }
        let r0 = match h.ret {
            Ret::Scalar => Reg::Scalar(Scalar::UNKNOWN),
            Ret::RdonlyMem => Reg::Ptr(Ptr::new(PtrKind::RdonlyMem)),
            Ret::MapValueOrNull => {
                let id = self.next_id;
                self.next_id += 1;
                Reg::Ptr(Ptr::new(PtrKind::MapValueOrNull {
                    map: map.unwrap_or(0),
                    id,
                }))
            }
        };
        let f = st.cur_mut();
        f.regs[1..=5].fill(Reg::Uninit);
        f.regs[0] = r0;
        Ok(())
    }

    /// A helper reads (or, for `write`, fills) `size` bytes at the pointer `p` in `r`.
    fn helper_mem(
        &mut self,
        st: &mut State,
        r: u8,
        p: Ptr,
        size: u64,
        write: bool,
    ) -> Result<(), String> {
        match p.kind {
            PtrKind::MapValue { map } => self.map_value(r, &p, map, 0, size, Align::Never),
            PtrKind::Stack { frame } => {
                let Some(v) = p.var.value() else {
                    return Err(var_stack(r, &p));
                };
                let o = i64::from(p.off).saturating_add(v as i64);
                let end = o.saturating_add(size as i64);
                if o < -STACK || end > 0 {
                    let what = if write { "write to" } else { "read from" };
                    return Err(format!("invalid {what} stack R{r} off={o} size={size}"));
                }
                if size == 0 {
                    return Ok(());
                }
                self.note_depth(st, frame, o)?;
                let f = frame_of_mut(st, frame)?;
                for at in o..end {
                    let (i, b) = slot_of(at);
                    if write {
                        write_bytes(f.slot_mut(i), b, 1, Byte::Misc);
                    } else if let Slot::Bytes(bytes) = f.slot(i) {
                        if bytes[b] == Byte::Invalid {
                            return Err(format!(
                                "invalid indirect read from stack R{r} off {o}+{} size {size}",
                                at - o
                            ));
                        }
                    }
                }
                Ok(())
            }
            _ => Err(format!(
                "R{r} type={} expected=fp, map_value",
                Reg::Ptr(p).type_name()
            )),
        }
    }
}

/// A pointer's variable offset as the kernel prints it: the number when it is one.
fn var_off(var: &Scalar) -> String {
    match var.value() {
        Some(v) => (v as i64).to_string(),
        None => var.var.to_string(),
    }
}

/// The kernel's sanity limits on pointer arithmetic (`check_reg_sane_offset`).
fn sane_offset(var: &Scalar, off: i32, tname: &str) -> Result<(), String> {
    if let Some(v) = var.value() {
        let v = v as i64;
        if v >= MAX_VAR_OFF || v <= -MAX_VAR_OFF {
            return Err(format!(
                "math between {tname} pointer and {v} is not allowed"
            ));
        }
    }
    let off = i64::from(off);
    if off >= MAX_VAR_OFF || off <= -MAX_VAR_OFF {
        return Err(format!("{tname} pointer offset {off} is not allowed"));
    }
    if var.smin == i64::MIN {
        return Err(format!(
            "math between {tname} pointer and register with unbounded min value is not allowed"
        ));
    }
    if var.smin >= MAX_VAR_OFF || var.smin <= -MAX_VAR_OFF {
        return Err(format!(
            "value {} makes {tname} pointer be out of bounds",
            var.smin
        ));
    }
    Ok(())
}

/// A context pointer must be dereferenced as it came, with the offset in the instruction.
fn ctx_base(regno: u8, p: &Ptr) -> Result<(), String> {
    if p.off != 0 {
        return Err(format!(
            "dereference of modified ctx ptr R{regno} off={} disallowed",
            p.off
        ));
    }
    if p.var.value() != Some(0) {
        return Err(format!(
            "variable ctx access var_off={} disallowed",
            p.var.var
        ));
    }
    Ok(())
}

/// The most a read through [`PtrKind::RdonlyMem`] may reach. The kernel knows the variable's
/// type from BTF and checks the exact size; ktap's verifier does not see BTF, so it bounds
/// such reads by a page and leaves the exact check to the kernel.
const RDONLY_MEM_MAX: i64 = 4096;

/// Checks a `size`-byte read at `off` past read-only memory pointer `p`: at a constant offset,
/// inside [`RDONLY_MEM_MAX`].
fn rdonly_mem(regno: u8, p: &Ptr, off: i16, size: u32) -> Result<(), String> {
    let Some(var) = p.var.value() else {
        return Err(format!(
            "R{regno} variable offset into rdonly_mem var_off={} is not allowed",
            p.var.var
        ));
    };
    let at = i64::from(p.off) + i64::from(off) + var as i64;
    if at < 0 || at + i64::from(size) > RDONLY_MEM_MAX {
        return Err(format!(
            "invalid access to memory, mem_size={RDONLY_MEM_MAX} off={at} size={size}"
        ));
    }
    Ok(())
}

fn var_stack(regno: u8, p: &Ptr) -> String {
    format!(
        "variable-offset stack access R{regno} var_off={} is not allowed: ktap needs constant stack offsets",
        p.var.var
    )
}

/// The stack offset of an access, checked for alignment and bounds.
fn stack_off(regno: u8, p: &Ptr, off: i16, size: u32) -> Result<i64, String> {
    let Some(v) = p.var.value() else {
        return Err(var_stack(regno, p));
    };
    let o = i64::from(p.off) + v as i64 + i64::from(off);
    if o.rem_euclid(i64::from(size)) != 0 {
        return Err(format!(
            "misaligned stack access off {}+{}+{off} size {size}",
            var_off(&p.var),
            p.off
        ));
    }
    if o < -STACK || o + i64::from(size) > 0 {
        return Err(format!("invalid stack off={o} size={size}"));
    }
    Ok(o)
}

/// The slot and the byte within it of stack offset `o` (negative).
fn slot_of(o: i64) -> (usize, usize) {
    let from_top = (-o - 1) as usize;
    let i = from_top / 8;
    let b = (o + 8 * (i as i64 + 1)) as usize;
    (i, b)
}

fn frame_of(st: &State, frame: u8) -> Result<&Frame, String> {
    st.frames
        .get(usize::from(frame))
        .ok_or_else(|| "a pointer into the stack of a function that returned".to_string())
}

fn frame_of_mut(st: &mut State, frame: u8) -> Result<&mut Frame, String> {
    st.frames
        .get_mut(usize::from(frame))
        .ok_or_else(|| "a pointer into the stack of a function that returned".to_string())
}

/// Writes `n` bytes of kind `byte` from byte `b` of a slot; a spilled register there is lost.
fn write_bytes(slot: &mut Slot, b: usize, n: usize, byte: Byte) {
    if let Slot::Spill(_) = slot {
        *slot = Slot::Bytes([Byte::Misc; 8]);
    }
    if let Slot::Bytes(bytes) = slot {
        for x in bytes.iter_mut().skip(b).take(n) {
            *x = byte;
        }
    }
}

/// A pointer a helper reads or writes memory through.
fn mem_arg(r: u8, reg: Reg) -> Result<Ptr, String> {
    match reg {
        Reg::Ptr(p) if matches!(p.kind, PtrKind::Stack { .. } | PtrKind::MapValue { .. }) => Ok(p),
        other => Err(format!(
            "R{r} type={} expected=fp, map_value",
            other.type_name()
        )),
    }
}

/// After a null test: every copy of lookup result `id` is the null scalar or the map value.
fn settle(st: &mut State, id: u32, map: u32, null: bool) {
    st.each_reg(|r| {
        if let Reg::Ptr(Ptr {
            kind: PtrKind::MapValueOrNull { id: i, .. },
            ..
        }) = r
        {
            if *i == id {
                *r = if null {
                    Reg::Scalar(Scalar::known(0))
                } else {
                    Reg::Ptr(Ptr::new(PtrKind::MapValue { map }))
                };
            }
        }
    });
}
