//! Compiles a few scripts end to end against captured tracepoint formats.

mod support;

use ktap_bpf::{Source, Target};
use ktap_lang::{compile, Options};

fn build(text: &str) -> ktap_bpf::Program {
    let src = Source {
        name: "t.kp".into(),
        text: text.into(),
    };
    let k = support::FixtureKernel::new();
    match compile(&src, &k, &Options::new(Target::host(), vec!["t.kp".into()])) {
        Ok(p) => p,
        Err(d) => panic!("{}", ktap_lang::diag::render_all(&d, &src)),
    }
}

#[test]
fn counting_program_is_small() {
    let p = build("var s = {}\ntrace syscalls:sys_enter_getppid { s[execname] += 1 }\n");
    let n = p.probes[0].func.insns.len();
    eprintln!("{:#?}", p.probes[0].func.insns);
    assert!(n <= 40, "{} instructions", n);
}
