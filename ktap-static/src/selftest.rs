//! The `ktap-selftest` applet: what the running kernel offers ktap, one line per feature with
//! the reason, and `--dump FILE`, the kernel's description for `ktapc --kernel FILE`.

use crate::kernel;
use ktap_bpf::Target;
use ktap_object::{describe_target, KernelDesc};
use std::io;
use std::path::{Path, PathBuf};

const USAGE: &str = "usage: ktap-selftest [--dump FILE [--tracefs DIR] [CATEGORY[:NAME]...]]

Reports whether the running kernel has what ktap uses: the bpf(2) syscall, the BPF JIT,
tracefs, kprobes, uprobes, BTF and perf events, each with the reason.

  --dump FILE     write this kernel's description (tracepoint layouts, release, architecture)
                  to FILE, for `ktapc --kernel FILE` on another machine; CATEGORY[:NAME]
                  patterns (with * globs) keep only those tracepoints
  --tracefs DIR   read tracepoints from DIR instead of the mounted tracefs";

/// Entry point; `args[0]` is the program name.
pub fn main(args: Vec<String>) -> i32 {
    let mut dump: Option<PathBuf> = None;
    let mut tracefs: Option<PathBuf> = None;
    let mut patterns = Vec::new();
    let mut it = args.into_iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            "--dump" | "--tracefs" => {
                let Some(v) = it.next() else {
                    eprintln!("ktap-selftest: {a} needs a value\n{USAGE}");
                    return 2;
                };
                if a == "--dump" {
                    dump = Some(v.into());
                } else {
                    tracefs = Some(v.into());
                }
            }
            s if s.starts_with('-') => {
                eprintln!("ktap-selftest: unknown option {s}\n{USAGE}");
                return 2;
            }
            _ => patterns.push(a),
        }
    }
    match dump {
        Some(file) => write_dump(&file, tracefs, &patterns),
        None if tracefs.is_some() || !patterns.is_empty() => {
            eprintln!("ktap-selftest: --tracefs and patterns go with --dump\n{USAGE}");
            2
        }
        None => {
            report();
            0
        }
    }
}

/// The mounted tracefs (mounting it as ktap itself would), or why there is none.
fn tracefs_root() -> Result<PathBuf, String> {
    crate::loader::tracefs::find_or_mount().map_err(|e| e.to_string())
}

fn write_dump(file: &Path, tracefs: Option<PathBuf>, patterns: &[String]) -> i32 {
    let root = match tracefs.map_or_else(tracefs_root, Ok) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ktap-selftest: {e}");
            return 1;
        }
    };
    let read = match kernel::read_formats(&root, patterns) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ktap-selftest: {e}");
            return 1;
        }
    };
    if let Some(first) = read.failed.first() {
        eprintln!(
            "ktap-selftest: warning: {} tracepoint formats could not be read and are left out, e.g. {}",
            read.failed.len(),
            first
        );
    }
    if read.formats.is_empty() {
        eprintln!(
            "ktap-selftest: no tracepoints under {} match",
            root.join("events").display()
        );
        return 1;
    }
    let desc = KernelDesc::new(Target::host(), kernel::release(), read.formats);
    let bytes = desc.encode();
    if let Err(e) = std::fs::write(file, &bytes) {
        eprintln!("ktap-selftest: cannot write {}: {}", file.display(), e);
        return 1;
    }
    eprintln!(
        "ktap-selftest: wrote {} tracepoint layouts of {} kernel {} to {} ({} bytes)",
        desc.formats().len(),
        desc.target.name(),
        desc.release,
        file.display(),
        bytes.len()
    );
    0
}

/// One feature's answer.
struct Check {
    name: &'static str,
    ok: bool,
    why: String,
}

fn report() {
    println!(
        "ktap {} for {}, kernel {}",
        env!("CARGO_PKG_VERSION"),
        describe_target(Target::host()),
        kernel::release()
    );
    let root = tracefs_root();
    let mut checks = vec![bpf_syscall(), bpf_jit()];
    checks.push(match &root {
        Ok(r) => Check {
            name: "tracefs",
            ok: true,
            why: r.display().to_string(),
        },
        Err(e) => Check {
            name: "tracefs",
            ok: false,
            why: e.clone(),
        },
    });
    for (name, file, config) in [
        ("kprobes", "kprobe_events", "CONFIG_KPROBE_EVENTS"),
        ("uprobes", "uprobe_events", "CONFIG_UPROBE_EVENTS"),
    ] {
        checks.push(match &root {
            Ok(r) => {
                let path = r.join(file);
                let ok = path.exists();
                Check {
                    name,
                    ok,
                    why: if ok {
                        path.display().to_string()
                    } else {
                        format!(
                            "no {} (the kernel is built without {config})",
                            path.display()
                        )
                    },
                }
            }
            Err(_) => Check {
                name,
                ok: false,
                why: "needs tracefs".into(),
            },
        });
    }
    checks.push(btf());
    checks.push(perf_events());
    checks.push(Check {
        name: "BPF loader",
        ok: cfg!(not(target_arch = "powerpc")),
        why: if cfg!(target_arch = "powerpc") {
            "this build has no BPF loader (32-bit PowerPC): use --vm".into()
        } else {
            "in this build".into()
        },
    });
    for c in checks {
        println!(
            "{:<12} {:<4} {}",
            c.name,
            if c.ok { "yes" } else { "no" },
            c.why
        );
    }
}

