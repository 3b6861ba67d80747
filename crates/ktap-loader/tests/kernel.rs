//! The loader against the running kernel (as root, no mocks): hand-assembled programs are
//! loaded, fire on real events, report through real maps and perf buffers, and leave nothing
//! behind. Tests run one at a time (a process-wide lock) so the descriptor census of one is
//! not disturbed by another.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ktap_bpf::helpers::{
    GET_CURRENT_PID_TGID, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, PERF_EVENT_OUTPUT,
};
use ktap_bpf::insn::*;
use ktap_bpf::kernel::Kernel as _;
use ktap_bpf::{
    Action, Event, Format, Function, MapDef, MapKind, MapRole, Probe, Program, Source, Span,
    Target, ValueType,
};
use ktap_loader::{load, LoadError, LoadOptions, Session, TracefsKernel};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn map(name: &str, kind: MapKind, role: MapRole, key: u32, value: u32, entries: u32) -> MapDef {
    MapDef {
        name: name.into(),
        kind,
        role,
        key: ValueType::Int,
        value: ValueType::Int,
        key_size: key,
        value_size: value,
        max_entries: entries,
        span: Span::default(),
        init: Vec::new(),
    }
}

fn probe(name: &str, event: Event, insns: Vec<Insn>) -> Probe {
    let spans = vec![Span::default(); insns.len()];
    Probe {
        name: name.into(),
        event,
        func: Function { insns, spans },
        span: Span::default(),
        optional: false,
    }
}

fn tp(category: &str, name: &str) -> Event {
    Event::Tracepoint {
        category: category.into(),
        name: name.into(),
    }
}

fn program(maps: Vec<MapDef>, formats: Vec<Format>, probes: Vec<Probe>) -> Program {
    Program {
        target: Target::host(),
        source: Source::default(),
        maps,
        formats,
        probes,
        user: Vec::new(),
        events: Vec::new(),
    }
}

/// `if (u32)current_tid != tid goto +skip`, in 3 instructions.
fn only_thread(tid: i32, skip: i16) -> [Insn; 3] {
    [
        Insn::call(GET_CURRENT_PID_TGID),
        Insn::alu32_reg(BPF_MOV, R0, R0),
        Insn::jmp_imm(BPF_JNE, R0, tid, skip),
    ]
}

/// `map[key at r10-8] += 1`, inserting 1 when absent; 18 instructions, map 0.
fn count_key_at_fp8() -> Vec<Insn> {
    let mut v = Vec::new();
    v.extend(Insn::ld_map(R1, 0));
    v.extend([
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(BPF_ADD, R2, -8),
        Insn::call(MAP_LOOKUP_ELEM),
        Insn::jmp_imm(BPF_JEQ, R0, 0, 3),
        Insn::mov64_imm(R1, 1),
        Insn::atomic_add(BPF_DW, R0, 0, R1),
        Insn::ja(9),
        Insn::st(BPF_DW, R10, -16, 1),
    ]);
    v.extend(Insn::ld_map(R1, 0));
    v.extend([
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(BPF_ADD, R2, -8),
        Insn::mov64_reg(R3, R10),
        Insn::alu64_imm(BPF_ADD, R3, -16),
        Insn::mov64_imm(R4, 1), // BPF_NOEXIST
        Insn::call(MAP_UPDATE_ELEM),
    ]);
    v
}

fn ret0() -> [Insn; 2] {
    [Insn::mov64_imm(R0, 0), Insn::exit()]
}

/// The descriptors of kernel objects this process holds (BPF objects, perf events, epoll).
fn kernel_fds() -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let t = target.to_string_lossy().into_owned();
            if t.starts_with("anon_inode:")
                && (t.contains("bpf") || t.contains("perf_event") || t.contains("eventpoll"))
            {
                *out.entry(t).or_default() += 1;
            }
        }
    }
    out
}

/// How many of `fds` are perf events.
fn perf_events(fds: &BTreeMap<String, usize>) -> usize {
    fds.iter()
        .filter(|(t, _)| t.contains("perf_event"))
        .map(|(_, n)| n)
        .sum()
}

fn live_ids(ids: &[u32]) -> Vec<u32> {
    aya::programs::loaded_programs()
        .flatten()
        .map(|p| p.id())
        .filter(|id| ids.contains(id))
        .collect()
}

