//! The board's side: /init of the initramfs. It mounts what ktap needs, runs the plan's steps
//! in every JIT mode, reports each on the console, checks that nothing stayed in the kernel,
//! and powers the machine off. `ktap.mode=shell` on the kernel command line gives a person a
//! prompt instead.

use crate::proto::{self, Line, Plan, Step};
use std::ffi::CString;
use std::fs;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const JIT: &str = "/proc/sys/net/core/bpf_jit_enable";
const TRACEFS: &str = "/sys/kernel/tracing";

/// Runs as pid 1 and never returns: every path ends in power-off, because an init that exits
/// panics the kernel and the host would see a crash instead of the result.
pub fn main() -> ! {
    mount_all();
    if let Err(e) = loopback_up() {
        eprintln!("ktap-board: bringing up lo: {e}");
    }
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let param = |key: &str| {
        cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    let nonce = param("ktap.nonce").unwrap_or_else(|| "0".into());
    let say = |l: &Line| println_console(&proto::report(&nonce, l));
    let uts = uname();
    say(&Line::Hello {
        release: uts.0,
        machine: uts.1,
    });
    match param("ktap.mode").as_deref() {
        Some("shell") => shell(),
        Some("dump") => dump(&say),
        _ => match fs::read_to_string("/board/plan").map_err(|e| format!("/board/plan: {e}")) {
            Ok(text) => match proto::read_plan(&text) {
                Ok(plan) => run_plan(&plan, &say),
                Err(e) => say(&Line::Err {
                    text: proto::escape(&e),
                }),
            },
            Err(e) => say(&Line::Err {
                text: proto::escape(&e),
            }),
        },
    }
    say(&Line::Done);
    power_off()
}

/// One write per line, so that the line reaches the console whole.
fn println_console(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{s}\n").as_bytes());
    let _ = out.flush();
}

fn mount_all() {
    for (src, dir, fs_type) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tracefs", TRACEFS, "tracefs"),
        ("debugfs", "/sys/kernel/debug", "debugfs"),
        ("tmpfs", "/tmp", "tmpfs"),
    ] {
        let _ = fs::create_dir_all(dir);
        let c = |s: &str| CString::new(s).expect("no NUL in a constant");
        let (src, d, t) = (c(src), c(dir), c(fs_type));
        // SAFETY: three valid NUL-terminated strings and no data argument.
        let rc = unsafe { libc::mount(src.as_ptr(), d.as_ptr(), t.as_ptr(), 0, std::ptr::null()) };
        if rc != 0 && fs_type != "debugfs" {
            let e = std::io::Error::last_os_error();
            eprintln!("ktap-board: mount {fs_type} on {dir}: {e}");
        }
    }
}

/// Brings the loopback interface up, as any init does: the board has no other network, and the
/// TCP cases connect to 127.0.0.1, which has no route while `lo` is down.
fn loopback_up() -> Result<(), std::io::Error> {
    // SAFETY: socket takes no pointers; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; the name is "lo" and NUL, within IFNAMSIZ.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, &b) in req.ifr_name.iter_mut().zip(b"lo") {
        *d = b as libc::c_char;
    }
    // SAFETY: both requests read and write the one ifreq passed, which outlives the calls.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) != 0 {
            Err(std::io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) != 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd is the socket opened above, closed once.
    unsafe { libc::close(fd) };
    result
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain bytes; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| {
        let b: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    (field(&u.release), field(&u.machine))
}

fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; as pid 1 with CAP_SYS_BOOT reboot does not return.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // Only reached where the kernel cannot power off: halting keeps the kernel from panicking
    // on init's exit, and the host's timeout reports the missing power-off.
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// `ktap.mode=dump`: the kernel description for `ktapc --kernel`, on the console.
fn dump(say: &dyn Fn(&Line)) {
    let file = "/tmp/kernel.desc";
    let st = Command::new("/bin/ktap-selftest")
        .args(["--dump", file])
        .stdout(Stdio::null())
        .status();
    match (st, fs::read(file)) {
        (Ok(st), Ok(bytes)) if st.success() => {
            for chunk in bytes.chunks(256) {
                let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
                say(&Line::Data { text: hex });
            }
        }
        (st, _) => say(&Line::Err {
            text: proto::escape(&format!("ktap-selftest --dump failed: {st:?}")),
        }),
    }
}

