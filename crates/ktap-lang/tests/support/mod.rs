//! A kernel description for tests: tracepoint formats captured from a real tracefs, kept in
//! `test_data/kernel/CATEGORY/NAME.format`, so compiler tests need no kernel.

use ktap_bpf::kernel::{glob_match, parse_tp_format, Kernel, TpFormat};
use std::path::PathBuf;

pub struct FixtureKernel {
    events: Vec<(String, String, String)>,
    /// An x86-like kernel: the preempt count is the per-CPU `__preempt_count`, not in the
    /// task's thread_info, and kallsyms lists it (with `data_symbols`).
    per_cpu_preempt: bool,
    data_symbols: bool,
    /// The running kernel's release, for a case whose code depends on it.
    release: Option<String>,
}

impl Default for FixtureKernel {
    fn default() -> FixtureKernel {
        FixtureKernel::new()
    }
}

impl FixtureKernel {
    pub fn new() -> FixtureKernel {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test_data/kernel");
        let mut events = Vec::new();
        for cat in std::fs::read_dir(&root).expect("test_data/kernel") {
            let cat = cat.expect("dir entry").path();
            if !cat.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&cat).expect("category dir") {
                let f = f.expect("dir entry").path();
                let text = std::fs::read_to_string(&f).expect("format file");
                let c = cat.file_name().unwrap().to_string_lossy().into_owned();
                let n = f.file_stem().unwrap().to_string_lossy().into_owned();
                events.push((c, n, text));
            }
        }
        events.sort();
        FixtureKernel {
            events,
            per_cpu_preempt: false,
            data_symbols: false,
            release: None,
        }
    }

    /// The kernel a case's `# kernel: ...` line asks for: `per-cpu preempt count` (x86's
    /// layout, its kallsyms listing data symbols), `per-cpu preempt count, no data symbols`,
    /// or `release RELEASE` (the running kernel, of that `uname -r`).
    pub fn for_case(text: &str) -> FixtureKernel {
        let mut k = FixtureKernel::new();
        match text.lines().find_map(|l| l.strip_prefix("# kernel: ")) {
            Some("per-cpu preempt count") => {
                k.per_cpu_preempt = true;
                k.data_symbols = true;
            }
            Some("per-cpu preempt count, no data symbols") => k.per_cpu_preempt = true,
            Some(other) if other.starts_with("release ") => {
                k.release = Some(other["release ".len()..].to_string());
            }
            Some(other) => panic!("unknown fixture kernel `{other}`"),
            None => {}
        }
        k
    }
}

impl Kernel for FixtureKernel {
    fn release(&self) -> Option<String> {
        self.release.clone()
    }
    fn tracepoints(&self, category: &str, name: &str) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|(c, n, _)| glob_match(category, c) && glob_match(name, n))
            .map(|(c, n, _)| (c.clone(), n.clone()))
            .collect()
    }
    fn tp_format(&self, category: &str, name: &str) -> Result<TpFormat, String> {
        let (_, _, text) = self
            .events
            .iter()
            .find(|(c, n, _)| c == category && n == name)
            .ok_or_else(|| format!("no event {}:{}", category, name))?;
        parse_tp_format(category, text).map_err(|e| e.message)
    }
    fn read_file(&self, path: &str) -> Result<ktap_bpf::kernel::FileBytes, String> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Box::new(bytes)),
            Err(e) => Err(e.to_string()),
        }
    }
    fn kallsyms(&self) -> Option<String> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut syms = std::fs::read_to_string(root.join("test_data/kallsyms")).ok()?;
        if self.data_symbols {
            syms.push_str("0000000000020ad0 D __preempt_count\n");
        }
        Some(syms)
    }
    fn btf(&self) -> Option<Vec<u8>> {
        Some(if self.per_cpu_preempt {
            per_cpu_preempt_btf()
        } else {
            fixture_btf()
        })
    }
    fn all_tracepoints(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|(c, n, _)| format!("{}:{}", c, n))
            .collect()
    }
}

/// x86's layout: a task without a preempt count (but with `in_iowait`), and the per-CPU
/// `int __preempt_count` as BTF id 3.
pub fn per_cpu_preempt_btf() -> Vec<u8> {
    use ktap_bpf::btf::build::Builder;
    let mut b = Builder::new(true);
    let u32t = b.int("unsigned int", 4);
    let int = b.int("int", 4);
    b.var("__preempt_count", int);
    b.record("task_struct", 4096, false, &[("in_iowait", u32t, 2051, 1)]);
    b.finish()
}

/// A kernel's BTF with just the task_struct members ktap reads: `in_iowait` at bit 2051 (byte
/// 256, bit 3), and a thread_info whose preempt count (64-bit, in an anonymous union, as on
/// arm64) is 8 bytes into the task.
pub fn fixture_btf() -> Vec<u8> {
    use ktap_bpf::btf::build::Builder;
    let mut b = Builder::new(true);
    let u32t = b.int("unsigned int", 4);
    let u64t = b.int("long unsigned int", 8);
    let split = b.record(
        "",
        8,
        false,
        &[("count", u32t, 0, 0), ("need_resched", u32t, 32, 0)],
    );
    let count = b.record(
        "",
        8,
        true,
        &[("preempt_count", u64t, 0, 0), ("preempt", split, 0, 0)],
    );
    let ti = b.record(
        "thread_info",
        16,
        false,
        &[("flags", u64t, 0, 0), ("", count, 64, 0)],
    );
    b.record(
        "task_struct",
        4096,
        false,
        &[
            ("thread_info", ti, 0, 0),
            ("in_execve", u32t, 2050, 1),
            ("in_iowait", u32t, 2051, 1),
        ],
    );
    b.finish()
}
