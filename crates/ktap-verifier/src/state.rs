//! The path walk's abstract state: registers (not initialized, scalar, or one of the pointer
//! types), the stack of each frame byte by byte with spilled registers, and the comparison
//! that lets a path stop where a state already proven safe covers it.

use crate::scalar::Scalar;
use ktap_bpf::MapDef;
use std::fmt::Write as _;

/// What a pointer points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PtrKind {
    /// The program's context (`r1` at entry).
    Ctx,
    /// The stack of call frame `frame` (0 is the program's own).
    Stack { frame: u8 },
    /// A map itself, as `ld_imm64` loads it: only helpers take it.
    Map { map: u32 },
    /// A value inside map `map`.
    MapValue { map: u32 },
    /// A lookup's result before its null test; registers with the same `id` hold the same
    /// result, so one test settles them all.
    MapValueOrNull { map: u32, id: u32 },
    /// A per-CPU kernel variable, as `ld_imm64` loads it by BTF id: only helpers take it.
    Ksym { btf_id: u32 },
    /// Kernel memory that may be read, not written: one CPU's copy of a per-CPU variable.
    RdonlyMem,
}

/// A pointer: fixed offset `off` plus a variable part `var`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ptr {
    pub kind: PtrKind,
    pub off: i32,
    pub var: Scalar,
}

impl Ptr {
    pub fn new(kind: PtrKind) -> Ptr {
        Ptr {
            kind,
            off: 0,
            var: Scalar::known(0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reg {
    Uninit,
    Scalar(Scalar),
    Ptr(Ptr),
}

impl Reg {
    /// The kernel's name for the register's type, as in `R1 invalid mem access 'scalar'`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Reg::Uninit => "?",
            Reg::Scalar(_) => "scalar",
            Reg::Ptr(p) => match p.kind {
                PtrKind::Ctx => "ctx",
                PtrKind::Stack { .. } => "fp",
                PtrKind::Map { .. } => "map_ptr",
                PtrKind::MapValue { .. } => "map_value",
                PtrKind::MapValueOrNull { .. } => "map_value_or_null",
                PtrKind::Ksym { .. } => "percpu_ptr_",
                PtrKind::RdonlyMem => "rdonly_mem",
            },
        }
    }
}

/// What one stack byte holds when it is not part of a spilled register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Byte {
    /// Never written: reading it is an error.
    Invalid,
    /// Written with some data.
    Misc,
    /// Written with zero.
    Zero,
}

/// Eight bytes of stack at an 8-byte aligned offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    Bytes([Byte; 8]),
    /// A whole register stored with one aligned 8-byte store; a load of all 8 bytes gives it
    /// back, pointer or scalar, with everything known about it.
    Spill(Reg),
}

pub const INVALID_SLOT: Slot = Slot::Bytes([Byte::Invalid; 8]);

/// One function's activation: its registers and its stack, grown as it is used. Slot `i`
/// holds bytes `-8(i+1)` to `-8i-1` below the frame pointer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub regs: [Reg; 11],
    pub stack: Vec<Slot>,
    /// The call instruction in the caller that made this frame (unused for the first frame).
    pub callsite: usize,
    /// The function this frame runs.
    pub func: usize,
}

impl Frame {
    pub fn new(index: u8, callsite: usize, func: usize) -> Frame {
        let mut regs = [Reg::Uninit; 11];
        regs[10] = Reg::Ptr(Ptr::new(PtrKind::Stack { frame: index }));
        Frame {
            regs,
            stack: Vec::new(),
            callsite,
            func,
        }
    }

    pub fn slot(&self, i: usize) -> &Slot {
        self.stack.get(i).unwrap_or(&INVALID_SLOT)
    }

    /// The slot for writing, growing the stack to reach it.
    pub fn slot_mut(&mut self, i: usize) -> &mut Slot {
        if self.stack.len() <= i {
            self.stack.resize(i + 1, INVALID_SLOT);
        }
        &mut self.stack[i]
    }
}

/// The whole state of one path: the frames of the calls in progress, innermost last.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub frames: Vec<Frame>,
}

impl State {
    /// The state at the program's entry: `r1` is the context, `r10` the frame pointer.
    pub fn entry() -> State {
        let mut f = Frame::new(0, 0, 0);
        f.regs[1] = Reg::Ptr(Ptr::new(PtrKind::Ctx));
        State { frames: vec![f] }
    }

    pub fn cur(&self) -> &Frame {
        &self.frames[self.frames.len() - 1]
    }

    pub fn cur_mut(&mut self) -> &mut Frame {
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    /// Every register and spilled register of every frame, for a null test that settles all
    /// the copies of one lookup result.
    pub fn each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for frame in &mut self.frames {
            for r in &mut frame.regs {
                f(r);
            }
            for s in &mut frame.stack {
                if let Slot::Spill(r) = s {
                    f(r);
                }
            }
        }
    }

    /// The registers of the innermost frame in the kernel's style, for error messages:
    /// `R1=ctx R2=fp-8 R10=fp0`.
    pub fn describe(&self, maps: &[MapDef]) -> String {
        let mut s = String::new();
        for (i, r) in self.cur().regs.iter().enumerate() {
            if matches!(r, Reg::Uninit) {
                continue;
            }
            if !s.is_empty() {
                s.push(' ');
            }
            let _ = write!(s, "R{i}={}", describe_reg(r, maps));
        }
        s
    }
}

