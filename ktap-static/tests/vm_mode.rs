//! The VM executor against this machine's kernel (as root): samples give the same output with
//! `--vm` as in the kernel (compared on what the deterministic workload contributes, since the
//! rest of the machine is busy too), `--record` and `ktap-vm --replay` agree, the fallback
//! happens when `bpf()` is missing, and `ktap-vm FILE.s` prints `r0`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// Runs are serialised: each opens hundreds of perf events or attaches probes.
static KERNEL: Mutex<()> = Mutex::new(());

fn ktap() -> &'static str {
    env!("CARGO_BIN_EXE_ktap")
}

fn workload() -> String {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let w = dir.join("ktap-workload");
    assert!(
        w.exists(),
        "{} is missing: cargo build -p ktap-workload",
        w.display()
    );
    w.to_string_lossy().into_owned()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(ktap())
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("start ktap");
    assert!(
        out.status.success(),
        "ktap {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `script` with the workload `work`, in the kernel and in the VM: the output lines `pick`
/// keeps, which must be equal and not empty.
fn same(script: &str, args: &[&str], work: &[&str], pick: impl Fn(&str) -> Option<String>) {
    let _guard = KERNEL.lock().unwrap_or_else(|p| p.into_inner());
    let w = workload();
    let mut outputs = Vec::new();
    for vm in [false, true] {
        let mut a: Vec<&str> = Vec::new();
        if vm {
            a.push("--vm");
        }
        a.push("-q");
        a.push(script);
        a.extend_from_slice(args);
        a.push("--");
        a.push(&w);
        a.extend_from_slice(work);
        let text = stdout(&run(&a));
        let kept: Vec<String> = text.lines().filter_map(&pick).collect();
        assert!(
            !kept.is_empty(),
            "{script} (vm: {vm}) printed nothing to compare:\n{text}"
        );
        outputs.push(kept);
    }
    assert_eq!(outputs[0], outputs[1], "{script}: kernel vs VM");
}

/// A histogram line of the workload: its name and count (the bar is relative to every other
/// process's counts too).
fn workload_count(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    (words.first() == Some(&"ktap-workload"))
        .then(|| format!("{} {}", words[0], words[words.len() - 1]))
}

/// The last word of lines starting with `key`.
fn count_of(key: &'static str) -> impl Fn(&str) -> Option<String> {
    move |l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        (words.first() == Some(&key)).then(|| words[words.len() - 1].to_string())
    }
}

#[test]
fn top_level_code_is_the_same() {
    let _guard = KERNEL.lock().unwrap_or_else(|p| p.into_inner());
    let kernel = stdout(&run(&["samples/basic/hello.kp"]));
    let vm = stdout(&run(&["--vm", "samples/basic/hello.kp"]));
    assert_eq!(kernel, vm);
    assert!(vm.contains("fib(10) =\t55"), "{vm}");
}

#[test]
fn syscall_counts_by_process_agree() {
    // The workload's own start-up system calls vary a little from run to run, so both modes
    // must count at least its getppid calls, and nearly the same.
    same(
        "samples/syscalls/count_by_proc.kp",
        &[],
        &["getppid", "5000"],
        |l| {
            let n: u64 = workload_count(l)?.rsplit(' ').next()?.parse().ok()?;
            Some(format!(
                "at least 5000, and at most 300 more: {}",
                (5_000..5_300).contains(&n)
            ))
        },
    );
}

#[test]
fn argstr_is_the_same() {
    // The events of the workload as text: its own openat(2) calls, without the filename's
    // address (which differs between runs).
    same(
        "samples/syscalls/argstr.kp",
        &["ktap-workload"],
        &["open", "/etc/hostname", "2"],
        |l| {
            let rest = l.strip_prefix("sys_openat(dfd: 0xffffff9c, filename: 0x")?;
            Some(rest.split_once(", ")?.1.to_string())
        },
    );
}

#[test]
fn syscall_counts_by_pid_are_the_same() {
    // The count is the last word; the pid (first) differs between the two runs.
    same(
        "samples/syscalls/count_by_pid.kp",
        &[],
        &["getppid", "1000"],
        |l| {
            l.contains("ktap-workload")
                .then(|| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        },
    );
}

#[test]
fn syscall_counts_by_name_agree() {
    same(
        "samples/syscalls/count_by_name.kp",
        &[],
        // Enough calls to stay in the chart's top 20 on a busy machine; other processes call
        // getppid too, so the workload's calls are a lower bound.
        &["getppid", "5000"],
        |l| {
            let n: u64 = count_of("sys_enter_getppid")(l)?.parse().ok()?;
            Some(format!("at least 5000: {}", n >= 5000))
        },
    );
}

#[test]
fn read_sizes_are_the_same() {
    // A size no other process on the machine asks for: its bucket holds the workload's reads.
    same(
        "samples/syscalls/read_size.kp",
        &[],
        &["read", "3000000", "50"],
        count_of("2097152"),
    );
}

#[test]
fn exec_events_are_the_same() {
    same("samples/sched/exec.kp", &["1"], &["getppid", "1"], |l| {
        l.ends_with(" ktap-workload")
            .then(|| "ktap-workload".to_string())
    });
}

#[test]
fn profile_sees_the_workload() {
    // Sampling is statistical: both modes must see the spinning workload.
    same(
        "samples/profile/sample_tasks.kp",
        &[],
        &["spin", "300"],
        |l| l.contains("ktap-workload").then(|| "seen".to_string()),
    );
}

#[test]
fn a_recording_replays_as_it_ran() {
    let _guard = KERNEL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = std::env::temp_dir().join(format!("ktap-vm-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rec");
    let f = file.to_str().unwrap();
    let w = workload();
    let script = "samples/syscalls/count_by_pid.kp";
    let live = stdout(&run(&[
        "--record", f, "-q", script, "--", &w, "getppid", "500",
    ]));
    let replayed = stdout(&run(&["ktap-vm", "--replay", f, script]));
    assert_eq!(live, replayed);
    assert!(replayed.contains("ktap-workload"), "{replayed}");
    // Another script over the same events; one over events never recorded is refused.
    let other = dir.join("other.kp");
    std::fs::write(
        &other,
        "var n = {}\ntrace raw_syscalls:sys_enter { n[execname] += 1 }\ntrace_end { print_hist(n) }\n",
    )
    .unwrap();
    let by_name = stdout(&run(&["ktap-vm", "--replay", f, other.to_str().unwrap()]));
    assert!(by_name.contains("ktap-workload"), "{by_name}");
    let out = Command::new(ktap())
        .args(["ktap-vm", "--replay", f, "samples/sched/exec.kp"])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // A cut copy is one clear sentence, not a panic.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let out = Command::new(ktap())
        .args(["ktap-vm", "--replay", f, script])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated ktap recording"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ktap_vm_runs_an_assembly_file() {
    let dir = std::env::temp_dir().join(format!("ktap-vm-asm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let s = dir.join("p.s");
    std::fs::write(&s, "r0 = -1\nr0 += 5 ; comment\nexit\n").unwrap();
    let out = run(&["ktap-vm", s.to_str().unwrap()]);
    assert_eq!(stdout(&out).lines().last(), Some("4"));
    std::fs::write(&s, "r1 = 0\nr0 = *(u64 *)(r1 +0)\nexit\n").unwrap();
    let out = Command::new(ktap())
        .args(["ktap-vm", s.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.s:2: runtime error at insn 1"), "{err}");
    assert!(err.contains("R1 invalid mem access 'null'"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without `bpf()` (a seccomp filter makes it fail with ENOSYS, as on a kernel built without
/// CONFIG_BPF_SYSCALL), ktap says so and runs the probes in the VM.
#[cfg(target_arch = "x86_64")]
#[test]
fn falls_back_to_the_vm_without_bpf() {
    use std::os::unix::process::CommandExt;
    let _guard = KERNEL.lock().unwrap_or_else(|p| p.into_inner());
    let w = workload();
    let mut cmd = Command::new(ktap());
    cmd.args([
        "-q",
        "samples/syscalls/count_by_proc.kp",
        "--",
        &w,
        "getppid",
        "300",
    ])
    .current_dir(root());
    // SAFETY: only prctl, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
            const NR_BPF: u32 = 321;
            let filter = [
                libc::sock_filter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 4,
                }, // ld arch
                libc::sock_filter {
                    code: 0x15,
                    jt: 0,
                    jf: 3,
                    k: AUDIT_ARCH_X86_64,
                },
                libc::sock_filter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 0,
                }, // ld nr
                libc::sock_filter {
                    code: 0x15,
                    jt: 0,
                    jf: 1,
                    k: NR_BPF,
                },
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x0005_0000 | libc::ENOSYS as u32,
                },
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x7fff_0000,
                },
            ];
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut _,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, 2, &prog as *const libc::sock_fprog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("no BPF system call"), "{err}");
    assert!(err.contains("userspace VM"), "{err}");
    assert!(stdout(&out).contains("ktap-workload"), "{}", stdout(&out));
}
