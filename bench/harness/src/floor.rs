//! `ktap-bench floor`: the kernel floor, a 2-instruction program (`r0 = 0; exit`) loaded and
//! attached through ktap's own loader exactly as ktap attaches a script's probes. What a
//! tracer costs beyond this is the tracer's; this much is the attach mechanism's.

use std::path::Path;
use std::process::Command;

use ktap_bpf::asm::assemble;
use ktap_bpf::{Event, Function, Probe, Program, Source, Span, Target};
use ktap_loader::{tracefs, LoadOptions};

/// Runs the floor: `args` are tracepoints (`category:name`, `*` and `?` allowed in the name),
/// optionally followed by `-- CMD ARGS...`. Without a command it stays attached until SIGINT or
/// SIGTERM, like a tracer counting until Ctrl-C; with one it runs the command, then detaches.
pub fn run(args: &[String]) -> Result<i32, String> {
    let (events, cmd) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    if events.is_empty() {
        return Err("floor: name at least one tracepoint, e.g. syscalls:sys_enter_getppid".into());
    }
    let tracepoints = tracepoints(events)?;
    let prog = program(&tracepoints)?;

    // Blocked before the loader starts its threads, so every thread inherits the mask and
    // sigwait below is the one place these signals arrive. The command's mask is reset by
    // std::process when it starts.
    // SAFETY: sigset_t is plain data; every call gets a valid, initialized set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }

    let session = ktap_loader::load(&prog, &LoadOptions::default()).map_err(|e| e.to_string())?;
    let code = if let Some((first, rest)) = cmd.split_first() {
        let status = Command::new(first)
            .args(rest)
            .status()
            .map_err(|e| format!("floor: cannot run `{first}`: {e}"))?;
        status.code().unwrap_or(1)
    } else {
        let mut sig = 0;
        // SAFETY: `set` is initialized and `sig` is writable.
        unsafe { libc::sigwait(&set, &mut sig) };
        0
    };
    drop(session);
    Ok(code)
}

/// The tracepoints `specs` name (`category:name`, `*` and `?` allowed in the name), each spec
/// matching at least one.
pub fn tracepoints(specs: &[String]) -> Result<Vec<(String, String)>, String> {
    let root = tracefs::find_or_mount().map_err(|e| e.to_string())?;
    let mut tracepoints = Vec::new();
    for spec in specs {
        let (category, pattern) = spec
            .split_once(':')
            .ok_or_else(|| format!("floor: `{spec}` is not category:name"))?;
        let found = expand(&root.join("events").join(category), pattern)?;
        if found.is_empty() {
            return Err(format!("floor: no tracepoint matches `{spec}`"));
        }
        tracepoints.extend(found.into_iter().map(|n| (category.to_string(), n)));
    }
    Ok(tracepoints)
}

/// A program whose every probe is the floor's body, one per tracepoint. The loader shares
/// one kernel program between probes with the same body, as it does for a script.
fn program(tracepoints: &[(String, String)]) -> Result<Program, String> {
    let insns = assemble("r0 = 0\nexit\n").map_err(|e| format!("floor: {e}"))?;
    let func = Function {
        spans: vec![Span::default(); insns.len()],
        insns,
    };
    Ok(Program {
        target: Target::host(),
        source: Source {
            name: "floor".into(),
            text: String::new(),
        },
        maps: Vec::new(),
        formats: Vec::new(),
        probes: tracepoints
            .iter()
            .map(|(category, name)| Probe {
                name: name.clone(),
                event: Event::Tracepoint {
                    category: category.clone(),
                    name: name.clone(),
                },
                func: func.clone(),
                span: Span::default(),
                optional: false,
            })
            .collect(),
        user: Vec::new(),
        events: Vec::new(),
    })
}

/// The tracepoints in `dir` (a tracefs category) whose names match `pattern`, sorted.
fn expand(dir: &Path, pattern: &str) -> Result<Vec<String>, String> {
    // A plain name is one stat, not a scan of the category: the floor's startup is a floor
    // too.
    if !pattern.contains(['*', '?']) {
        let exists = dir.join(pattern).join("format").is_file();
        return Ok(if exists {
            vec![pattern.to_string()]
        } else {
            Vec::new()
        });
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("floor: cannot list {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("format").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| glob(pattern.as_bytes(), n.as_bytes()))
        .collect();
    names.sort();
    Ok(names)
}

/// Shell-style matching of `*` (any run) and `?` (any one byte).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
        Some((&c, rest)) => match name.split_first() {
            Some((&n, tail)) if c == b'?' || c == n => glob(rest, tail),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob(b"sys_enter_*", b"sys_enter_read"));
        assert!(glob(b"*", b""));
        assert!(glob(b"sys_?nter_read", b"sys_enter_read"));
        assert!(!glob(b"sys_enter_*", b"sys_exit_read"));
        assert!(!glob(b"read", b"reads"));
    }
}
