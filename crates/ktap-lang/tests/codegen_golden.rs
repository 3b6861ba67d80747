//! Golden tests of the whole compiler: `test_data/codegen/ok/NAME.kp` compiles (against the
//! captured tracepoint formats) to the listing in `NAME.out`; `test_data/codegen/err/NAME.kp`
//! fails with the diagnostics in `NAME.err`. `BLESS=1` rewrites the expected files.

mod support;

use ktap_bpf::{Endian, Source, Target};
use ktap_lang::{compile, diag, listing, Options};
use std::path::{Path, PathBuf};

fn cases(dir: &str) -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("test_data/codegen")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("test_data/codegen")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "kp"))
        .collect();
    v.sort();
    v
}

fn source(path: &Path) -> Source {
    Source {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        text: std::fs::read_to_string(path).expect("script"),
    }
}

/// Compares with the expected file, or writes it when blessing; returns a failure message.
fn check(path: &Path, ext: &str, got: &str) -> Option<String> {
    let want_path = path.with_extension(ext);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&want_path, got).expect("bless");
        return None;
    }
    match std::fs::read_to_string(&want_path) {
        Ok(want) if want == got => None,
        Ok(want) => Some(format!(
            "{}: output differs\n--- expected\n{}\n--- got\n{}",
            path.display(),
            want,
            got
        )),
        Err(_) => Some(format!(
            "{}: no {} file (run with BLESS=1)",
            path.display(),
            ext
        )),
    }
}

/// x86_64 unless the case has a `# target: ARCH` line; `# cpu: N` and `# timestamps` lines
/// give ktap's `-C N` and `-T`; a `# kernel: ...` line picks the fixture kernel
/// ([`support::FixtureKernel::for_case`]).
fn options(src: &Source) -> Options {
    let line = |prefix: &str| src.text.lines().find_map(|l| l.strip_prefix(prefix));
    let arch = line("# target: ").unwrap_or("x86_64");
    let mut opts = Options::new(
        Target::by_name(arch.trim()).expect("a known target"),
        vec!["t.kp".into()],
    );
    opts.limits.cpu = line("# cpu: ").map(|c| c.trim().parse().expect("a CPU number"));
    opts.limits.timestamps = src.text.lines().any(|l| l.trim() == "# timestamps");
    opts
}

#[test]
fn ok_cases_compile_to_their_listing() {
    let mut failures = Vec::new();
    for path in cases("ok") {
        let src = source(&path);
        let k = support::FixtureKernel::for_case(&src.text);
        match compile(&src, &k, &options(&src)) {
            Ok(p) => failures.extend(check(&path, "out", &listing(&p))),
            Err(d) => failures.push(format!(
                "{}: does not compile\n{}",
                path.display(),
                diag::render_all(&d, &src)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn err_cases_fail_with_their_diagnostics() {
    let mut failures = Vec::new();
    for path in cases("err") {
        let src = source(&path);
        let k = support::FixtureKernel::for_case(&src.text);
        match compile(&src, &k, &options(&src)) {
            Ok(_) => failures.push(format!("{}: compiled, but must fail", path.display())),
            Err(d) => failures.extend(check(&path, "err", &diag::render_all(&d, &src))),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn big_endian_targets_encode_the_same_program_swapped() {
    let k = support::FixtureKernel::new();
    let src = Source {
        name: "t.kp".into(),
        text: "var s = {}\ntrace syscalls:sys_enter_getppid { s[execname] += 1 }\n".into(),
    };
    let le = compile(&src, &k, &options(&src)).expect("x86_64");
    let be = compile(
        &src,
        &k,
        &Options::new(Target::by_name("mips").unwrap(), vec![]),
    )
    .expect("mips");
    assert_eq!(be.target.endian, Endian::Big);
    // Constants written into memory (string bytes) follow the target's order, so compare the
    // instruction shapes, then check each encodes per its own byte order.
    assert_eq!(le.probes[0].func.insns.len(), be.probes[0].func.insns.len());
    let bytes = ktap_bpf::insn::encode_all(&be.probes[0].func.insns, Endian::Big);
    assert_eq!(
        ktap_bpf::insn::decode_all(&bytes, Endian::Big).unwrap(),
        be.probes[0].func.insns
    );
}

/// The stack map keeps as many frames as the deepest stack asked for: `stack(-1)` is every
/// frame the kernel records (127), a plain `stack()` 16.
#[test]
fn stack_map_depth_follows_the_deepest_stack() {
    let k = support::FixtureKernel::new();
    let frames = |text: &str| {
        let src = Source {
            name: "t.kp".into(),
            text: text.into(),
        };
        let p = compile(&src, &k, &options(&src)).expect("compiles");
        let i = p
            .map_with_role(ktap_bpf::MapRole::Stacks)
            .expect("a stack map");
        p.maps[i as usize].value_size / 8
    };
    assert_eq!(frames("profile-1s { print(stack()) }"), 16);
    assert_eq!(frames("profile-1s { print(stack(4)) }"), 4);
    assert_eq!(frames("profile-1s { print(stack(-1, 12)) }"), 127);
}

/// A kprobe on a plain name compiles without reading kallsyms; when the kernel will not attach
/// it, this says why from kallsyms (the binary prints it at the probe).
#[test]
fn kprobe_symbol_problems_come_from_kallsyms() {
    use ktap_lang::types::kprobe_symbol_problem;
    let k = support::FixtureKernel::new();
    assert_eq!(kprobe_symbol_problem(&k, "vfs_read"), None);
    assert_eq!(
        kprobe_symbol_problem(&k, "vfs_raed").as_deref(),
        Some("no kernel function `vfs_raed`; did you mean `vfs_read`?")
    );
    assert_eq!(
        kprobe_symbol_problem(&k, "do_sys_open").as_deref(),
        Some("no kernel function `do_sys_open`; did you mean `do_sys_openat2`?")
    );
    assert_eq!(
        kprobe_symbol_problem(&k, "some_data").as_deref(),
        Some("`some_data` is a kernel symbol but not a function")
    );
    let src = Source {
        name: "t.kp".into(),
        text: "trace probe:vfs_raed { }\n".into(),
    };
    assert!(compile(&src, &k, &options(&src)).is_ok());
}
