//! Register allocation: maps the IR's virtual registers onto eBPF registers or stack slots.
//!
//! Liveness is computed by backward dataflow over basic blocks (a block starts at the first
//! instruction, at every `Label` and after every `Jmp`, `Ja` and `Exit`), so loops are handled
//! through their back edges. Each virtual register then gets one live interval on the linear
//! order of instructions: the hull of every position where it is live. The hull is
//! conservative (a value defined before a loop and used inside it stays live through the whole
//! loop body), so linear scan over hulls is correct on any control flow.
//!
//! Positions: instruction `i` reads its operands at `2i` and writes its result at `2i + 1`, so
//! a value whose last use is at `i` and the value `i` defines may share a register. The emitter
//! relies on this: every instruction reads all its virtual operands before writing its result.
//!
//! Register conventions, which the emitter depends on:
//! - `r0` and `r1` are never allocated. They are the emitter's scratch registers for reloading
//!   spilled operands, for `Exit` and for breaking cycles in the argument moves of a call; `r1`
//!   also carries the context into `EntryCtx`, which is why that must be the first instruction.
//! - `r10` is the read-only frame pointer.
//! - A value live across a `Call` (live before it and still needed after it, other than the
//!   call's own result) may only live in `r6`-`r9`, which helpers preserve. Any other value may
//!   use `r2`-`r9` and prefers `r2`-`r5`, so that the callee-saved registers stay free for
//!   values that need them.
//! - When no allowed register is free, the interval that ends last among the current one and
//!   the active ones holding an allowed register is spilled. Spilled values live in 8-byte
//!   slots below the lowering's own frame: slot `k` (from 1) is at `r10 - (frame + 8k)` with
//!   `frame` rounded up to 8. Spilled values whose intervals do not overlap share a slot.

use crate::ir::{Inst, IrFunc, Label, VReg};
use ktap_bpf::insn::STACK_SIZE;
use std::collections::HashMap;

/// Where a virtual register lives for its whole lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// An eBPF register, one of `r2`-`r9`.
    Reg(u8),
    /// An 8-byte stack slot at this (negative) offset from `r10`.
    Stack(i16),
}

/// The result of register allocation for one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// `locs[v]` is where virtual register `v` lives, up to the highest one the function
    /// mentions; `None` for one it never mentions.
    pub locs: Vec<Option<Loc>>,
    /// Bytes of stack below `r10` the function uses: the lowering's frame plus the spill slots.
    pub frame: u32,
}

impl Allocation {
    /// Where virtual register `v` lives, if it has a location.
    pub fn loc(&self, v: VReg) -> Option<Loc> {
        self.locs.get(v as usize).copied().flatten()
    }
}

/// Registers a value that is not live across a call may use, in order of preference.
const ANY_REGS: [u8; 8] = [2, 3, 4, 5, 6, 7, 8, 9];
/// Registers a value live across a call may use: the ones helpers do not clobber.
const CALLEE_SAVED: [u8; 4] = [6, 7, 8, 9];

/// Allocates a location to every virtual register of `f`. Fails on malformed IR (a virtual
/// register or label out of range, a use that some path reaches without a definition, a jump
/// to a label that is not placed exactly once) and when the stack would exceed 512 bytes.
pub fn allocate(f: &IrFunc) -> Result<Allocation, String> {
    let cfg = Cfg::build(f)?;
    let live = Liveness::compute(f, &cfg)?;
    let intervals = intervals(f, &cfg, &live);
    let (locs, spilled) = scan(cfg.nvals, &intervals);
    assign_slots(f.frame, &intervals, locs, spilled)
}

