//! What the object tests share: the compiler's fixture tracepoints as a kernel description,
//! and the samples compiled against it.

use ktap_bpf::kernel::parse_tp_format;
use ktap_bpf::{Source, Target};
use ktap_object::{KernelDesc, Object, Recording};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The tracepoints in `crates/ktap-lang/test_data/kernel`, as a description of a `target` kernel.
pub fn fixture_kernel(target: Target) -> KernelDesc {
    let mut formats = Vec::new();
    let dir = root().join("crates/ktap-lang/test_data/kernel");
    for cat in std::fs::read_dir(&dir).unwrap() {
        let cat = cat.unwrap().path();
        let category = cat.file_name().unwrap().to_string_lossy().into_owned();
        for f in std::fs::read_dir(&cat).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            formats.push(parse_tp_format(&category, &text).unwrap());
        }
    }
    KernelDesc::new(target, "6.1.0-fixture".into(), formats)
}

/// Every sample script a kernel description can compile, sorted by path. Uprobe and USDT
/// samples are left out: they name files of the machine they run on (its libc), which a
/// description of the board's kernel does not carry.
pub fn samples() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(root().join("samples")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "kp") {
                let name = p
                    .strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let text = std::fs::read_to_string(&p).unwrap();
                if text.contains("probe:/") || text.contains("sdt:/") {
                    continue;
                }
                out.push((name, text));
            }
        }
    }
    out.sort();
    out
}

/// `ktapc`'s work: a sample compiled for `target` into an object.
pub fn compile(name: &str, text: &str, target: Target) -> Object {
    let kernel = fixture_kernel(target);
    let rec = Recording::new(&kernel);
    let source = Source {
        name: name.into(),
        text: text.into(),
    };
    let opts = ktap_lang::Options::new(target, vec![name.into()]);
    let program = ktap_lang::compile(&source, &rec, &opts)
        .unwrap_or_else(|d| panic!("{name}: {}", ktap_lang::diag::render_all(&d, &source)));
    Object {
        program,
        kernel: rec.assumptions(kernel.release.clone()),
    }
}
