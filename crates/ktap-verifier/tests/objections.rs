//! The four safety objections raised against ktap in the 2014 thread (`shared/seeds/`), each
//! answered by a test: unbounded loops, unchecked jumps, recursion, and allocation in a probe.

mod common;

use ktap_bpf::insn::*;
use ktap_bpf::{MapRole, Program, Source, Target};
use ktap_lang::{compile, diag, Options};
use ktap_verifier::{verify, verify_program, Limits, ProgType};

fn source(text: &str) -> Source {
    Source {
        name: "t.kp".into(),
        text: text.into(),
    }
}

fn build(text: &str, opts: &Options) -> Result<Program, String> {
    let src = source(text);
    compile(&src, &common::FixtureKernel::new(), opts).map_err(|d| diag::render_all(&d, &src))
}

fn options() -> Options {
    Options::new(Target::host(), vec!["t.kp".into()])
}

/// The line of the script the verifier's error points at, through the probe's spans.
fn error_line(p: &Program) -> (usize, String) {
    let (i, e) = verify_program(p).expect_err("the verifier must reject it");
    let span = p.probes[i].func.spans[e.insn];
    (p.source.line_col(span.lo).0, e.message)
}

/// Objection 1, "loops bounded only by a counter": a loop in a probe must be bounded where the
/// verifier can see it, or the program does not compile, or does not verify.
#[test]
fn an_unbounded_loop_in_a_probe_is_refused() {
    let e = build(
        "trace syscalls:sys_enter_getppid {\n\twhile (1) {\n\t\tprint(1)\n\t}\n}\n",
        &options(),
    )
    .unwrap_err();
    assert!(
        e.contains("t.kp:2:2: error: `while` loops cannot run in a probe"),
        "{e}"
    );

    // A bounded loop compiles to a real loop, which the verifier follows to its end.
    let p = build(
        "var t = {}\ntrace syscalls:sys_enter_getppid {\n\tfor (i = 1, 10) {\n\t\tt[i] = 1\n\t}\n}\n",
        &options(),
    )
    .unwrap();
    let stats = verify_program(&p).unwrap();
    assert!(stats[0].processed > stats[0].insns as u64, "{}", stats[0]);

    // Bytecode that loops forever, or longer than the kernel looks, is refused.
    let forever = [
        Insn::mov64_imm(R0, 0),
        Insn::jmp_imm(BPF_JEQ, R0, 0, -1),
        Insn::exit(),
    ];
    let e = verify(ProgType::Tracepoint, &forever, &[], &Limits::default()).unwrap_err();
    assert!(
        e.message.starts_with("infinite loop detected at insn 1"),
        "{e}"
    );
    let long = [
        Insn::mov64_imm(R1, 0),
        Insn::alu64_imm(BPF_ADD, R1, 1),
        Insn::jmp_imm(BPF_JLT, R1, 1 << 22, -2),
        Insn::mov64_imm(R0, 0),
        Insn::exit(),
    ];
    let e = verify(ProgType::Tracepoint, &long, &[], &Limits::default()).unwrap_err();
    assert!(
        e.message
            .starts_with("BPF program is too large. Processed 1000001 insn"),
        "{e}"
    );
    // Kernels before 5.3 allow no loop at all.
    let e = verify(ProgType::Tracepoint, &long, &[], &Limits::for_kernel(5, 2)).unwrap_err();
    assert_eq!(e.message, "back-edge from insn 2 to 1");
}

/// Objection 2, "jumps are not counted": every jump is checked before anything runs, and the
/// error names the script line of the broken jump.
#[test]
fn a_bad_jump_is_refused_at_its_line() {
    let p = build(
        "var t = {}\ntrace syscalls:sys_enter_getppid {\n\tif (pid > 1) {\n\t\tt[pid] = 1\n\t}\n}\n",
        &options(),
    )
    .unwrap();
    verify_program(&p).unwrap();
    let insns = &p.probes[0].func.insns;
    let jump = insns
        .iter()
        .position(|i| {
            i.class() == BPF_JMP && i.code & 0xf0 != BPF_CALL && i.code & 0xf0 != BPF_EXIT
        })
        .expect("a conditional jump");
    let line = p.source.line_col(p.probes[0].func.spans[jump].lo).0;

    let mut out_of_range = p.clone();
    out_of_range.probes[0].func.insns[jump].off = 1000;
    let (at, message) = error_line(&out_of_range);
    assert_eq!(at, line);
    assert!(
        message.starts_with(&format!("jump out of range from insn {jump} to")),
        "{message}"
    );

    let mut backwards = p.clone();
    backwards.probes[0].func.insns[jump].off = -(jump as i16) - 5;
    assert!(error_line(&backwards).1.starts_with("jump out of range"));

    let wide = insns
        .iter()
        .position(Insn::is_ld_imm64)
        .expect("an ld_imm64");
    let mut into_pair = p.clone();
    into_pair.probes[0].func.insns[jump].off = (wide - jump) as i16;
    let (_, message) = error_line(&into_pair);
    assert_eq!(
        message,
        format!("jump into the middle of ldimm64 insn {wide}")
    );
}