/// Switches the JIT; `Err` says why the mode cannot be had on this kernel.
fn set_jit(mode: &str) -> Result<(), String> {
    let want = if mode == "on" { "1" } else { "0" };
    fs::write(JIT, want).map_err(|e| format!("{JIT}: {e}"))?;
    let now = fs::read_to_string(JIT).map_err(|e| format!("{JIT}: {e}"))?;
    if now.trim() != want {
        return Err(format!("{JIT} stays {} when set to {want}", now.trim()));
    }
    Ok(())
}

fn run_plan(plan: &Plan, say: &dyn Fn(&Line)) {
    for mode in &plan.modes {
        if let Err(why) = set_jit(mode) {
            say(&Line::NoMode {
                mode: mode.clone(),
                why,
            });
            continue;
        }
        for step in plan.steps.iter().filter(|s| s.modes.contains(mode)) {
            say(&Line::Begin {
                step: step.name.clone(),
                mode: mode.clone(),
            });
            run_step(step, say);
        }
    }
}

fn run_step(step: &Step, say: &dyn Fn(&Line)) {
    let programs_before = bpf_programs();
    // The streams go to files on /tmp (tmpfs), read once the command has ended: no pipe can
    // fill up and block it, and no reader threads are needed.
    let (out_path, err_path) = ("/tmp/step.out", "/tmp/step.err");
    let files = fs::File::create(out_path).and_then(|o| Ok((o, fs::File::create(err_path)?)));
    let (out_file, err_file) = match files {
        Ok(f) => f,
        Err(e) => return not_started(say, &format!("/tmp: {e}")),
    };
    let start = Instant::now();
    let child = Command::new(&step.argv[0])
        .args(&step.argv[1..])
        .env("PATH", "/bin")
        .current_dir("/board")
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return not_started(say, &format!("cannot start {}: {e}", step.argv[0])),
    };
    let deadline = start + Duration::from_millis(step.timeout_ms);
    let mut interrupted = step.interrupt_ms.is_none();
    let mut timed_out = false;
    let pid = child.id() as libc::pid_t;
    // wait4 rather than Child::wait: it reaps the child and says what it used.
    let reaped = loop {
        if let Some(r) = reap(pid, libc::WNOHANG) {
            break Some(r);
        }
        let now = Instant::now();
        if !interrupted && now >= start + Duration::from_millis(step.interrupt_ms.unwrap_or(0)) {
            // SAFETY: kill takes a pid and a signal number, no memory.
            unsafe { libc::kill(pid, libc::SIGINT) };
            interrupted = true;
        }
        if now >= deadline {
            timed_out = true;
            let _ = child.kill();
            break reap(pid, 0);
        }
        thread::sleep(Duration::from_millis(5));
    };
    let wall = start.elapsed();
    let ms = wall.as_millis() as u64;
    let lines = |bytes: Vec<u8>| -> Vec<String> {
        bytes
            .split(|&b| b == b'\n')
            .map(proto::escape_bytes)
            .collect::<Vec<_>>()
    };
    let mut o = lines(fs::read(out_path).unwrap_or_default());
    let mut e = lines(fs::read(err_path).unwrap_or_default());
    // A trailing newline leaves one empty piece that is not a line of output.
    for v in [&mut o, &mut e] {
        if v.last().is_some_and(String::is_empty) {
            v.pop();
        }
    }
    for text in o {
        say(&Line::Out { text });
    }
    for text in e {
        say(&Line::Err { text });
    }
    let rc = reaped.map_or(-1, |(status, _)| {
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -libc::WTERMSIG(status)
        }
    });
    if let Some((_, ru)) = reaped {
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        say(&Line::Usage(proto::Usage {
            wall_us: wall.as_micros() as u64,
            user_us: us(ru.ru_utime),
            sys_us: us(ru.ru_stime),
            maxrss_kib: ru.ru_maxrss as u64,
        }));
    }
    say(&Line::End {
        rc,
        ms,
        timed_out,
        leftover: leftover(programs_before),
    });
}

/// Reports a step that could not be started: its reason, then an end with status 127.
fn not_started(say: &dyn Fn(&Line), why: &str) {
    say(&Line::Err {
        text: proto::escape(why),
    });
    say(&Line::End {
        rc: 127,
        ms: 0,
        timed_out: false,
        leftover: String::new(),
    });
}

