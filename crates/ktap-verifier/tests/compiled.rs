//! Every program the compiler produces for the samples and its own test scripts passes the
//! verifier, for every target, and fast.

mod common;

use ktap_bpf::Target;
use ktap_verifier::verify_program;
use std::time::Instant;

#[test]
fn every_compiled_script_is_accepted_on_every_target() {
    let k = common::FixtureKernel::new();
    let mut probes = 0;
    for name in [
        "x86_64",
        "aarch64",
        "armv7",
        "mips",
        "mips64el",
        "powerpc64",
        "powerpc",
    ] {
        let target = Target::by_name(name).unwrap();
        let progs = common::compiled(&k, target);
        assert!(progs.len() >= 10, "only {} scripts compiled", progs.len());
        for (path, p) in &progs {
            if let Err((i, e)) = verify_program(p) {
                let probe = &p.probes[i];
                panic!(
                    "{} ({name}), probe {}: {e}\n{}\n{}",
                    path.display(),
                    probe.name,
                    e.regs,
                    ktap_bpf::asm::disasm_listing(&probe.func.insns)
                );
            }
            probes += p.probes.len();
        }
    }
    assert!(probes > 50, "{probes} probes");
}

#[test]
fn a_sample_compiles_and_verifies_well_under_a_millisecond() {
    let k = common::FixtureKernel::new();
    let root = common::root();
    let text = std::fs::read_to_string(root.join("samples/syscalls/count_by_name.kp")).unwrap();
    let src = ktap_bpf::Source {
        name: "count_by_name.kp".into(),
        text,
    };
    let opts = ktap_lang::Options::new(Target::host(), vec!["count_by_name.kp".into()]);
    // The best of several runs, so a busy machine does not fail the test.
    let mut best = u128::MAX;
    let mut compile_best = u128::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        let p = ktap_lang::compile(&src, &k, &opts).unwrap();
        let compiled = t.elapsed().as_micros();
        let stats = verify_program(&p).unwrap();
        best = best.min(t.elapsed().as_micros());
        compile_best = compile_best.min(compiled);
        assert_eq!(stats.len(), p.probes.len());
        if best == t.elapsed().as_micros() {
            eprintln!("{}", stats[0]);
        }
    }
    eprintln!("compiled in {compile_best} µs; compiled and verified in {best} µs");
    // Tests build without optimisation, which is several times slower than a release build.
    let budget = if cfg!(debug_assertions) { 5000 } else { 1000 };
    assert!(best < budget, "{best} µs");
}

/// What `ktap -b` prints reads back: every compiled probe and block, disassembled in the
/// kernel's verifier-log syntax, assembles to the same instructions.
#[test]
fn compiled_code_round_trips_through_the_assembler() {
    let k = common::FixtureKernel::new();
    let mut functions = 0;
    for (path, p) in common::compiled(&k, Target::host()) {
        let funcs = p
            .probes
            .iter()
            .map(|q| &q.func)
            .chain(p.user.iter().map(|u| &u.func));
        for f in funcs {
            let text = ktap_bpf::asm::disasm_listing(&f.insns);
            let back = ktap_bpf::asm::assemble(&text)
                .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
            assert_eq!(back, f.insns, "{}", path.display());
            functions += 1;
        }
    }
    assert!(functions > 50, "{functions}");
}
