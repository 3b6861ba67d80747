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

use crate::ir::{Inst, IrFunc, VReg};
use ktap_bpf::insn::STACK_SIZE;

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
    /// `locs[v]` is where virtual register `v` lives; `None` for one the function never mentions.
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
    let (locs, spilled) = scan(f.nregs, &intervals);
    assign_slots(f.frame, &intervals, locs, spilled)
}

/// A growable set of small integers, for the dataflow over virtual registers.
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
            (0..64)
                .filter(move |b| bits & (1u64 << b) != 0)
                .map(move |b| (w * 64 + b) as u32)
        })
    }
}

/// The basic blocks of a function and their successors.
struct Cfg {
    /// `[start, end)` instruction ranges, in program order.
    blocks: Vec<(usize, usize)>,
    succs: Vec<Vec<usize>>,
}

impl Cfg {
    fn build(f: &IrFunc) -> Result<Cfg, String> {
        // Check every operand is in range first, so the later passes can index freely.
        let mut label_at: Vec<Option<usize>> = vec![None; f.nlabels as usize];
        for (i, (inst, _)) in f.insts.iter().enumerate() {
            for v in inst.uses().into_iter().chain(inst.def()) {
                if v >= f.nregs {
                    return Err(format!(
                        "instruction {i} names v{v}, but the function has {} virtual registers",
                        f.nregs
                    ));
                }
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
            let Some(slot) = label_at.get_mut(label as usize) else {
                return Err(format!(
                    "instruction {i} names L{label}, but the function has {} labels",
                    f.nlabels
                ));
            };
            if let Inst::Label(_) = inst {
                if slot.is_some() {
                    return Err(format!("L{label} is placed twice"));
                }
                *slot = Some(i);
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
            match label_at[l as usize] {
                Some(i) => Ok(block_of[i]),
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
        Ok(Cfg { blocks, succs })
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
        let mut gen = vec![BitSet::new(f.nregs); nb];
        let mut kill = vec![BitSet::new(f.nregs); nb];
        let mut defined = BitSet::new(f.nregs);
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
        let mut live_out = vec![BitSet::new(f.nregs); nb];
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
    let mut hull: Vec<Option<(usize, usize)>> = vec![None; f.nregs as usize];
    let mut crosses = vec![false; f.nregs as usize];
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
fn scan(nregs: u32, intervals: &[Interval]) -> (Vec<Option<Loc>>, Vec<usize>) {
    let mut locs = vec![None; nregs as usize];
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
    let base = frame.div_ceil(8) * 8;
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
        frame
    } else {
        base + 8 * nslots
    };
    if total > STACK_SIZE as u32 {
        return Err(format!(
            "the program needs {total} bytes of stack, more than the {STACK_SIZE} bytes eBPF allows"
        ));
    }
    for (vreg, slot) in slot_of {
        // The total is at most 512 here, so every offset fits an i16.
        locs[vreg as usize] = Some(Loc::Stack(-((base + 8 * slot) as i16)));
    }
    Ok(Allocation { locs, frame: total })
}
