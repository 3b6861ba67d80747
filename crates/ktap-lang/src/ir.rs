//! The intermediate representation between lowering and emission: eBPF-shaped instructions
//! over unlimited virtual registers and symbolic labels. Register allocation maps the virtual
//! registers onto r0-r9 (spilling to the stack), and emission resolves labels to jump offsets.

use ktap_bpf::Span;

/// A virtual register.
pub type VReg = u32;
/// A jump target.
pub type Label = u32;

/// A value operand: a virtual register or a 32-bit immediate (sign-extended to 64 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opnd {
    V(VReg),
    Imm(i32),
}

/// The base of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// A pointer held in a virtual register.
    V(VReg),
    /// The frame pointer `r10`; offsets are negative.
    Fp,
}

/// Where a helper call argument comes from. Immediates, map references and stack addresses
/// are materialised straight into the argument register, so they need no virtual register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    V(VReg),
    Imm(i64),
    /// A map reference (`ld_imm64` with `BPF_PSEUDO_MAP_FD`), by index into the program's maps.
    Map(u32),
    /// A kernel variable (`ld_imm64` with `BPF_PSEUDO_BTF_ID`), by its vmlinux BTF id.
    Ksym(u32),
    /// `r10 + off`, the address of a stack buffer.
    Fp(i16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inst {
    /// `dst = r1` at program entry: the context pointer. Must be the first instruction if present.
    EntryCtx { dst: VReg },
    /// `dst = src`.
    Mov { dst: VReg, src: Opnd },
    /// `dst = imm` for any 64-bit constant (`ld_imm64` when it does not fit in 32 bits).
    Const { dst: VReg, imm: i64 },
    /// `dst = map` (a map reference for helpers or for storing).
    LdMap { dst: VReg, map: u32 },
    /// `dst = r10 + off`.
    FpAddr { dst: VReg, off: i16 },
    /// `dst op= src`, with `op` one of `ktap_bpf::insn::BPF_ADD ..= BPF_ARSH` (not `BPF_MOV`,
    /// not `BPF_END`); `BPF_NEG` ignores `src`. `w32` selects the 32-bit ALU.
    Alu {
        op: u8,
        dst: VReg,
        src: Opnd,
        w32: bool,
    },
    /// `dst = *(size *)(base + off)`, `size` one of `BPF_B BPF_H BPF_W BPF_DW`.
    Load {
        size: u8,
        dst: VReg,
        base: Base,
        off: i16,
    },
    /// `*(size *)(base + off) = src` (an immediate gives `BPF_ST`).
    Store {
        size: u8,
        base: Base,
        off: i16,
        src: Opnd,
    },
    /// `lock *(u64 *)(base + off) += src`.
    AtomicAdd { base: VReg, off: i16, src: VReg },
    /// `call helper`: `args` go to r1..r5, the result (r0) to `dst`. Clobbers r0-r5.
    Call {
        helper: i32,
        args: Vec<Arg>,
        dst: Option<VReg>,
    },
    /// `if a op b goto target`, `op` one of the `BPF_J*` conditions (64-bit compare).
    Jmp {
        op: u8,
        a: VReg,
        b: Opnd,
        target: Label,
    },
    /// `goto target`.
    Ja { target: Label },
    /// A jump target.
    Label(Label),
    /// `r0 = code; exit`.
    Exit { code: Opnd },
}

/// One function of IR with the source span of each instruction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IrFunc {
    pub insts: Vec<(Inst, Span)>,
    /// Number of virtual registers used (all are `< nregs`).
    pub nregs: u32,
    /// Number of labels used (all are `< nlabels`).
    pub nlabels: u32,
    /// Bytes of stack the lowering itself uses below r10 (its buffers); spill slots go below.
    pub frame: u32,
}

impl IrFunc {
    pub fn new_reg(&mut self) -> VReg {
        self.nregs += 1;
        self.nregs - 1
    }
    pub fn new_label(&mut self) -> Label {
        self.nlabels += 1;
        self.nlabels - 1
    }
    pub fn push(&mut self, inst: Inst, span: Span) {
        self.insts.push((inst, span));
    }
}

impl Inst {
    /// The virtual registers this instruction reads.
    pub fn uses(&self) -> Vec<VReg> {
        let opnd = |o: &Opnd| match o {
            Opnd::V(v) => Some(*v),
            Opnd::Imm(_) => None,
        };
        let base = |b: &Base| match b {
            Base::V(v) => Some(*v),
            Base::Fp => None,
        };
        match self {
            Inst::EntryCtx { .. }
            | Inst::Const { .. }
            | Inst::LdMap { .. }
            | Inst::FpAddr { .. }
            | Inst::Ja { .. }
            | Inst::Label(_) => vec![],
            Inst::Mov { src, .. } => opnd(src).into_iter().collect(),
            Inst::Alu { op, dst, src, .. } => {
                let mut v = vec![*dst];
                if *op != ktap_bpf::insn::BPF_NEG {
                    v.extend(opnd(src));
                }
                v
            }
            Inst::Load { base: b, .. } => base(b).into_iter().collect(),
            Inst::Store { base: b, src, .. } => base(b).into_iter().chain(opnd(src)).collect(),
            Inst::AtomicAdd { base, src, .. } => vec![*base, *src],
            Inst::Call { args, .. } => args
                .iter()
                .filter_map(|a| match a {
                    Arg::V(v) => Some(*v),
                    _ => None,
                })
                .collect(),
            Inst::Jmp { a, b, .. } => std::iter::once(*a).chain(opnd(b)).collect(),
            Inst::Exit { code } => opnd(code).into_iter().collect(),
        }
    }

    /// The virtual register this instruction writes, if any.
    pub fn def(&self) -> Option<VReg> {
        match self {
            Inst::EntryCtx { dst }
            | Inst::Mov { dst, .. }
            | Inst::Const { dst, .. }
            | Inst::LdMap { dst, .. }
            | Inst::FpAddr { dst, .. }
            | Inst::Alu { dst, .. }
            | Inst::Load { dst, .. } => Some(*dst),
            Inst::Call { dst, .. } => *dst,
            _ => None,
        }
    }
}
