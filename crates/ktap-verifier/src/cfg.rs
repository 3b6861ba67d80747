//! The second pass, control flow: splits the program into functions at bpf-to-bpf call
//! targets, checks that every jump stays inside its function and lands on an instruction (not
//! the second slot of an `ld_imm64`), that each function ends in `exit` or a jump, that every
//! instruction is reachable, and finds the back edges: a back edge of a jump closes a loop,
//! which the path walk must prove ends; a back edge of a call is recursion, always refused.
//! It also computes where the path walk compares states (prune points) and which registers
//! are live at each instruction, so that comparisons ignore dead registers.

use crate::op::{Op, Src};
use crate::VerifyError;
use ktap_bpf::helpers;

/// What the later passes need to know about the program's shape.
#[derive(Debug)]
pub struct Cfg {
    /// The first instruction of each function, ascending; function 0 is the program's entry.
    pub funcs: Vec<usize>,
    /// The function each instruction belongs to.
    pub func_of: Vec<usize>,
    /// Instructions where the path walk compares its state with states seen before.
    pub prune: Vec<bool>,
    /// Targets of loop-closing back edges.
    pub loop_head: Vec<bool>,
    /// The loop-closing back edges, `(from, to)`, for messages about loops.
    pub back_edges: Vec<(usize, usize)>,
    /// For each function, the functions it calls.
    pub callees: Vec<Vec<usize>>,
    /// Registers (bit n for rN) whose value may still be read, per instruction.
    pub live: Vec<u16>,
}

/// Registers every helper call or bpf-to-bpf call writes: `r0` and the argument registers.
const CALL_CLOBBERS: u16 = 0x3f;
const R0_BIT: u16 = 1;
const R10_BIT: u16 = 1 << 10;

/// The instructions control may go to next from one instruction (calls aside).
#[derive(Clone, Copy, Default)]
struct Succs {
    n: usize,
    to: [usize; 2],
}

impl Cfg {
    /// The innermost loop around instruction `pc`, as its back edge, if `pc` is in one.
    pub fn loop_around(&self, pc: usize) -> Option<(usize, usize)> {
        self.back_edges
            .iter()
            .filter(|&&(from, to)| to <= pc && pc <= from)
            .min_by_key(|&&(from, to)| from - to)
            .copied()
    }
}

impl Succs {
    fn one(to: usize) -> Succs {
        Succs { n: 1, to: [to, 0] }
    }
    fn len(&self) -> usize {
        self.n
    }
    fn iter(&self) -> impl Iterator<Item = &usize> {
        self.to[..self.n].iter()
    }
}

/// Builds the control-flow facts, or the first reason the program's shape is wrong.
pub fn build(ops: &[Option<Op>], bounded_loops: bool) -> Result<Cfg, VerifyError> {
    let n = ops.len();
    let err = |pc: usize, m: String| Err(VerifyError::cfg(pc, m));
    if n == 0 {
        return err(0, "the program has no instructions".into());
    }

    // Functions start at 0 and at every bpf-to-bpf call target.
    let mut funcs = vec![0usize];
    for (pc, op) in ops.iter().enumerate() {
        if let Some(Op::CallLocal { target }) = op {
            let t = *target;
            if t < 0 || t >= n as i64 {
                return err(pc, "call to invalid destination".into());
            }
            if ops[t as usize].is_none() {
                return err(
                    pc,
                    format!("jump into the middle of ldimm64 insn {}", t - 1),
                );
            }
            funcs.push(t as usize);
        }
    }
    funcs.sort_unstable();
    funcs.dedup();
    let mut func_of = vec![0usize; n];
    for (f, &start) in funcs.iter().enumerate() {
        let end = funcs.get(f + 1).copied().unwrap_or(n);
        func_of[start..end].fill(f);
    }

    // Every jump stays inside its function; each function ends in exit or goto.
    let mut succs: Vec<Succs> = vec![Succs::default(); n];
    for (f, &start) in funcs.iter().enumerate() {
        let end = funcs.get(f + 1).copied().unwrap_or(n);
        for pc in start..end {
            let Some(op) = ops[pc] else { continue };
            let jump = |t: i64| -> Result<usize, VerifyError> {
                if t < start as i64 || t >= end as i64 {
                    return Err(VerifyError::cfg(
                        pc,
                        format!("jump out of range from insn {pc} to {t}"),
                    ));
                }
                let t = t as usize;
                if ops[t].is_none() {
                    return Err(VerifyError::cfg(
                        pc,
                        format!("jump into the middle of ldimm64 insn {}", t - 1),
                    ));
                }
                Ok(t)
            };
            let next = pc
                + if matches!(op, Op::LdImm { .. } | Op::LdMap { .. } | Op::LdKsym { .. }) {
                    2
                } else {
                    1
                };
            succs[pc] = match op {
                Op::Exit => Succs::default(),
                Op::Ja { target } => Succs::one(jump(target)?),
                Op::Jcond { target, .. } => {
                    let t = jump(target)?;
                    Succs {
                        n: 2,
                        to: [next, t],
                    }
                }
                _ => Succs::one(next),
            };
        }
        let last = end - 1;
        if !matches!(ops[last], Some(Op::Exit) | Some(Op::Ja { .. })) {
            return err(last, "last insn is not an exit or jmp".into());
        }
    }

    // Depth-first search from the entry through jumps and calls: a back edge of a jump is a
    // loop, a back edge of a call is recursion.
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let mut mark = vec![NEW; n];
    let mut loop_head = vec![false; n];
    let mut back_edges = Vec::new();
    let mut callees: Vec<Vec<usize>> = vec![Vec::new(); funcs.len()];
    // Each frame: an instruction and how many of its edges were followed.
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    mark[0] = OPEN;
    while let Some(&(pc, e)) = stack.last() {
        let call = match ops[pc] {
            Some(Op::CallLocal { target }) => Some(target as usize),
            _ => None,
        };
        let edges = succs[pc].len() + usize::from(call.is_some());
        if e == edges {
            mark[pc] = DONE;
            stack.pop();
            continue;
        }
        if let Some(top) = stack.last_mut() {
            top.1 += 1;
        }
        let (to, is_call) = match call {
            Some(t) if e == 0 => (t, true),
            Some(_) => (succs[pc].to[e - 1], false),
            None => (succs[pc].to[e], false),
        };
        if is_call {
            let callee = func_of[to];
            let from = func_of[pc];
            if !callees[from].contains(&callee) {
                callees[from].push(callee);
            }
        }
        match mark[to] {
            NEW => {
                mark[to] = OPEN;
                stack.push((to, 0));
            }
            OPEN if is_call => {
                return err(
                    pc,
                    format!("back-edge from insn {pc} to {to}: a recursive call (the function at insn {to} calls itself)"),
                );
            }
            OPEN if !bounded_loops => {
                return err(pc, format!("back-edge from insn {pc} to {to}"));
            }
            OPEN => {
                loop_head[to] = true;
                back_edges.push((pc, to));
            }
            _ => {}
        }
    }
    if let Some(pc) = (0..n).find(|&pc| ops[pc].is_some() && mark[pc] == NEW) {
        return err(pc, format!("unreachable insn {pc}"));
    }

    // Prune points: where paths meet or part, after calls, and at loop heads.
    let mut prune = loop_head.clone();
    for pc in 0..n {
        match ops[pc] {
            Some(Op::Jcond { .. }) => {
                for &s in succs[pc].iter() {
                    prune[s] = true;
                }
            }
            Some(Op::Ja { .. }) => prune[succs[pc].to[0]] = true,
            Some(Op::Call { .. }) => prune[pc + 1] = true,
            Some(Op::CallLocal { target }) => {
                prune[pc + 1] = true;
                prune[target as usize] = true;
            }
            _ => {}
        }
    }

    let live = liveness(ops, &succs);
    Ok(Cfg {
        funcs,
        func_of,
        prune,
        loop_head,
        back_edges,
        callees,
        live,
    })
}

