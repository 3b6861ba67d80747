//! Processes and the kernel as the benchmark observes them: spawning a tracer in its own
//! process group, its exit with wait4's resource usage, the BPF programs it holds (from
//! /proc/PID/fdinfo), their run counts (kernel BPF statistics) and their size (bpftool).

use std::fs::File;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// A started process. Dropping it before [`Spawned::wait`] kills its whole process group, so
/// a failed measurement leaves no tracer (or a tracer's child) behind.
pub struct Spawned {
    pid: i32,
    /// Just before the fork: "launch" in every figure.
    pub start: Instant,
    pub stderr: PathBuf,
    reaped: bool,
}

/// What [`Spawned::interrupt`] saw.
pub struct Watched {
    /// When the SIGINT was sent.
    pub sent: Instant,
    pub exit: Exit,
    /// Bytes.
    pub peak_rss: u64,
    /// Whether the first SIGINT was not enough.
    pub resent: bool,
}

/// Process groups of the processes alive now, for [`kill_on_signal`]'s handler.
static GROUPS: [AtomicI32; 4] = [const { AtomicI32::new(0) }; 4];

fn register(pid: i32) {
    let _ = GROUPS.iter().find(|g| {
        g.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
}

fn unregister(pid: i32) {
    for g in &GROUPS {
        let _ = g.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: kill, signal and raise are async-signal-safe, and the atomics are lock-free.
    unsafe {
        for g in &GROUPS {
            let pid = g.load(Ordering::SeqCst);
            if pid > 0 {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Every tracer runs in a process group of its own (so that whatever it leaves behind can be
/// killed with it), which a Ctrl-C at the terminal does not reach: on SIGINT, SIGTERM or
/// SIGHUP the harness kills those groups before it dies itself. Killed tracers detach too:
/// their probes live only as long as their descriptors.
pub fn kill_on_signal() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: on_signal is an extern "C" fn doing only async-signal-safe work.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// How a process ended.
pub struct Exit {
    /// When the harness saw it exit (before reaping, so rusage collection is not counted).
    pub at: Instant,
    status: i32,
    usage: libc::rusage,
}

impl Exit {
    /// User plus system CPU time of the process and of the children it waited for.
    pub fn cpu(&self) -> Duration {
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(self.usage.ru_utime) + tv(self.usage.ru_stime)
    }

    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    pub fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit status {}", libc::WEXITSTATUS(self.status))
        } else {
            format!("killed by signal {}", libc::WTERMSIG(self.status))
        }
    }
}

/// Starts `argv` with stdin from /dev/null and stdout/stderr into files `out` and `err`.
pub fn spawn(argv: &[String], out: &Path, err: &Path) -> Result<Spawned, String> {
    let (prog, args) = argv.split_first().ok_or("an empty command")?;
    let file = |p: &Path| File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(file(out)?)
        .stderr(file(err)?)
        .process_group(0);
    let start = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{prog}`: {e}"))?;
    register(child.id() as i32);
    Ok(Spawned {
        pid: child.id() as i32,
        start,
        stderr: err.to_path_buf(),
        reaped: false,
    })
}

impl Spawned {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the process has exited (it stays a zombie until [`Spawned::wait`]).
    pub fn exited(&self) -> bool {
        self.wait_id(libc::WNOHANG)
    }

    fn wait_id(&self, flags: i32) -> bool {
        // SAFETY: siginfo_t is plain data that waitid fills; si_pid stays 0 when nothing
        // has exited under WNOHANG.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | flags,
            )
        };
        rc == 0 && unsafe { info.si_pid() } != 0
    }

    /// Blocks until the process exits or `limit` passes, and says which. A pidfd becomes
    /// readable the moment the process exits, so the exit time stays as exact as a plain
    /// wait's, which a polling loop would blur by its interval.
    fn exits_within(&self, limit: Duration) -> Result<bool, String> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) };
        if fd < 0 {
            return Err(format!(
                "pidfd_open: {} (the harness needs Linux 5.3 or later)",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: the descriptor was just opened and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd, counted as one.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc > 0 {
                return Ok(true);
            }
            let e = std::io::Error::last_os_error();
            if rc < 0 && e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll on a pidfd: {e}"));
            }
            if rc == 0 && left.is_zero() {
                return Ok(false);
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
        unsafe { libc::kill(self.pid, sig) };
    }

    /// Waits for the exit, then kills whatever the process left in its group (ply, for one,
    /// can leave its `-c` child waiting forever when it fails) and reaps it.
    pub fn wait(mut self) -> Exit {
        self.wait_id(0);
        let at = Instant::now();
        let (status, usage) = self.reap();
        Exit { at, status, usage }
    }

    /// Sends SIGINT and waits for the exit like [`Spawned::wait`], reading the process's
    /// peak resident set (`VmHWM`) just before and then every 200 µs; the largest value read
    /// is the peak. (A process drops its memory before its descriptors when it exits, so the
    /// last read can come well before the exit.) wait4's `ru_maxrss` cannot serve: the kernel
    /// keeps there the larger of the peak and the image the process replaced at exec, here a
    /// fork of this harness, which is bigger than some tracers.
    ///
    /// A tracer still running 5 s later gets a second SIGINT (and `resent` is true): bpftrace
    /// 0.17 can miss one that lands just before it waits for events, and then waits for ever.
    /// 30 s after the first it is killed.
    pub fn interrupt(self) -> Watched {
        let mut peak = vm_hwm(self.pid).unwrap_or(0);
        let start = Instant::now();
        self.signal(libc::SIGINT);
        let mut resent = false;
        while !self.exited() {
            peak = peak.max(vm_hwm(self.pid).unwrap_or(0));
            let waited = start.elapsed();
            if waited > Duration::from_secs(30) {
                break;
            }
            if waited > Duration::from_secs(5) && !resent {
                self.signal(libc::SIGINT);
                resent = true;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Watched {
            sent: start,
            exit: self.wait(),
            peak_rss: peak,
            resent,
        }
    }

    fn reap(&mut self) -> (i32, libc::rusage) {
        self.reaped = true;
        let mut status = 0;
        // SAFETY: the group is the one this process leads; until it is reaped below its pid,
        // and so the group id, cannot be reused. rusage is plain data wait4 fills.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe {
            libc::kill(-self.pid, libc::SIGKILL);
            libc::wait4(self.pid, &mut status, 0, &mut usage);
        }
        unregister(self.pid);
        (status, usage)
    }

    /// The last lines of what the process wrote to stderr, for a failure message.
    pub fn stderr_tail(&self) -> String {
        stderr_tail(&self.stderr)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !self.reaped {
            self.reap();
        }
    }
}

/// The peak resident set of process `pid` so far, in bytes (None once it has exited).
fn vm_hwm(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

pub fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// Why [`run`] gave no exit figures.
pub struct RunError {
    pub message: String,
    /// The command ran past its limit and was killed: a hang this time, not a refusal.
    pub overran: bool,
}

/// Runs `argv` to its end, killing its process group if it is still running after `limit`;
/// its output goes to the files given.
pub fn run(
    argv: &[String],
    out: &Path,
    err: &Path,
    limit: Duration,
) -> Result<(Duration, Exit), RunError> {
    let failed = |what: String, overran| RunError {
        message: format!("`{}` {what}: {}", argv.join(" "), stderr_tail(err)),
        overran,
    };
    let p = spawn(argv, out, err).map_err(|message| RunError {
        message,
        overran: false,
    })?;
    let start = p.start;
    if !p.exits_within(limit).map_err(|e| failed(e, false))? {
        // Dropping `p` kills the group and reaps it.
        return Err(failed(
            format!("did not finish within {limit:?}, killed"),
            true,
        ));
    }
    let exit = p.wait();
    if !exit.success() {
        return Err(failed(format!("failed ({})", exit.describe()), false));
    }
    Ok((exit.at - start, exit))
}

/// While held, the kernel counts every BPF program run (BPF_ENABLE_STATS); closing it
/// turns the counting off again, so per-event figures are measured without its overhead.
pub struct BpfStats {
    _fd: OwnedFd,
}

pub fn enable_bpf_stats() -> Result<BpfStats, String> {
    const BPF_ENABLE_STATS: libc::c_long = 32;
    // union bpf_attr { struct { __u32 type; } enable_stats; }, type BPF_STATS_RUN_TIME = 0.
    let attr = [0u8; 16];
    // SAFETY: attr is a readable buffer of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_ENABLE_STATS,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(format!(
            "BPF_ENABLE_STATS: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a non-negative result is a new descriptor nobody else owns.
    Ok(BpfStats {
        _fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
    })
}

/// CPU time process `pid` has run so far, all threads (the first field of each thread's
/// schedstat, in nanoseconds): unlike wall time, it does not grow while the process waits
/// for a CPU on a loaded machine.
pub fn cpu_so_far(pid: i32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// A BPF program a process holds open.
pub struct HeldProgram {
    pub id: u32,
    /// Runs counted while [`BpfStats`] was held.
    pub run_cnt: u64,
}

/// The BPF programs process `pid` holds, from its descriptors' fdinfo.
pub fn programs(pid: i32) -> Vec<HeldProgram> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.filter_map(|e| e.ok()) {
        let is_prog =
            std::fs::read_link(entry.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:bpf-prog");
        if !is_prog {
            continue;
        }
        let info = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
        let Ok(text) = std::fs::read_to_string(info) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(id) = field("prog_id:") {
            found.push(HeldProgram {
                id: id as u32,
                run_cnt: field("run_cnt:").unwrap_or(0),
            });
        }
    }
    found
}

/// Instructions of program `id` as the kernel holds them after its rewrites, the count
/// `bpftool prog dump xlated` numbers (a 64-bit immediate load counts as 2).
pub fn xlated_insns(bpftool: &Path, id: u32) -> Option<u64> {
    let out = Command::new(bpftool)
        .args(["--json", "prog", "show", "id", &id.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = &text[text.find("\"bytes_xlated\":")? + "\"bytes_xlated\":".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse::<u64>().ok().map(|b| b / 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn run_kills_a_command_that_overruns() {
        let dir = std::env::temp_dir();
        let (out, err) = (dir.join("ktap-bench-t.out"), dir.join("ktap-bench-t.err"));
        let began = Instant::now();
        let e = run(
            &argv(&["sleep", "30"]),
            &out,
            &err,
            Duration::from_millis(200),
        )
        .err()
        .expect("sleep 30 cannot finish in 200 ms");
        assert!(e.overran, "{}", e.message);
        assert!(e.message.contains("did not finish within"), "{}", e.message);
        assert!(began.elapsed() < Duration::from_secs(10));
        let (wall, exit) = run(&argv(&["true"]), &out, &err, Duration::from_secs(30))
            .map_err(|e| e.message)
            .unwrap();
        assert!(exit.success() && wall < Duration::from_secs(30));
        let e = run(&argv(&["false"]), &out, &err, Duration::from_secs(30))
            .err()
            .expect("false fails");
        assert!(!e.overran && e.message.contains("failed"), "{}", e.message);
    }
}
