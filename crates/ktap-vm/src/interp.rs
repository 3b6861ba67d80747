//! The interpreter: the fetch-execute loop over the instruction classes, the semantics of every
//! ALU, jump, load, store and atomic instruction, bpf-to-bpf calls and the instruction budget.

use crate::host::Host;
use crate::mem::{self, AccessError, Kind, Memory, MAX_FRAMES, STACK};
use crate::{Fault, RunEnv};
use ktap_bpf::insn::*;
use ktap_bpf::{Endian, MapKind};

// Encodings of newer kernels that the compiler never emits but programs from elsewhere (and the
// conformance tests) use; the values are the kernel's uapi.

/// `src` of an `ld_imm64` that yields a pointer `imm2` bytes into element 0 of map `imm`
/// (direct value access, how the kernel exposes `.data` and `.rodata`).
const BPF_PSEUDO_MAP_VALUE: u8 = 2;
/// Atomic `imm` of load-acquire (`dst = *(src + off)`) and store-release (`*(dst + off) = src`).
const BPF_LOAD_ACQ: i32 = 0x100;
const BPF_STORE_REL: i32 = 0x110;
/// Jump operation of `may_goto` (with `src == 0`): taken once the loop allowance is spent.
const BPF_JCOND: u8 = 0xe0;
/// The kernel's `BPF_MAX_LOOPS`: how many times `may_goto` falls through before it jumps.
const MAY_GOTO_ALLOWANCE: u64 = 8 * 1024 * 1024;

/// What an access was for, which picks the words of a stack bounds message.
#[derive(Clone, Copy)]
pub(crate) enum Access {
    Read,
    Write,
    /// Memory a helper reads or writes through an argument.
    Indirect,
}

/// The message for a failed access through register `reg`, in the kernel verifier's words.
#[cold]
pub(crate) fn access_message(e: AccessError, reg: usize, how: Access) -> String {
    match e {
        AccessError::Scalar(0) => format!("R{reg} invalid mem access 'null'"),
        AccessError::Scalar(_) => format!("R{reg} invalid mem access 'scalar'"),
        AccessError::MapRef => format!("R{reg} invalid mem access 'map_ptr'"),
        AccessError::DeadFrame => {
            format!("R{reg} invalid mem access: the stack of a function that has returned")
        }
        AccessError::Stack { off, size } => {
            let what = match how {
                Access::Read => "read from",
                Access::Write => "write to",
                Access::Indirect => "indirect access to",
            };
            format!("invalid {what} stack R{reg} off={off} size={size}")
        }
        AccessError::Value { off, size, len } => {
            format!("invalid access to map value, value_size={len} off={off} size={size}")
        }
        AccessError::Ctx { off, size } => {
            format!("invalid bpf_context access off={off} size={size}")
        }
        AccessError::ReadOnlyValue { off, size, len } => {
            format!("write into map forbidden, value_size={len} off={off} size={size}")
        }
        AccessError::ReadOnly { off, size } => {
            format!("invalid bpf_context access off={off} size={size}: the context is read-only")
        }
        AccessError::Rdonly { off, size } => match how {
            Access::Read => format!(
                "invalid access to memory, mem_size={} off={off} size={size}",
                crate::mem::KERNEL_MEM
            ),
            Access::Write | Access::Indirect => format!("R{reg} cannot write into rdonly_mem"),
        },
    }
}

/// The caller's state a bpf-to-bpf call saves: where to return and the callee-saved registers.
#[derive(Clone, Copy, Default)]
struct Frame {
    ret: usize,
    saved: [u64; 4],
}