/// A set of virtual registers of fixed capacity, for the dataflow.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(n: u32) -> BitSet {
        BitSet(vec![0; (n as usize).div_ceil(64)])
    }
    fn insert(&mut self, i: u32) {
        self.0[i as usize / 64] |= 1 << (i % 64);
    }
    fn remove(&mut self, i: u32) {
        self.0[i as usize / 64] &= !(1 << (i % 64));
    }
    fn contains(&self, i: u32) -> bool {
        self.0[i as usize / 64] & (1 << (i % 64)) != 0
    }
    /// Adds every element of `other`; true if that changed `self`.
    fn union_with(&mut self, other: &BitSet) -> bool {
        let mut changed = false;
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            let n = *a | b;
            changed |= n != *a;
            *a = n;
        }
        changed
    }
    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            let mut rest = bits;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let b = rest.trailing_zeros();
                    rest &= rest - 1;
                    w as u32 * 64 + b
                })
            })
        })
    }
}

/// The basic blocks of a function and their successors.
struct Cfg {
    /// `[start, end)` instruction ranges, in program order.
    blocks: Vec<(usize, usize)>,
    /// One more than the highest virtual register mentioned: what the sets must hold, which
    /// `nregs` only bounds.
    nvals: u32,
    succs: Vec<Vec<usize>>,
}

impl Cfg {
    fn build(f: &IrFunc) -> Result<Cfg, String> {
        // Check every operand is in range first, so the later passes can index freely.
        let mut label_at: HashMap<Label, usize> = HashMap::new();
        let mut nvals = 0;
        for (i, (inst, _)) in f.insts.iter().enumerate() {
            for v in inst.uses().into_iter().chain(inst.def()) {
                if v >= f.nregs {
                    return Err(format!(
                        "instruction {i} names v{v}, but the function has {} virtual registers",
                        f.nregs
                    ));
                }
                nvals = nvals.max(v + 1);
            }
            if matches!(inst, Inst::EntryCtx { .. }) && i != 0 {
                return Err(format!(
                    "EntryCtx at instruction {i}: it must be the first instruction"
                ));
            }
            let label = match inst {
                Inst::Label(l) | Inst::Jmp { target: l, .. } | Inst::Ja { target: l } => *l,
                _ => continue,
            };
            if label >= f.nlabels {
                return Err(format!(
                    "instruction {i} names L{label}, but the function has {} labels",
                    f.nlabels
                ));
            }
            if let Inst::Label(_) = inst {
                if label_at.insert(label, i).is_some() {
                    return Err(format!("L{label} is placed twice"));
                }
            }
        }

        let n = f.insts.len();
        let mut leader = vec![false; n + 1];
        leader[0] = true;
        leader[n] = true;
        for (i, (inst, _)) in f.insts.iter().enumerate() {
            match inst {
                Inst::Label(_) => leader[i] = true,
                Inst::Jmp { .. } | Inst::Ja { .. } | Inst::Exit { .. } => leader[i + 1] = true,
                _ => {}
            }
        }
        let mut blocks = Vec::new();
        let mut block_of = vec![0; n];
        let mut start = 0;
        for i in 1..=n {
            if leader[i] {
                block_of[start..i].fill(blocks.len());
                blocks.push((start, i));
                start = i;
            }
        }

        let target = |l: u32| -> Result<usize, String> {
            match label_at.get(&l) {
                Some(&i) => Ok(block_of[i]),
                None => Err(format!("a jump targets L{l}, which is never placed")),
            }
        };
        let mut succs = Vec::with_capacity(blocks.len());
        for (b, &(_, end)) in blocks.iter().enumerate() {
            let next = (b + 1 < blocks.len()).then_some(b + 1);
            let s = match &f.insts[end - 1].0 {
                Inst::Jmp { target: l, .. } => std::iter::once(target(*l)?).chain(next).collect(),
                Inst::Ja { target: l } => vec![target(*l)?],
                Inst::Exit { .. } => vec![],
                _ => next.into_iter().collect(),
            };
            succs.push(s);
        }
        Ok(Cfg {
            blocks,
            nvals,
            succs,
        })
    }
}

/// The virtual registers live on entry to and on exit from each block.
struct Liveness {
    live_in: Vec<BitSet>,
    live_out: Vec<BitSet>,
}

