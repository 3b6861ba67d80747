//! The verifier's golden cases: `test_data/accept/*.s` must be accepted and
//! `test_data/reject/*.s` rejected with the message in their `; error:` directive (a
//! substring), at the instruction in `; at:` when there is one. `; kernel: X.Y` verifies with
//! that kernel's limits. The kernel differential test runs the same files through the kernel.

use ktap_bpf::Target;
use ktap_verifier::asmfile::{self, AsmProgram};
use ktap_verifier::{verify, Limits, ProgType};
use std::path::Path;

fn cases(dir: &str) -> Vec<(String, AsmProgram)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(dir);
    let mut out: Vec<(String, AsmProgram)> = std::fs::read_dir(&root)
        .expect("test_data")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "s"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let target = Target::by_name("x86_64").unwrap();
            let prog =
                asmfile::parse(&text, &target).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), prog)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn directive<'a>(p: &'a AsmProgram, key: &str) -> Option<&'a str> {
    p.directives
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn limits(p: &AsmProgram) -> Limits {
    directive(p, "kernel").map_or_else(Limits::default, |v| {
        Limits::for_release(v).expect("a kernel version like 5.2")
    })
}

fn run(p: &AsmProgram) -> Result<ktap_verifier::Stats, ktap_verifier::VerifyError> {
    let t = p.prog_type.unwrap_or(ProgType::Tracepoint);
    verify(t, &p.insns, &p.maps, &limits(p))
}

#[test]
fn accepted() {
    let cases = cases("accept");
    assert!(cases.len() >= 10);
    for (name, p) in &cases {
        match run(p) {
            Ok(stats) => eprintln!("{name}: {stats}"),
            Err(e) => panic!("{name}: {e}\n{}", e.regs),
        }
    }
}

#[test]
fn rejected_with_the_kernels_words() {
    let cases = cases("reject");
    assert!(cases.len() >= 30);
    for (name, p) in &cases {
        let want = directive(p, "error").unwrap_or_else(|| panic!("{name}: no `; error:`"));
        match run(p) {
            Ok(_) => panic!("{name}: accepted, expected `{want}`"),
            Err(e) => {
                assert!(
                    e.message.contains(want),
                    "{name}: `{}` does not contain `{want}`",
                    e.message
                );
                if let Some(at) = directive(p, "at") {
                    assert_eq!(e.insn.to_string(), at, "{name}: {e}");
                }
            }
        }
    }
}

/// Shows the generated program of seed `SEED` and the verifier's verdict, for a seed the
/// differential test names: `SEED=n cargo test -p ktap-verifier --test golden -- --ignored
/// --nocapture show_generated`.
#[test]
#[ignore = "a tool: needs SEED"]
fn show_generated() {
    let Some(seed) = std::env::var("SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    let case = ktap_verifier::gen::generate(seed, &Target::host());
    eprintln!(
        "{} program: {}\n{}",
        case.prog_type.name(),
        case.what.join(", "),
        ktap_bpf::asm::disasm_listing(&case.insns)
    );
    let r = verify(
        case.prog_type,
        &case.insns,
        &case.maps,
        &Limits::for_kernel(6, 18),
    );
    eprintln!("{r:?}");
}
