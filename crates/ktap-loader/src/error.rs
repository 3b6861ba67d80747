//! Everything that can go wrong between a compiled program and the running kernel, each as one
//! sentence naming the probe, event, map or file involved; never a bare errno.

use std::error::Error as _;
use std::io;
use std::path::PathBuf;

/// Why loading, attaching or reading a program failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel refused a privileged operation (EPERM, or EACCES before any verification).
    #[error("ktap needs root (CAP_BPF and CAP_PERFMON) to {action}{}", root_hint())]
    Permission { action: String },

    /// `bpf(2)` itself does not exist.
    #[error("this kernel has no BPF system call (it was built without CONFIG_BPF_SYSCALL), so {action} is impossible")]
    NoBpf { action: String },

    /// tracefs is needed for tracepoints and could not be found or mounted.
    #[error("tracefs is not mounted and mounting it at {} failed: {reason}", path.display())]
    Tracefs { path: PathBuf, reason: String },

    /// A probe names a tracepoint this kernel does not have.
    #[error("tracepoint `{category}:{name}` does not exist on this kernel (no {})", path.display())]
    NoTracepoint {
        category: String,
        name: String,
        path: PathBuf,
    },

    /// The kernel's verifier (or program loader) refused a probe. `log` is the verifier's
    /// output, verbatim.
    #[error(
        "the kernel rejected probe `{probe}` on {event}: {}{}",
        describe(source),
        log_suffix(log)
    )]
    Rejected {
        probe: String,
        event: String,
        #[source]
        source: io::Error,
        log: String,
    },

    /// The program is malformed in a way found before any syscall.
    #[error("invalid program{}: {message}", probe.as_ref().map(|p| format!(" (probe `{p}`)")).unwrap_or_default())]
    Invalid {
        probe: Option<String>,
        message: String,
    },

    /// The program was compiled for a different machine.
    #[error("the program was compiled for {compiled}, but this machine is {host}")]
    WrongTarget { compiled: String, host: String },

    /// Creating a map failed.
    #[error("cannot create map `{map}`: {}", describe(source))]
    CreateMap {
        map: String,
        #[source]
        source: io::Error,
    },

    /// Attaching a loaded probe to its event failed.
    #[error("cannot attach probe `{probe}` to {event}: {}", describe(source))]
    Attach {
        probe: String,
        event: String,
        #[source]
        source: io::Error,
    },

    /// A per-CPU perf buffer could not be opened or registered.
    #[error("cannot open the output buffer of CPU {cpu}: {}", describe(source))]
    PerfBuffer {
        cpu: u32,
        #[source]
        source: io::Error,
    },

    /// A map access from userspace was malformed or failed.
    #[error("map `{map}`: {message}")]
    MapAccess { map: String, message: String },

    /// aya could not read the object ktap wrote: a bug in ktap, reported with aya's words.
    #[error("internal error: aya could not use the object ktap wrote: {0}")]
    Object(String),

    /// Another system call failed; `context` says what ktap was doing.
    #[error("{context}: {}", describe(source))]
    System {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl LoadError {
    /// The error for a failed system call while doing `action`: EPERM and ENOSYS become their
    /// own sentences, everything else goes through `other`.
    /// The probe the kernel would not attach, when that is what failed.
    pub fn refused_probe(&self) -> Option<&str> {
        match self {
            LoadError::Attach { probe, .. } => Some(probe),
            _ => None,
        }
    }

    pub(crate) fn from_io(
        source: io::Error,
        action: impl Into<String>,
        other: impl FnOnce(io::Error) -> LoadError,
    ) -> LoadError {
        match source.raw_os_error() {
            Some(libc::EPERM) => LoadError::Permission {
                action: action.into(),
            },
            Some(libc::ENOSYS) => LoadError::NoBpf {
                action: action.into(),
            },
            _ => other(source),
        }
    }

    /// The error for a syscall with nothing more specific to say than what ktap was doing.
    pub(crate) fn system(source: io::Error, context: impl Into<String>) -> LoadError {
        let context = context.into();
        LoadError::from_io(source, context.clone(), |source| LoadError::System {
            context,
            source,
        })
    }
}

/// Already root but still refused: the usual causes, so the sentence stays true.
fn root_hint() -> &'static str {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        " (running as root, the kernel still refused: it may be in lockdown mode, or the \
         locked-memory limit may be too low)"
    } else {
        ""
    }
}