impl Liveness {
    fn compute(f: &IrFunc, cfg: &Cfg) -> Result<Liveness, String> {
        let nb = cfg.blocks.len();
        // Per block: what it reads before writing (gen) and what it writes (kill).
        let mut gen = vec![BitSet::new(cfg.nvals); nb];
        let mut kill = vec![BitSet::new(cfg.nvals); nb];
        let mut defined = BitSet::new(cfg.nvals);
        for (b, &(start, end)) in cfg.blocks.iter().enumerate() {
            for (inst, _) in &f.insts[start..end] {
                for u in inst.uses() {
                    if !kill[b].contains(u) {
                        gen[b].insert(u);
                    }
                }
                if let Some(d) = inst.def() {
                    kill[b].insert(d);
                    defined.insert(d);
                }
            }
        }
        for (i, (inst, _)) in f.insts.iter().enumerate() {
            if let Some(u) = inst.uses().into_iter().find(|&u| !defined.contains(u)) {
                return Err(format!(
                    "instruction {i} reads v{u}, which is never defined"
                ));
            }
        }

        let mut live_in = gen.clone();
        let mut live_out = vec![BitSet::new(cfg.nvals); nb];
        let mut changed = true;
        while changed {
            changed = false;
            for b in (0..nb).rev() {
                for &s in &cfg.succs[b] {
                    live_out[b].union_with(&live_in[s]);
                }
                let mut through = live_out[b].clone();
                for (w, k) in through.0.iter_mut().zip(&kill[b].0) {
                    *w &= !k;
                }
                changed |= live_in[b].union_with(&through);
            }
        }
        if let Some(v) = live_in.first().and_then(|s| s.iter().next()) {
            return Err(format!(
                "v{v} may be read before it is defined on some path from the entry"
            ));
        }
        Ok(Liveness { live_in, live_out })
    }
}

/// The live interval of one virtual register, in positions (`2i` reads, `2i + 1` writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interval {
    vreg: VReg,
    start: usize,
    end: usize,
    /// Live across some `Call`, so it needs a callee-saved register.
    crosses_call: bool,
}

/// One interval per virtual register the function mentions, sorted by start.
fn intervals(f: &IrFunc, cfg: &Cfg, live: &Liveness) -> Vec<Interval> {
    let mut hull: Vec<Option<(usize, usize)>> = vec![None; cfg.nvals as usize];
    let mut crosses = vec![false; cfg.nvals as usize];
    let mut extend = |v: VReg, p: usize| {
        let h = &mut hull[v as usize];
        *h = Some(h.map_or((p, p), |(s, e)| (s.min(p), e.max(p))));
    };
    for (b, &(start, end)) in cfg.blocks.iter().enumerate() {
        // Within a block a value is live in segments that begin at a definition or at the
        // block's start and end at a use or at the block's end, so those points fix the hull.
        for v in live.live_in[b].iter() {
            extend(v, 2 * start);
        }
        for v in live.live_out[b].iter() {
            extend(v, 2 * end - 1);
        }
        let mut now = live.live_out[b].clone();
        for i in (start..end).rev() {
            let inst = &f.insts[i].0;
            let def = inst.def();
            if let Some(d) = def {
                extend(d, 2 * i + 1);
                now.remove(d);
            }
            if let Inst::Call { .. } = inst {
                // `now` holds what is live after the call, less the call's own result.
                for v in now.iter() {
                    crosses[v as usize] = true;
                }
            }
            for u in inst.uses() {
                extend(u, 2 * i);
                now.insert(u);
            }
        }
    }
    let mut out: Vec<Interval> = hull
        .iter()
        .enumerate()
        .filter_map(|(v, h)| {
            h.map(|(start, end)| Interval {
                vreg: v as VReg,
                start,
                end,
                crosses_call: crosses[v],
            })
        })
        .collect();
    out.sort_by_key(|iv| (iv.start, iv.vreg));
    out
}