/// Nothing of a session remains: no descriptor beyond those held before, and none of its
/// programs in the kernel. Program ids are released when the last reference goes; that is
/// synchronous for these program types, but a deadline keeps the check honest without
/// depending on it (a leak stays forever, so waiting cannot hide one).
fn assert_clean(before: &BTreeMap<String, usize>, ids: &[u32]) {
    assert_eq!(&kernel_fds(), before, "kernel descriptors left open");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let live = live_ids(ids);
        if live.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "programs {live:?} still loaded after the session ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn getppid() {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() };
}

/// Counts this thread's getppid calls under key 42 of map 0. Like every compiled program it
/// also has an output map, which it never writes to.
fn count_program() -> Program {
    let mut insns = Vec::new();
    insns.extend(only_thread(tid(), 19));
    insns.push(Insn::st(BPF_DW, R10, -8, 42));
    insns.extend(count_key_at_fp8());
    insns.extend(ret0());
    assert_eq!(insns.len(), 24);
    program(
        vec![
            map("counts", MapKind::Hash, MapRole::Table, 8, 8, 16),
            map("output", MapKind::PerfEventArray, MapRole::Output, 4, 4, 0),
        ],
        vec![],
        vec![probe(
            "sys_enter_getppid",
            tp("syscalls", "sys_enter_getppid"),
            insns,
        )],
    )
}

#[test]
fn counts_exactly_the_calls_of_this_thread() {
    let _serial = serial();
    let before = kernel_fds();
    let prog = count_program();
    let session = load(&prog, &LoadOptions::default()).unwrap();
    eprintln!(
        "launch -> attached (one tracepoint): {:?}",
        session.startup()
    );
    let ids = session.program_ids().to_vec();
    assert_eq!(ids.len(), 1);
    assert_eq!(live_ids(&ids), ids);
    for _ in 0..1000 {
        getppid();
    }
    let value = session.lookup(0, &42u64.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64::from_ne_bytes(value.try_into().unwrap()), 1000);
    assert_eq!(session.lookup(0, &7u64.to_ne_bytes()).unwrap(), None);
    session.detach();
    assert_clean(&before, &ids);
}

/// A probe on `sys_enter_getppid` that sends this thread's calls as 16-byte records:
/// format id 0, then `pid_tgid`.
fn output_program() -> Program {
    let mut insns = vec![Insn::mov64_reg(R6, R1), Insn::call(GET_CURRENT_PID_TGID)];
    insns.push(Insn::mov64_reg(R7, R0));
    insns.extend([
        Insn::alu32_reg(BPF_MOV, R0, R0),
        Insn::jmp_imm(BPF_JNE, R0, tid(), 10),
        Insn::st(BPF_DW, R10, -16, 0),
        Insn::stx(BPF_DW, R10, -8, R7),
        Insn::mov64_reg(R1, R6),
    ]);
    insns.extend(Insn::ld_map(R2, 0));
    insns.extend([
        Insn::alu32_imm(BPF_MOV, R3, -1), // BPF_F_CURRENT_CPU
        Insn::mov64_reg(R4, R10),
        Insn::alu64_imm(BPF_ADD, R4, -16),
        Insn::mov64_imm(R5, 16),
        Insn::call(PERF_EVENT_OUTPUT),
    ]);
    insns.extend(ret0());
    program(
        vec![map(
            "output",
            MapKind::PerfEventArray,
            MapRole::Output,
            4,
            4,
            0,
        )],
        vec![Format {
            action: Action::Print,
            fields: vec![],
            size: 16,
            span: Span::default(),
        }],
        vec![probe(
            "sys_enter_getppid",
            tp("syscalls", "sys_enter_getppid"),
            insns,
        )],
    )
}

#[test]
fn output_records_arrive_whole_and_in_number() {
    let _serial = serial();
    let before = kernel_fds();
    let prog = output_program();
    let mut session = load(&prog, &LoadOptions::default()).unwrap();
    let ids = session.program_ids().to_vec();
    const N: usize = 100;
    for _ in 0..N {
        getppid();
    }
    // SAFETY: getpid has no preconditions.
    let pid_tgid = ((unsafe { libc::getpid() } as u64) << 32) | tid() as u64;
    let mut expected = vec![0u8; 8];
    expected.extend_from_slice(&pid_tgid.to_ne_bytes());
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while records.len() < N && Instant::now() < deadline {
        session
            .poll(Duration::from_millis(100), &mut |r| {
                records.push(r.to_vec())
            })
            .unwrap();
    }
    // Nothing more is queued than was produced.
    session
        .poll(Duration::from_millis(50), &mut |r| records.push(r.to_vec()))
        .unwrap();
    assert_eq!(records.len(), N);
    assert!(records.iter().all(|r| *r == expected), "{:?}", records[0]);
    assert_eq!(session.lost(), 0);
    // With nothing queued a poll waits for its timeout and reports nothing.
    let t = Instant::now();
    let n = session
        .poll(Duration::from_millis(30), &mut |_| {})
        .unwrap();
    assert_eq!(n, 0);
    assert!(t.elapsed() >= Duration::from_millis(25));
    drop(session);
    assert_clean(&before, &ids);
}

