//! eBPF instructions: opcode constants (the single source of truth for every stage) and the
//! 8-byte encoding in either byte order.

/// Byte order of the target that will run the instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    /// The byte order of the machine this code is running on.
    pub const fn host() -> Endian {
        if cfg!(target_endian = "big") {
            Endian::Big
        } else {
            Endian::Little
        }
    }
}

// Instruction classes (low three bits of the opcode).
pub const BPF_LD: u8 = 0x00;
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ST: u8 = 0x02;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU64: u8 = 0x07;

// Access sizes for loads and stores.
pub const BPF_W: u8 = 0x00;
pub const BPF_H: u8 = 0x08;
pub const BPF_B: u8 = 0x10;
pub const BPF_DW: u8 = 0x18;

// Addressing modes for loads and stores.
pub const BPF_IMM: u8 = 0x00;
pub const BPF_MEM: u8 = 0x60;
pub const BPF_MEMSX: u8 = 0x80;
pub const BPF_ATOMIC: u8 = 0xc0;

// Operand source: the immediate (K) or the source register (X).
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;

// ALU operations.
pub const BPF_ADD: u8 = 0x00;
pub const BPF_SUB: u8 = 0x10;
pub const BPF_MUL: u8 = 0x20;
pub const BPF_DIV: u8 = 0x30;
pub const BPF_OR: u8 = 0x40;
pub const BPF_AND: u8 = 0x50;
pub const BPF_LSH: u8 = 0x60;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_NEG: u8 = 0x80;
pub const BPF_MOD: u8 = 0x90;
pub const BPF_XOR: u8 = 0xa0;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_ARSH: u8 = 0xc0;
pub const BPF_END: u8 = 0xd0;

/// With `BPF_END` in class `BPF_ALU`: convert to little endian (K) or big endian (X).
pub const BPF_TO_LE: u8 = 0x00;
pub const BPF_TO_BE: u8 = 0x08;

// Jump operations.
pub const BPF_JA: u8 = 0x00;
pub const BPF_JEQ: u8 = 0x10;
pub const BPF_JGT: u8 = 0x20;
pub const BPF_JGE: u8 = 0x30;
pub const BPF_JSET: u8 = 0x40;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_JSGT: u8 = 0x60;
pub const BPF_JSGE: u8 = 0x70;
pub const BPF_CALL: u8 = 0x80;
pub const BPF_EXIT: u8 = 0x90;
pub const BPF_JLT: u8 = 0xa0;
pub const BPF_JLE: u8 = 0xb0;
pub const BPF_JSLT: u8 = 0xc0;
pub const BPF_JSLE: u8 = 0xd0;

/// Atomic operation codes carried in `imm` of a `BPF_STX | BPF_ATOMIC` instruction.
pub const BPF_FETCH: i32 = 0x01;
pub const BPF_XCHG: i32 = 0xe0 | BPF_FETCH;
pub const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;