/// Linear scan over `intervals` (sorted by start): the register of every vreg that got one,
/// and the indices into `intervals` of those that were spilled.
fn scan(nvals: u32, intervals: &[Interval]) -> (Vec<Option<Loc>>, Vec<usize>) {
    let mut locs = vec![None; nvals as usize];
    let mut spilled = Vec::new();
    // Active intervals as (index into `intervals`, register).
    let mut active: Vec<(usize, u8)> = Vec::new();
    let mut free = [true; 10];
    for (idx, iv) in intervals.iter().enumerate() {
        active.retain(|&(a, reg)| {
            let keep = intervals[a].end >= iv.start;
            if !keep {
                free[reg as usize] = true;
            }
            keep
        });
        let allowed: &[u8] = if iv.crosses_call {
            &CALLEE_SAVED
        } else {
            &ANY_REGS
        };
        if let Some(&reg) = allowed.iter().find(|&&r| free[r as usize]) {
            free[reg as usize] = false;
            active.push((idx, reg));
            locs[iv.vreg as usize] = Some(Loc::Reg(reg));
            continue;
        }
        // No allowed register is free: the interval ending last among the current one and the
        // active ones in an allowed register goes to the stack, since it blocks the most.
        let victim = active
            .iter()
            .enumerate()
            .filter(|(_, &(_, reg))| allowed.contains(&reg))
            .max_by_key(|(_, &(a, _))| (intervals[a].end, intervals[a].vreg));
        match victim {
            Some((pos, &(a, reg))) if intervals[a].end > iv.end => {
                active[pos] = (idx, reg);
                locs[intervals[a].vreg as usize] = None;
                locs[iv.vreg as usize] = Some(Loc::Reg(reg));
                spilled.push(a);
            }
            _ => spilled.push(idx),
        }
    }
    (locs, spilled)
}

