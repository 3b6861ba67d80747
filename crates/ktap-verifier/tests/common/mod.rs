//! What the verifier's tests share: a kernel description made of the tracepoint formats the
//! compiler's tests captured, and the scripts the project ships and tests.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use ktap_bpf::kernel::{glob_match, parse_tp_format, Kernel, TpFormat};
use ktap_bpf::{Program, Source, Target};
use std::path::{Path, PathBuf};

pub struct FixtureKernel {
    events: Vec<(String, String, String)>,
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl FixtureKernel {
    pub fn new() -> FixtureKernel {
        let dir = root().join("crates/ktap-lang/test_data/kernel");
        let mut events = Vec::new();
        for cat in std::fs::read_dir(&dir).expect("the compiler's captured formats") {
            let cat = cat.expect("entry").path();
            if !cat.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&cat).expect("a category") {
                let f = f.expect("entry").path();
                let text = std::fs::read_to_string(&f).expect("a format file");
                let c = cat.file_name().unwrap().to_string_lossy().into_owned();
                let n = f.file_stem().unwrap().to_string_lossy().into_owned();
                events.push((c, n, text));
            }
        }
        events.sort();
        FixtureKernel { events }
    }
}

impl Kernel for FixtureKernel {
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
            .ok_or_else(|| format!("no event {category}:{name}"))?;
        parse_tp_format(category, text).map_err(|e| e.message)
    }
    fn all_tracepoints(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|(c, n, _)| format!("{c}:{n}"))
            .collect()
    }
    fn read_file(&self, path: &str) -> Result<ktap_bpf::kernel::FileBytes, String> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Box::new(bytes)),
            Err(e) => Err(e.to_string()),
        }
    }
    fn kallsyms(&self) -> Option<String> {
        std::fs::read_to_string(root().join("crates/ktap-lang/test_data/kernel/kallsyms")).ok()
    }
}

/// Every `.kp` file under the samples and the compiler's test data, with its text.
pub fn scripts() -> Vec<(PathBuf, String)> {
    let mut out = scripts_under(&root().join("samples"));
    out.extend(scripts_under(&root().join("crates/ktap-lang/test_data")));
    out
}

/// The `.kp` files under `dir`, sorted.
pub fn scripts_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "kp") {
                if let Ok(t) = std::fs::read_to_string(&p) {
                    out.push((p, t));
                }
            }
        }
    }
    out.sort();
    out
}

/// The scripts that compile against `kernel` for `target` (parse tests include scripts
/// that do not type-check, and scripts for events the fixture lacks).
pub fn compiled(kernel: &dyn Kernel, target: Target) -> Vec<(PathBuf, Program)> {
    compile_all(scripts(), kernel, target)
}

/// Those of `scripts` that compile against `kernel` for `target`.
pub fn compile_all(
    scripts: Vec<(PathBuf, String)>,
    kernel: &dyn Kernel,
    target: Target,
) -> Vec<(PathBuf, Program)> {
    scripts
        .into_iter()
        .filter_map(|(path, text)| {
            let name = path.display().to_string();
            let src = Source {
                name: name.clone(),
                text,
            };
            let opts = ktap_lang::Options::new(target, vec![name]);
            ktap_lang::compile(&src, kernel, &opts)
                .ok()
                .map(|p| (path, p))
        })
        .collect()
}
