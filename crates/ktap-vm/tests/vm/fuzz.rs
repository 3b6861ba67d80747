//! Random instruction streams: whatever the program, the VM returns or faults, never panics, and
//! gives the same answer twice.

use super::*;
use ktap_bpf::helpers::HELPERS;

/// xorshift64*: deterministic, so a failure names a seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Every opcode byte the VM accepts, so most random instructions get past decoding.
fn opcodes() -> Vec<u8> {
    let mut ops = Vec::new();
    for class in [BPF_ALU, BPF_ALU64] {
        for op in (0..=0xd0).step_by(0x10) {
            ops.push(class | op | BPF_K);
            if op != BPF_NEG && !(op == BPF_END && class == BPF_ALU64) {
                ops.push(class | op | BPF_X);
            }
        }
    }
    for op in (0..=0xd0).step_by(0x10) {
        for class in [BPF_JMP, BPF_JMP32] {
            ops.push(class | op | BPF_K);
            if op != BPF_JA {
                ops.push(class | op | BPF_X);
            }
        }
    }
    ops.retain(|&c| {
        let (class, op) = (c & 0x07, c & 0xf0);
        let jump = class == BPF_JMP || class == BPF_JMP32;
        !(jump && (op == BPF_CALL || op == BPF_EXIT) && (class == BPF_JMP32 || c & BPF_X != 0))
    });
    ops.extend([BPF_JMP | BPF_CALL, BPF_JMP | BPF_EXIT]);
    for size in [BPF_B, BPF_H, BPF_W, BPF_DW] {
        ops.push(BPF_LDX | BPF_MEM | size);
        ops.push(BPF_ST | BPF_MEM | size);
        ops.push(BPF_STX | BPF_MEM | size);
        if size != BPF_DW {
            ops.push(BPF_LDX | BPF_MEMSX | size);
        }
        if size == BPF_W || size == BPF_DW {
            ops.push(BPF_STX | BPF_ATOMIC | size);
        }
    }
    ops.push(BPF_LD | BPF_DW | BPF_IMM);
    ops
}

fn random_insn(rng: &mut Rng, ops: &[u8]) -> Insn {
    let code = if rng.below(50) == 0 {
        rng.next() as u8
    } else {
        rng.pick(ops)
    };
    let reg = |rng: &mut Rng| match rng.below(40) {
        0 => rng.below(16) as u8,
        1 => R10,
        _ => rng.below(10) as u8,
    };
    let (dst, src) = (reg(rng), reg(rng));
    // Offsets that mean something for the class most of the time, anything now and then.
    let off = match (rng.below(8), code & 0x07) {
        (0, _) => rng.next() as i16,
        (_, BPF_ALU | BPF_ALU64) => rng.pick(&[0, 0, 0, 0, 1, 8, 16, 32]),
        (_, BPF_JMP | BPF_JMP32) => rng.below(8) as i16 - 2,
        _ => rng.pick(&[0, 0, 4, 8, -8, -16, -504, -512, -520]) - rng.below(8) as i16,
    };
    let imm = match rng.below(6) {
        0 => rng.pick(&[0, 1, -1, 16, 32, 64, i32::MIN, i32::MAX]),
        1 => rng.pick(HELPERS).id,
        2 => rng.pick(&[0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1]),
        3 => rng.below(8) as i32 - 2,
        4 => rng.below(40) as i32,
        _ => rng.next() as i32,
    };
    let src = if code == BPF_LD | BPF_DW | BPF_IMM || code == BPF_JMP | BPF_CALL {
        rng.pick(&[0, 0, 1, 1, 2])
    } else {
        src
    };
    Insn::new(code, dst, src, off, imm)
}

#[test]
fn random_programs_never_panic() {
    let ops = opcodes();
    let maps = [
        map(MapKind::Hash, 8, 8, 4),
        map(MapKind::Array, 4, 16, 4),
        map(MapKind::PerfEventArray, 4, 4, 0),
        map(MapKind::PercpuHash, 4, 8, 2),
    ];
    let mut outcomes = [0usize; 2];
    for seed in 1..=4000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let len = 1 + rng.below(32) as usize;
        let mut insns: Vec<Insn> = (0..len).map(|_| random_insn(&mut rng, &ops)).collect();
        // Seed the stack and registers with pointers and map references so that memory
        // instructions and helpers get past their first check.
        let mut prologue = vec![
            Insn::mov64_reg(R2, R10),
            Insn::alu64_imm(BPF_ADD, R2, -(rng.below(64) as i32)),
            Insn::st(BPF_DW, R10, -8, rng.below(4) as i32),
        ];
        prologue.extend_from_slice(&Insn::ld_map(R3, rng.below(4) as u32));
        if rng.below(2) == 0 {
            insns.push(Insn::exit());
        }
        let prog = func(&[prologue, insns].concat());
        let mut env = RunEnv::new(&maps, rng.pick(&[Endian::Little, Endian::Big]));
        env.budget = 2000;
        env.ctx_writable = rng.below(2) == 0;
        let mut ctx = vec![0x5au8; rng.below(64) as usize];
        let mut host = MemHost::new(&maps, env.endian);
        let first = run(&prog, &mut ctx, &env, &mut host);
        let mut host2 = MemHost::new(&maps, env.endian);
        let mut ctx2 = vec![0x5au8; ctx.len()];
        let second = run(&prog, &mut ctx2, &env, &mut host2);
        assert_eq!(first, second, "seed {seed}");
        outcomes[first.is_ok() as usize] += 1;
    }
    // The streams exercise both endings.
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}