fn log_suffix(log: &str) -> String {
    let log = log.trim_end();
    if log.is_empty() {
        String::new()
    } else {
        format!("\nverifier log:\n{log}")
    }
}

/// A sentence for an errno, with its symbolic name so it can be searched for.
pub fn describe(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        // Not an errno: aya wraps some failures as custom errors; keep their whole chain.
        let mut text = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            text.push_str(": ");
            text.push_str(&s.to_string());
            next = s.source();
        }
        return text;
    };
    let (name, sentence) = match code {
        libc::EPERM => ("EPERM", "operation not permitted: ktap needs root (CAP_BPF and CAP_PERFMON)"),
        libc::EACCES => ("EACCES", "permission denied"),
        libc::ENOENT => ("ENOENT", "no such file, event or entry"),
        libc::ENOSYS => ("ENOSYS", "the kernel does not implement this system call"),
        libc::E2BIG => ("E2BIG", "too big for this kernel (too many instructions, or an argument larger than it accepts)"),
        libc::ENOMEM => ("ENOMEM", "out of memory (or of locked memory for BPF)"),
        libc::EINVAL => ("EINVAL", "the kernel refused the arguments as invalid"),
        libc::EBUSY => ("EBUSY", "the resource is busy"),
        libc::EEXIST => ("EEXIST", "it already exists"),
        libc::ENOSPC => ("ENOSPC", "no space left (a map or buffer is full)"),
        libc::EMFILE => ("EMFILE", "too many open files in this process (raise `ulimit -n`)"),
        libc::ENFILE => ("ENFILE", "too many open files in the system"),
        libc::ENODEV => ("ENODEV", "no such device (this CPU or event source is not available)"),
        libc::EOPNOTSUPP => ("EOPNOTSUPP", "not supported by this kernel"),
        // The kernel's internal ENOTSUPP leaks to userspace from BPF (e.g. a JIT that cannot
        // compile an instruction); libc has no name for it.
        524 => ("ENOTSUPP", "not supported by this kernel or its BPF JIT"),
        libc::EFAULT => ("EFAULT", "bad address"),
        libc::EBADF => ("EBADF", "bad file descriptor"),
        libc::EINTR => ("EINTR", "interrupted by a signal"),
        libc::EAGAIN => ("EAGAIN", "resource temporarily unavailable"),
        _ => return format!("{e}"),
    };
    format!("{sentence} ({name})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sentences_with_context() {
        let e = LoadError::from_io(
            io::Error::from_raw_os_error(libc::EPERM),
            "load probe `x`",
            |_| unreachable!(),
        );
        assert!(e
            .to_string()
            .starts_with("ktap needs root (CAP_BPF and CAP_PERFMON) to load probe `x`"));
        let e = LoadError::system(io::Error::from_raw_os_error(libc::ENOSYS), "create map `t`");
        assert!(e.to_string().contains("no BPF system call"), "{e}");
        let e = LoadError::Rejected {
            probe: "p".into(),
            event: "syscalls:sys_enter_getppid".into(),
            source: io::Error::from_raw_os_error(libc::E2BIG),
            log: "0: (95) exit\nR0 !read_ok\n".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("too big for this kernel") && text.contains("(E2BIG)"),
            "{text}"
        );
        assert!(
            text.ends_with("verifier log:\n0: (95) exit\nR0 !read_ok"),
            "{text}"
        );
        assert_eq!(
            describe(&io::Error::from_raw_os_error(524)),
            "not supported by this kernel or its BPF JIT (ENOTSUPP)"
        );
        assert!(describe(&io::Error::other("x")).contains('x'));
    }
}