fn describe_reg(r: &Reg, maps: &[MapDef]) -> String {
    match r {
        Reg::Uninit => "?".into(),
        Reg::Scalar(x) => x.to_string(),
        Reg::Ptr(p) => {
            let var = if p.var.value() == Some(0) {
                String::new()
            } else {
                format!(",var={}", p.var)
            };
            let map = |m: u32| {
                maps.get(m as usize)
                    .map(|d| format!(",map={},ks={},vs={}", d.name, d.key_size, d.value_size))
                    .unwrap_or_default()
            };
            match p.kind {
                PtrKind::Ctx if var.is_empty() && p.off == 0 => "ctx".into(),
                PtrKind::Stack { .. } if var.is_empty() => format!("fp{}", p.off),
                PtrKind::Map { map: m } => {
                    format!("map_ptr({})", map(m).trim_start_matches(','))
                }
                PtrKind::MapValue { map: m } => {
                    format!("map_value(off={}{}{var})", p.off, map(m))
                }
                PtrKind::MapValueOrNull { map: m, id } => {
                    format!("map_value_or_null(id={id}{})", map(m))
                }
                _ => format!("{}(off={}{var})", Reg::Ptr(*p).type_name(), p.off),
            }
        }
    }
}

/// Pairs of lookup ids found to correspond while comparing two states; the pairing must be
/// one to one, or a null test could settle registers differently in the two.
#[derive(Default)]
struct IdMap(Vec<(u32, u32)>);

impl IdMap {
    fn pair(&mut self, old: u32, cur: u32) -> bool {
        for &(o, c) in &self.0 {
            if o == old || c == cur {
                return o == old && c == cur;
            }
        }
        self.0.push((old, cur));
        true
    }
}

/// True when every concrete state `cur` describes, `old` describes too, as far as the live
/// registers and the stack go. `live[i]` is the set of registers of frame `i` that may still
/// be read. A path in `cur` can then stop: the one from `old` was proven safe.
pub fn covers(old: &State, cur: &State, live: &[u16]) -> bool {
    if old.frames.len() != cur.frames.len() {
        return false;
    }
    let mut ids = IdMap::default();
    for (i, (o, c)) in old.frames.iter().zip(&cur.frames).enumerate() {
        if o.callsite != c.callsite || o.func != c.func {
            return false;
        }
        let mask = live.get(i).copied().unwrap_or(u16::MAX);
        for r in 0..11 {
            if mask >> r & 1 == 1 && !reg_covers(&o.regs[r], &c.regs[r], &mut ids) {
                return false;
            }
        }
        let slots = o.stack.len().max(c.stack.len());
        for s in 0..slots {
            if !slot_covers(o.slot(s), c.slot(s), &mut ids) {
                return false;
            }
        }
    }
    true
}

fn reg_covers(old: &Reg, cur: &Reg, ids: &mut IdMap) -> bool {
    match (old, cur) {
        // A register the old path never read, or it would have failed there.
        (Reg::Uninit, _) => true,
        (Reg::Scalar(o), Reg::Scalar(c)) => o.contains(c),
        (Reg::Ptr(o), Reg::Ptr(c)) => {
            let kinds = match (o.kind, c.kind) {
                (
                    PtrKind::MapValueOrNull { map: a, id: x },
                    PtrKind::MapValueOrNull { map: b, id: y },
                ) => a == b && ids.pair(x, y),
                (a, b) => a == b,
            };
            kinds && o.off == c.off && o.var.contains(&c.var)
        }
        _ => false,
    }
}

fn slot_covers(old: &Slot, cur: &Slot, ids: &mut IdMap) -> bool {
    match (old, cur) {
        (Slot::Spill(o), Slot::Spill(c)) => reg_covers(o, c, ids),
        (Slot::Spill(_), Slot::Bytes(_)) => false,
        (Slot::Bytes(o), _) => (0..8).all(|b| match o[b] {
            Byte::Invalid => true,
            Byte::Misc => match cur {
                Slot::Bytes(c) => c[b] != Byte::Invalid,
                Slot::Spill(r) => matches!(r, Reg::Scalar(_)),
            },
            Byte::Zero => matches!(cur, Slot::Bytes(c) if c[b] == Byte::Zero),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wider_states_cover_narrower_ones() {
        let mut old = State::entry();
        let mut cur = State::entry();
        old.cur_mut().regs[2] = Reg::Scalar(Scalar::unknown_bytes(1));
        cur.cur_mut().regs[2] = Reg::Scalar(Scalar::known(7));
        assert!(covers(&old, &cur, &[u16::MAX]));
        assert!(!covers(&cur, &old, &[u16::MAX]));
        // A dead register does not matter.
        assert!(covers(&cur, &old, &[!(1 << 2)]));
        // Initialised stack covers nothing the old path could not read.
        *cur.cur_mut().slot_mut(0) = Slot::Bytes([Byte::Misc; 8]);
        assert!(covers(&old, &cur, &[u16::MAX]));
        assert!(!covers(&cur, &old, &[!(1 << 2)]));
    }

    #[test]
    fn lookup_ids_pair_one_to_one() {
        let or_null = |id| Reg::Ptr(Ptr::new(PtrKind::MapValueOrNull { map: 0, id }));
        let mut old = State::entry();
        let mut cur = State::entry();
        old.cur_mut().regs[6] = or_null(1);
        old.cur_mut().regs[7] = or_null(1);
        cur.cur_mut().regs[6] = or_null(5);
        cur.cur_mut().regs[7] = or_null(6);
        assert!(!covers(&old, &cur, &[u16::MAX]));
        cur.cur_mut().regs[7] = or_null(5);
        assert!(covers(&old, &cur, &[u16::MAX]));
        assert_eq!(
            cur.describe(&[]),
            "R1=ctx R6=map_value_or_null(id=5) R7=map_value_or_null(id=5) R10=fp0"
        );
    }
}