/// One run's machine state.
pub(crate) struct Vm<'a, 'c> {
    insns: &'a [Insn],
    pub(crate) env: &'a RunEnv<'a>,
    pub(crate) host: &'a mut dyn Host,
    pub(crate) mem: Memory<'c>,
    pub(crate) regs: [u64; 11],
    /// `calls[i]` is what frame `i` saved when it called frame `i + 1`; the entry frame has no
    /// caller, so one entry fewer than the frames can ever be needed.
    calls: heapless::Vec<Frame, { MAX_FRAMES - 1 }>,
    /// `may_goto`s left before one jumps.
    may_goto: u64,
    /// Scratch buffers helpers copy keys and values into, reused across calls.
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// The number of bytes a load or store of `code` moves.
#[inline]
fn size_of(code: u8) -> u64 {
    match code & 0x18 {
        BPF_W => 4,
        BPF_H => 2,
        BPF_B => 1,
        _ => 8,
    }
}

/// Sign-extends the low `bytes` bytes of `v`.
#[inline]
fn sign_extend(v: u64, bytes: u64) -> u64 {
    match bytes {
        1 => v as i8 as i64 as u64,
        2 => v as i16 as i64 as u64,
        4 => v as i32 as i64 as u64,
        _ => v,
    }
}

/// A 64-bit ALU operation, or `None` for an encoding that does not exist.
#[inline]
fn alu64(insn: Insn, dst: u64, src: u64) -> Option<u64> {
    let reg = insn.code & BPF_X != 0;
    Some(match insn.code & 0xf0 {
        BPF_ADD => dst.wrapping_add(src),
        BPF_SUB => dst.wrapping_sub(src),
        BPF_MUL => dst.wrapping_mul(src),
        // Division by zero yields 0 and modulo by zero leaves dst alone, as in the kernel;
        // `wrapping_*` gives LLONG_MIN / -1 = LLONG_MIN and LLONG_MIN % -1 = 0 as it does.
        BPF_DIV => match (insn.off, src) {
            (0 | 1, 0) => 0,
            (0, _) => dst / src,
            (1, _) => (dst as i64).wrapping_div(src as i64) as u64,
            _ => return None,
        },
        BPF_MOD => match (insn.off, src) {
            (0 | 1, 0) => dst,
            (0, _) => dst % src,
            (1, _) => (dst as i64).wrapping_rem(src as i64) as u64,
            _ => return None,
        },
        BPF_OR => dst | src,
        BPF_AND => dst & src,
        BPF_XOR => dst ^ src,
        BPF_LSH => dst << (src & 63),
        BPF_RSH => dst >> (src & 63),
        BPF_ARSH => ((dst as i64) >> (src & 63)) as u64,
        BPF_NEG if !reg => dst.wrapping_neg(),
        BPF_MOV => match (insn.off, reg) {
            (0, _) => src,
            (8 | 16 | 32, true) => sign_extend(src, insn.off as u64 / 8),
            _ => return None,
        },
        // The ALU64 form of END swaps unconditionally, whatever the target's byte order.
        BPF_END if !reg => swap(dst, insn.imm)?,
        _ => return None,
    })
}

/// A 32-bit ALU operation on the low halves, or `None` for an encoding that does not exist. The
/// caller zero-extends the result.
#[inline]
fn alu32(insn: Insn, dst: u32, src: u32) -> Option<u32> {
    let reg = insn.code & BPF_X != 0;
    Some(match insn.code & 0xf0 {
        BPF_ADD => dst.wrapping_add(src),
        BPF_SUB => dst.wrapping_sub(src),
        BPF_MUL => dst.wrapping_mul(src),
        BPF_DIV => match (insn.off, src) {
            (0 | 1, 0) => 0,
            (0, _) => dst / src,
            (1, _) => (dst as i32).wrapping_div(src as i32) as u32,
            _ => return None,
        },
        BPF_MOD => match (insn.off, src) {
            (0 | 1, 0) => dst,
            (0, _) => dst % src,
            (1, _) => (dst as i32).wrapping_rem(src as i32) as u32,
            _ => return None,
        },
        BPF_OR => dst | src,
        BPF_AND => dst & src,
        BPF_XOR => dst ^ src,
        BPF_LSH => dst << (src & 31),
        BPF_RSH => dst >> (src & 31),
        BPF_ARSH => ((dst as i32) >> (src & 31)) as u32,
        BPF_NEG if !reg => dst.wrapping_neg(),
        BPF_MOV => match (insn.off, reg) {
            (0, _) => src,
            (8, true) => src as i8 as i32 as u32,
            (16, true) => src as i16 as i32 as u32,
            _ => return None,
        },
        _ => return None,
    })
}

/// The low `bits` of `v` byte-swapped, zero-extended; `None` for a width that does not exist.
#[inline]
fn swap(v: u64, bits: i32) -> Option<u64> {
    Some(match bits {
        16 => u64::from((v as u16).swap_bytes()),
        32 => u64::from((v as u32).swap_bytes()),
        64 => v.swap_bytes(),
        _ => return None,
    })
}

/// The low `bits` of `v`, zero-extended.
#[inline]
fn truncate(v: u64, bits: i32) -> Option<u64> {
    Some(match bits {
        16 => u64::from(v as u16),
        32 => u64::from(v as u32),
        64 => v,
        _ => return None,
    })
}

/// `BPF_ALU | BPF_END`: converts to little (`BPF_TO_LE`) or big (`BPF_TO_BE`) endian from the
/// byte order of the target, which is a swap when the two differ and a truncation otherwise.
#[inline]
fn end(insn: Insn, dst: u64, endian: Endian) -> Option<u64> {
    let want_big = insn.code & BPF_TO_BE != 0;
    if want_big == (endian == Endian::Big) {
        truncate(dst, insn.imm)
    } else {
        swap(dst, insn.imm)
    }
}

/// Whether a conditional jump of operation `op` is taken, or `None` for one that does not exist.
/// JMP32 passes both operands sign-extended from 32 bits, which keeps every comparison's outcome,
/// signed or unsigned, the same as on the 32-bit values.
#[inline]
fn taken(op: u8, a: u64, b: u64) -> Option<bool> {
    let (sa, sb) = (a as i64, b as i64);
    Some(match op {
        BPF_JEQ => a == b,
        BPF_JNE => a != b,
        BPF_JGT => a > b,
        BPF_JGE => a >= b,
        BPF_JLT => a < b,
        BPF_JLE => a <= b,
        BPF_JSET => a & b != 0,
        BPF_JSGT => sa > sb,
        BPF_JSGE => sa >= sb,
        BPF_JSLT => sa < sb,
        BPF_JSLE => sa <= sb,
        _ => return None,
    })
}

#[inline]
fn sext32(v: u64) -> u64 {
    v as i32 as i64 as u64
}

#[cold]
fn unknown(pc: usize, insn: Insn) -> Fault {
    Fault::new(pc, format!("unknown opcode {:#04x}", insn.code))
}

#[cold]
fn read_only(pc: usize) -> Fault {
    Fault::new(pc, "frame pointer is read only")
}

/// The `r10` of frame `depth`: the end of its stack.
fn frame_pointer(depth: usize) -> u64 {
    mem::pointer(Kind::Stack, depth as u32, STACK as i64)
}

impl<'a, 'c> Vm<'a, 'c> {
    pub(crate) fn new(
        insns: &'a [Insn],
        ctx: &'c mut [u8],
        env: &'a RunEnv<'a>,
        host: &'a mut dyn Host,
    ) -> Vm<'a, 'c> {
        let mut regs = [0; 11];
        regs[1] = mem::pointer(Kind::Ctx, 0, 0);
        regs[10] = frame_pointer(0);
        Vm {
            insns,
            env,
            host,
            mem: Memory::new(ctx, env.ctx_writable),
            regs,
            calls: heapless::Vec::new(),
            may_goto: MAY_GOTO_ALLOWANCE,
            key: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Runs to the final `exit` or a fault, then writes changed map values back.
    pub(crate) fn run(mut self) -> Result<u64, Fault> {
        let result = self.execute();
        self.mem.flush(&mut *self.host);
        result
    }

    /// The index `pc + 1 + delta`, if it is an instruction of the function.
    #[inline]
    fn target(&self, pc: usize, delta: i64) -> Result<usize, Fault> {
        let t = pc as i64 + 1 + delta;
        if t < 0 || t >= self.insns.len() as i64 {
            return Err(Fault::new(
                pc,
                format!("jump out of range from insn {pc} to {t}"),
            ));
        }
        Ok(t as usize)
    }

    fn execute(&mut self) -> Result<u64, Fault> {
        let insns = self.insns;
        let endian = self.env.endian;
        let mut left = self.env.budget;
        let mut pc = 0;
        loop {
            let Some(&insn) = insns.get(pc) else {
                return Err(if pc == 0 {
                    Fault::new(0, "the program is empty")
                } else {
                    Fault::new(pc - 1, "last insn is not an exit or jmp")
                });
            };
            if left == 0 {
                return Err(Fault::new(
                    pc,
                    format!(
                        "instruction budget of {} exhausted (an endless loop?)",
                        self.env.budget
                    ),
                ));
            }
            left -= 1;
            let (d, s) = (insn.dst as usize, insn.src as usize);
            if d > 10 || s > 10 {
                return Err(Fault::new(pc, format!("R{} is invalid", d.max(s))));
            }
            if let Some(next) = self.fast(pc, insn, d, s, endian) {
                pc = next;
                continue;
            }
            let reg = insn.code & BPF_X != 0;
            match insn.class() {
                BPF_ALU64 => {
                    if d == 10 {
                        return Err(read_only(pc));
                    }
                    let src = if reg {
                        self.regs[s]
                    } else {
                        insn.imm as i64 as u64
                    };
                    self.regs[d] =
                        alu64(insn, self.regs[d], src).ok_or_else(|| unknown(pc, insn))?;
                    pc += 1;
                }
                BPF_ALU => {
                    if d == 10 {
                        return Err(read_only(pc));
                    }
                    let v = if insn.code & 0xf0 == BPF_END {
                        end(insn, self.regs[d], endian)
                    } else {
                        let src = if reg {
                            self.regs[s] as u32
                        } else {
                            insn.imm as u32
                        };
                        alu32(insn, self.regs[d] as u32, src).map(u64::from)
                    };
                    self.regs[d] = v.ok_or_else(|| unknown(pc, insn))?;
                    pc += 1;
                }
                class @ (BPF_JMP | BPF_JMP32) => {
                    let wide = class == BPF_JMP;
                    match insn.code & 0xf0 {
                        BPF_JA if !reg => {
                            // `gotol` (JMP32) carries its 32-bit offset in imm.
                            let delta = if wide {
                                insn.off as i64
                            } else {
                                insn.imm as i64
                            };
                            pc = self.target(pc, delta)?;
                        }
                        BPF_CALL if wide && !reg => pc = self.call(pc, insn)?,
                        BPF_EXIT if wide && !reg => match self.ret() {
                            Some(next) => pc = next,
                            None => return Ok(self.regs[0]),
                        },
                        BPF_JCOND if wide && !reg && s == 0 => {
                            let t = self.target(pc, insn.off as i64)?;
                            self.may_goto = self.may_goto.saturating_sub(1);
                            pc = if self.may_goto == 0 { t } else { pc + 1 };
                        }
                        op => {
                            let (mut a, mut b) = (self.regs[d], self.regs[s]);
                            if !reg {
                                b = insn.imm as i64 as u64;
                            }
                            if !wide {
                                (a, b) = (sext32(a), sext32(b));
                            }
                            let jump = taken(op, a, b).ok_or_else(|| unknown(pc, insn))?;
                            let t = self.target(pc, insn.off as i64)?;
                            pc = if jump { t } else { pc + 1 };
                        }
                    }
                }
                BPF_LDX => {
                    if d == 10 {
                        return Err(read_only(pc));
                    }
                    let size = size_of(insn.code);
                    let signed = match insn.code & 0xe0 {
                        BPF_MEM => false,
                        BPF_MEMSX if size != 8 => true,
                        _ => return Err(unknown(pc, insn)),
                    };
                    let addr = self.regs[s].wrapping_add(insn.off as i64 as u64);
                    let v = self
                        .mem
                        .load(addr, size, endian)
                        .map_err(|e| Fault::new(pc, access_message(e, s, Access::Read)))?;
                    self.regs[d] = if signed { sign_extend(v, size) } else { v };
                    pc += 1;
                }
                BPF_ST | BPF_STX => {
                    let size = size_of(insn.code);
                    let addr = self.regs[d].wrapping_add(insn.off as i64 as u64);
                    match (insn.code & 0xe0, insn.class()) {
                        (BPF_MEM, BPF_ST) => {
                            self.store(pc, d, addr, size, insn.imm as i64 as u64)?
                        }
                        (BPF_MEM, _) => self.store(pc, d, addr, size, self.regs[s])?,
                        (BPF_ATOMIC, BPF_STX) if insn.imm == BPF_LOAD_ACQ => {
                            if d == 10 {
                                return Err(read_only(pc));
                            }
                            // The load reads through src; `addr` was computed from dst.
                            let from = self.regs[s].wrapping_add(insn.off as i64 as u64);
                            self.regs[d] = self
                                .mem
                                .load(from, size, self.env.endian)
                                .map_err(|e| Fault::new(pc, access_message(e, s, Access::Read)))?;
                        }
                        (BPF_ATOMIC, BPF_STX) if insn.imm == BPF_STORE_REL => {
                            self.store(pc, d, addr, size, self.regs[s])?
                        }
                        (BPF_ATOMIC, BPF_STX) if size >= 4 => self.atomic(pc, insn, addr, size)?,
                        _ => return Err(unknown(pc, insn)),
                    }
                    pc += 1;
                }
                _ if insn.is_ld_imm64() => {
                    if d == 10 {
                        return Err(read_only(pc));
                    }
                    self.regs[d] = self.ld_imm64(pc, insn)?;
                    pc += 2;
                }
                _ => return Err(unknown(pc, insn)),
            }
        }
    }

    /// The operations probes execute most, each its own entry of one jump table on the opcode
    /// byte: the next instruction's index, or `None` to take the general path, which handles
    /// everything else and reports every fault (a failed fast access has changed nothing).
    #[inline(always)]
    fn fast(&mut self, pc: usize, insn: Insn, d: usize, s: usize, endian: Endian) -> Option<usize> {
        let imm = insn.imm as i64 as u64;
        let src = self.regs[s];
        let dst = self.regs[d];
        let off = insn.off as i64;
        // The destination of an ALU operation or load; r10 is left to the general path.
        macro_rules! set {
            ($v:expr) => {{
                if d == 10 {
                    return None;
                }
                self.regs[d] = $v;
                Some(pc + 1)
            }};
        }
        macro_rules! jump {
            ($cond:expr) => {{
                let t = pc as i64 + 1 + off;
                if t < 0 || t >= self.insns.len() as i64 {
                    return None;
                }
                Some(if $cond { t as usize } else { pc + 1 })
            }};
        }
        macro_rules! load {
            ($size:expr) => {{
                let addr = src.wrapping_add(off as u64);
                match self.mem.load(addr, $size, endian) {
                    Ok(v) => set!(v),
                    Err(_) => None,
                }
            }};
        }
        macro_rules! store {
            ($size:expr, $v:expr) => {{
                let addr = dst.wrapping_add(off as u64);
                match self.mem.store(addr, $size, $v, endian) {
                    Ok(()) => Some(pc + 1),
                    Err(_) => None,
                }
            }};
        }
        const ALU64_K: u8 = BPF_ALU64 | BPF_K;
        const ALU64_X: u8 = BPF_ALU64 | BPF_X;
        const ALU_K: u8 = BPF_ALU | BPF_K;
        const ALU_X: u8 = BPF_ALU | BPF_X;
        const JMP_K: u8 = BPF_JMP | BPF_K;
        const JMP_X: u8 = BPF_JMP | BPF_X;
        const LDX: u8 = BPF_LDX | BPF_MEM;
        const STX: u8 = BPF_STX | BPF_MEM;
        const ST: u8 = BPF_ST | BPF_MEM;
        // Named opcodes, so the match below is one jump table.
        const ALU64_K_ADD: u8 = ALU64_K | BPF_ADD;
        const ALU64_X_ADD: u8 = ALU64_X | BPF_ADD;
        const ALU64_K_SUB: u8 = ALU64_K | BPF_SUB;
        const ALU64_X_SUB: u8 = ALU64_X | BPF_SUB;
        const ALU64_K_MUL: u8 = ALU64_K | BPF_MUL;
        const ALU64_X_MUL: u8 = ALU64_X | BPF_MUL;
        const ALU64_K_OR: u8 = ALU64_K | BPF_OR;
        const ALU64_X_OR: u8 = ALU64_X | BPF_OR;
        const ALU64_K_AND: u8 = ALU64_K | BPF_AND;
        const ALU64_X_AND: u8 = ALU64_X | BPF_AND;
        const ALU64_K_XOR: u8 = ALU64_K | BPF_XOR;
        const ALU64_X_XOR: u8 = ALU64_X | BPF_XOR;
        const ALU64_K_LSH: u8 = ALU64_K | BPF_LSH;
        const ALU64_X_LSH: u8 = ALU64_X | BPF_LSH;
        const ALU64_K_RSH: u8 = ALU64_K | BPF_RSH;
        const ALU64_X_RSH: u8 = ALU64_X | BPF_RSH;
        const ALU64_K_ARSH: u8 = ALU64_K | BPF_ARSH;
        const ALU64_X_ARSH: u8 = ALU64_X | BPF_ARSH;
        const ALU64_K_MOV: u8 = ALU64_K | BPF_MOV;
        const ALU64_X_MOV: u8 = ALU64_X | BPF_MOV;
        const ALU_K_ADD: u8 = ALU_K | BPF_ADD;
        const ALU_X_ADD: u8 = ALU_X | BPF_ADD;
        const ALU_K_MOV: u8 = ALU_K | BPF_MOV;
        const ALU_X_MOV: u8 = ALU_X | BPF_MOV;
        const LDX_DW: u8 = LDX | BPF_DW;
        const LDX_W: u8 = LDX | BPF_W;
        const LDX_H: u8 = LDX | BPF_H;
        const LDX_B: u8 = LDX | BPF_B;
        const STX_DW: u8 = STX | BPF_DW;
        const STX_W: u8 = STX | BPF_W;
        const STX_H: u8 = STX | BPF_H;
        const STX_B: u8 = STX | BPF_B;
        const ST_DW: u8 = ST | BPF_DW;
        const ST_W: u8 = ST | BPF_W;
        const ST_H: u8 = ST | BPF_H;
        const ST_B: u8 = ST | BPF_B;
        const JMP_JA: u8 = BPF_JMP | BPF_JA;
        const JMP_K_JEQ: u8 = JMP_K | BPF_JEQ;
        const JMP_X_JEQ: u8 = JMP_X | BPF_JEQ;
        const JMP_K_JNE: u8 = JMP_K | BPF_JNE;
        const JMP_X_JNE: u8 = JMP_X | BPF_JNE;
        const JMP_K_JGT: u8 = JMP_K | BPF_JGT;
        const JMP_X_JGT: u8 = JMP_X | BPF_JGT;
        const JMP_K_JGE: u8 = JMP_K | BPF_JGE;
        const JMP_X_JGE: u8 = JMP_X | BPF_JGE;
        const JMP_K_JLT: u8 = JMP_K | BPF_JLT;
        const JMP_X_JLT: u8 = JMP_X | BPF_JLT;
        const JMP_K_JLE: u8 = JMP_K | BPF_JLE;
        const JMP_X_JLE: u8 = JMP_X | BPF_JLE;
        const JMP_K_JSET: u8 = JMP_K | BPF_JSET;
        const JMP_X_JSET: u8 = JMP_X | BPF_JSET;
        const JMP_K_JSGT: u8 = JMP_K | BPF_JSGT;
        const JMP_X_JSGT: u8 = JMP_X | BPF_JSGT;
        match insn.code {
            ALU64_K_ADD => set!(dst.wrapping_add(imm)),
            ALU64_X_ADD => set!(dst.wrapping_add(src)),
            ALU64_K_SUB => set!(dst.wrapping_sub(imm)),
            ALU64_X_SUB => set!(dst.wrapping_sub(src)),
            ALU64_K_MUL => set!(dst.wrapping_mul(imm)),
            ALU64_X_MUL => set!(dst.wrapping_mul(src)),
            ALU64_K_OR => set!(dst | imm),
            ALU64_X_OR => set!(dst | src),
            ALU64_K_AND => set!(dst & imm),
            ALU64_X_AND => set!(dst & src),
            ALU64_K_XOR => set!(dst ^ imm),
            ALU64_X_XOR => set!(dst ^ src),
            ALU64_K_LSH => set!(dst << (imm & 63)),
            ALU64_X_LSH => set!(dst << (src & 63)),
            ALU64_K_RSH => set!(dst >> (imm & 63)),
            ALU64_X_RSH => set!(dst >> (src & 63)),
            ALU64_K_ARSH => set!(((dst as i64) >> (imm & 63)) as u64),
            ALU64_X_ARSH => set!(((dst as i64) >> (src & 63)) as u64),
            ALU64_K_MOV => match insn.off {
                0 => set!(imm),
                _ => None,
            },
            ALU64_X_MOV => match insn.off {
                0 => set!(src),
                _ => None,
            },
            ALU_K_ADD => set!(u64::from((dst as u32).wrapping_add(imm as u32))),
            ALU_X_ADD => set!(u64::from((dst as u32).wrapping_add(src as u32))),
            ALU_K_MOV => match insn.off {
                0 => set!(u64::from(imm as u32)),
                _ => None,
            },
            ALU_X_MOV => match insn.off {
                0 => set!(u64::from(src as u32)),
                _ => None,
            },
            LDX_DW => load!(8),
            LDX_W => load!(4),
            LDX_H => load!(2),
            LDX_B => load!(1),
            STX_DW => store!(8, src),
            STX_W => store!(4, src),
            STX_H => store!(2, src),
            STX_B => store!(1, src),
            ST_DW => store!(8, imm),
            ST_W => store!(4, imm),
            ST_H => store!(2, imm),
            ST_B => store!(1, imm),
            JMP_JA => jump!(true),
            JMP_K_JEQ => jump!(dst == imm),
            JMP_X_JEQ => jump!(dst == src),
            JMP_K_JNE => jump!(dst != imm),
            JMP_X_JNE => jump!(dst != src),
            JMP_K_JGT => jump!(dst > imm),
            JMP_X_JGT => jump!(dst > src),
            JMP_K_JGE => jump!(dst >= imm),
            JMP_X_JGE => jump!(dst >= src),
            JMP_K_JLT => jump!(dst < imm),
            JMP_X_JLT => jump!(dst < src),
            JMP_K_JLE => jump!(dst <= imm),
            JMP_X_JLE => jump!(dst <= src),
            JMP_K_JSET => jump!(dst & imm != 0),
            JMP_X_JSET => jump!(dst & src != 0),
            JMP_K_JSGT => jump!((dst as i64) > imm as i64),
            JMP_X_JSGT => jump!((dst as i64) > src as i64),
            _ => None,
        }
    }

    #[inline]
    fn store(&mut self, pc: usize, d: usize, addr: u64, size: u64, v: u64) -> Result<(), Fault> {
        self.mem
            .store(addr, size, v, self.env.endian)
            .map_err(|e| Fault::new(pc, access_message(e, d, Access::Write)))
    }

    /// `lock *(size *)(dst + off) op= src`, with the fetching forms leaving the old value in
    /// `src` (in `r0` for CMPXCHG), zero-extended when 32 bits wide.
    #[inline]
    fn atomic(&mut self, pc: usize, insn: Insn, addr: u64, size: u64) -> Result<(), Fault> {
        let (d, s) = (insn.dst as usize, insn.src as usize);
        const ADD: i32 = BPF_ADD as i32;
        const OR: i32 = BPF_OR as i32;
        const AND: i32 = BPF_AND as i32;
        const XOR: i32 = BPF_XOR as i32;
        let op = insn.imm;
        let base = op & !BPF_FETCH;
        if !matches!(base, ADD | OR | AND | XOR) && op != BPF_XCHG && op != BPF_CMPXCHG {
            return Err(Fault::new(
                pc,
                format!("BPF_ATOMIC uses invalid atomic opcode {op:#04x}"),
            ));
        }
        let fetch = op & BPF_FETCH != 0;
        if fetch && op != BPF_CMPXCHG && s == 10 {
            return Err(read_only(pc));
        }
        let endian = self.env.endian;
        let mask = if size == 4 {
            u64::from(u32::MAX)
        } else {
            u64::MAX
        };
        let (src, expected) = (self.regs[s], self.regs[0] & mask);
        let cell = self
            .mem
            .write(addr, size)
            .map_err(|e| Fault::new(pc, access_message(e, d, Access::Write)))?;
        let old = mem::get(cell, endian);
        let new = match op {
            BPF_XCHG => src,
            BPF_CMPXCHG if old == expected => src,
            BPF_CMPXCHG => old,
            _ => match base {
                ADD => old.wrapping_add(src),
                OR => old | src,
                AND => old & src,
                _ => old ^ src,
            },
        };
        mem::put(cell, new & mask, endian);
        if op == BPF_CMPXCHG {
            self.regs[0] = old;
        } else if fetch {
            self.regs[s] = old;
        }
        Ok(())
    }

    /// The value of a two-slot `ld_imm64` at `pc`: the 64-bit immediate, or with
    /// `src == BPF_PSEUDO_MAP_FD` a reference to the map the immediate indexes.
    fn ld_imm64(&mut self, pc: usize, insn: Insn) -> Result<u64, Fault> {
        let hi = match self.insns.get(pc + 1) {
            Some(&hi) if hi == Insn::new(0, 0, 0, 0, hi.imm) => hi.imm as u32,
            _ => return Err(Fault::new(pc, "invalid bpf_ld_imm64 insn")),
        };
        let lo = insn.imm as u32;
        match insn.src {
            0 => Ok(u64::from(hi) << 32 | u64::from(lo)),
            BPF_PSEUDO_MAP_FD if hi == 0 && (lo as usize) < self.env.maps.len() => {
                Ok(mem::pointer(Kind::MapRef, lo, 0))
            }
            BPF_PSEUDO_MAP_FD => Err(Fault::new(
                pc,
                format!("fd {} is not pointing to valid bpf_map", insn.imm),
            )),
            BPF_PSEUDO_MAP_VALUE => self.direct_value(pc, lo, hi),
            // A kernel variable: only `bpf_this_cpu_ptr()` takes it, which gives the VM's
            // read-only zeros whatever the variable.
            BPF_PSEUDO_BTF_ID if hi == 0 => Ok(u64::from(lo)),
            src => Err(Fault::new(
                pc,
                format!("unsupported bpf_ld_imm64 src {src}"),
            )),
        }
    }

    /// Direct value access: a pointer `off` bytes into element 0 of array map `map`, held like
    /// a looked-up value (so stores reach the map) and read-only when the map is.
    fn direct_value(&mut self, pc: usize, map: u32, off: u32) -> Result<u64, Fault> {
        let bad = |m: String| Fault::new(pc, m);
        let def = self
            .env
            .maps
            .get(map as usize)
            .ok_or_else(|| bad(format!("fd {map} is not pointing to valid bpf_map")))?;
        if !matches!(def.kind, MapKind::Array | MapKind::PercpuArray) || def.max_entries == 0 {
            return Err(bad(
                "direct value access on map that does not support it (only arrays do)".into(),
            ));
        }
        if off >= def.value_size {
            return Err(bad(format!(
                "invalid access to map value pointer, value_size={} off={off}",
                def.value_size
            )));
        }
        let key = 0u32.to_le_bytes();
        let len = def.value_size as usize;
        self.mem.flush(&mut *self.host);
        self.value.clear();
        self.value.resize(len, 0);
        if !self.host.map_lookup(map, &key, &mut self.value) {
            return Err(bad(format!(
                "map {} has no element 0 for direct value access",
                def.name
            )));
        }
        let read_only = self.env.read_only(map);
        let p = self
            .mem
            .hold(map, &key, &self.value, read_only)
            .ok_or_else(|| bad("too many map values held in one run".into()))?;
        Ok(p.wrapping_add(u64::from(off)))
    }

    /// A `call` at `pc`: a helper, or with `src == BPF_PSEUDO_CALL` a function of the same
    /// program at `pc + 1 + imm`, which gets a fresh stack while r6-r9 are saved for the return.
    /// Returns the next instruction's index.
    fn call(&mut self, pc: usize, insn: Insn) -> Result<usize, Fault> {
        match insn.src {
            0 => {
                self.regs[0] = self.call_helper(pc, insn.imm)?;
                Ok(pc + 1)
            }
            BPF_PSEUDO_CALL => {
                let target = self
                    .target(pc, insn.imm as i64)
                    .map_err(|_| Fault::new(pc, "call to invalid destination"))?;
                let depth = self.mem.frames();
                let mut saved = [0; 4];
                saved.copy_from_slice(&self.regs[6..10]);
                let frame = Frame { ret: pc + 1, saved };
                if self.calls.push(frame).is_err() || !self.mem.push_frame() {
                    return Err(Fault::new(
                        pc,
                        format!("the call stack of {} frames is too deep", depth + 1),
                    ));
                }
                self.regs[10] = frame_pointer(depth);
                Ok(target)
            }
            _ => Err(Fault::new(
                pc,
                "calls of kernel functions are not supported",
            )),
        }
    }

    /// An `exit`: returns to the caller's next instruction, restoring its r6-r10, or `None` when
    /// the entry function exits.
    fn ret(&mut self) -> Option<usize> {
        let caller = self.calls.pop()?;
        self.mem.pop_frame();
        self.regs[6..10].copy_from_slice(&caller.saved);
        self.regs[10] = frame_pointer(self.mem.frames() - 1);
        Some(caller.ret)
    }
}