/// wait4 on `pid`: its status and what it used, once it has ended; `None` while it runs (with
/// WNOHANG) or when it cannot be waited for.
fn reap(pid: libc::pid_t, flags: libc::c_int) -> Option<(libc::c_int, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain numbers; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // The system call, not libc's wait4: on 32-bit targets musl's wait4 works on its
        // 64-bit-time rusage while the libc crate's is the kernel's own (long-sized times),
        // which is what the system call fills.
        // SAFETY: status and ru are valid and writable for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_wait4,
                pid,
                &mut status as *mut libc::c_int,
                flags,
                &mut ru as *mut libc::rusage,
            )
        } as libc::pid_t;
        if rc == pid {
            return Some((status, ru));
        }
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// What a step left in the kernel: probe definitions in tracefs, or BPF programs that were not
/// there before it ran (the kernel frees a program when its last link and fd are gone).
fn leftover(programs_before: usize) -> String {
    let mut left = Vec::new();
    for f in ["kprobe_events", "uprobe_events"] {
        if let Ok(text) = fs::read_to_string(format!("{TRACEFS}/{f}")) {
            let text = text.trim();
            if !text.is_empty() {
                left.push(format!("{f}: {}", text.replace('\n', "; ")));
            }
        }
    }
    // Programs are freed after an RCU grace period, so a just-ended step gets a moment.
    let mut now = bpf_programs();
    for _ in 0..50 {
        if now <= programs_before {
            break;
        }
        thread::sleep(Duration::from_millis(20));
        now = bpf_programs();
    }
    if now > programs_before {
        left.push(format!("{} BPF programs", now - programs_before));
    }
    left.join("; ")
}

/// How many BPF programs the kernel holds, by walking BPF_PROG_GET_NEXT_ID.
fn bpf_programs() -> usize {
    const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
    let mut n = 0;
    let mut id: u32 = 0;
    loop {
        // bpf_attr for GET_NEXT_ID: start_id, next_id, open_flags; the rest must be zero.
        let mut attr = [0u32; 4];
        attr[0] = id;
        // SAFETY: attr is a valid buffer of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_GET_NEXT_ID,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        if rc != 0 {
            return n;
        }
        id = attr[1];
        n += 1;
    }
}

/// A prompt for a person on the console: runs each line as a command (words split on blanks),
/// with `cd`, `cat`, `ls`, `echo [WORDS] [> FILE]` and `exit` built in, since the board has no
/// shell of its own.
fn shell() {
    println!("ktap board shell: commands from /bin (ktap, ktapc, ktap-workload, ...), cd, cat, ls, echo [> FILE]; `exit` powers off");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("board# ");
        let _ = std::io::stdout().flush();
        let Some(Ok(line)) = lines.next() else {
            return;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            [] => {}
            ["exit"] => return,
            ["cat", ref files @ ..] => {
                for f in files {
                    match fs::read(f) {
                        Ok(b) => {
                            let _ = std::io::stdout().write_all(&b);
                        }
                        Err(e) => println!("cat: {f}: {e}"),
                    }
                }
            }
            ["ls", ref dirs @ ..] => {
                for d in if dirs.is_empty() { &["."][..] } else { dirs } {
                    match fs::read_dir(d) {
                        Ok(rd) => {
                            let mut names: Vec<String> = rd
                                .filter_map(|e| {
                                    Some(e.ok()?.file_name().to_string_lossy().into_owned())
                                })
                                .collect();
                            names.sort();
                            println!("{}", names.join("  "));
                        }
                        Err(e) => println!("ls: {d}: {e}"),
                    }
                }
            }
            ["echo", ref rest @ ..] => match rest.iter().position(|w| *w == ">") {
                Some(at) if at + 2 == rest.len() => {
                    if let Err(e) = fs::write(rest[at + 1], rest[..at].join(" ") + "\n") {
                        println!("echo: {}: {e}", rest[at + 1]);
                    }
                }
                _ => println!("{}", rest.join(" ")),
            },
            ["cd", dir] => {
                if let Err(e) = std::env::set_current_dir(dir) {
                    println!("cd: {dir}: {e}");
                }
            }
            [cmd, ref args @ ..] => match Command::new(cmd).args(args).env("PATH", "/bin").status()
            {
                Ok(st) if !st.success() => println!("({st})"),
                Ok(_) => {}
                Err(e) => println!("{cmd}: {e}"),
            },
        }
    }
}
