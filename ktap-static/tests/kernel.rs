//! The `ktap` binary against this machine's real kernel: scripts and samples run as a user runs
//! them, with a deterministic workload, exact counts, error messages, exit codes, signals, and
//! a check that nothing the run attached is left in the kernel.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs are serialised: each attaches probes, and detaching is slow in the kernel.
static KERNEL: Mutex<()> = Mutex::new(());

fn ktap() -> &'static str {
    env!("CARGO_BIN_EXE_ktap")
}

/// The workload binary, built by `cargo test --workspace` next to this test's own target dir.
fn workload() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let w = dir.join("ktap-workload");
    assert!(
        w.exists(),
        "{} is missing: build it with `cargo build -p ktap-workload` (make test does)",
        w.display()
    );
    w
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sample(name: &str) -> String {
    root()
        .join("samples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs ktap to completion with a time limit; the run is killed (and the test fails) past it.
fn run(args: &[&str]) -> Output {
    let child = Command::new(ktap())
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ktap");
    wait_limited(child, Duration::from_secs(120))
}

fn wait_limited(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "ktap ran longer than {:?}\nstdout:\n{}\nstderr:\n{}",
                limit,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Program ids ktap printed with `-v` (`ktap: program ids: 1 2 3`).
fn program_ids(stderr: &str) -> Vec<u32> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("ktap: program ids:"))
        .map(|ids| {
            ids.split_whitespace()
                .filter_map(|i| i.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// True while the kernel still has a BPF program with this id.
fn prog_exists(id: u32) -> bool {
    #[repr(C)]
    struct GetId {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let attr = GetId {
        id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: BPF_PROG_GET_FD_BY_ID (13) reads the attribute struct passed with its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            13,
            &attr as *const GetId,
            std::mem::size_of::<GetId>(),
        )
    };
    if fd >= 0 {
        // SAFETY: the fd was just returned to us.
        unsafe { libc::close(fd as i32) };
        true
    } else {
        false
    }
}

/// Every program of a finished run is gone (freeing is deferred briefly by the kernel).
fn assert_nothing_left(stderr: &str) {
    let ids = program_ids(stderr);
    assert!(!ids.is_empty(), "ktap -v printed no program ids:\n{stderr}");
    let deadline = Instant::now() + Duration::from_secs(5);
    for id in ids {
        while prog_exists(id) {
            assert!(Instant::now() < deadline, "program {id} outlived ktap");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The count print_hist shows for `key`.
fn hist_count(out: &str, key: &str) -> Option<i64> {
    out.lines().find_map(|l| {
        let (k, rest) = l.split_once(" |")?;
        if k.trim() != key {
            return None;
        }
        rest.trim_start_matches(['@', ' '])
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

#[test]
fn counts_one_syscall_exactly_and_cleans_up() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let script = "var s = {}
trace syscalls:sys_enter_getppid {
    if (execname == \"ktap-workload\") { s[probename] += 1 }
}
trace_end { print_hist(s) }";
    let out = run(&[
        "-v",
        "-e",
        script,
        "--",
        w.to_str().unwrap(),
        "getppid",
        "1000",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert!(so.starts_with("Tracing... Hit Ctrl-C to end.\n"), "{so}");
    assert!(
        so.contains("value ------------- Distribution ------------- count"),
        "{so}"
    );
    assert_eq!(hist_count(&so, "sys_enter_getppid"), Some(1000), "{so}");
    assert_nothing_left(&se);
}

#[test]
fn the_issue_one_liner_counts_every_syscall_by_name() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-v",
        "-e",
        "var s = {} trace syscalls:sys_enter_* { s[probename] += 1 } trace_end { print_hist(s) }",
        "--",
        w.to_str().unwrap(),
        "syscalls",
        "20000",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    // Other processes may call these too, so the workload's share is a lower bound.
    for name in [
        "sys_enter_getppid",
        "sys_enter_getpid",
        "sys_enter_write",
        "sys_enter_read",
    ] {
        let n = hist_count(&so, name).unwrap_or(0);
        assert!(n >= 20000, "{name}: {n}\n{so}");
    }
    assert_nothing_left(&se);
}

#[test]
fn a_glob_over_syscalls_is_one_program_on_raw_syscalls() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-v",
        "-e",
        "var s = {} trace syscalls:sys_enter_* { s[probename] += 1 } trace_end { print(s[\"sys_enter_getppid\"], s[\"sys_enter_getpid\"]) }",
        "--",
        w.to_str().unwrap(),
        "syscalls",
        "3000",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    // Every call this kernel has, but for ones newer than ktap's table, rides on raw_syscalls.
    let probes: usize = se
        .lines()
        .find_map(|l| {
            l.split_once("compiled in ")?
                .1
                .split_once(": ")?
                .1
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no probe count in\n{se}"));
    assert!(probes <= 8, "{probes} programs\n{se}");
    let last = so.lines().last().unwrap_or_default();
    let counts: Vec<u64> = last.split('\t').filter_map(|n| n.parse().ok()).collect();
    assert_eq!(counts.len(), 2, "{so}");
    assert!(counts.iter().all(|&n| n >= 3000), "{so}");
    assert_nothing_left(&se);
}

/// The numbers the table gives each call are the kernel's own: with a body that cannot be
/// shared (`arg1` is a different field in each event) every event is attached by itself, and
/// its `__syscall_nr` (`arg0`) is what the kernel's syscall table says.
#[test]
fn the_syscall_table_agrees_with_the_kernel() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "trace syscalls:sys_enter_* { if (execname == \"ktap-workload\") { printf(\"%s %d %d\\n\", probename, arg0, arg1) } }",
        "--",
        w.to_str().unwrap(),
        "syscalls",
        "50",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{se}");
    let table = ktap_bpf::syscalls::Table::new(ktap_bpf::Target::host().arch);
    let mut seen = std::collections::BTreeSet::new();
    for l in so.lines() {
        let mut f = l.split(' ');
        let (Some(name), Some(nr)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(call) = name.strip_prefix("sys_enter_") else {
            continue;
        };
        let nr: u32 = nr.parse().unwrap_or_else(|_| panic!("{l}"));
        let known = table.numbers(call);
        assert!(
            known.is_empty() || known.contains(&nr),
            "{call}: the kernel says {nr}, the table {known:?}"
        );
        if !known.is_empty() {
            seen.insert(call.to_string());
        }
    }
    for call in ["getppid", "getpid", "read", "write"] {
        assert!(seen.contains(call), "{call} not seen: {seen:?}");
    }
    assert_nothing_left(&se);
}

#[test]
fn count_by_proc_sample_sees_the_workload() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        &sample("syscalls/count_by_proc.kp"),
        "--",
        w.to_str().unwrap(),
        "getppid",
        "200000",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert!(
        !so.contains("Tracing..."),
        "-q must silence the banner: {so}"
    );
    let n = hist_count(&so, "ktap-workload").unwrap_or(0);
    // The workload also makes the syscalls of its own start-up (the dynamic loader's), and
    // other programs may share its name, so this is a lower bound;
    // counts_one_syscall_exactly_and_cleans_up checks exactness.
    assert!(n >= 200000, "ktap-workload made {n} syscalls:\n{so}");
    assert_nothing_left(&se);
}

#[test]
fn top_level_code_runs_in_the_vm() {
    let out = run(&[&sample("basic/hello.kp")]);
    let so = text(&out.stdout);
    assert!(out.status.success(), "{so}{}", text(&out.stderr));
    assert_eq!(
        so,
        "Hello\tWorld\nHello, World! 40 + 2 = 42\nfib(10) =\t55\nentries:\t10\n"
    );
}

#[test]
fn printf_conversions_in_top_level_code() {
    let out = run(&[
        "-e",
        r#"printf("[%5d|%-5d|%05d|%x|%X|%#o|%u|%c|%s|%.2s|%%]\n", 42, 42, 42, 255, 255, 8, -1, 65, "str", "abc")"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "[   42|42   |00042|ff|FF|010|18446744073709551615|A|str|ab|%]\n"
    );
}

#[test]
fn script_arguments_and_tables() {
    let out = run(&[
        "-e",
        "var t = {} t[arg[1]] = 5 t[\"x\"] += 2 t[\"x\"] += 3 print(t[\"x\"], t[arg[1]], len(t), arg[2]) t[\"x\"] = nil print(len(t), t[\"x\"] == nil)",
        "name",
        "7",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "5\t5\t2\t7\n1\ttrue\n");
}

#[test]
fn exit_in_a_probe_stops_tracing_with_its_code_and_runs_trace_end() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "trace syscalls:sys_enter_getppid { if (execname == \"ktap-workload\") { exit(3) } } trace_end { print(\"end\") }",
        "--",
        w.to_str().unwrap(),
        "getppid",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "end\n");
    assert_nothing_left(&text(&out.stderr));
}

#[test]
fn ctrl_c_detaches_and_runs_trace_end() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(ktap())
        .args(["-v", "-e", "var n = 0 trace syscalls:sys_enter_getppid { n += 1 } trace_end { print(\"done\", n >= 0) }"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ktap");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read banner");
    assert_eq!(first, "Tracing... Hit Ctrl-C to end.\n");
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read output");
    let out = wait_limited(child, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(rest, "done\ttrue\n");
    assert_nothing_left(&text(&out.stderr));
}

#[test]
fn syntax_errors_are_located() {
    let out = run(&["-e", "var x = (1 +\ntrace_end { print(x) }"]);
    assert_eq!(out.status.code(), Some(1));
    let se = text(&out.stderr);
    assert!(se.starts_with("-e:"), "{se}");
    assert!(se.contains("error:"), "{se}");
    assert!(se.contains('^'), "{se}");
}

#[test]
fn unknown_events_are_named_with_suggestions() {
    let out = run(&["-e", "trace syscalls:sys_enter_getppd { }"]);
    assert_eq!(out.status.code(), Some(1));
    let se = text(&out.stderr);
    assert!(
        se.contains("unknown event `syscalls:sys_enter_getppd`"),
        "{se}"
    );
    assert!(se.contains("syscalls:sys_enter_getppid"), "{se}");
}

#[test]
fn type_conflicts_name_both_places() {
    let out = run(&["-e", "var t = {}\nvar u = {}\nt[1] = \"a\"\nt[2] = u\n"]);
    assert_eq!(out.status.code(), Some(1));
    let se = text(&out.stderr);
    assert!(
        se.contains("-e:4:8: error: table `t` holds a table here but a string"),
        "{se}"
    );
    assert!(se.contains("-e:3:8: note:"), "{se}");
}

#[test]
fn unbounded_loops_in_probes_are_refused() {
    let out = run(&[
        "-e",
        "trace syscalls:sys_enter_getppid { while (true) { } }",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("bound"), "{}", text(&out.stderr));
}

#[test]
fn without_root_the_message_says_so() {
    use std::os::unix::process::CommandExt;
    let out = Command::new(ktap())
        .args(["-e", "trace syscalls:sys_enter_getppid { }"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run ktap as nobody");
    assert_eq!(out.status.code(), Some(1));
    let se = text(&out.stderr);
    assert!(se.contains("root"), "{se}");
    assert!(!se.contains("panicked"), "{se}");
}

#[test]
fn a_missing_workload_is_reported_and_nothing_stays_attached() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(&[
        "-v",
        "-e",
        "trace syscalls:sys_enter_getppid { }",
        "--",
        "/nonexistent/prog",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let se = text(&out.stderr);
    assert!(se.contains("cannot run `/nonexistent/prog`"), "{se}");
    assert_nothing_left(&se);
}

#[test]
fn bytecode_listing_shows_source_lines() {
    let out = run(&[
        "-b",
        "-e",
        "var s = {}\ntrace syscalls:sys_enter_getppid { s[execname] += 1 }",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let so = text(&out.stdout);
    assert!(so.contains("probe sys_enter_getppid:"), "{so}");
    assert!(
        so.contains("; -e:2: trace syscalls:sys_enter_getppid { s[execname] += 1 }"),
        "{so}"
    );
    assert!(so.contains("call bpf_get_current_comm#16"), "{so}");
    assert!(so.contains("exit"), "{so}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    // With -v it says how long compiling took (what `make bench` times each sample by).
    let out = run(&["-v", "-b", "-e", "trace syscalls:sys_enter_getppid { }"]);
    let se = text(&out.stderr);
    assert!(
        se.starts_with("ktap: compiled in ")
            && se.contains("1 probes (")
            && !se.contains("attached"),
        "{se}"
    );
}

/// Runs a sample with a workload and returns its stdout after checking it succeeded and left
/// nothing attached.
fn sample_run(name: &str, script_args: &[&str], workload_args: &[&str]) -> String {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let path = sample(name);
    let mut args = vec!["-q", "-v", path.as_str()];
    args.extend(script_args);
    args.push("--");
    args.push(w.to_str().unwrap());
    args.extend(workload_args);
    let out = run(&args);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{name}: {so}\n{se}");
    assert_nothing_left(&se);
    so
}

#[test]
fn sample_count_by_name() {
    // Enough calls that getppid is among the 20 rows print_hist shows, however busy the
    // machine is with other programs' system calls.
    let so = sample_run("syscalls/count_by_name.kp", &[], &["getppid", "200000"]);
    assert!(
        hist_count(&so, "sys_enter_getppid").unwrap_or(0) >= 200000,
        "{so}"
    );
}

#[test]
fn sample_opensnoop() {
    let so = sample_run(
        "syscalls/opensnoop.kp",
        &[],
        &["open", "/etc/hostname", "3"],
    );
    assert!(so.starts_with("COMM                 PID PATH\n"), "{so}");
    let hits = so
        .lines()
        .filter(|l| l.starts_with("ktap-workload") && l.ends_with(" /etc/hostname"))
        .count();
    assert_eq!(hits, 3, "{so}");
}

#[test]
fn sample_sctop_refreshes_every_five_seconds() {
    let so = sample_run("syscalls/sctop.kp", &[], &["sleep", "5600"]);
    assert!(
        so.contains("value ------------- Distribution ------------- count"),
        "{so}"
    );
}

#[test]
fn sample_errors_counts_failing_calls() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    // The workload exits 1 when its open fails; tracing still ends normally.
    let out = run(&[
        "-q",
        "-v",
        &sample("syscalls/errors.kp"),
        "--",
        w.to_str().unwrap(),
        "open",
        "/nonexistent/ktap",
        "1",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert!(hist_count(&so, "sys_exit_openat").unwrap_or(0) >= 1, "{so}");
    assert_nothing_left(&se);
}

#[test]
fn sample_count_by_pid_iterates_in_trace_end() {
    let so = sample_run("syscalls/count_by_pid.kp", &[], &["getppid", "200"]);
    let line = so
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("ktap-workload"))
        .unwrap_or_else(|| panic!("no ktap-workload line:\n{so}"));
    let n: i64 = line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(n >= 200, "{line}");
}

#[test]
fn sample_read_size_buckets() {
    let so = sample_run("syscalls/read_size.kp", &[], &["read", "4096", "100"]);
    assert!(hist_count(&so, "4096").unwrap_or(0) >= 100, "{so}");
}

#[test]
fn sample_switches_sees_a_sleeper() {
    let so = sample_run("sched/switches.kp", &[], &["sleep", "300"]);
    assert!(so.contains("value ------------- Distribution"), "{so}");
}

#[test]
fn sample_exec_stops_itself_after_its_argument() {
    let so = sample_run("sched/exec.kp", &["1"], &["sleep", "3000"]);
    assert!(so.lines().any(|l| l.ends_with(" ktap-workload")), "{so}");
}

#[test]
fn sample_profile_samples_a_busy_task() {
    let so = sample_run("profile/sample_tasks.kp", &[], &["spin", "500"]);
    assert!(hist_count(&so, "ktap-workload").unwrap_or(0) >= 5, "{so}");
}

#[test]
fn sample_rate_ticks() {
    let so = sample_run("timer/rate.kp", &[], &["sleep", "1500"]);
    assert!(so.lines().any(|l| l.starts_with("syscalls/s:\t")), "{so}");
}

#[test]
fn a_full_table_drops_updates_and_says_so() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var t = table.new(0, 4)\ntrace raw_syscalls:sys_enter { t[tid] += 1 }\ntrace_end { print(len(t)) }",
        "--",
        w.to_str().unwrap(),
        "fork",
        "20",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert_eq!(so, "4\n");
    assert!(
        se.contains("-e:1:9: table `t` was full (4 entries):"),
        "{se}"
    );
    assert!(se.contains("updates were dropped"), "{se}");
    assert_nothing_left(&se);
}

#[test]
fn table_constructors_fill_their_entries() {
    let out = run(&[
        "-e",
        "var t = {10, 20, 30} print(len(t), t[1], t[3], t[4] == nil)\nvar u = {a = 1, [\"bb\"] = 2} print(u[\"a\"], u[\"bb\"])",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "3\t10\t30\ttrue\n1\t2\n");
}

#[test]
fn concatenation_at_run_time_in_userspace_and_in_probes() {
    let out = run(&[
        "-e",
        "var a = \"ab\" var n = -1234 var s = a .. \":\" .. n .. \"|\" .. 9223372036854775807 .. (-9223372036854775807 - 1) print(s, len(s))",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ab:-1234|9223372036854775807-9223372036854775808\t48\n"
    );
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var t = {} trace syscalls:sys_enter_getppid { if (execname == \"ktap-workload\") { t[execname .. \"/\" .. (pid - pid + 42)] += 1 } } trace_end { for (k, v in pairs(t)) { print(k, v) } }",
        "--",
        w.to_str().unwrap(),
        "getppid",
        "5",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ktap-workload/42\t5\n");
    assert_nothing_left(&text(&out.stderr));
}

#[test]
fn pid_filter_and_output_file() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    // A process of our own, traced by pid: the workload must not be counted.
    let mut mine = Command::new(&w)
        .args(["sleep", "60000"])
        .spawn()
        .expect("start a sleeper");
    let pid = mine.id().to_string();
    let dir = std::env::temp_dir().join(format!("ktap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("out.txt");
    let out = run(&[
        "-q",
        "-v",
        "-p",
        &pid,
        "-o",
        file.to_str().unwrap(),
        "-e",
        "var n = 0 trace syscalls:sys_enter_getppid { n += 1 } trace_end { print(\"n\", n) }",
        "--",
        w.to_str().unwrap(),
        "getppid",
        "100",
    ]);
    let _ = mine.kill();
    let _ = mine.wait();
    let se = text(&out.stderr);
    assert!(out.status.success(), "{se}");
    assert_eq!(text(&out.stdout), "", "output goes to the file");
    assert_eq!(
        std::fs::read_to_string(&file).expect("output file"),
        "n\t0\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_nothing_left(&se);
}

#[test]
fn values_of_several_types_are_tagged() {
    let out = run(&[
        "-e",
        "var t = {} t[1] = \"one\" t[2] = 2 t[\"x\"] = true print(t[1], t[2], t[\"x\"], t[3])\nvar w = 1 w = \"s\" w = 7 print(w + 1, w .. \"!\", w == 7, w != \"7\")\nt[\"x\"] = false if (!t[\"x\"]) { print(\"false is false\") }",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "one\t2\ttrue\tnil\n8\t7!\ttrue\ttrue\nfalse is false\n"
    );
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var t = {} trace syscalls:sys_enter_getppid { if (execname == \"ktap-workload\") { t[pid - pid] = \"zero\" t[\"n\"] = 3 } } trace_end { print(t[0], t[\"n\"]) }",
        "--",
        w.to_str().unwrap(),
        "getppid",
        "3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "zero\t3\n");
    assert_nothing_left(&text(&out.stderr));
}

#[test]
fn aggregations_merge_every_cpu() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var s = {}\ntrace syscalls:sys_enter_read { if (execname == \"ktap-workload\" && args.count == 1000) { s[\"r\"] <<< args.count } }\ntrace_end { print(count(s[\"r\"]), sum(s[\"r\"]), avg(s[\"r\"]), min(s[\"r\"]), max(s[\"r\"])) hist(s[\"r\"]) }",
        "--",
        w.to_str().unwrap(),
        "read",
        "1000",
        "50",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    let mut lines = so.lines();
    assert_eq!(lines.next(), Some("50\t50000\t1000\t1000\t1000"), "{so}");
    assert!(lines.next().unwrap_or("").contains("Distribution"), "{so}");
    // 1000 falls in the bucket [512, 1024).
    let row = lines.next().unwrap_or("");
    assert!(row.trim_start().starts_with("512 |@"), "{so}");
    assert!(row.trim_end().ends_with("50"), "{so}");
    assert_nothing_left(&se);
}

#[test]
fn event_filters_run_in_the_probe() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var n = 0 trace syscalls:sys_enter_read /count == 777/ { n += 1 }\ntrace syscalls:sys_enter_openat /filename ~ \"/etc/host*\"/ { printf(\"%s\\n\", user_string(args.filename)) }\ntrace_end { print(n) }",
        "--",
        w.to_str().unwrap(),
        "read",
        "777",
        "9",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert_eq!(so.lines().last(), Some("9"), "{so}");
    assert!(
        so.lines().all(|l| l == "9" || l.starts_with("/etc/host")),
        "{so}"
    );
    assert_nothing_left(&se);
}

#[test]
fn sample_read_hist_aggregates() {
    let so = sample_run("syscalls/read_hist.kp", &[], &["read", "4096", "20"]);
    let line = so
        .lines()
        .find(|l| l.starts_with("ktap-workload "))
        .unwrap_or_else(|| panic!("no ktap-workload line:\n{so}"));
    assert!(line.contains("max     4096"), "{line}");
    assert!(
        so.lines().any(|l| l.trim_start().starts_with("4096 |@")),
        "{so}"
    );
}

#[test]
fn sample_etc_opens_filters_in_the_kernel() {
    let so = sample_run(
        "syscalls/etc_opens.kp",
        &[],
        &["open", "/etc/hostname", "3"],
    );
    assert_eq!(
        hist_count(&so, "ktap-workload /etc/hostname"),
        Some(3),
        "{so}"
    );
    assert!(so.lines().skip(1).all(|l| l.contains("/etc/")), "{so}");
}

/// The C library the workload links, which every uprobe test probes.
const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

#[test]
fn uprobes_count_calls_and_read_arguments() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let script = format!(
        "var n = {{}}\ntrace probe:{LIBC}:syscall {{ if (execname == \"ktap-workload\") {{ n[arg1] += 1 }} }}\ntrace_end {{ print(n[110]) }}"
    );
    let out = run(&[
        "-q",
        "-v",
        "-e",
        &script,
        "--",
        w.to_str().unwrap(),
        "getppid",
        "100",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    // 110 is getppid's number on x86_64, the libc `syscall` function's first argument.
    assert_eq!(so, "100\n");
    assert_nothing_left(&se);
}

/// A table that probes only add to is per CPU: counts from workloads on two CPUs at once add
/// up exactly, in `trace_end`, in the table's dump, and after `trace_end` adds to it.
#[test]
fn per_cpu_tables_sum_every_cpus_count() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let w = w.to_str().unwrap();
    let script = "var s = {} trace syscalls:sys_enter_getppid { s[execname] += 1; if (execname == \"ktap-workload\") { s[\"two\"] += 2 } } \
                  trace_end { print(s[\"ktap-workload\"], s[\"two\"]); s[\"two\"] += 1; print(s[\"two\"]) }";
    let both = format!("taskset -c 0 {w} getppid 50000 & taskset -c 1 {w} getppid 50000; wait");
    let out = run(&["-q", "-e", script, "--", "sh", "-c", &both]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert_eq!(so, "100000\t200000\n200001\n");
}

/// A filter on a uprobe tests its fields in the program: `argN` by the calling convention, a
/// fetch-arg unsigned unless typed signed, a string fetch-arg by its text.
#[test]
fn uprobe_filters_test_fetch_args_and_arguments() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let script = format!(
        "var n = {{}}\n\
         trace probe:{LIBC}:syscall /arg1 == 110 && common_pid != 1/ {{ n[\"arg1\"] += 1 }}\n\
         trace probe:{LIBC}:syscall nr=%di /nr < 0/ {{ n[\"unsigned\"] += 1 }}\n\
         trace probe:{LIBC}:syscall nr=%di:s64 /nr > 109 && nr < 111/ {{ n[\"signed\"] += 1 }}\n\
         trace probe:{LIBC}:openat path=+0(%si):string /path ~ \"/etc/host*\"/ {{ n[\"path\"] += 1 }}\n\
         trace_end {{ print(n[\"arg1\"], n[\"unsigned\"], n[\"signed\"], n[\"path\"]) }}"
    );
    let out = run(&[
        "-q",
        "-e",
        &script,
        "--",
        w.to_str().unwrap(),
        "getppid",
        "37",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert_eq!(so, "37\t0\t37\t0\n");
    let out = run(&[
        "-q",
        "-e",
        &script,
        "--",
        w.to_str().unwrap(),
        "open",
        "/etc/hostname",
        "2",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert_eq!(so, "0\t0\t0\t2\n");
}

#[test]
fn uretprobes_and_fetch_args() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let script = format!(
        "var r = {{}}\ntrace probe:{LIBC}:syscall%return {{ if (execname == \"ktap-workload\") {{ r[\"ret\"] = arg1 > 0 }} }}\ntrace probe:{LIBC}:syscall nr=%di:u32 {{ if (execname == \"ktap-workload\") {{ r[\"nr\"] = args.nr }} }}\ntrace_end {{ print(r[\"ret\"], r[\"nr\"]) }}"
    );
    let out = run(&[
        "-q",
        "-v",
        "-e",
        &script,
        "--",
        w.to_str().unwrap(),
        "getppid",
        "3",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert_eq!(so, "true\t110\n");
    assert_nothing_left(&se);
}

#[test]
fn a_missing_uprobe_symbol_is_named_with_suggestions() {
    let out = run(&["-e", &format!("trace probe:{LIBC}:syscal {{ }}")]);
    assert_eq!(out.status.code(), Some(1));
    let se = text(&out.stderr);
    assert!(se.contains("no function `syscal`"), "{se}");
    assert!(se.contains("`syscall`"), "{se}");
}

#[test]
fn usdt_markers_fire_with_their_arguments() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    // A C++ program that throws five times: libstdc++'s `libstdcxx:throw` marker fires on each.
    let dir = std::env::temp_dir().join(format!("ktap-usdt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("thrower.cc");
    std::fs::write(
        &src,
        "int main() { int n = 0; for (int i = 0; i < 5; i++) { try { throw i; } catch (int) { n++; } } return n == 5 ? 0 : 1; }\n",
    )
    .expect("write thrower.cc");
    let exe = dir.join("thrower");
    let built = Command::new("g++")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("g++ (make deps installs it)");
    assert!(built.success(), "g++ failed");
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var n = 0 var typed = 0 trace sdt:/usr/lib/x86_64-linux-gnu/libstdc++.so.6:throw { n += 1 if (arg2 != 0) { typed += 1 } } trace_end { print(n, typed) }",
        "--",
        exe.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    // arg2 is the thrown type's std::type_info pointer: never null.
    assert_eq!(so, "5\t5\n");
    assert_nothing_left(&se);
}

#[test]
fn ansi_and_stringof() {
    let out = run(&[
        "-e",
        "ansi.set_color(31) print(\"red\") ansi.reset_color() print(stringof(42) .. \"!\", stringof(\"s\"))",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\x1b[31mred\n\x1b[0m42!\ts\n");
}

#[test]
fn kernel_stacks_are_table_keys_printed_as_symbols() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var s = {} trace syscalls:sys_enter_getppid { if (execname == \"ktap-workload\") { s[stack()] += 1 } } trace_end { print_hist(s) }",
        "--",
        w.to_str().unwrap(),
        "getppid",
        "10",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    // Every getppid enters through the same system-call path, so one stack counts all ten.
    assert!(so.contains("    do_syscall_64+0x"), "{so}");
    assert!(so.lines().any(|l| l.trim() == "10"), "{so}");
    assert_nothing_left(&se);
}

#[test]
fn sample_malloc_sizes_by_uprobe() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        &sample("uprobe/malloc_sizes.kp"),
        "--",
        w.to_str().unwrap(),
        "sleep",
        "100",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    // Every process that starts a program mallocs; ktap's own fork does, at least.
    assert!(so.lines().any(|l| l.contains(" calls, ")), "{so}");
    assert!(so.contains("Distribution"), "{so}");
    assert_nothing_left(&se);
}

#[test]
fn sample_stack_profile() {
    let so = sample_run("profile/stack_profile.kp", &[], &["syscalls", "100000"]);
    assert!(so.contains("Distribution"), "{so}");
    assert!(
        so.contains("+0x") || so.contains("[no stack: user code]"),
        "{so}"
    );
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of `bpf_ktime_get_ns()`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn wall_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn online_cpus() -> i64 {
    // SAFETY: sysconf has no memory preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) as i64 }
}

fn release() -> String {
    let out = Command::new("uname").arg("-r").output().expect("uname -r");
    text(&out.stdout).trim().to_string()
}

#[test]
fn built_ins_in_probes_read_the_running_kernel() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let before = (wall_s(), monotonic_ns());
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "print(num_cpus(), kernel_v())\ntrace syscalls:sys_enter_getppid { if (execname == \"ktap-workload\") { printf(\"%d|%s|%d|%d|%d|%d|%d\\n\", num_cpus(), kernel_v(), gettimeofday_s(), gettimeofday_ms() / 1000, gettimeofday_us() / 1000000, gettimeofday_ns() / 1000000000, in_iowait()) print_trace_clock() } }",
        "--",
        w.to_str().unwrap(),
        "getppid",
        "1",
    ]);
    let after = (wall_s(), monotonic_ns());
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    let lines: Vec<&str> = so.lines().collect();
    assert_eq!(lines.len(), 3, "{so}");
    assert_eq!(
        lines[0],
        format!("{}\t{}", online_cpus(), release()),
        "{so}"
    );
    let f: Vec<&str> = lines[1].split('|').collect();
    assert_eq!(f[0], online_cpus().to_string(), "{so}");
    assert_eq!(f[1], release(), "{so}");
    for s in &f[2..6] {
        let s: i64 = s.parse().unwrap();
        assert!(
            s >= before.0 - 1 && s <= after.0 + 1,
            "{s} vs {before:?} {after:?}\n{so}"
        );
    }
    assert_eq!(f[6], "0", "the workload is not waiting for I/O: {so}");
    // print_trace_clock: CLOCK_MONOTONIC as seconds.microseconds.
    let (s, us) = lines[2].split_once('.').expect("seconds.microseconds");
    assert_eq!(us.len(), 6, "{so}");
    let t = s.parse::<u64>().unwrap() * 1_000_000_000 + us.parse::<u64>().unwrap() * 1000;
    assert!(
        t + 1000 >= before.1 && t <= after.1,
        "{t} vs {before:?} {after:?}"
    );
    assert_nothing_left(&se);
}

#[test]
fn in_iowait_is_set_while_a_task_waits_for_its_io() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    // Direct, synchronous writes to a file on disk: each waits in io_schedule(), and the
    // switch away from the writer sees its in_iowait bit.
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ktap-iowait");
    let of = format!("of={}", file.display());
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var n = {} trace sched:sched_switch { if (execname == \"dd\") { n[in_iowait()] += 1 } } trace_end { print(n[1] > 0, n[0] >= 0) }",
        "--",
        "dd",
        "if=/dev/zero",
        &of,
        "bs=64k",
        "count=100",
        "oflag=direct,dsync",
        "status=none",
    ]);
    let _ = std::fs::remove_file(&file);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert_eq!(so, "true\ttrue\n");
    assert_nothing_left(&se);
}

/// x86 keeps its preempt count per CPU, which in_interrupt() reads through bpf_this_cpu_ptr();
/// the kernel finds the variable in kallsyms, which lists it only when the kernel was built with
/// CONFIG_KALLSYMS_ALL (this machine's is not, the x86_64 board's is: board-tests/in_interrupt).
#[test]
fn in_interrupt_works_or_says_why_not_on_this_kernel() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let listed = std::fs::read_to_string("/proc/kallsyms").is_ok_and(|s| {
        s.lines().any(|l| {
            let name = l.split_whitespace().nth(2);
            name == Some("__preempt_count") || name == Some("pcpu_hot")
        })
    });
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "trace syscalls:sys_enter_getppid { print(in_interrupt()) }",
        "--",
        w.to_str().unwrap(),
        "getppid",
        "1",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    if listed {
        assert!(out.status.success(), "{so}\n{se}");
        assert!(so.lines().any(|l| l == "0"), "{so}");
        assert_nothing_left(&se);
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            se.contains("-e:1:42: error: `in_interrupt()` reads the per-CPU preempt count"),
            "{se}"
        );
        assert!(se.contains("CONFIG_KALLSYMS_ALL"), "{se}");
    }
}

#[test]
fn strings_at_bad_addresses_are_nil() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "trace syscalls:sys_enter_openat { if (execname == \"ktap-workload\") { var bad = user_string(0) if (bad == nil) { printf(\"%s %s\\n\", user_string(args.filename), bad) } print(kernel_string(16), user_string(args.filename + 5)) } }",
        "--",
        w.to_str().unwrap(),
        "open",
        "/etc/hostname",
        "1",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert!(so.contains("/etc/hostname nil\nnil\thostname\n"), "{so}");
    assert_nothing_left(&se);
}

#[test]
fn addresses_print_as_kernel_symbols() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    // A sleeping task's hrtimer wakes it through hrtimer_wakeup().
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var f = {} trace timer:hrtimer_start { if (execname == \"ktap-workload\") { f[ipof(args.function)] += 1 printf(\"%s %p\\n\", ipof(args.function), args.function) } } trace_end { print_hist(f) }",
        "--",
        w.to_str().unwrap(),
        "sleep",
        "10",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert!(
        so.contains("hrtimer_wakeup+0x0 hrtimer_wakeup+0x0\n"),
        "{so}"
    );
    assert!(so.contains("hrtimer_wakeup+0x0 |@"), "{so}");
    assert_nothing_left(&se);
}

#[test]
fn timestamps_and_a_cpu_filter() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if online_cpus() < 2 {
        eprintln!("one CPU: -C has nothing to tell apart");
        return;
    }
    let w = workload();
    // The workload runs on CPU 0 alone; -C 1 sees none of its calls, -C 0 all of them.
    for (cpu, calls) in [("0", 20), ("1", 0)] {
        let out = run(&[
            "-q",
            "-v",
            "-T",
            "-C",
            cpu,
            "-e",
            "var n = 0 var samples = {} trace syscalls:sys_enter_getppid { if (execname == \"ktap-workload\") { n += 1 printf(\"call %d\\n\", cpu) } } profile-1ms { samples[cpu] += 1 } trace_end { print(\"calls\", n) for (c, k in pairs(samples)) { print(\"cpu\", c) } }",
            "--",
            "taskset",
            "-c",
            "0",
            w.to_str().unwrap(),
            "getppid",
            "20",
        ]);
        let (so, se) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{so}\n{se}");
        let stamped: Vec<&str> = so.lines().filter(|l| l.ends_with(": call 0")).collect();
        assert_eq!(stamped.len(), calls, "-C {cpu}:\n{so}");
        let mut last = f64::MIN;
        for l in &stamped {
            // `    0.012345: call 0`: seconds.microseconds since tracing started, in order.
            let (t, _) = l.split_once(": ").unwrap();
            let (s, us) = t.trim_start().split_once('.').unwrap();
            assert_eq!(us.len(), 6, "{l}");
            let t: f64 = t.trim().parse().unwrap();
            assert!(t >= last && t < 60.0 && s.parse::<i64>().is_ok(), "{l}");
            last = t;
        }
        assert!(so.contains(&format!("calls\t{calls}\n")), "{so}");
        // trace_end's output carries no stamp; the profile sampled CPU `cpu` alone.
        let cpus: Vec<&str> = so.lines().filter(|l| l.starts_with("cpu\t")).collect();
        assert!(cpus.iter().all(|l| *l == format!("cpu\t{cpu}")), "{so}");
        assert_nothing_left(&se);
    }
}

/// The lines a tracefs instance of our own shows for events of `comm` while `f` runs,
/// without the `task-pid [cpu] flags TIMESTAMP: ` part; `None` without tracefs instances.
/// The instance is removed whatever happens.
fn kernel_trace_lines(events: &[&str], comm: &str, f: impl FnOnce()) -> Option<Vec<String>> {
    struct Instance(PathBuf, Vec<String>);
    impl Drop for Instance {
        fn drop(&mut self) {
            for ev in &self.1 {
                let _ = std::fs::write(self.0.join("events").join(ev).join("enable"), "0");
            }
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let dir = PathBuf::from("/sys/kernel/tracing/instances")
        .join(format!("ktap-test-{}", std::process::id()));
    std::fs::create_dir(&dir).ok()?;
    let inst = Instance(dir, events.iter().map(|e| e.replace(':', "/")).collect());
    for ev in &inst.1 {
        std::fs::write(inst.0.join("events").join(ev).join("enable"), "1").ok()?;
    }
    f();
    for ev in &inst.1 {
        std::fs::write(inst.0.join("events").join(ev).join("enable"), "0").ok()?;
    }
    let trace = std::fs::read_to_string(inst.0.join("trace")).ok()?;
    Some(
        trace
            .lines()
            .filter(|l| !l.starts_with('#') && l.trim_start().starts_with(&format!("{comm}-")))
            .filter_map(|l| l.split_once(": ").map(|(_, ev)| ev.to_string()))
            .collect(),
    )
}

/// A uprobe's `argstr` is the kernel's uprobe-event form: the address probed, then each
/// fetch-arg (a string quoted, `:u32` in decimal: `O_CLOEXEC`); a uretprobe's is the return address and the function.
#[test]
fn uprobe_argstr_has_the_kernels_uprobe_event_form() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    let script = format!(
        "trace probe:{libc}:openat path=+0(%si):string flags=%dx:u32 {{ if (execname == \"ktap-workload\") {{ print(argstr) }} }} \
         trace probe:{libc}:openat%return {{ if (execname == \"ktap-workload\" && arg1 >= 0) {{ print(argstr) }} }}"
    );
    let out = run(&[
        "-q",
        "-e",
        &script,
        "--",
        w.to_str().unwrap(),
        "open",
        "/etc/hostname",
        "1",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    let entry = so
        .lines()
        .find(|l| l.ends_with(") path=\"/etc/hostname\" flags=524288"));
    let entry = entry.unwrap_or_else(|| panic!("{so}"));
    assert!(entry.starts_with("openat: (0x7f"), "{so}");
    assert!(
        so.lines()
            .any(|l| l.starts_with("openat: (0x") && l.ends_with(" <- openat)")),
        "{so}"
    );
}

/// `argstr` names the kernel functions an event's `print fmt` prints with `%ps`, as the trace
/// file does: `timer:timer_start` shows its callback as `function=process_timeout`.
#[test]
fn argstr_names_kernel_functions() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-e",
        "var n = 0 trace timer:timer_start { if (n < 20) { print(argstr) } n += 1 }",
        "--",
        w.to_str().unwrap(),
        "sleep",
        "300",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    let named = so
        .lines()
        .filter_map(|l| l.split_once(" function="))
        .any(|(head, rest)| {
            head.starts_with("timer_start: timer=")
                && rest.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
        });
    assert!(named, "{so}");
}

#[test]
fn sample_argstr_prints_events_as_the_kernels_trace_file() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let path = sample("syscalls/argstr.kp");
    // ktap and a tracefs instance watch the same events of the same workload; every line
    // ktap prints must be one the kernel wrote (after its timestamp). Now and then one side
    // misses an event the other saw (other tracers share these tracepoints while tests
    // run), so a run that proves nothing is taken again.
    let mut last = String::new();
    for _ in 0..5 {
        let mut out = None;
        let theirs = kernel_trace_lines(
            &["syscalls:sys_enter_openat", "sched:sched_process_exec"],
            "ktap-workload",
            || {
                out = Some(run(&[
                    "-q",
                    "-v",
                    "-T",
                    &path,
                    "ktap-workload",
                    "--",
                    w.to_str().unwrap(),
                    "open",
                    "/etc/hostname",
                    "2",
                ]))
            },
        );
        let out = out.expect("ran ktap");
        let (so, se) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{so}\n{se}");
        assert_nothing_left(&se);
        let Some(theirs) = theirs else {
            eprintln!("no tracefs instances here: the lines are not compared");
            return;
        };
        // `    0.001234: EVENT`: the stamp, then the event as the trace file shows it.
        let ours: Vec<&str> = so
            .lines()
            .map(|l| l.split_once(": ").map_or(l, |(_, ev)| ev))
            .collect();
        let exec = ours.iter().any(|l| {
            l.starts_with("sched_process_exec: filename=") && theirs.iter().any(|t| t == l)
        });
        let opens = ours
            .iter()
            .filter(|l| l.starts_with("sys_openat(dfd: ") && theirs.iter().any(|t| t == *l))
            .count();
        let strangers: Vec<&&str> = ours
            .iter()
            .filter(|l| !theirs.iter().any(|t| t == **l))
            .collect();
        if exec && opens >= 2 && strangers.is_empty() {
            return;
        }
        last = format!("exec: {exec}, opens: {opens}, not the kernel's: {strangers:?}\nours:\n{so}\ntheirs:\n{}", theirs.join("\n"));
    }
    panic!("{last}");
}

/// Compiles a sample for each of several targets with `ktapc --target`.
fn compiles_for_targets(name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for target in [
        "x86_64",
        "aarch64",
        "armv7",
        "mipsel",
        "mips",
        "powerpc64le",
    ] {
        let obj = dir.join(format!("{}-{target}.kpo", name.replace('/', "-")));
        let out = run(&[
            "ktapc",
            "--target",
            target,
            "-o",
            obj.to_str().unwrap(),
            &sample(name),
        ]);
        assert!(
            out.status.success() && obj.exists(),
            "{name} for {target}: {}",
            text(&out.stderr)
        );
        let _ = std::fs::remove_file(&obj);
    }
}

#[test]
fn kprobe_samples_compile_for_every_kind_of_board() {
    // This kernel has no kprobes: the boards run these; here they must compile (and pass
    // ktap's verifier, which ktapc runs) for each architecture.
    for name in [
        "kprobe/funclatency.kp",
        "kprobe/vfs_read_sizes.kp",
        "net/tcp_connect.kp",
    ] {
        compiles_for_targets(name);
    }
}

#[test]
fn sample_syscall_stacks_profiles_user_stacks() {
    let so = sample_run("uprobe/syscall_stacks.kp", &[], &["getppid", "100"]);
    assert!(so.contains("Distribution"), "{so}");
    // The workload's 100 calls share one stack, whatever the machine's other callers.
    assert!(
        so.lines().any(|l| l.split_once(" |").is_some_and(|(_, r)| r
            .trim_start_matches('@')
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|n| n >= 100))),
        "{so}"
    );
}

/// A uprobe glob is a probe on every function it matches in the file: here the C library's
/// `sys*` (`syscall`, `sysconf`, `syslog`, ...), and each counts under its name.
#[test]
fn a_uprobe_glob_probes_each_matching_function() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var s = {} trace probe:/lib/x86_64-linux-gnu/libc.so.6:sys* { if (execname == \"ktap-workload\") { s[probename] += 1 } } trace_end { print_hist(s) }",
        "--",
        w.to_str().unwrap(),
        "getppid",
        "3000",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert_eq!(hist_count(&so, "syscall"), Some(3000), "{so}");
    assert!(program_ids(&se).len() > 2, "{se}");
    assert_nothing_left(&se);
}

/// A function a glob matched that the kernel refuses to probe (x86_64 glibc's
/// `pthread_spin_lock` begins with a lock-prefixed instruction, which uprobes cannot step
/// over) is skipped with a warning that says why; when it is all the glob matched, the run
/// fails with that reason.
#[test]
fn a_glob_skips_functions_the_kernel_refuses() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    let script = format!("trace probe:{libc}:pthread_spin_* {{ }}");
    let out = run(&["-q", "-v", "-e", &script, "--", "/bin/true"]);
    let se = text(&out.stderr);
    assert!(out.status.success(), "{se}");
    assert!(
        se.contains("ktap: warning: skipped: cannot attach probe `pthread_spin_lock`")
            && se.contains("uprobes cannot probe the instruction at this address"),
        "{se}"
    );
    assert_nothing_left(&se);

    let script = format!("trace probe:{libc}:pthread_spin_lock* {{ }}");
    let out = run(&["-q", "-e", &script, "--", "/bin/true"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        se.starts_with("ktap: cannot attach probe `pthread_spin_lock`") && !se.contains("warning"),
        "{se}"
    );
}

/// User stacks as table keys, walked with pairs() in trace_end, are named after the workload
/// has exited: ktap keeps the last copy of its memory map (the workload's `syscall` comes from
/// the C library it maps at start).
#[test]
fn user_stack_keys_are_named_after_the_workload_exits() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let w = workload();
    let out = run(&[
        "-q",
        "-v",
        "-e",
        "var s = {} trace probe:/lib/x86_64-linux-gnu/libc.so.6:syscall { if (execname == \"ktap-workload\") { s[ustack(4)] += 1 } } trace_end { for (k, v in pairs(s)) { print(v) print(k) } }",
        "--",
        w.to_str().unwrap(),
        "getppid",
        "20000",
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    let lines: Vec<&str> = so.lines().collect();
    assert_eq!(lines.first(), Some(&"20000"), "{so}");
    assert_eq!(lines.get(1), Some(&"    syscall"), "{so}");
    assert_nothing_left(&se);
}

/// A kprobe's function is checked against kallsyms only when the kernel refuses it: a typo is
/// one located message with near names, and a real function on this kernel (which has no
/// kprobes) says so.
#[test]
fn kprobe_refusals_name_the_reason() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(&["-q", "-e", "trace probe:vfs_raed { }"]);
    assert_eq!(out.status.code(), Some(1));
    let se = text(&out.stderr);
    assert!(
        se.starts_with("-e:1:1: error: no kernel function `vfs_raed`; did you mean `vfs_read`"),
        "{se}"
    );
    if !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        let out = run(&["-q", "-e", "trace probe:vfs_read { }"]);
        assert_eq!(out.status.code(), Some(1));
        let se = text(&out.stderr);
        assert!(se.contains("this kernel has no kprobes"), "{se}");
    }
}

#[test]
fn sample_cxx_throw_counts_exceptions() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cxx-throw");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("thrower.cc");
    std::fs::write(
        &src,
        "int main() { int n = 0; for (int i = 0; i < 3; i++) { try { throw i; } catch (int) { n++; } } return n == 3 ? 0 : 1; }\n",
    )
    .expect("write thrower.cc");
    let exe = dir.join("thrower");
    let built = Command::new("g++")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("g++ (make deps installs it)");
    assert!(built.success(), "g++ failed");
    let out = run(&[
        "-q",
        "-v",
        &sample("usdt/cxx_throw.kp"),
        "--",
        exe.to_str().unwrap(),
    ]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    let throws: Vec<&str> = so
        .lines()
        .filter(|l| {
            l.starts_with("thrower[") && l.contains("] threw an exception (type_info at 0x")
        })
        .collect();
    assert_eq!(throws.len(), 3, "{so}");
    let row = so.lines().find_map(|l| {
        let (key, bar) = l.split_once(" |")?;
        key.trim()
            .starts_with("thrower[")
            .then(|| bar.trim_start_matches(['@', ' ']).trim().to_string())
    });
    assert_eq!(row.as_deref(), Some("3"), "{so}");
    assert_nothing_left(&se);
}

#[test]
fn an_object_keeps_the_options_it_was_compiled_with() {
    let obj = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stamped.kpo");
    let out = run(&[
        "ktapc",
        "-T",
        "-C",
        "0",
        "-o",
        obj.to_str().unwrap(),
        "-e",
        "trace syscalls:sys_enter_getppid { print(pid) }",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["-T", obj.to_str().unwrap()]);
    let _ = std::fs::remove_file(&obj);
    assert_eq!(out.status.code(), Some(2));
    let se = text(&out.stderr);
    assert!(se.contains("-p, -C and -T were fixed by ktapc"), "{se}");
}
