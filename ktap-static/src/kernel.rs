//! The running kernel as files describe it: its release, and every tracepoint layout under a
//! tracefs root, read for `ktap-selftest --dump` (and, where there is no loader, for compiling).

use ktap_bpf::kernel::{glob_match, parse_tp_format, TpFormat};
use std::path::Path;

/// `uname -r`, or "unknown" if the kernel will not say.
pub fn release() -> String {
    // SAFETY: utsname is plain bytes, zeroed is a valid value, and uname fills it in.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The number of online CPUs (at least 1).
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf has no memory preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).unwrap_or(1).max(1)
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `bpf_ktime_get_ns()`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// Tracepoint layouts read from one tracefs tree.
pub struct Formats {
    pub formats: Vec<TpFormat>,
    /// `category:name: why` for each format file that could not be read or parsed.
    pub failed: Vec<String>,
}

/// Every tracepoint under `root/events` whose `category:name` matches one of `patterns`
/// (`*` globs; no patterns means all of them).
pub fn read_formats(root: &Path, patterns: &[String]) -> Result<Formats, String> {
    let events = root.join("events");
    let categories = std::fs::read_dir(&events)
        .map_err(|e| format!("cannot list {}: {}", events.display(), e))?;
    let wanted = |c: &str, n: &str| {
        patterns.is_empty()
            || patterns.iter().any(|p| match p.split_once(':') {
                Some((pc, pn)) => glob_match(pc, c) && glob_match(pn, n),
                None => glob_match(p, c),
            })
    };
    let mut out = Formats {
        formats: Vec::new(),
        failed: Vec::new(),
    };
    for cat in categories.flatten() {
        let Ok(category) = cat.file_name().into_string() else {
            continue;
        };
        let Ok(names) = std::fs::read_dir(cat.path()) else {
            continue;
        };
        for ev in names.flatten() {
            let Ok(name) = ev.file_name().into_string() else {
                continue;
            };
            let path = ev.path().join("format");
            // Category directories also hold `enable` and `filter` files: only directories
            // with a format are tracepoints.
            if !path.is_file() || !wanted(&category, &name) {
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    parse_tp_format(&category, &t)
                        .map_err(|e| format!("line {}: {}", e.line, e.message))
                });
            match parsed {
                Ok(f) => out.formats.push(f),
                Err(e) => out.failed.push(format!("{category}:{name}: {e}")),
            }
        }
    }
    out.failed.sort();
    Ok(out)
}
