//! The conformance golden files (`test_data/bpf/*.data` at the repository root, in the format of
//! `ktap_bpf::testcase`) run in the VM, and a check that together they use every opcode.
//!
//! The files hold no maps and call no helpers, so their results do not depend on a host; maps,
//! helpers and `ld_imm64` map references are covered by `tests/vm/maps.rs` and
//! `tests/vm/helpers.rs`. The same files run in the kernel in ktap-loader's differential test.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use ktap_bpf::insn::*;
use ktap_bpf::testcase::{self, Expect, TestCase};
use ktap_bpf::{Endian, Function, Span};
use ktap_vm::{run, MemHost, RunEnv};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test_data/bpf")
}

/// Every case, by file name, sorted.
fn cases() -> Vec<(String, TestCase)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(golden_dir()).expect("test_data/bpf exists") {
        let path = entry.expect("a readable directory").path();
        if path.extension().and_then(|e| e.to_str()) != Some("data") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).expect("a readable file");
        let case = testcase::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name, case));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Runs a case as the golden files define it: a little-endian target whose context the
/// program may write (as the kernel's `syscall` programs may), no maps.
fn run_case(name: &str, case: &TestCase) -> Result<u64, String> {
    let insns = case.insns().map_err(|e| format!("{name}:{e}"))?;
    let func = Function {
        spans: vec![Span::default(); insns.len()],
        insns,
    };
    let mut env = RunEnv::new(&[], Endian::Little);
    env.ctx_writable = true;
    env.budget = 1_000_000;
    let mut ctx = case.mem.clone();
    let mut host = MemHost::new(&[], Endian::Little);
    run(&func, &mut ctx, &env, &mut host).map_err(|f| f.to_string())
}

#[test]
fn golden_files_give_their_results() {
    let cases = cases();
    assert!(cases.len() > 100, "only {} golden files", cases.len());
    let mut failures = Vec::new();
    for (name, case) in &cases {
        let got = run_case(name, case);
        let ok = match (&case.expect, &got) {
            (Expect::Result(want), Ok(r0)) => want == r0,
            (Expect::Error(want), Err(message)) => message.contains(want.as_str()),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: expected {:?}, got {got:x?}", case.expect));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What distinguishes one operation from another beyond the opcode byte: `off` for signed
/// division and sign-extending moves, `imm` for atomics and byte swaps, `src` for calls and
/// `ld_imm64`.
fn key(insn: &Insn) -> (u8, i64) {
    let op = insn.code & 0xf0;
    match insn.class() {
        BPF_ALU | BPF_ALU64 if matches!(op, BPF_DIV | BPF_MOD | BPF_MOV) => {
            (insn.code, insn.off.into())
        }
        BPF_ALU | BPF_ALU64 if op == BPF_END => (insn.code, insn.imm.into()),
        BPF_STX if insn.code & 0xe0 == BPF_ATOMIC => (insn.code, insn.imm.into()),
        BPF_JMP if op == BPF_CALL => (insn.code, insn.src.into()),
        _ => (insn.code, 0),
    }
}

/// Every operation of the instruction set that runs without maps or helpers.
fn every_operation() -> BTreeSet<(u8, i64)> {
    let mut all = BTreeSet::new();
    let alu = [
        BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR,
        BPF_MOV, BPF_ARSH,
    ];
    for class in [BPF_ALU, BPF_ALU64] {
        for op in alu {
            for src in [BPF_K, BPF_X] {
                all.insert((class | op | src, 0));
            }
        }
        for op in [BPF_DIV, BPF_MOD] {
            for src in [BPF_K, BPF_X] {
                all.insert((class | op | src, 1));
            }
        }
        all.insert((class | BPF_NEG, 0));
    }
    for off in [8, 16, 32] {
        all.insert((BPF_ALU64 | BPF_MOV | BPF_X, off));
    }
    for off in [8, 16] {
        all.insert((BPF_ALU | BPF_MOV | BPF_X, off));
    }
    for bits in [16, 32, 64] {
        for code in [
            BPF_ALU | BPF_END | BPF_TO_LE,
            BPF_ALU | BPF_END | BPF_TO_BE,
            BPF_ALU64 | BPF_END,
        ] {
            all.insert((code, bits));
        }
    }
    let jumps = [
        BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE,
        BPF_JSLT, BPF_JSLE,
    ];
    for class in [BPF_JMP, BPF_JMP32] {
        for op in jumps {
            for src in [BPF_K, BPF_X] {
                all.insert((class | op | src, 0));
            }
        }
        all.insert((class | BPF_JA, 0));
    }
    all.insert((BPF_JMP | BPF_CALL, BPF_PSEUDO_CALL.into()));
    all.insert((BPF_JMP | BPF_EXIT, 0));
    all.insert((BPF_JMP | 0xe0, 0)); // may_goto
    for size in [BPF_B, BPF_H, BPF_W, BPF_DW] {
        all.insert((BPF_LDX | BPF_MEM | size, 0));
        all.insert((BPF_ST | BPF_MEM | size, 0));
        all.insert((BPF_STX | BPF_MEM | size, 0));
        all.insert((BPF_STX | BPF_ATOMIC | size, 0x100)); // load-acquire
        all.insert((BPF_STX | BPF_ATOMIC | size, 0x110)); // store-release
    }
    for size in [BPF_B, BPF_H, BPF_W] {
        all.insert((BPF_LDX | BPF_MEMSX | size, 0));
    }
    for size in [BPF_W, BPF_DW] {
        for op in [BPF_ADD, BPF_OR, BPF_AND, BPF_XOR] {
            all.insert((BPF_STX | BPF_ATOMIC | size, op.into()));
            all.insert((BPF_STX | BPF_ATOMIC | size, i64::from(op) | 1));
        }
        all.insert((BPF_STX | BPF_ATOMIC | size, BPF_XCHG.into()));
        all.insert((BPF_STX | BPF_ATOMIC | size, BPF_CMPXCHG.into()));
    }
    all.insert((BPF_LD | BPF_DW | BPF_IMM, 0));
    all
}

#[test]
fn golden_files_use_every_operation() {
    let mut used = BTreeSet::new();
    for (name, case) in cases() {
        let insns = case.insns().unwrap_or_else(|e| panic!("{name}:{e}"));
        let mut pc = 0;
        while let Some(insn) = insns.get(pc) {
            used.insert(key(insn));
            pc += if insn.is_ld_imm64() { 2 } else { 1 };
        }
    }
    let missing: Vec<String> = every_operation()
        .difference(&used)
        .map(|(code, extra)| format!("({code:#04x}, {extra:#x})"))
        .collect();
    assert!(
        missing.is_empty(),
        "no golden file uses {}",
        missing.join(" ")
    );
}
