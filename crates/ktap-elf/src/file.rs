//! The only I/O in this crate: reading a whole file into memory for [`crate::Elf::parse`].

use crate::{Elf, ElfError};
use std::path::{Path, PathBuf};

/// An ELF file's bytes and where they came from.
#[derive(Clone, Debug)]
pub struct ElfFile {
    pub path: PathBuf,
    pub data: Vec<u8>,
}

impl ElfFile {
    /// Parses the bytes (cheap: headers only; symbols and notes are read on demand).
    pub fn parse(&self) -> Result<Elf<'_>, ElfError> {
        Elf::parse(&self.data)
    }
}

/// Reads the file at `path`.
pub fn open(path: impl AsRef<Path>) -> Result<ElfFile, ElfError> {
    let path = path.as_ref();
    let data = std::fs::read(path).map_err(|e| ElfError::Io {
        path: path.display().to_string(),
        error: e.to_string(),
    })?;
    Ok(ElfFile {
        path: path.to_path_buf(),
        data,
    })
}