/// Live registers before each instruction, by the usual backward fixpoint. Calls are
/// summarised by the registers they read and the ones they leave written or clobbered.
fn liveness(ops: &[Option<Op>], succs: &[Succs]) -> Vec<u16> {
    let n = ops.len();
    let bit = |r: u8| 1u16 << r;
    let src_bit = |s: Src| match s {
        Src::Reg(r) => bit(r),
        Src::Imm(_) => 0,
    };
    let mut uses = vec![0u16; n];
    let mut defs = vec![0u16; n];
    for pc in 0..n {
        let (u, d) = match ops[pc] {
            None => (0, 0),
            Some(op) => match op {
                Op::Alu { op, dst, src, .. } => {
                    let reads_dst = if op == ktap_bpf::insn::BPF_MOV {
                        0
                    } else {
                        bit(dst)
                    };
                    (reads_dst | src_bit(src), bit(dst))
                }
                Op::Neg { dst, .. } | Op::End { dst } => (bit(dst), bit(dst)),
                Op::MovSx { dst, src, .. } => (bit(src), bit(dst)),
                Op::LdImm { dst, .. } | Op::LdMap { dst, .. } | Op::LdKsym { dst, .. } => {
                    (0, bit(dst))
                }
                Op::Ldx { dst, src, .. } => (bit(src), bit(dst)),
                Op::St { dst, .. } => (bit(dst), 0),
                Op::Stx { dst, src, .. } => (bit(dst) | bit(src), 0),
                Op::Atomic { dst, src, imm, .. } => {
                    let cmpxchg = imm == ktap_bpf::insn::BPF_CMPXCHG;
                    let fetch = imm & ktap_bpf::insn::BPF_FETCH != 0;
                    let u = bit(dst) | bit(src) | if cmpxchg { R0_BIT } else { 0 };
                    let d = match (cmpxchg, fetch) {
                        (true, _) => R0_BIT,
                        (false, true) => bit(src),
                        _ => 0,
                    };
                    (u, d)
                }
                Op::Ja { .. } => (0, 0),
                Op::Jcond { dst, src, .. } => (bit(dst) | src_bit(src), 0),
                Op::Call { helper } => {
                    let args = helpers::lookup(helper).map_or(5, |h| h.args.len().min(5));
                    (((1u16 << args) - 1) << 1, CALL_CLOBBERS)
                }
                Op::CallLocal { .. } => (0x3e, CALL_CLOBBERS),
                Op::Exit => (R0_BIT, 0),
            },
        };
        uses[pc] = u;
        defs[pc] = d;
    }
    let mut live = vec![0u16; n];
    loop {
        let mut changed = false;
        for pc in (0..n).rev() {
            if ops[pc].is_none() {
                continue;
            }
            let out = succs[pc].iter().fold(0u16, |acc, &s| acc | live[s]);
            let new = uses[pc] | (out & !defs[pc]) | R10_BIT;
            if new != live[pc] {
                live[pc] = new;
                changed = true;
            }
        }
        if !changed {
            return live;
        }
    }
}