/// The errno of the last failed call, with its name where the message needs one.
fn errno_text(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EINVAL) => "EINVAL",
        _ => "",
    };
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    if name.is_empty() {
        text
    } else {
        format!("{name}: {text}")
    }
}

fn read_sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn bpf_syscall() -> Check {
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries, then
    // zeroes; a one-entry array map is the smallest thing bpf(2) creates.
    let mut attr = [0u32; 30];
    attr[..4].copy_from_slice(&[2, 4, 4, 1]);
    // SAFETY: `attr` is a readable buffer of the size passed; the kernel only reads it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0 as libc::c_long,
            attr.as_ptr(),
            std::mem::size_of_val(&attr) as libc::c_long,
        )
    };
    if fd >= 0 {
        // SAFETY: the descriptor was just returned to us and nothing else holds it.
        unsafe { libc::close(fd as libc::c_int) };
        return Check {
            name: "bpf syscall",
            ok: true,
            why: "bpf(2) created a map".into(),
        };
    }
    let e = io::Error::last_os_error();
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "bpf(2) is not implemented (ENOSYS): the kernel is built without CONFIG_BPF_SYSCALL, or this runs under qemu-user".into(),
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "bpf(2) refused ({}): run as root (kernel.unprivileged_bpf_disabled = {})",
            errno_text(&e),
            read_sysctl("/proc/sys/kernel/unprivileged_bpf_disabled").unwrap_or_else(|| "?".into())
        ),
        _ => format!("bpf(2) failed: {}", errno_text(&e)),
    };
    Check {
        name: "bpf syscall",
        ok: false,
        why,
    }
}

fn bpf_jit() -> Check {
    const PATH: &str = "/proc/sys/net/core/bpf_jit_enable";
    let (ok, why) = match std::fs::read_to_string(PATH) {
        Ok(v) => match v.trim() {
            "0" => (
                false,
                format!("off: programs run in the kernel's interpreter (echo 1 > {PATH})"),
            ),
            "2" => (true, format!("{PATH} = 2 (on, with debug output)")),
            v => (true, format!("{PATH} = {v}")),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => (
            false,
            format!("no {PATH}: the kernel is built without a BPF JIT for this architecture (programs run in the interpreter)"),
        ),
        Err(e) => (false, format!("cannot read {PATH}: {}", errno_text(&e))),
    };
    Check {
        name: "bpf JIT",
        ok,
        why,
    }
}

fn btf() -> Check {
    const PATH: &str = "/sys/kernel/btf/vmlinux";
    let (ok, why) = match std::fs::metadata(PATH) {
        Ok(m) => (
            true,
            format!("{PATH} ({} KiB); ktap does not need it", m.len() / 1024),
        ),
        Err(_) => (
            false,
            format!("no {PATH} (the kernel is built without CONFIG_DEBUG_INFO_BTF); ktap does not need it"),
        ),
    };
    Check {
        name: "BTF",
        ok,
        why,
    }
}

/// `struct perf_event_attr` up to the fields this check sets (PERF_ATTR_SIZE_VER0, 64
/// bytes); the flag bits are left zero so their layout, which differs between byte orders,
/// does not matter.
#[repr(C)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    rest: [u64; 6],
}

/// perf_event_open's flag for a close-on-exec descriptor (not in the libc crate).
const PERF_FLAG_FD_CLOEXEC: libc::c_long = 8;

fn perf_events() -> Check {
    // A software cpu-clock counter on this process: what ktap's profile probes and the VM
    // executor's events are made of, and allowed at every perf_event_paranoid level for root.
    let attr = PerfEventAttr {
        type_: 1,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: 0,
        rest: [0; 6],
    };
    // SAFETY: `attr` is a valid perf_event_attr of the size it declares; the kernel reads it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            0 as libc::c_long,
            -1 as libc::c_long,
            -1 as libc::c_long,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd >= 0 {
        // SAFETY: the descriptor was just returned to us and nothing else holds it.
        unsafe { libc::close(fd as libc::c_int) };
        return Check {
            name: "perf events",
            ok: true,
            why: "perf_event_open(2) opened a cpu-clock counter".into(),
        };
    }
    let e = io::Error::last_os_error();
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::ENOENT) => format!(
            "perf_event_open(2) failed ({}): the kernel is built without CONFIG_PERF_EVENTS",
            errno_text(&e)
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "perf_event_open(2) refused ({}): run as root (kernel.perf_event_paranoid = {})",
            errno_text(&e),
            read_sysctl("/proc/sys/kernel/perf_event_paranoid").unwrap_or_else(|| "?".into())
        ),
        _ => format!("perf_event_open(2) failed: {}", errno_text(&e)),
    };
    Check {
        name: "perf events",
        ok: false,
        why,
    }
}
