//! The one error type: what is wrong with a file or a request, as a sentence a user can act on.
//! The caller adds the file's path.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The file could not be read ([`crate::open`] only).
    Io { path: String, error: String },
    /// No `\x7fELF` magic.
    NotElf,
    /// A class, byte order or layout this reader does not handle.
    Unsupported(String),
    /// A header or table runs past the end of the file; says which.
    Truncated(&'static str),
    /// A header field that cannot be right.
    Malformed(String),
    /// Neither `.symtab` nor `.dynsym` (a stripped static binary).
    NoSymbols,
    /// No function of that name; the nearest names, best first.
    SymbolNotFound {
        name: String,
        suggestions: Vec<String>,
    },
    /// Several functions of that name at different addresses (static functions of different
    /// files); their addresses, for the user to pick one with `:0xOFFSET`.
    Ambiguous { name: String, addrs: Vec<u64> },
    /// The address is not in the file bytes of any loadable segment.
    NotMapped(u64),
    /// No SDT probe of that name; the nearest `provider:name`s, best first.
    SdtNotFound {
        name: String,
        suggestions: Vec<String>,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Io { path, error } => write!(f, "cannot read {path}: {error}"),
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::Unsupported(what) => write!(f, "unsupported ELF file: {what}"),
            ElfError::Truncated(what) => write!(f, "truncated ELF file: {what} run past its end"),
            ElfError::Malformed(what) => write!(f, "malformed ELF file: {what}"),
            ElfError::NoSymbols => write!(
                f,
                "no symbol table (.symtab or .dynsym): the file is stripped; probe an offset instead (:0xOFFSET)"
            ),
            ElfError::SymbolNotFound { name, suggestions } => {
                write!(f, "no function `{name}` in the symbol tables")?;
                did_you_mean(f, suggestions)
            }
            ElfError::Ambiguous { name, addrs } => {
                write!(f, "`{name}` names {} functions, at", addrs.len())?;
                for (i, a) in addrs.iter().enumerate() {
                    write!(f, "{} 0x{a:x}", if i == 0 { "" } else { "," })?;
                }
                write!(f, "; probe one by its offset (:0xOFFSET)")
            }
            ElfError::NotMapped(vaddr) => write!(
                f,
                "address 0x{vaddr:x} is not in any loadable segment of the file"
            ),
            ElfError::SdtNotFound { name, suggestions } => {
                write!(f, "no SDT probe `{name}` in the file's .note.stapsdt")?;
                did_you_mean(f, suggestions)
            }
        }
    }
}

fn did_you_mean(f: &mut fmt::Formatter<'_>, suggestions: &[String]) -> fmt::Result {
    match suggestions {
        [] => Ok(()),
        [one] => write!(f, "; did you mean `{one}`?"),
        more => {
            write!(f, "; did you mean one of")?;
            for (i, s) in more.iter().enumerate() {
                write!(f, "{} `{s}`", if i == 0 { "" } else { "," })?;
            }
            write!(f, "?")
        }
    }
}

impl std::error::Error for ElfError {}