/// Perf buffers (a perf event per online CPU) are opened for a program that writes records,
/// and not for one that does not: the two sessions differ by exactly that many perf events,
/// whatever the kernel's links hold.
#[test]
fn perf_buffers_only_for_programs_that_write_records() {
    let _serial = serial();
    let before = perf_events(&kernel_fds());
    let opened = |prog: &Program| {
        let session = load(prog, &LoadOptions::default()).unwrap();
        let n = perf_events(&kernel_fds()) - before;
        session.detach();
        n
    };
    let count = opened(&count_program());
    let output = opened(&output_program());
    let cpus = aya::util::online_cpus().unwrap().len();
    assert_eq!(output - count, cpus, "count: {count}, output: {output}");
}

#[test]
fn profile_fires_during_busy_work() {
    let _serial = serial();
    let before = kernel_fds();
    let mut insns = vec![Insn::st(BPF_W, R10, -4, 0)];
    insns.extend(Insn::ld_map(R1, 0));
    insns.extend([
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(BPF_ADD, R2, -4),
        Insn::call(MAP_LOOKUP_ELEM),
        Insn::jmp_imm(BPF_JEQ, R0, 0, 2),
        Insn::mov64_imm(R1, 1),
        Insn::atomic_add(BPF_DW, R0, 0, R1),
    ]);
    insns.extend(ret0());
    let prog = program(
        vec![map("ticks", MapKind::Array, MapRole::Table, 4, 8, 1)],
        vec![],
        vec![probe(
            "profile",
            Event::Profile {
                period_ns: 1_000_000,
                cpu: None,
            },
            insns,
        )],
    );
    let session = load(&prog, &LoadOptions::default()).unwrap();
    let ids = session.program_ids().to_vec();
    let cpus = aya::util::online_cpus().unwrap().len();
    assert_eq!(session.attachments(), cpus);
    let start = Instant::now();
    let mut spins = 0u64;
    while start.elapsed() < Duration::from_millis(100) {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
    let value = session.lookup(0, &0u32.to_ne_bytes()).unwrap().unwrap();
    let ticks = u64::from_ne_bytes(value.try_into().unwrap());
    eprintln!("profile: {ticks} samples in 100 ms on {cpus} CPUs");
    assert!(ticks >= 1);
    assert_eq!(session.count(0).unwrap(), 1);
    drop(session);
    assert_clean(&before, &ids);
}

#[test]
fn a_glob_of_tracepoints_attaches_shares_one_program_and_detaches() {
    let _serial = serial();
    let before = kernel_fds();
    let kernel = TracefsKernel::new().unwrap();
    let events = kernel.tracepoints("syscalls", "sys_enter_get*");
    assert!(events.len() >= 20, "{events:?}");
    assert!(events.contains(&("syscalls".into(), "sys_enter_getppid".into())));
    assert!(events.contains(&("syscalls".into(), "sys_enter_getpid".into())));

    // Count per syscall number (the record's `__syscall_nr`, at offset 8).
    let mut body = vec![Insn::mov64_reg(R6, R1)];
    body.extend(only_thread(tid(), 20));
    body.extend([Insn::ldx(BPF_W, R1, R6, 8), Insn::stx(BPF_DW, R10, -8, R1)]);
    body.extend(count_key_at_fp8());
    body.extend(ret0());
    assert_eq!(body.len(), 26);
    let probes = events
        .iter()
        .map(|(c, n)| probe(n, tp(c, n), body.clone()))
        .collect();
    let prog = program(
        vec![map("by_nr", MapKind::Hash, MapRole::Table, 8, 8, 64)],
        vec![],
        probes,
    );
    let session = load(&prog, &LoadOptions::default()).unwrap();
    eprintln!(
        "launch -> attached ({} tracepoints, one program): {:?}",
        events.len(),
        session.startup()
    );
    assert_eq!(session.attachments(), events.len());
    let ids = session.program_ids().to_vec();
    assert_eq!(ids.len(), 1);
    getppid();
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() };
    let hits = |nr: libc::c_long| {
        session
            .lookup(0, &(nr as u64).to_ne_bytes())
            .unwrap()
            .map(|v| u64::from_ne_bytes(v.try_into().unwrap()))
    };
    assert_eq!(hits(libc::SYS_getppid), Some(1));
    assert_eq!(hits(libc::SYS_getpid), Some(1));
    let t = Instant::now();
    session.detach();
    eprintln!("detach ({} tracepoints): {:?}", events.len(), t.elapsed());
    assert_clean(&before, &ids);
}

