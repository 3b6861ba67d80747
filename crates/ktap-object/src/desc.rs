//! Kernel descriptions: a board's tracepoint layouts, release and target, written on the board
//! by `ktap-selftest --dump` so that `ktapc --kernel FILE` on a host compiles against the
//! board's kernel instead of the host's.

use crate::container::{pack, unpack, Error, Kind};
use ktap_bpf::kernel::{glob_match, Kernel, TpFormat};
use ktap_bpf::Target;
use serde::{Deserialize, Serialize};

/// A kernel, as the compiler needs to know it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelDesc {
    /// The machine the kernel runs on.
    pub target: Target,
    /// `uname -r`.
    pub release: String,
    /// Tracepoint layouts, sorted by category and name, one per tracepoint.
    formats: Vec<TpFormat>,
}

impl KernelDesc {
    /// A description of `formats` (in any order; a repeated tracepoint keeps its first layout).
    pub fn new(target: Target, release: String, mut formats: Vec<TpFormat>) -> KernelDesc {
        formats.sort_by(|a, b| (&a.category, &a.name).cmp(&(&b.category, &b.name)));
        formats.dedup_by(|a, b| a.category == b.category && a.name == b.name);
        KernelDesc {
            target,
            release,
            formats,
        }
    }

    pub fn formats(&self) -> &[TpFormat] {
        &self.formats
    }

    /// True when `bytes` are meant to be a description (they start with its magic).
    pub fn is_desc(bytes: &[u8]) -> bool {
        Kind::KernelDesc.matches(bytes)
    }

    /// The file's contents.
    pub fn encode(&self) -> Vec<u8> {
        pack(Kind::KernelDesc, self.target, self)
    }

    /// Reads a description; any damage or another format version is an error.
    pub fn decode(bytes: &[u8]) -> Result<KernelDesc, Error> {
        let (target, d): (Target, KernelDesc) = unpack(Kind::KernelDesc, bytes)?;
        if d.target != target {
            return Err(Error::Corrupt {
                kind: Kind::KernelDesc,
                reason: "it describes another target than its header".into(),
            });
        }
        // Sorted order is what lookups rely on; a file that breaks it is rebuilt, not trusted.
        Ok(KernelDesc::new(d.target, d.release, d.formats))
    }

    fn find(&self, category: &str, name: &str) -> Option<&TpFormat> {
        self.formats
            .binary_search_by(|f| (f.category.as_str(), f.name.as_str()).cmp(&(category, name)))
            .ok()
            .map(|i| &self.formats[i])
    }
}

impl Kernel for KernelDesc {
    fn tracepoints(&self, category: &str, name: &str) -> Vec<(String, String)> {
        self.formats
            .iter()
            .filter(|f| glob_match(category, &f.category) && glob_match(name, &f.name))
            .map(|f| (f.category.clone(), f.name.clone()))
            .collect()
    }

    fn tp_format(&self, category: &str, name: &str) -> Result<TpFormat, String> {
        self.find(category, name).cloned().ok_or_else(|| {
            format!(
                "tracepoint `{category}:{name}` is not in the kernel description (of {} {})",
                self.target.name(),
                self.release
            )
        })
    }

    fn all_tracepoints(&self) -> Vec<String> {
        self.formats
            .iter()
            .map(|f| format!("{}:{}", f.category, f.name))
            .collect()
    }
}
