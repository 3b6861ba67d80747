//! The workloads: each loop issues exactly the syscalls its command names, straight through libc, and nothing else.

use std::ffi::{CStr, CString};
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::args::{Command, USAGE};

/// Runs one command; the error is a complete message naming the call and file that failed.
pub fn run(cmd: &Command) -> Result<(), String> {
    match *cmd {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Getppid { count } => {
            for _ in 0..count {
                getppid();
            }
            Ok(())
        }
        Command::Read { size, count } => {
            let zero = Fd::open(c"/dev/zero", libc::O_RDONLY)?;
            let mut buf = vec![0u8; size];
            for _ in 0..count {
                zero.read(&mut buf)?;
            }
            Ok(())
        }
        Command::Open { ref path, count } => open_close(path, count),
        Command::Write { count } => {
            let null = Fd::open(c"/dev/null", libc::O_WRONLY)?;
            for _ in 0..count {
                null.write_byte()?;
            }
            Ok(())
        }
        Command::Sleep { ms } => {
            std::thread::sleep(Duration::from_millis(ms));
            Ok(())
        }
        Command::Spin { ms } => {
            // Instant::now reads the clock through the vDSO, so the loop makes no syscalls
            // where the vDSO serves CLOCK_MONOTONIC.
            let end = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < end {
                std::hint::spin_loop();
            }
            Ok(())
        }
        Command::Fork { count } => {
            for _ in 0..count {
                fork_and_reap()?;
            }
            Ok(())
        }
        Command::Syscalls { count } => {
            let zero = Fd::open(c"/dev/zero", libc::O_RDONLY)?;
            let null = Fd::open(c"/dev/null", libc::O_WRONLY)?;
            let mut buf = [0u8; 8];
            for _ in 0..count {
                getppid();
                // Through syscall(2), like getppid: a libc that caches getpid would skip the call.
                // SAFETY: getpid takes no arguments and cannot fail.
                unsafe { libc::syscall(libc::SYS_getpid) };
                zero.read(&mut buf)?;
                null.write_byte()?;
            }
            Ok(())
        }
        Command::Call { count } => {
            for i in 1..=count as usize {
                std::hint::black_box(ktap_workload_add(std::hint::black_box(i), i * 2));
            }
            Ok(())
        }
        Command::Connect { count } => connect_loopback(count),
    }
}

/// `count` IPv4 TCP connections to a listener of its own on 127.0.0.1, each accepted and closed
/// before the next: every one passes through the kernel's tcp_v4_connect and tcp_connect.
fn connect_loopback(count: u64) -> Result<(), String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot listen on 127.0.0.1 (is the loopback interface up?): {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("getsockname on the listener: {e}"))?;
    for _ in 0..count {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
        let (accepted, _) = listener
            .accept()
            .map_err(|e| format!("accept on {addr}: {e}"))?;
        drop(stream);
        drop(accepted);
    }
    Ok(())
}

/// The uprobe target of `call`: a symbol of its own in the binary's symbol table, never
/// inlined, whose arguments and return value the board tests check (`a + b`). The arguments
/// are word-sized (C's `long`), one register each on every ABI: a 64-bit argument takes a pair
/// of registers on 32-bit ones.
#[no_mangle]
#[inline(never)]
pub extern "C" fn ktap_workload_add(a: usize, b: usize) -> usize {
    a + b
}

/// Through syscall(2) so that no libc wrapper can answer from a cache.
fn getppid() {
    // SAFETY: getppid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_getppid) };
}

fn open_close(path: &Path, count: u64) -> Result<(), String> {
    let name = path.display();
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("open {name}: the path contains a NUL byte"))?;
    for _ in 0..count {
        // SAFETY: cpath is a NUL-terminated string that outlives the call.
        let fd = unsafe {
            libc::openat(
                libc::AT_FDCWD,
                cpath.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(format!("open {name}: {}", io::Error::last_os_error()));
        }
        // SAFETY: fd was just opened here and is closed exactly once.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

fn fork_and_reap() -> Result<(), String> {
    // SAFETY: the child calls only _exit, which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: _exit ends the child without running the parent's atexit handlers or flushing its buffers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: pid is our own child and status is a valid place to write its status.
    if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        return Err(format!("waitpid {pid}: {}", io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!(
            "child {pid} did not exit cleanly (wait status {status:#x})"
        ));
    }
    Ok(())
}

/// A file descriptor opened before a loop, so the loop itself makes only the calls it counts.
struct Fd {
    fd: libc::c_int,
    path: &'static CStr,
}

impl Fd {
    fn open(path: &'static CStr, flags: libc::c_int) -> Result<Fd, String> {
        // SAFETY: path is a NUL-terminated static string.
        let fd = unsafe { libc::openat(libc::AT_FDCWD, path.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(format!(
                "open {}: {}",
                path.to_string_lossy(),
                io::Error::last_os_error()
            ));
        }
        Ok(Fd { fd, path })
    }

    /// One read(2) of the whole buffer.
    fn read(&self, buf: &mut [u8]) -> Result<(), String> {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(format!(
                "read {}: {}",
                self.path.to_string_lossy(),
                io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// One write(2) of a single byte.
    fn write_byte(&self) -> Result<(), String> {
        // SAFETY: the source is one valid byte.
        let n = unsafe { libc::write(self.fd, b"x".as_ptr().cast(), 1) };
        if n < 0 {
            return Err(format!(
                "write {}: {}",
                self.path.to_string_lossy(),
                io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned by this value and closed only here.
        unsafe { libc::close(self.fd) };
    }
}