#[test]
fn userspace_reaches_maps_byte_by_byte() {
    let _serial = serial();
    let before = kernel_fds();
    let mut insns = vec![Insn::mov64_imm(R0, 0)];
    insns.extend(Insn::ld_map(R1, 0));
    insns.extend(Insn::ld_map(R1, 1));
    insns.extend(Insn::ld_map(R1, 2));
    insns.push(Insn::exit());
    let prog = program(
        vec![
            map("h", MapKind::Hash, MapRole::Table, 8, 16, 4),
            map("pc", MapKind::PercpuHash, MapRole::Table, 8, 8, 4),
            map("a", MapKind::Array, MapRole::Globals, 4, 8, 3),
        ],
        vec![],
        vec![probe("p", tp("syscalls", "sys_enter_getppid"), insns)],
    );
    let s: Session = load(&prog, &LoadOptions::default()).unwrap();
    let ids = s.program_ids().to_vec();
    let k = |n: u64| n.to_ne_bytes();
    let v16 = [7u8; 16];

    assert_eq!(s.update(0, &k(1), &v16, 0).unwrap(), 0);
    assert_eq!(s.update(0, &k(2), &v16, 0).unwrap(), 0);
    assert_eq!(s.update(0, &k(1), &v16, 1).unwrap(), -(libc::EEXIST as i64));
    assert_eq!(s.update(0, &k(3), &v16, 2).unwrap(), -(libc::ENOENT as i64));
    assert_eq!(s.lookup(0, &k(1)).unwrap(), Some(v16.to_vec()));
    assert_eq!(s.count(0).unwrap(), 2);
    let mut keys = Vec::new();
    let mut cur = None;
    while let Some(next) = s.next_key(0, cur.as_deref()) {
        keys.push(u64::from_ne_bytes(next.clone().try_into().unwrap()));
        cur = Some(next);
    }
    keys.sort();
    assert_eq!(keys, [1, 2]);
    assert_eq!(s.delete(0, &k(1)).unwrap(), 0);
    assert_eq!(s.delete(0, &k(1)).unwrap(), -(libc::ENOENT as i64));
    // A full table refuses like the helper does.
    for n in 10..13 {
        assert_eq!(s.update(0, &k(n), &v16, 0).unwrap(), 0);
    }
    assert_eq!(s.update(0, &k(20), &v16, 0).unwrap(), -(libc::E2BIG as i64));
    s.clear(0).unwrap();
    assert_eq!(s.count(0).unwrap(), 0);
    assert_eq!(s.next_key(0, None), None);

    // A per-CPU table: one value as readers see it, the CPUs' numbers summed; a value written
    // is CPU 0's share, the other CPUs' zero.
    assert_eq!(s.value_len(1), Some(8));
    assert_eq!(s.update(1, &k(5), &41i64.to_ne_bytes(), 0).unwrap(), 0);
    assert_eq!(
        s.lookup(1, &k(5)).unwrap(),
        Some(41i64.to_ne_bytes().to_vec())
    );
    assert!(s.update(1, &k(5), &[0; 3], 0).is_err());

    // Arrays: every slot exists; clear zeroes them.
    assert_eq!(s.count(2).unwrap(), 3);
    assert_eq!(s.update(2, &1u32.to_ne_bytes(), &k(99), 0).unwrap(), 0);
    assert_eq!(
        s.lookup(2, &1u32.to_ne_bytes()).unwrap(),
        Some(k(99).to_vec())
    );
    assert_eq!(s.lookup(2, &3u32.to_ne_bytes()).unwrap(), None);
    s.clear(2).unwrap();
    assert_eq!(s.lookup(2, &1u32.to_ne_bytes()).unwrap(), Some(vec![0; 8]));

    // Malformed calls are errors naming the map, never a panic.
    let e = s.lookup(0, &[1, 2, 3]).unwrap_err().to_string();
    assert!(e.contains("map `h`") && e.contains("3 bytes"), "{e}");
    assert!(s.update(0, &k(1), &[0; 3], 0).is_err());
    assert!(s.lookup(9, &k(1)).is_err());
    assert_eq!(s.next_key(9, None), None);
    drop(s);
    assert_clean(&before, &ids);
}

