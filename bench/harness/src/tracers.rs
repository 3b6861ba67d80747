//! The tracers and what each is asked to do: the same work written in each one's language,
//! with each one's own way of running a command.

use std::path::PathBuf;

/// A tracer under test. The floor is `ktap-bench floor`: the attach mechanism alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tracer {
    Ktap,
    Floor,
    Bpftrace,
    Ply,
}

impl Tracer {
    pub fn name(self) -> &'static str {
        match self {
            Tracer::Ktap => "ktap",
            Tracer::Floor => "floor",
            Tracer::Bpftrace => "bpftrace",
            Tracer::Ply => "ply",
        }
    }
}

/// What the probe does, and the syscall it fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Count getppid(2) calls by process name.
    Count,
    /// A power-of-two histogram of read(2) request sizes.
    Hist,
}

/// Bytes per read(2) in the histogram workload: all in one bucket.
pub const READ_SIZE: u32 = 1024;

const KTAP_COUNT: &str = "var s = {}
trace syscalls:sys_enter_getppid {
	s[execname] += 1
}
trace_end {
	print_hist(s)
}
";

/// A power-of-two histogram of one key, like ply's (bpftrace's has no key).
const KTAP_HIST: &str = "var sizes = {}
trace syscalls:sys_enter_read {
	sizes[\"size\"] <<< args.count
}
trace_end {
	hist(sizes[\"size\"])
}
";

const BPFTRACE_COUNT: &str = "tracepoint:syscalls:sys_enter_getppid { @[comm] = count(); }";
const BPFTRACE_HIST: &str = "tracepoint:syscalls:sys_enter_read { @ = hist(args->count); }";
// ply's maps need a key; its README writes a constant one for a single histogram.
const PLY_COUNT: &str = "tracepoint:syscalls/sys_enter_getppid { @[comm] = count(); }";
const PLY_HIST: &str =
    "tracepoint:syscalls/sys_enter_read { @[\"size\"] = quantize(data->count); }";

/// The tracepoints of the attach-everything figure: `trace syscalls:sys_enter_* { }`.
pub const GLOB: &str = "syscalls:sys_enter_*";

/// Where every program is.
pub struct Tools {
    pub ktap: PathBuf,
    pub workload: PathBuf,
    /// This binary, for the floor.
    pub floor: PathBuf,
    pub bpftrace: Option<PathBuf>,
    pub ply: Option<PathBuf>,
    pub bpftool: Option<PathBuf>,
}

fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}

impl Tools {
    /// The tracers this run compares (ktap and the floor always).
    pub fn tracers(&self) -> Vec<Tracer> {
        let mut t = vec![Tracer::Ktap, Tracer::Floor];
        t.extend(self.bpftrace.as_ref().map(|_| Tracer::Bpftrace));
        t.extend(self.ply.as_ref().map(|_| Tracer::Ply));
        t
    }

    pub fn path(&self, t: Tracer) -> String {
        match t {
            Tracer::Ktap => s(&self.ktap),
            Tracer::Floor => s(&self.floor),
            Tracer::Bpftrace => self.bpftrace.as_deref().map(s).unwrap_or_default(),
            Tracer::Ply => self.ply.as_deref().map(s).unwrap_or_default(),
        }
    }

    /// The workload of `work` with `n` events.
    pub fn workload(&self, work: Work, n: u64) -> Vec<String> {
        let mut argv = vec![s(&self.workload)];
        match work {
            Work::Count => argv.extend(["getppid".into(), n.to_string()]),
            Work::Hist => argv.extend(["read".into(), READ_SIZE.to_string(), n.to_string()]),
        }
        argv
    }

    /// `t` tracing `work` until SIGINT. ktap runs with -v, which reports its own compile
    /// and attach times on stderr.
    pub fn tracing(&self, t: Tracer, work: Work) -> Vec<String> {
        let script = |ktap: &str, bpftrace: &str, ply: &str, floor: &str| match t {
            Tracer::Ktap => ktap.to_string(),
            Tracer::Bpftrace => bpftrace.to_string(),
            Tracer::Ply => ply.to_string(),
            Tracer::Floor => floor.to_string(),
        };
        let text = match work {
            Work::Count => script(
                KTAP_COUNT,
                BPFTRACE_COUNT,
                PLY_COUNT,
                "syscalls:sys_enter_getppid",
            ),
            Work::Hist => script(
                KTAP_HIST,
                BPFTRACE_HIST,
                PLY_HIST,
                "syscalls:sys_enter_read",
            ),
        };
        let p = self.path(t);
        match t {
            Tracer::Ktap => vec![p, "-q".into(), "-v".into(), "-e".into(), text],
            Tracer::Floor => vec![p, "floor".into(), text],
            Tracer::Bpftrace => vec![p, "-e".into(), text],
            Tracer::Ply => vec![p, text],
        }
    }

    /// `t` counting getppid while it runs `cmd`, exiting when `cmd` does. bpftrace's -c
    /// takes one string and ply's runs it through /bin/sh.
    pub fn running(&self, t: Tracer, cmd: &[String]) -> Vec<String> {
        let p = self.path(t);
        let line = cmd.join(" ");
        match t {
            Tracer::Ktap => [
                vec![p, "-q".into(), "-e".into(), KTAP_COUNT.into(), "--".into()],
                cmd.to_vec(),
            ]
            .concat(),
            Tracer::Floor => [
                vec![
                    p,
                    "floor".into(),
                    "syscalls:sys_enter_getppid".into(),
                    "--".into(),
                ],
                cmd.to_vec(),
            ]
            .concat(),
            Tracer::Bpftrace => vec![p, "-e".into(), BPFTRACE_COUNT.into(), "-c".into(), line],
            Tracer::Ply => vec![p, "-c".into(), line, PLY_COUNT.into()],
        }
    }

    /// `t` attaching an empty probe to every tracepoint of [`GLOB`] and running /bin/true;
    /// None for ply, whose tracepoint provider takes no wildcards.
    pub fn globbing(&self, t: Tracer) -> Option<Vec<String>> {
        let p = self.path(t);
        let (cat, name) = GLOB.split_once(':')?;
        Some(match t {
            Tracer::Ktap => vec![
                p,
                "-q".into(),
                "-v".into(),
                "-e".into(),
                format!("trace {GLOB} {{ }}"),
                "--".into(),
                "/bin/true".into(),
            ],
            Tracer::Floor => vec![
                p,
                "floor".into(),
                GLOB.into(),
                "--".into(),
                "/bin/true".into(),
            ],
            Tracer::Bpftrace => vec![
                p,
                "-e".into(),
                format!("tracepoint:{cat}:{name} {{ }}"),
                "-c".into(),
                "/bin/true".into(),
            ],
            Tracer::Ply => return None,
        })
    }
}

/// The duration after `key` in ktap's -v line, e.g. `compiled in 186.906µs`.
pub fn ktap_reported(stderr: &str, key: &str) -> Option<f64> {
    let rest = &stderr[stderr.find(key)? + key.len()..];
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ':' && *c != ';' && *c != ',')
        .collect();
    let digits = token.trim_end_matches(|c: char| c.is_alphabetic());
    let value: f64 = digits.parse().ok()?;
    let scale = match &token[digits.len()..] {
        "ns" => 1e-9,
        "µs" | "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::ktap_reported;

    #[test]
    fn reads_ktap_durations() {
        let line =
            "ktap: compiled in 186.906µs: 1 probes (48 instructions), 3 maps; attached in 1.2ms\n";
        let near = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
        assert!(near(ktap_reported(line, "compiled in "), 186.906e-6));
        assert!(near(ktap_reported(line, "attached in "), 1.2e-3));
        assert!(near(ktap_reported("attached in 1.5s", "attached in "), 1.5));
        assert_eq!(ktap_reported(line, "loaded in "), None);
    }
}
