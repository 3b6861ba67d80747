//! `make bench-vm`: the same programs run in ktap's VM and in the rbpf crate's interpreter,
//! side by side, reported as nanoseconds per executed instruction (lower is better).
//!
//! The programs are what probes do: arithmetic in a loop, stack loads and stores, and reads of
//! a context buffer. Each is checked to give the same r0 in both interpreters before it is
//! timed.

use std::time::Instant;

use ktap_bpf::asm::assemble;
use ktap_bpf::insn::encode_all;
use ktap_bpf::{Endian, Function, Span};
use ktap_vm::{MemHost, RunEnv};

/// A benchmark: its name, its program, and how many instructions one run executes.
struct Bench {
    name: &'static str,
    asm: String,
    executed: u64,
    ctx: Vec<u8>,
}

const ITERATIONS: u64 = 100_000;

fn benches() -> Vec<Bench> {
    let n = ITERATIONS;
    vec![
        Bench {
            name: "alu",
            // 2 setup + 8 per iteration + exit
            asm: format!(
                "r0 = 1\nr1 = {n}\n\
                 r2 = r0\nr2 *= 31\nr2 += r1\nr3 = r2\nr3 >>= 7\nr0 ^= r3\nr1 -= 1\nif r1 != 0 goto pc-8\n\
                 exit\n"
            ),
            executed: 2 + 8 * n + 1,
            ctx: Vec::new(),
        },
        Bench {
            name: "stack",
            // 3 setup + 7 per iteration + exit
            asm: format!(
                "r0 = 0\nr1 = {n}\n*(u64 *)(r10 -8) = r0\n\
                 r2 = *(u64 *)(r10 -8)\nr2 += r1\n*(u64 *)(r10 -8) = r2\n*(u32 *)(r10 -16) = r1\nr3 = *(u32 *)(r10 -16)\nr1 -= 1\nif r1 != 0 goto pc-7\n\
                 r0 = *(u64 *)(r10 -8)\nexit\n"
            ),
            executed: 3 + 7 * n + 2,
            ctx: Vec::new(),
        },
        Bench {
            name: "ctx",
            // 3 setup + 9 per iteration + exit; reads a 64-byte record as a probe reads fields
            asm: format!(
                "r0 = 0\nr6 = r1\nr7 = {n}\n\
                 r2 = *(u64 *)(r6 +8)\nr3 = *(u32 *)(r6 +16)\nr4 = *(u16 *)(r6 +20)\nr5 = *(u8 *)(r6 +63)\nr0 += r2\nr0 ^= r3\nr0 += r4\nr7 -= 1\nif r7 != 0 goto pc-9\n\
                 r0 += r5\nexit\n"
            ),
            executed: 3 + 9 * n + 2,
            ctx: (0..64).collect(),
        },
    ]
}

/// The best of `rounds` timings of each of `a` and `b`, in nanoseconds, with their results.
/// The two alternate, so a busy machine slows both alike.
fn best2(
    rounds: usize,
    mut a: impl FnMut() -> u64,
    mut b: impl FnMut() -> u64,
) -> ((f64, u64), (f64, u64)) {
    let (mut ta, mut tb) = (f64::MAX, f64::MAX);
    let (mut ra, mut rb) = (0, 0);
    for _ in 0..rounds {
        let t = Instant::now();
        ra = std::hint::black_box(a());
        ta = ta.min(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        rb = std::hint::black_box(b());
        tb = tb.min(t.elapsed().as_nanos() as f64);
    }
    ((ta, ra), (tb, rb))
}

fn main() {
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>8}",
        "program", "insns/run", "ktap ns/insn", "rbpf ns/insn", "speedup"
    );
    let mut ratios = Vec::new();
    for b in benches() {
        let insns = match assemble(&b.asm) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{}: {e}", b.name);
                std::process::exit(1);
            }
        };
        let func = Function {
            spans: vec![Span::default(); insns.len()],
            insns: insns.clone(),
        };
        let env = RunEnv::new(&[], Endian::Little);
        let mut ctx = b.ctx.clone();
        let code = encode_all(&insns, Endian::Little);
        let mut mem = b.ctx.clone();
        let vm = match rbpf::EbpfVmRaw::new(Some(&code)) {
            Ok(vm) => vm,
            Err(e) => {
                eprintln!("{}: rbpf refuses the program: {e}", b.name);
                std::process::exit(1);
            }
        };
        let ((ours, ours_r0), (theirs, theirs_r0)) = best2(
            30,
            || {
                let mut host = MemHost::new(&[], Endian::Little);
                ktap_vm::run(&func, &mut ctx, &env, &mut host).unwrap_or(u64::MAX)
            },
            || vm.execute_program(&mut mem).unwrap_or(u64::MAX - 1),
        );
        if ours_r0 != theirs_r0 {
            eprintln!(
                "{}: the interpreters disagree: ktap r0 = {ours_r0:#x}, rbpf r0 = {theirs_r0:#x}",
                b.name
            );
            std::process::exit(1);
        }
        let (a, r) = (ours / b.executed as f64, theirs / b.executed as f64);
        ratios.push(r / a);
        println!(
            "{:<8} {:>12} {:>12.2} {:>12.2} {:>7.2}x",
            b.name,
            b.executed,
            a,
            r,
            r / a
        );
    }
    let geo = ratios
        .iter()
        .product::<f64>()
        .powf(1.0 / ratios.len() as f64);
    println!("geometric mean speedup over rbpf: {geo:.2}x");
}