#[test]
fn a_missing_tracepoint_is_named() {
    let _serial = serial();
    let before = kernel_fds();
    for (category, name) in [
        ("syscalls", "sys_enter_no_such_call"),
        ("no_such_category", "x"),
    ] {
        let mut insns = vec![];
        insns.extend(ret0());
        let prog = program(
            vec![],
            vec![],
            vec![
                probe("ok", tp("syscalls", "sys_enter_getppid"), insns.clone()),
                probe(name, tp(category, name), insns),
            ],
        );
        let err = load(&prog, &LoadOptions::default()).err().unwrap();
        assert!(matches!(err, LoadError::NoTracepoint { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("tracepoint `{category}:{name}` does not exist")),
            "{text}"
        );
    }
    assert_clean(&before, &[]);
}

#[test]
fn a_rejected_program_returns_the_verifier_log() {
    let _serial = serial();
    let before = kernel_fds();
    // `exit` with r0 never written: every kernel refuses it.
    let prog = program(
        vec![map("t", MapKind::Hash, MapRole::Table, 8, 8, 4)],
        vec![],
        vec![probe(
            "bad_probe",
            tp("syscalls", "sys_enter_getppid"),
            vec![Insn::exit()],
        )],
    );
    let err = load(&prog, &LoadOptions::default()).err().unwrap();
    let LoadError::Rejected {
        probe, event, log, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(probe, "bad_probe");
    assert_eq!(event, "tracepoint syscalls:sys_enter_getppid");
    assert!(log.contains("R0 !read_ok"), "{log}");
    let text = err.to_string();
    assert!(
        text.contains("the kernel rejected probe `bad_probe`"),
        "{text}"
    );
    assert!(text.contains("R0 !read_ok"), "{text}");
    assert_clean(&before, &[]);
}

#[test]
fn programs_no_kernel_could_load_fail_before_the_kernel() {
    let _serial = serial();
    let before = kernel_fds();
    let mut bad_map = vec![Insn::mov64_imm(R0, 0)];
    bad_map.extend(Insn::ld_map(R1, 3));
    bad_map.push(Insn::exit());
    let prog = program(
        vec![],
        vec![],
        vec![probe("p", tp("syscalls", "sys_enter_getppid"), bad_map)],
    );
    let err = load(&prog, &LoadOptions::default()).err().unwrap();
    assert!(
        err.to_string().contains("invalid program (probe `p`)"),
        "{err}"
    );
    let mut other = program(
        vec![],
        vec![],
        vec![probe(
            "p",
            tp("syscalls", "sys_enter_getppid"),
            ret0().to_vec(),
        )],
    );
    other.target.endian = match other.target.endian {
        Endian::Little => Endian::Big,
        Endian::Big => Endian::Little,
    };
    let err = load(&other, &LoadOptions::default()).err().unwrap();
    assert!(matches!(err, LoadError::WrongTarget { .. }), "{err:?}");
    assert_clean(&before, &[]);
}

#[test]
fn startup_time_of_one_probe() {
    let _serial = serial();
    let prog = program(
        vec![],
        vec![],
        vec![probe(
            "p",
            tp("syscalls", "sys_enter_getppid"),
            ret0().to_vec(),
        )],
    );
    for run in 0..3 {
        let t = Instant::now();
        let s = load(&prog, &LoadOptions::default()).unwrap();
        let attached = t.elapsed();
        drop(s);
        eprintln!(
            "run {run}: launch -> attached {attached:?}, detached after {:?}",
            t.elapsed()
        );
        assert!(attached < Duration::from_secs(5));
    }
}

/// The probe that decides between the kernel and the VM: usable as root; refused without
/// privileges where this machine's `kernel.unprivileged_bpf_disabled` says so, usable otherwise.
#[test]
fn bpf_usable_tells_root_from_an_unprivileged_user() {
    let _serial = serial();
    ktap_loader::perf_exec::bpf_usable().unwrap();
    let disabled = std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map_or(true, |s| s.trim() != "0");
    let unprivileged = std::thread::spawn(|| {
        // SAFETY: as in an_unprivileged_user_is_told_to_be_root: this thread's effective uid.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, -1i64, 65534i64, -1i64) };
        assert_eq!(rc, 0);
        ktap_loader::perf_exec::bpf_usable()
    })
    .join()
    .unwrap();
    match unprivileged {
        Err(ktap_loader::LoadError::Permission { .. }) => assert!(disabled),
        Ok(()) => assert!(!disabled),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn an_unprivileged_user_is_told_to_be_root() {
    let _serial = serial();
    // A root load first: aya caches the kernel's features and the tracefs path process-wide
    // on first use, and they must not be learnt without privileges.
    let trivial = program(
        vec![],
        vec![],
        vec![probe(
            "p",
            tp("syscalls", "sys_enter_getppid"),
            ret0().to_vec(),
        )],
    );
    drop(load(&trivial, &LoadOptions::default()).unwrap());
    let before = kernel_fds();
    let with_map = program(
        vec![map("t", MapKind::Hash, MapRole::Table, 8, 8, 4)],
        vec![],
        vec![probe(
            "p",
            Event::Profile {
                period_ns: 1_000_000,
                cpu: None,
            },
            ret0().to_vec(),
        )],
    );
    let mut without_map = with_map.clone();
    without_map.maps.clear();
    let errors = std::thread::spawn(move || {
        // Credentials are per thread in the kernel; the raw syscall (unlike libc's setresuid)
        // changes only this one, and dropping the effective uid drops the effective
        // capabilities with it. The thread ends with its credentials.
        // SAFETY: setresuid has no memory arguments; -1 leaves the real and saved ids alone.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, -1i64, 65534i64, -1i64) };
        assert_eq!(rc, 0);
        [&trivial, &with_map, &without_map].map(|p| {
            load(p, &LoadOptions::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        })
    })
    .join()
    .unwrap();
    let [tracefs, map, prog] = errors;
    assert_eq!(
        tracefs,
        "ktap needs root (CAP_BPF and CAP_PERFMON) to read tracefs (/sys/kernel/tracing)"
    );
    assert_eq!(
        map,
        "ktap needs root (CAP_BPF and CAP_PERFMON) to create map `t`"
    );
    assert_eq!(
        prog,
        "ktap needs root (CAP_BPF and CAP_PERFMON) to load BPF programs"
    );
    assert_clean(&before, &[]);
}

#[test]
fn a_map_the_kernel_refuses_is_named() {
    let _serial = serial();
    let before = kernel_fds();
    // A hash map of no entries: the kernel refuses to create it.
    let prog = program(
        vec![map("empty_table", MapKind::Hash, MapRole::Table, 8, 8, 0)],
        vec![],
        vec![probe(
            "p",
            tp("syscalls", "sys_enter_getppid"),
            ret0().to_vec(),
        )],
    );
    let err = load(&prog, &LoadOptions::default()).err().unwrap();
    assert!(matches!(err, LoadError::CreateMap { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot create map `empty_table`: the kernel refused the arguments as invalid (EINVAL)"
    );
    assert_clean(&before, &[]);
}

#[test]
fn a_program_without_probes_still_has_its_maps() {
    let _serial = serial();
    let before = kernel_fds();
    let prog = program(
        vec![
            map("output", MapKind::PerfEventArray, MapRole::Output, 4, 4, 0),
            map("t", MapKind::Hash, MapRole::Table, 8, 8, 4),
        ],
        vec![],
        vec![],
    );
    let mut s = load(&prog, &LoadOptions::default()).unwrap();
    assert_eq!((s.attachments(), s.program_ids().len()), (0, 0));
    assert_eq!(
        s.update(1, &1u64.to_ne_bytes(), &2u64.to_ne_bytes(), 0)
            .unwrap(),
        0
    );
    assert_eq!(s.count(1).unwrap(), 1);
    assert_eq!(s.poll(Duration::from_millis(10), &mut |_| {}).unwrap(), 0);
    let e = s.lookup(0, &0u32.to_ne_bytes()).unwrap_err().to_string();
    assert!(e.contains("output buffer"), "{e}");
    drop(s);
    assert_clean(&before, &[]);
}

#[test]
fn stopped_probes_fire_no_more_but_the_maps_stay() {
    let _serial = serial();
    let before = kernel_fds();
    let mut insns = Vec::new();
    insns.extend(only_thread(tid(), 19));
    insns.push(Insn::st(BPF_DW, R10, -8, 1));
    insns.extend(count_key_at_fp8());
    insns.extend(ret0());
    let prog = program(
        vec![map("counts", MapKind::Hash, MapRole::Table, 8, 8, 4)],
        vec![],
        vec![probe("p", tp("syscalls", "sys_enter_getppid"), insns)],
    );
    let mut s = load(&prog, &LoadOptions::default()).unwrap();
    let ids = s.program_ids().to_vec();
    for _ in 0..10 {
        getppid();
    }
    s.stop_probes();
    assert_eq!(s.attachments(), 0);
    for _ in 0..10 {
        getppid();
    }
    let value = s.lookup(0, &1u64.to_ne_bytes()).unwrap().unwrap();
    assert_eq!(u64::from_ne_bytes(value.try_into().unwrap()), 10);
    s.stop_probes();
    drop(s);
    assert_clean(&before, &ids);
}

#[test]
fn lost_records_are_counted() {
    let _serial = serial();
    let before = kernel_fds();
    // One CPU's buffer of one page holds 128 of these 32-byte samples. Pin the thread so every
    // record goes to the same buffer, whose loss the kernel reports before its next sample.
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls read and write only `old`
    // and `one`, and pid 0 is the calling thread.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut old) }, 0);
    let cpu = (0..libc::CPU_SETSIZE as usize)
        .find(|&c| unsafe { libc::CPU_ISSET(c, &old) })
        .unwrap();
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut one) };
    assert_eq!(unsafe { libc::sched_setaffinity(0, size, &one) }, 0);

    let opts = LoadOptions {
        perf_pages: 1,
        ..LoadOptions::default()
    };
    let mut session = load(&output_program(), &opts).unwrap();
    let ids = session.program_ids().to_vec();
    for _ in 0..1000 {
        getppid();
    }
    let mut received = 0;
    while session
        .poll(Duration::ZERO, &mut |_| received += 1)
        .unwrap()
        > 0
    {}
    getppid();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received + session.lost() < 1001 && Instant::now() < deadline {
        session
            .poll(Duration::from_millis(100), &mut |_| received += 1)
            .unwrap();
    }
    // SAFETY: `old` is the affinity read above.
    assert_eq!(unsafe { libc::sched_setaffinity(0, size, &old) }, 0);
    eprintln!("lost: {} of 1001, received {received}", session.lost());
    assert!(session.lost() > 0);
    assert_eq!(received + session.lost(), 1001);
    drop(session);
    assert_clean(&before, &ids);
}

#[test]
fn tracefs_is_mounted_when_absent() {
    let _serial = serial();
    // In a mount namespace of this thread alone, with propagation cut so nothing reaches the
    // machine's mounts, tracefs is unmounted and must come back.
    let found = std::thread::spawn(|| {
        // SAFETY: unshare and mount take no pointers but the NUL-terminated literals passed;
        // CLONE_NEWNS in a threaded process gives only this thread a new namespace.
        unsafe {
            assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0);
            let private = libc::MS_REC | libc::MS_PRIVATE;
            let rc = libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                private,
                std::ptr::null(),
            );
            assert_eq!(rc, 0);
            for dir in [c"/sys/kernel/debug", c"/sys/kernel/tracing"] {
                libc::umount2(dir.as_ptr(), libc::MNT_DETACH);
            }
        }
        assert!(!std::path::Path::new("/sys/kernel/tracing/events").exists());
        let root = ktap_loader::tracefs::find_or_mount().unwrap();
        let kernel = TracefsKernel::at(&root);
        (
            root,
            kernel
                .tp_format("syscalls", "sys_enter_getppid")
                .map(|f| f.name),
        )
    })
    .join()
    .unwrap();
    assert_eq!(found.0, std::path::PathBuf::from("/sys/kernel/tracing"));
    assert_eq!(found.1.as_deref(), Ok("sys_enter_getppid"));
    // The machine's own mount is untouched.
    assert!(std::path::Path::new("/sys/kernel/tracing/events").is_dir());
}