/// Gives each spilled interval a stack slot, reusing a slot once its previous holder's interval
/// has ended, and checks the total frame against the eBPF stack limit.
fn assign_slots(
    frame: u32,
    intervals: &[Interval],
    mut locs: Vec<Option<Loc>>,
    mut spilled: Vec<usize>,
) -> Result<Allocation, String> {
    spilled.sort_unstable();
    let base = u64::from(frame).div_ceil(8) * 8;
    // Slots in use as (end position, slot number from 1), and slots free for reuse.
    let mut busy: Vec<(usize, u32)> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut nslots = 0u32;
    let mut slot_of = Vec::with_capacity(spilled.len());
    for &idx in &spilled {
        let iv = intervals[idx];
        busy.retain(|&(end, slot)| {
            let keep = end >= iv.start;
            if !keep {
                free.push(slot);
            }
            keep
        });
        free.sort_unstable_by(|a, b| b.cmp(a));
        let slot = free.pop().unwrap_or_else(|| {
            nslots += 1;
            nslots
        });
        busy.push((iv.end, slot));
        slot_of.push((iv.vreg, slot));
    }
    let total = if nslots == 0 {
        u64::from(frame)
    } else {
        base + 8 * u64::from(nslots)
    };
    if total > STACK_SIZE as u64 {
        return Err(format!(
            "the program needs {total} bytes of stack, more than the {STACK_SIZE} bytes eBPF allows"
        ));
    }
    for (vreg, slot) in slot_of {
        // The total is at most 512 here, so every offset fits an i16.
        locs[vreg as usize] = Some(Loc::Stack(-((base + 8 * u64::from(slot)) as i16)));
    }
    Ok(Allocation {
        locs,
        frame: total as u32,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ir::{Arg, Opnd};
    use ktap_bpf::insn::{BPF_ADD, BPF_JLT, BPF_JNE};
    use ktap_bpf::Span;

    /// A function of `insts`, with `nregs` and `nlabels` just large enough and instruction `k`
    /// spanning bytes `k..k+1`.
    pub(crate) fn func(insts: Vec<Inst>) -> IrFunc {
        let mut f = IrFunc::default();
        for (k, inst) in insts.into_iter().enumerate() {
            for v in inst.uses().into_iter().chain(inst.def()) {
                f.nregs = f.nregs.max(v + 1);
            }
            if let Inst::Label(l) | Inst::Jmp { target: l, .. } | Inst::Ja { target: l } = inst {
                f.nlabels = f.nlabels.max(l + 1);
            }
            f.push(inst, Span::new(k as u32, k as u32 + 1));
        }
        f
    }

    pub(crate) fn konst(dst: VReg, imm: i64) -> Inst {
        Inst::Const { dst, imm }
    }
    pub(crate) fn add(dst: VReg, src: VReg) -> Inst {
        Inst::Alu {
            op: BPF_ADD,
            dst,
            src: Opnd::V(src),
            w32: false,
        }
    }
    pub(crate) fn exit(v: VReg) -> Inst {
        Inst::Exit { code: Opnd::V(v) }
    }
    pub(crate) fn call(args: &[VReg], dst: Option<VReg>) -> Inst {
        Inst::Call {
            helper: 1,
            args: args.iter().map(|&v| Arg::V(v)).collect(),
            dst,
        }
    }

    /// For each instruction, the instructions control can reach right after it.
    fn succs(f: &IrFunc) -> Vec<Vec<usize>> {
        let at = |l: Label| {
            f.insts
                .iter()
                .position(|(inst, _)| *inst == Inst::Label(l))
                .expect("placed label")
        };
        (0..f.insts.len())
            .map(|i| {
                let next = (i + 1 < f.insts.len()).then_some(i + 1);
                match f.insts[i].0 {
                    Inst::Jmp { target, .. } => std::iter::once(at(target)).chain(next).collect(),
                    Inst::Ja { target } => vec![at(target)],
                    Inst::Exit { .. } => vec![],
                    _ => next.into_iter().collect(),
                }
            })
            .collect()
    }

    /// `out[i]` holds whether `v` is live after instruction `i`: some path from there reads it
    /// before writing it. Found by searching backwards from each read of `v`, independently of
    /// the allocator's block dataflow.
    fn live_after(f: &IrFunc, preds: &[Vec<usize>], v: VReg) -> Vec<bool> {
        let mut out = vec![false; f.insts.len()];
        let mut live_before = vec![false; f.insts.len()];
        let mut todo: Vec<usize> = (0..f.insts.len())
            .filter(|&j| f.insts[j].0.uses().contains(&v))
            .collect();
        while let Some(j) = todo.pop() {
            if std::mem::replace(&mut live_before[j], true) {
                continue;
            }
            for &p in &preds[j] {
                out[p] = true;
                if f.insts[p].0.def() != Some(v) || f.insts[p].0.uses().contains(&v) {
                    todo.push(p);
                }
            }
        }
        out
    }

    /// Checks that `a` is a correct allocation of `f`: every value mentioned has a location in
    /// the allowed registers or in a slot of the frame; values live at the same time never share
    /// a location; values live across a call are in callee-saved registers or on the stack.
    pub(crate) fn check(f: &IrFunc, a: &Allocation) {
        assert!(a.frame <= 512);
        let base = f.frame.div_ceil(8) * 8;
        let mut preds = vec![Vec::new(); f.insts.len()];
        for (i, ss) in succs(f).into_iter().enumerate() {
            for s in ss {
                preds[s].push(i);
            }
        }
        let live: Vec<Vec<bool>> = (0..f.nregs).map(|v| live_after(f, &preds, v)).collect();
        for (i, (inst, _)) in f.insts.iter().enumerate() {
            for v in inst.uses().into_iter().chain(inst.def()) {
                match a.loc(v) {
                    Some(Loc::Reg(r)) => assert!((2..=9).contains(&r), "v{v} in r{r}"),
                    Some(Loc::Stack(off)) => {
                        assert!(off % 8 == 0 && -(off as i32) > base as i32, "v{v} at {off}");
                        assert!(-(off as i32) <= a.frame as i32, "v{v} at {off}");
                    }
                    None => panic!("v{v} of instruction {i} has no location"),
                }
            }
            let out: Vec<VReg> = (0..f.nregs).filter(|&v| live[v as usize][i]).collect();
            let def = inst.def();
            let mut after = out.clone();
            after.extend(def.filter(|d| !out.contains(d)));
            let mut before: Vec<VReg> = out.iter().copied().filter(|&v| Some(v) != def).collect();
            for u in inst.uses() {
                if !before.contains(&u) {
                    before.push(u);
                }
            }
            for set in [&after, &before] {
                for (k, &v) in set.iter().enumerate() {
                    for &w in &set[k + 1..] {
                        assert_ne!(a.loc(v), a.loc(w), "v{v} and v{w} at instruction {i}");
                    }
                }
            }
            if let Inst::Call { .. } = inst {
                for &v in out.iter().filter(|&&v| Some(v) != def) {
                    assert!(
                        !matches!(a.loc(v), Some(Loc::Reg(r)) if r < 6),
                        "v{v} is live across the call at {i} in {:?}",
                        a.loc(v)
                    );
                }
            }
        }
    }

    #[test]
    fn values_used_in_a_loop_stay_live_through_the_back_edge() {
        let f = func(vec![
            konst(0, 5),
            konst(1, 0),
            Inst::Label(0),
            add(1, 0),
            // v0's last use in program order is above, but the back edge reads it again, so v2
            // must not take its register.
            konst(2, 1),
            add(1, 2),
            Inst::Jmp {
                op: BPF_JLT,
                a: 1,
                b: Opnd::Imm(100),
                target: 0,
            },
            exit(1),
        ]);
        let a = allocate(&f).unwrap();
        check(&f, &a);
        assert_eq!(
            a.locs,
            [Some(Loc::Reg(2)), Some(Loc::Reg(3)), Some(Loc::Reg(4))]
        );
        assert_eq!(a.frame, 0);
    }

    #[test]
    fn values_live_across_a_call_get_callee_saved_registers() {
        let f = func(vec![
            konst(0, 1),
            konst(1, 2),
            call(&[1], Some(2)),
            add(2, 0),
            exit(2),
        ]);
        let a = allocate(&f).unwrap();
        check(&f, &a);
        // v0 survives the call; v1 dies as its argument, so the result reuses its register.
        assert_eq!(
            a.locs,
            [Some(Loc::Reg(6)), Some(Loc::Reg(2)), Some(Loc::Reg(2))]
        );
    }

    #[test]
    fn an_argument_read_again_after_the_call_counts_as_crossing_it() {
        let f = func(vec![
            konst(0, 1),
            call(&[0], Some(0)),
            call(&[0], Some(1)),
            add(1, 0),
            exit(1),
        ]);
        let a = allocate(&f).unwrap();
        check(&f, &a);
        // v0 is redefined by the first call, so only the second call is crossed.
        assert_eq!(a.locs, [Some(Loc::Reg(6)), Some(Loc::Reg(2))]);
    }

    #[test]
    fn five_values_across_a_call_spill_one() {
        let mut insts: Vec<Inst> = (0..5).map(|v| konst(v, v as i64)).collect();
        insts.push(call(&[], None));
        insts.extend((1..5).map(|v| add(0, v)));
        insts.push(exit(0));
        let f = func(insts);
        let a = allocate(&f).unwrap();
        check(&f, &a);
        let spilled = a.locs.iter().filter(|l| matches!(l, Some(Loc::Stack(_))));
        assert_eq!(spilled.count(), 1);
        assert_eq!(a.frame, 8);
    }

    /// Twelve constants, then their sum: all twelve are live at once.
    pub(crate) fn twelve_live() -> IrFunc {
        let mut insts: Vec<Inst> = (0..12).map(|v| konst(v, v as i64 + 1)).collect();
        insts.extend((1..12).map(|v| add(0, v)));
        insts.push(exit(0));
        let mut f = func(insts);
        f.frame = 16;
        f
    }

    #[test]
    fn twelve_live_values_spill_four_below_the_frame() {
        let f = twelve_live();
        let a = allocate(&f).unwrap();
        check(&f, &a);
        // The accumulator lives longest and is spilled first; then each newcomer outlives
        // every value in a register.
        let slots: Vec<_> = [0, 9, 10, 11].iter().map(|&v| a.loc(v)).collect();
        assert_eq!(
            slots,
            [-24, -32, -40, -48].map(|o| Some(Loc::Stack(o))).to_vec()
        );
        assert_eq!(a.frame, 48);
    }

    #[test]
    fn spill_slots_are_reused_once_free() {
        // Two rounds of nine live values: each spills one, and the rounds do not overlap.
        let mut insts = Vec::new();
        for round in 0..2 {
            let v0 = round * 9;
            insts.extend((v0..v0 + 9).map(|v| konst(v, 1)));
            insts.extend((v0 + 1..v0 + 9).map(|v| add(v0, v)));
            insts.push(Inst::Store {
                size: ktap_bpf::insn::BPF_DW,
                base: crate::ir::Base::Fp,
                off: -8,
                src: Opnd::V(v0),
            });
        }
        insts.push(exit(9));
        let mut f = func(insts);
        f.frame = 12;
        let a = allocate(&f).unwrap();
        check(&f, &a);
        assert_eq!(a.loc(0), Some(Loc::Stack(-24)));
        assert_eq!(a.loc(9), Some(Loc::Stack(-24)));
        assert_eq!(a.frame, 24);
    }

    #[test]
    fn the_stack_limit_counts_frame_and_spills() {
        let mut f = twelve_live();
        f.frame = 480;
        let a = allocate(&f).unwrap();
        assert_eq!(a.frame, 512);
        f.frame = 481;
        assert_eq!(
            allocate(&f),
            Err("the program needs 520 bytes of stack, more than the 512 bytes eBPF allows".into())
        );
        let mut g = func(vec![exit(0)].into_iter().skip(1).collect());
        g.frame = 513;
        assert!(allocate(&g).unwrap_err().contains("513 bytes"));
    }

    #[test]
    fn dead_definitions_still_get_a_register_of_their_own() {
        let f = func(vec![konst(0, 1), konst(1, 2), call(&[], Some(2)), exit(0)]);
        let a = allocate(&f).unwrap();
        check(&f, &a);
        assert_eq!(a.loc(1), Some(Loc::Reg(2)));
        assert_eq!(a.loc(0), Some(Loc::Reg(6)));
    }

    #[test]
    fn malformed_ir_is_an_error() {
        let cases: Vec<(IrFunc, &str)> = vec![
            (func(vec![exit(3)]), "never defined"),
            (
                IrFunc {
                    nregs: 1,
                    ..func(vec![konst(0, 1), exit(2)])
                },
                "has 1 virtual registers",
            ),
            (
                IrFunc {
                    nlabels: 0,
                    ..func(vec![Inst::Ja { target: 0 }, Inst::Label(0)])
                },
                "has 0 labels",
            ),
            (func(vec![Inst::Ja { target: 1 }]), "never placed"),
            (
                func(vec![Inst::Label(0), Inst::Label(0), exit(0)]),
                "placed twice",
            ),
            (
                func(vec![konst(0, 1), Inst::EntryCtx { dst: 1 }, exit(1)]),
                "first instruction",
            ),
            (
                // v1 is defined on one path only.
                func(vec![
                    konst(0, 1),
                    Inst::Jmp {
                        op: BPF_JNE,
                        a: 0,
                        b: Opnd::Imm(0),
                        target: 0,
                    },
                    konst(1, 1),
                    Inst::Label(0),
                    exit(1),
                ]),
                "may be read before it is defined",
            ),
        ];
        for (f, msg) in cases {
            let e = allocate(&f).unwrap_err();
            assert!(e.contains(msg), "{e:?} lacks {msg:?}");
        }
    }

    #[test]
    fn huge_bounds_cost_only_what_the_function_mentions() {
        let mut f = func(vec![
            konst(0, 1),
            Inst::Ja { target: 9 },
            Inst::Label(9),
            exit(0),
        ]);
        f.nregs = u32::MAX;
        f.nlabels = u32::MAX;
        let mut g = f.clone();
        g.insts[0].0 = konst(u32::MAX, 1);
        assert!(allocate(&g).unwrap_err().contains("names v4294967295"));
        let a = allocate(&f).unwrap();
        assert_eq!(a.locs, [Some(Loc::Reg(2))]);
        assert_eq!(a.loc(u32::MAX - 1), None);
        f.frame = u32::MAX;
        assert!(allocate(&f).unwrap_err().contains("needs 4294967295 bytes"));
        f.frame = 0;
        let code = crate::emit::emit(&f, &a).unwrap();
        assert_eq!(code.insns.len(), 3);
    }

    /// A small deterministic generator of random values (xorshift).
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// A random structured function: straight code, calls, conditionals and loops, where every
    /// read is of a value defined on every path to it.
    pub(crate) fn random_func(rng: &mut Rng) -> IrFunc {
        fn block(rng: &mut Rng, f: &mut IrFunc, vals: &mut Vec<VReg>, depth: u32) {
            let pick = |rng: &mut Rng, vals: &[VReg]| vals[rng.below(vals.len() as u64) as usize];
            for _ in 0..rng.below(12) + 1 {
                match rng.below(10) {
                    0..=2 => {
                        let v = f.new_reg();
                        f.push(konst(v, rng.below(1 << 40) as i64), Span::default());
                        vals.push(v);
                    }
                    3..=4 => {
                        let (d, s) = (pick(rng, vals), pick(rng, vals));
                        f.push(add(d, s), Span::default());
                    }
                    5 => {
                        let args: Vec<VReg> = (0..rng.below(6)).map(|_| pick(rng, vals)).collect();
                        let v = f.new_reg();
                        f.push(call(&args, Some(v)), Span::default());
                        vals.push(v);
                    }
                    6 => {
                        // Sum many values, so that many are live together.
                        let v = f.new_reg();
                        f.push(konst(v, 0), Span::default());
                        for _ in 0..rng.below(8) {
                            let s = pick(rng, vals);
                            f.push(add(v, s), Span::default());
                        }
                        vals.push(v);
                    }
                    7 if depth < 3 => {
                        let skip = f.new_label();
                        let a = pick(rng, vals);
                        let j = Inst::Jmp {
                            op: BPF_JNE,
                            a,
                            b: Opnd::V(pick(rng, vals)),
                            target: skip,
                        };
                        f.push(j, Span::default());
                        block(rng, f, &mut vals.clone(), depth + 1);
                        f.push(Inst::Label(skip), Span::default());
                    }
                    8 if depth < 3 => {
                        let top = f.new_label();
                        f.push(Inst::Label(top), Span::default());
                        block(rng, f, &mut vals.clone(), depth + 1);
                        let a = pick(rng, vals);
                        let j = Inst::Jmp {
                            op: BPF_JLT,
                            a,
                            b: Opnd::Imm(10),
                            target: top,
                        };
                        f.push(j, Span::default());
                    }
                    _ => {
                        let s = pick(rng, vals);
                        f.push(
                            Inst::Store {
                                size: ktap_bpf::insn::BPF_DW,
                                base: crate::ir::Base::Fp,
                                off: -8,
                                src: Opnd::V(s),
                            },
                            Span::default(),
                        );
                    }
                }
            }
        }
        let mut f = IrFunc {
            frame: 8,
            ..IrFunc::default()
        };
        let ctx = f.new_reg();
        f.push(Inst::EntryCtx { dst: ctx }, Span::default());
        let mut vals = vec![ctx];
        block(rng, &mut f, &mut vals, 0);
        let v = vals[rng.below(vals.len() as u64) as usize];
        f.push(exit(v), Span::default());
        f
    }

    #[test]
    fn random_functions_are_allocated_correctly() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut spills = 0;
        for _ in 0..150 {
            let f = random_func(&mut rng);
            let a = allocate(&f).unwrap();
            check(&f, &a);
            spills += a
                .locs
                .iter()
                .filter(|l| matches!(l, Some(Loc::Stack(_))))
                .count();
        }
        // The generator must exercise spilling, or this test proves little.
        assert!(spills > 20, "{spills} spills");
    }
}
