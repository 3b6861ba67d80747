//! `ktap -le [GLOB]`, `-lf ELF`, `-lm ELF`: what a script could probe, one name a line,
//! sorted: the kernel's tracepoints (`category:name`), an ELF file's functions, and its SDT
//! (USDT) markers (`provider:name`), as ktap listed them.

use crate::loader::TracefsKernel;
use ktap_bpf::kernel::{glob_match, Kernel};
use std::io::Write;

/// What `-l` lists: `e` (events), `f` (functions) or `m` (markers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Events,
    Functions,
    Markers,
}

impl What {
    /// The kind after `-l`; `Err` names the ones there are.
    pub fn parse(s: &str) -> Result<What, String> {
        match s {
            "e" => Ok(What::Events),
            "f" => Ok(What::Functions),
            "m" => Ok(What::Markers),
            _ => Err(format!(
                "`-l{s}`: list what? -le [GLOB] (tracepoints), -lf ELF (functions), -lm ELF \
                 (SDT markers)"
            )),
        }
    }
}

/// Prints the list; returns the exit code. `args` are the words after the option.
pub fn main(what: What, args: &[String]) -> i32 {
    let names = match (what, args) {
        (What::Events, []) => tracepoints("*"),
        (What::Events, [glob]) => tracepoints(glob),
        (What::Functions, [path]) => functions(path),
        (What::Markers, [path]) => markers(path),
        (What::Events, _) => return usage("-le takes at most one GLOB (like `sched:*`)"),
        (What::Functions, _) => return usage("-lf takes one ELF file"),
        (What::Markers, _) => return usage("-lm takes one ELF file"),
    };
    match names {
        Ok(names) => {
            let mut text = String::new();
            for n in names {
                text.push_str(&n);
                text.push('\n');
            }
            // A closed pipe (`ktap -le | head`) ends the listing quietly.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            0
        }
        Err(m) => {
            eprintln!("ktap: {m}");
            1
        }
    }
}

/// A misuse of the options: said, with exit code 2 as for any other.
fn usage(message: &str) -> i32 {
    eprintln!("ktap: {message}; try `ktap -h`");
    2
}

/// The tracepoints whose `category:name` matches `glob` (`*` and `?`, as in scripts).
fn tracepoints(glob: &str) -> Result<Vec<String>, String> {
    let kernel = TracefsKernel::new().map_err(|e| e.to_string())?;
    let mut all: Vec<String> = kernel
        .all_tracepoints()
        .into_iter()
        .filter(|tp| glob_match(glob, tp))
        .collect();
    all.sort();
    all.dedup();
    Ok(all)
}

/// The names of the functions defined in the ELF file at `path`, each once however many
/// versions or aliases at other addresses it has.
fn functions(path: &str) -> Result<Vec<String>, String> {
    let file = ktap_elf::open(path).map_err(|e| e.to_string())?;
    let elf = file.parse().map_err(|e| format!("{path}: {e}"))?;
    let funcs = elf.functions().map_err(|e| format!("{path}: {e}"))?;
    let mut names: Vec<String> = funcs.iter().map(|f| f.name.to_string()).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The SDT markers of the ELF file at `path` as `provider:name`, each once however many sites
/// it has.
fn markers(path: &str) -> Result<Vec<String>, String> {
    let file = ktap_elf::open(path).map_err(|e| e.to_string())?;
    let elf = file.parse().map_err(|e| format!("{path}: {e}"))?;
    let notes = elf.sdt_notes().map_err(|e| format!("{path}: {e}"))?;
    if notes.is_empty() {
        eprintln!("ktap: {path} has no SDT markers (no .note.stapsdt section)");
    }
    let mut names: Vec<String> = notes.iter().map(|n| n.full_name()).collect();
    names.sort();
    names.dedup();
    Ok(names)
}
