//! The VM against the kernel (as root): the conformance golden files and seeded random programs
//! run both in ktap's VM and in the kernel with `BPF_PROG_TEST_RUN`, and must leave the same
//! `r0`. The random programs are what the kernel's verifier accepts: scalar arithmetic of every
//! ALU operation on known values, forward conditional jumps, and stack loads, stores and
//! atomics of every size.

use std::fs;
use std::path::PathBuf;

use ktap_bpf::insn::*;
use ktap_bpf::testcase::{self, Expect};
use ktap_bpf::{Endian, Function, Span};
use ktap_loader::test_run::test_run;
use ktap_vm::{run, MemHost, RunEnv};

fn vm(insns: &[Insn], ctx: &[u8]) -> Result<u64, String> {
    let func = Function {
        insns: insns.to_vec(),
        spans: vec![Span::default(); insns.len()],
    };
    let mut env = RunEnv::new(&[], Endian::host());
    env.ctx_writable = true;
    let mut host = MemHost::new(&[], Endian::host());
    run(&func, &mut ctx.to_vec(), &env, &mut host).map_err(|f| f.to_string())
}

#[test]
fn golden_results_match_the_kernel() {
    if Endian::host() != Endian::Little {
        // The golden files are written for a little-endian target.
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test_data/bpf");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let case = testcase::parse(&fs::read_to_string(&path).unwrap()).unwrap();
        let Expect::Result(want) = case.expect else {
            continue;
        };
        let insns = case.insns().unwrap();
        match test_run(&insns, &case.mem) {
            Ok(got) if got == want => checked += 1,
            Ok(got) => failures.push(format!("{name}: kernel {got:#x}, golden {want:#x}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 100, "only {checked} cases ran in the kernel");
}

/// xorshift64*: the same programs on every run.
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
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// An interesting 64-bit value: small, near a power of two, or random.
    fn value(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(16),
            1 => (1u64 << self.below(64))
                .wrapping_add(self.below(3))
                .wrapping_sub(1),
            2 => (self.next() as i32) as i64 as u64,
            _ => self.next(),
        }
    }
}

const ALU: [u8; 12] = [
    BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR,
    BPF_MOV, BPF_ARSH,
];
const JMP: [u8; 11] = [
    BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE, BPF_JSLT,
    BPF_JSLE,
];
const SIZES: [(u8, i16); 4] = [(BPF_B, 1), (BPF_H, 2), (BPF_W, 4), (BPF_DW, 8)];

/// One random instruction of the body, or a forward jump placeholder (`off` fixed later).
fn body_insn(rng: &mut Rng) -> Insn {
    let reg = |rng: &mut Rng| rng.pick(&[R0, R1, R2, R3, R4, R5, R6, R7, R8, R9]);
    let (d, s) = (reg(rng), reg(rng));
    match rng.below(10) {
        0..=3 => {
            let class = rng.pick(&[BPF_ALU, BPF_ALU64]);
            let op = rng.pick(&ALU);
            let width = if class == BPF_ALU64 { 64 } else { 32 };
            let signed = matches!(op, BPF_DIV | BPF_MOD) && rng.below(2) == 0;
            let off = i16::from(signed);
            if rng.below(2) == 0 {
                let off = if op == BPF_MOV && rng.below(3) == 0 {
                    rng.pick(if width == 64 {
                        &[8, 16, 32][..]
                    } else {
                        &[8, 16][..]
                    })
                } else {
                    off
                };
                Insn::new(class | op | BPF_X, d, s, off, 0)
            } else {
                let mut imm = rng.value() as i32;
                if matches!(op, BPF_LSH | BPF_RSH | BPF_ARSH) {
                    imm = rng.below(width) as i32;
                }
                if matches!(op, BPF_DIV | BPF_MOD) && imm == 0 {
                    imm = 3;
                }
                Insn::new(class | op | BPF_K, d, 0, off, imm)
            }
        }
        4 => match rng.below(3) {
            0 => Insn::new(rng.pick(&[BPF_ALU, BPF_ALU64]) | BPF_NEG, d, 0, 0, 0),
            1 => Insn::new(
                rng.pick(&[BPF_ALU | BPF_TO_LE, BPF_ALU | BPF_TO_BE, BPF_ALU64]) | BPF_END,
                d,
                0,
                0,
                rng.pick(&[16, 32, 64]),
            ),
            _ => Insn::new(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, rng.value() as i32),
        },
        5 | 6 => {
            let (size, n) = rng.pick(&SIZES);
            let off = -8 * (1 + rng.below(8) as i16) + rng.below((8 / n) as u64) as i16 * n;
            match rng.below(4) {
                0 => Insn::new(BPF_LDX | BPF_MEM | size, d, R10, off, 0),
                1 if size != BPF_DW => Insn::new(BPF_LDX | BPF_MEMSX | size, d, R10, off, 0),
                2 => Insn::new(BPF_ST | BPF_MEM | size, R10, 0, off, rng.value() as i32),
                _ => Insn::new(BPF_STX | BPF_MEM | size, R10, s, off, 0),
            }
        }
        7 => {
            let (size, n) = rng.pick(&[(BPF_W, 4i16), (BPF_DW, 8)]);
            let off = -8 * (1 + rng.below(8) as i16) + rng.below((8 / n) as u64) as i16 * n;
            let op = rng.pick(&[
                BPF_ADD as i32,
                BPF_OR as i32,
                BPF_AND as i32,
                BPF_XOR as i32,
                BPF_ADD as i32 | BPF_FETCH,
                BPF_OR as i32 | BPF_FETCH,
                BPF_AND as i32 | BPF_FETCH,
                BPF_XOR as i32 | BPF_FETCH,
                BPF_XCHG,
                BPF_CMPXCHG,
            ]);
            Insn::new(BPF_STX | BPF_ATOMIC | size, R10, s, off, op)
        }
        _ => {
            let class = rng.pick(&[BPF_JMP, BPF_JMP32]);
            let op = rng.pick(&JMP);
            if rng.below(2) == 0 {
                Insn::new(class | op | BPF_X, d, s, 0, 0)
            } else {
                Insn::new(class | op | BPF_K, d, 0, 0, rng.value() as i32)
            }
        }
    }
}

/// A program: every register and stack slot set to a random value, a random body with forward
/// jumps, then every register folded into r0.
fn program(rng: &mut Rng) -> Vec<Insn> {
    let mut p = Vec::new();
    for r in R0..=R9 {
        p.extend(Insn::ld_imm64(r, 0, rng.value()));
    }
    for slot in 1..=8i16 {
        p.push(Insn::stx(
            BPF_DW,
            R10,
            -8 * slot,
            rng.pick(&[R0, R2, R3, R4, R5, R6]),
        ));
    }
    let len = 10 + rng.below(40) as usize;
    let mut body: Vec<Insn> = (0..len).map(|_| body_insn(rng)).collect();
    for (i, insn) in body.iter_mut().enumerate() {
        if matches!(insn.class(), BPF_JMP | BPF_JMP32) {
            insn.off = rng.below((len - i) as u64) as i16;
        }
    }
    p.extend(body);
    for r in R1..=R9 {
        p.push(Insn::alu64_imm(BPF_MUL, R0, 31));
        p.push(Insn::alu64_reg(BPF_ADD, R0, r));
    }
    for slot in 1..=8i16 {
        p.push(Insn::ldx(BPF_DW, R1, R10, -8 * slot));
        p.push(Insn::alu64_imm(BPF_MUL, R0, 31));
        p.push(Insn::alu64_reg(BPF_ADD, R0, R1));
    }
    p.push(Insn::exit());
    p
}

#[test]
fn random_programs_match_the_kernel() {
    let mut rng = Rng(0x6b74_6170_2d76_6d31);
    let mut failures = Vec::new();
    let (mut ran, mut refused) = (0, 0);
    for n in 0..400 {
        let insns = program(&mut rng);
        let kernel = match test_run(&insns, &[]) {
            Ok(v) => v,
            Err(e) => {
                // Only what the verifier refuses may be skipped, and only rarely.
                refused += 1;
                if refused <= 3 {
                    eprintln!("program {n} refused: {e}");
                }
                continue;
            }
        };
        ran += 1;
        let ours = vm(&insns, &[]);
        if ours != Ok(kernel) {
            failures.push(format!(
                "program {n}: kernel {kernel:#x}, VM {ours:x?}\n{}",
                ktap_bpf::asm::disasm_listing(&insns)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(refused * 20 < ran, "{refused} refused, {ran} ran");
}