/// `src` of an `ld_imm64` whose immediate names a map (an index into [`crate::Program::maps`]
/// until the loader replaces it with a file descriptor).
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `src` of an `ld_imm64` whose immediate is the kernel BTF id of a kernel variable (a
/// "ksym"); the second half's immediate is 0, for vmlinux's BTF.
pub const BPF_PSEUDO_BTF_ID: u8 = 3;
/// `src` of a `call` to another function of the same program (bpf-to-bpf call).
pub const BPF_PSEUDO_CALL: u8 = 1;

/// Register numbers with a fixed role in the calling convention.
pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;
pub const R6: u8 = 6;
pub const R7: u8 = 7;
pub const R8: u8 = 8;
pub const R9: u8 = 9;
/// The read-only frame pointer.
pub const R10: u8 = 10;

/// Bytes of stack every eBPF program may use below `r10`.
pub const STACK_SIZE: i32 = 512;

/// One 8-byte eBPF instruction. `ld_imm64` occupies two consecutive `Insn`s, the second with
/// `code == 0` carrying the upper 32 bits in `imm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The instruction class (`BPF_LD` .. `BPF_ALU64`).
    pub const fn class(&self) -> u8 {
        self.code & 0x07
    }

    /// True for the first half of a two-slot `ld_imm64`.
    pub const fn is_ld_imm64(&self) -> bool {
        self.code == BPF_LD | BPF_DW | BPF_IMM
    }

    /// Encodes into the 8 bytes the target reads. Big-endian eBPF stores the destination register
    /// in the high nibble of byte 1 and `off`/`imm` most significant byte first.
    pub fn encode(&self, order: Endian) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        match order {
            Endian::Little => {
                b[1] = (self.src << 4) | (self.dst & 0x0f);
                b[2..4].copy_from_slice(&self.off.to_le_bytes());
                b[4..8].copy_from_slice(&self.imm.to_le_bytes());
            }
            Endian::Big => {
                b[1] = (self.dst << 4) | (self.src & 0x0f);
                b[2..4].copy_from_slice(&self.off.to_be_bytes());
                b[4..8].copy_from_slice(&self.imm.to_be_bytes());
            }
        }
        b
    }

    /// Decodes 8 bytes written for a target of byte order `order`.
    pub fn decode(b: [u8; 8], order: Endian) -> Insn {
        let (dst, src, off, imm) = match order {
            Endian::Little => (
                b[1] & 0x0f,
                b[1] >> 4,
                i16::from_le_bytes([b[2], b[3]]),
                i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            ),
            Endian::Big => (
                b[1] >> 4,
                b[1] & 0x0f,
                i16::from_be_bytes([b[2], b[3]]),
                i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ),
        };
        Insn {
            code: b[0],
            dst,
            src,
            off,
            imm,
        }
    }

    // Constructors for the forms the compiler emits; each names the kernel's mnemonic.

    /// `dst op= imm` (64-bit ALU).
    pub const fn alu64_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm)
    }
    /// `dst op= src` (64-bit ALU).
    pub const fn alu64_reg(op: u8, dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU64 | op | BPF_X, dst, src, 0, 0)
    }
    /// `wdst op= imm` (32-bit ALU, zero-extending).
    pub const fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
    }
    /// `wdst op= wsrc` (32-bit ALU, zero-extending).
    pub const fn alu32_reg(op: u8, dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU | op | BPF_X, dst, src, 0, 0)
    }
    /// `dst = imm` (sign-extended to 64 bits).
    pub const fn mov64_imm(dst: u8, imm: i32) -> Insn {
        Insn::alu64_imm(BPF_MOV, dst, imm)
    }
    /// `dst = src`.
    pub const fn mov64_reg(dst: u8, src: u8) -> Insn {
        Insn::alu64_reg(BPF_MOV, dst, src)
    }
    /// The two slots of `dst = imm64 ll`.
    pub const fn ld_imm64(dst: u8, src: u8, imm: u64) -> [Insn; 2] {
        [
            Insn::new(BPF_LD | BPF_DW | BPF_IMM, dst, src, 0, imm as u32 as i32),
            Insn::new(0, 0, 0, 0, (imm >> 32) as u32 as i32),
        ]
    }
    /// The two slots of `dst = map[index]`, a map reference the loader relocates.
    pub const fn ld_map(dst: u8, map_index: u32) -> [Insn; 2] {
        Insn::ld_imm64(dst, BPF_PSEUDO_MAP_FD, map_index as u64)
    }
    /// The two slots of `dst = ksym[btf_id]`: the address of the kernel variable with that
    /// vmlinux BTF id.
    pub const fn ld_ksym(dst: u8, btf_id: u32) -> [Insn; 2] {
        Insn::ld_imm64(dst, BPF_PSEUDO_BTF_ID, btf_id as u64)
    }
    /// `dst = *(size *)(src + off)`.
    pub const fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_LDX | BPF_MEM | size, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = src`.
    pub const fn stx(size: u8, dst: u8, off: i16, src: u8) -> Insn {
        Insn::new(BPF_STX | BPF_MEM | size, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = imm`.
    pub const fn st(size: u8, dst: u8, off: i16, imm: i32) -> Insn {
        Insn::new(BPF_ST | BPF_MEM | size, dst, 0, off, imm)
    }
    /// `lock *(size *)(dst + off) += src`.
    pub const fn atomic_add(size: u8, dst: u8, off: i16, src: u8) -> Insn {
        Insn::new(BPF_STX | BPF_ATOMIC | size, dst, src, off, BPF_ADD as i32)
    }
    /// `if dst op imm goto pc+off`.
    pub const fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP | op | BPF_K, dst, 0, off, imm)
    }
    /// `if dst op src goto pc+off`.
    pub const fn jmp_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(BPF_JMP | op | BPF_X, dst, src, off, 0)
    }
    /// `goto pc+off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_JA, 0, 0, off, 0)
    }
    /// `call helper#id`.
    pub const fn call(id: i32) -> Insn {
        Insn::new(BPF_JMP | BPF_CALL, 0, 0, 0, id)
    }
    /// `exit`.
    pub const fn exit() -> Insn {
        Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }
}

/// Encodes a whole instruction stream for a target.
pub fn encode_all(insns: &[Insn], order: Endian) -> Vec<u8> {
    insns.iter().flat_map(|i| i.encode(order)).collect()
}

/// Decodes an instruction stream; trailing bytes that do not fill an instruction are an error
/// reported as the count of bytes left over.
pub fn decode_all(bytes: &[u8], order: Endian) -> Result<Vec<Insn>, usize> {
    let (chunks, rest) = bytes.as_chunks::<8>();
    if !rest.is_empty() {
        return Err(rest.len());
    }
    Ok(chunks.iter().map(|c| Insn::decode(*c, order)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_layout_matches_the_kernel() {
        // r1 = *(u64 *)(r10 -8): 79 a1 f8 ff 00 00 00 00 as x86_64 kernels print it.
        let i = Insn::ldx(BPF_DW, R1, R10, -8);
        assert_eq!(
            i.encode(Endian::Little),
            [0x79, 0xa1, 0xf8, 0xff, 0, 0, 0, 0]
        );
    }

    #[test]
    fn big_endian_swaps_nibbles_and_fields() {
        let i = Insn::new(BPF_ALU64 | BPF_ADD | BPF_K, R1, R2, -2, 0x0102_0304);
        assert_eq!(
            i.encode(Endian::Big),
            [0x07, 0x12, 0xff, 0xfe, 0x01, 0x02, 0x03, 0x04]
        );
        assert_eq!(
            i.encode(Endian::Little),
            [0x07, 0x21, 0xfe, 0xff, 0x04, 0x03, 0x02, 0x01]
        );
    }

    #[test]
    fn round_trip_both_orders() {
        let prog = [
            Insn::mov64_imm(R0, -1),
            Insn::ld_map(R1, 3)[0],
            Insn::ld_map(R1, 3)[1],
            Insn::jmp_reg(BPF_JSGT, R3, R9, -7),
            Insn::atomic_add(BPF_DW, R0, 8, R1),
            Insn::exit(),
        ];
        for order in [Endian::Little, Endian::Big] {
            let bytes = encode_all(&prog, order);
            assert_eq!(decode_all(&bytes, order).unwrap(), prog);
        }
        assert_eq!(decode_all(&[0; 9], Endian::Little), Err(1));
    }
}