/// Objection 3, "recursive functions are not detected": the compiler refuses recursion in
/// scripts; the verifier refuses it in bytecode, directly or through another function.
#[test]
fn recursion_is_refused() {
    let e = build(
        "function f(n) {\n\treturn g(n)\n}\nfunction g(n) {\n\treturn f(n)\n}\ntrace syscalls:sys_enter_getppid {\n\tprint(f(1))\n}\n",
        &options(),
    )
    .unwrap_err();
    assert!(e.contains("calls itself (recursion)"), "{e}");

    let call = |to: i32| Insn::new(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, to);
    let direct = [
        call(1),
        Insn::exit(),
        Insn::mov64_imm(R0, 0),
        call(-2),
        Insn::exit(),
    ];
    let e = verify(ProgType::Tracepoint, &direct, &[], &Limits::default()).unwrap_err();
    assert!(
        e.message
            .starts_with("back-edge from insn 3 to 2: a recursive call"),
        "{e}"
    );
    let mutual = [
        call(1),
        Insn::exit(),
        call(1),
        Insn::exit(),
        Insn::mov64_imm(R0, 1),
        call(-4),
        Insn::exit(),
    ];
    let e = verify(ProgType::Tracepoint, &mutual, &[], &Limits::default()).unwrap_err();
    assert!(
        e.message
            .starts_with("back-edge from insn 5 to 2: a recursive call"),
        "{e}"
    );
}

/// Objection 4, "bc_[ft]new instructions are allocating memory": a probe allocates nothing.
/// Every table is a map of fixed capacity created before any probe runs; no helper a probe
/// may call allocates; a full table refuses the insertion, and the probe counts the drop,
/// which ktap reports at exit.
#[test]
fn a_probe_cannot_allocate() {
    let mut opts = options();
    opts.limits.table_cap = 2;
    let p = build(
        "var t = {}\ntrace syscalls:sys_enter_getppid {\n\tt[pid] = 1\n}\n",
        &opts,
    )
    .unwrap();
    verify_program(&p).unwrap();
    let table = p
        .maps
        .iter()
        .position(|m| m.role == MapRole::Table)
        .unwrap();
    assert_eq!(p.maps[table].max_entries, 2);
    let helpers: Vec<i32> = p.probes[0]
        .func
        .insns
        .iter()
        .filter(|i| i.code == BPF_JMP | BPF_CALL)
        .map(|i| i.imm)
        .collect();
    for id in &helpers {
        let h = ktap_bpf::helpers::lookup(*id).unwrap();
        assert!(
            matches!(
                h.id,
                ktap_bpf::helpers::MAP_LOOKUP_ELEM
                    | ktap_bpf::helpers::MAP_UPDATE_ELEM
                    | ktap_bpf::helpers::GET_CURRENT_PID_TGID
            ),
            "{}",
            h.name
        );
    }

    // Three processes insert into a table of two: the third insertion is dropped and counted.
    let drops = p.map_with_role(MapRole::Drops).expect("a drop counter map");
    let env = ktap_vm::RunEnv::new(&p.maps, p.target.endian);
    let mut host = ktap_vm::MemHost::new(&p.maps, p.target.endian);
    for pid in [100u64, 200, 300] {
        host.pid_tgid = pid << 32 | pid;
        let mut ctx = [0u8; 64];
        ktap_vm::run(&p.probes[0].func, &mut ctx, &env, &mut host).unwrap();
    }
    let key = |i: u32| match p.target.endian {
        Endian::Little => i.to_le_bytes().to_vec(),
        Endian::Big => i.to_be_bytes().to_vec(),
    };
    let dropped: u64 = (0..p.maps[drops as usize].max_entries)
        .filter_map(|i| host.get(drops, &key(i)))
        .map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap()))
        .sum();
    assert_eq!(dropped, 1);
    let kept = [100u64, 200, 300]
        .iter()
        .filter(|&&pid| host.get(table as u32, &pid.to_ne_bytes()).is_some())
        .count();
    assert_eq!(kept, 2);
}
