//! Compiled objects: a [`Program`] with what the compiler assumed about the kernel, so `ktap
//! FILE` on a board can run it without compiling and can tell when the board's kernel differs.

use crate::container::{pack, peek, unpack, Error, Kind};
use ktap_bpf::kernel::{Kernel, TpFormat};
use ktap_bpf::{Action, Function, Program, Target, RECORD_HEADER};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// What a program was compiled against.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Assumptions {
    /// The kernel release the tracepoint layouts came from (`uname -r`).
    pub release: String,
    /// Every tracepoint layout the compiler read, sorted by category and name.
    pub formats: Vec<TpFormat>,
}

impl Assumptions {
    /// Checks every assumed tracepoint against `live` (the board's kernel): it must exist and
    /// its fields must have the same names, types, offsets and sizes. Ids and print formats
    /// may differ: the program uses neither.
    pub fn check(&self, live: &dyn Kernel) -> Result<(), String> {
        let redo = "compile it again against this kernel (`ktap-selftest --dump FILE` here, then `ktapc --kernel FILE`)";
        for f in &self.formats {
            let here = live.tp_format(&f.category, &f.name).map_err(|e| {
                format!(
                    "compiled against kernel {} with tracepoint {}:{}, but here {}; {}",
                    self.release, f.category, f.name, e, redo
                )
            })?;
            if here.fields == f.fields {
                continue;
            }
            let what = f
                .fields
                .iter()
                .find(|a| here.field(&a.name) != Some(a))
                .map(|a| match here.field(&a.name) {
                    Some(b) => format!(
                        "field `{}` was at offset {} (size {}), here at {} (size {})",
                        a.name, a.offset, a.size, b.offset, b.size
                    ),
                    None => format!("field `{}` is missing here", a.name),
                })
                .unwrap_or_else(|| "this kernel's record has other fields".into());
            return Err(format!(
                "tracepoint {}:{} differs from kernel {} it was compiled against: {}; {}",
                f.category, f.name, self.release, what, redo
            ));
        }
        Ok(())
    }
}

/// A compiled script as `ktapc` writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub program: Program,
    pub kernel: Assumptions,
}

/// Bounds on sizes a compiled program can have; a file claiming more is corrupt, and trusting
/// it would let the file make the reader allocate without limit.
const MAX_KEY: u32 = 64 << 10;
const MAX_VALUE: u32 = 1 << 20;
const MAX_RECORD: u32 = 64 << 10;

impl Object {
    /// The object's file contents.
    pub fn encode(&self) -> Vec<u8> {
        pack(Kind::Object, self.program.target, self)
    }

    /// True when `bytes` are meant to be an object (they start with its magic).
    pub fn is_object(bytes: &[u8]) -> bool {
        Kind::Object.matches(bytes)
    }

    /// The target an object was compiled for, read from its header alone.
    pub fn target(bytes: &[u8]) -> Result<Target, Error> {
        peek(Kind::Object, bytes)
    }

    /// Reads an object compiled for `expected`; every other target, format version and any
    /// damage is an error, and the program is checked to be internally consistent.
    pub fn decode(bytes: &[u8], expected: Target) -> Result<Object, Error> {
        let found = peek(Kind::Object, bytes)?;
        if found != expected {
            return Err(Error::WrongTarget {
                kind: Kind::Object,
                found,
                expected,
            });
        }
        let (target, obj): (Target, Object) = unpack(Kind::Object, bytes)?;
        let corrupt = |reason: String| Error::Corrupt {
            kind: Kind::Object,
            reason,
        };
        if obj.program.target != target {
            return Err(corrupt(
                "its program is for another target than its header".into(),
            ));
        }
        check_program(&obj.program).map_err(corrupt)?;
        Ok(obj)
    }
}

/// What every consumer relies on without checking: parallel spans, whole `ld_imm64` pairs,
/// spans inside the source, fields inside their records, map indices that exist.
fn check_program(p: &Program) -> Result<(), String> {
    let text = p.source.text.len() as u64;
    let span_ok = |s: ktap_bpf::Span| s.lo <= s.hi && u64::from(s.hi) <= text;
    let func = |what: &str, f: &Function, span: ktap_bpf::Span| -> Result<(), String> {
        if f.spans.len() != f.insns.len() {
            return Err(format!(
                "{what}: {} spans for {} instructions",
                f.spans.len(),
                f.insns.len()
            ));
        }
        if f.insns.last().is_some_and(|i| i.is_ld_imm64()) {
            return Err(format!("{what}: ends in half an ld_imm64"));
        }
        if !span_ok(span) || !f.spans.iter().all(|s| span_ok(*s)) {
            return Err(format!("{what}: a source span lies outside the script"));
        }
        Ok(())
    };
    for pr in &p.probes {
        func(&format!("probe {}", pr.name), &pr.func, pr.span)?;
    }
    for u in &p.user {
        func("a userspace block", &u.func, u.span)?;
    }
    for m in &p.maps {
        if m.key_size > MAX_KEY || m.value_size > MAX_VALUE || !span_ok(m.span) {
            return Err(format!("map `{}` has an impossible layout", m.name));
        }
    }
    let maps = p.maps.len() as u64;
    for (i, f) in p.formats.iter().enumerate() {
        let fields_ok = f
            .fields
            .iter()
            .all(|x| u64::from(x.offset) + u64::from(x.ty.size()) <= u64::from(f.size));
        let map_ok = match f.action {
            Action::PrintHist { map } | Action::Clear { map } => u64::from(map) < maps,
            _ => true,
        };
        if f.size < RECORD_HEADER
            || f.size > MAX_RECORD
            || !fields_ok
            || !map_ok
            || !span_ok(f.span)
        {
            return Err(format!("output format {i} is inconsistent"));
        }
    }
    Ok(())
}

/// A [`Kernel`] that remembers every tracepoint layout the compiler read from `inner`: the
/// object's [`Assumptions`].
pub struct Recording<'a> {
    inner: &'a dyn Kernel,
    seen: RefCell<Vec<TpFormat>>,
}

impl<'a> Recording<'a> {
    pub fn new(inner: &'a dyn Kernel) -> Recording<'a> {
        Recording {
            inner,
            seen: RefCell::new(Vec::new()),
        }
    }

    /// The layouts read, sorted, as compiled against kernel `release`.
    pub fn assumptions(self, release: String) -> Assumptions {
        let mut formats = self.seen.into_inner();
        formats.sort_by(|a, b| (&a.category, &a.name).cmp(&(&b.category, &b.name)));
        formats.dedup_by(|a, b| a.category == b.category && a.name == b.name);
        Assumptions { release, formats }
    }
}

impl Kernel for Recording<'_> {
    fn tracepoints(&self, category: &str, name: &str) -> Vec<(String, String)> {
        self.inner.tracepoints(category, name)
    }
    fn tp_format(&self, category: &str, name: &str) -> Result<TpFormat, String> {
        let f = self.inner.tp_format(category, name)?;
        self.seen.borrow_mut().push(f.clone());
        Ok(f)
    }
    fn all_tracepoints(&self) -> Vec<String> {
        self.inner.all_tracepoints()
    }
}
