//! ELF files as uprobes and USDT need them: function symbols (`.symtab`, `.dynsym`, with their
//! GNU versions), the file offset of an address (what the kernel's uprobe interface takes), and
//! the SystemTap SDT notes with their argument locations decoded.
//!
//! Everything here is pure: [`Elf::parse`] reads the bytes it is given, of any class (32/64-bit)
//! and byte order, whatever the host is. The one function that reads a file is [`open`], kept in
//! its own module. Malformed input gives an [`ElfError`], never a panic.

mod error;
mod file;
mod read;
mod sdt;
mod symbols;

pub use error::ElfError;
pub use file::{open, ElfFile};
pub use sdt::{SdtArg, SdtLoc, SdtNote};
pub use symbols::{Function, Functions, SymKind, Symbol, SymbolTable};

use read::Reader;

/// 32- or 64-bit ELF (`EI_CLASS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Elf32,
    Elf64,
}

/// Byte order of the file (`EI_DATA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    Little,
    Big,
}

/// `e_type`: what kind of file this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    Relocatable,
    /// `ET_EXEC`: a position-dependent executable, linked at its final addresses.
    Executable,
    /// `ET_DYN`: a shared library or a position-independent executable.
    Dynamic,
    Core,
    Other(u16),
}

/// `e_machine` values ktap knows; the rest are `Other`.
pub mod machine {
    pub const X86: u16 = 3;
    pub const MIPS: u16 = 8;
    pub const PPC: u16 = 20;
    pub const PPC64: u16 = 21;
    pub const ARM: u16 = 40;
    pub const X86_64: u16 = 62;
    pub const AARCH64: u16 = 183;
}

/// `PT_LOAD`: a segment mapped from the file.
pub const PT_LOAD: u32 = 1;
/// `PF_X`: the segment is executable.
pub const PF_X: u32 = 1;

/// One program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

impl Segment {
    /// True if `vaddr` is one of the segment's bytes that come from the file.
    fn holds(&self, vaddr: u64) -> bool {
        self.p_type == PT_LOAD && vaddr >= self.vaddr && vaddr - self.vaddr < self.filesz
    }
}

/// One section header, with its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    pub name: &'a str,
    pub sh_type: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub info: u32,
    pub addralign: u64,
    pub entsize: u64,
}

/// `SHT_NOBITS`: a section that takes no room in the file (`.bss`).
const SHT_NOBITS: u32 = 8;

/// A parsed ELF file: the header, the program headers and the section headers. Symbols and
/// notes are read from it on demand.
#[derive(Clone, Debug)]
pub struct Elf<'a> {
    data: &'a [u8],
    pub class: Class,
    pub byte_order: ByteOrder,
    pub kind: FileKind,
    /// `e_machine`; see [`machine`].
    pub machine: u16,
    /// `e_flags`: for PowerPC64 the ABI version (1 or 2), for MIPS the ABI among others.
    pub flags: u32,
    pub entry: u64,
    pub segments: Vec<Segment>,
    pub sections: Vec<Section<'a>>,
}

impl<'a> Elf<'a> {
    /// Parses the headers of the ELF image `data`.
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, ElfError> {
        if data.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(ElfError::NotElf);
        }
        let ident = data
            .get(..16)
            .ok_or(ElfError::Truncated("the ELF header"))?;
        let class = match ident[4] {
            1 => Class::Elf32,
            2 => Class::Elf64,
            c => return Err(ElfError::Unsupported(format!("ELF class {c}"))),
        };
        let byte_order = match ident[5] {
            1 => ByteOrder::Little,
            2 => ByteOrder::Big,
            d => return Err(ElfError::Unsupported(format!("ELF data encoding {d}"))),
        };
        let r = Reader {
            data,
            class,
            order: byte_order,
        };
        let w = r.word_size();
        // e_type at 16, then e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize,
        // e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx.
        let header = |what| ElfError::Truncated(what);
        let e_type = r.u16(16).ok_or(header("the ELF header"))?;
        let machine = r.u16(18).ok_or(header("the ELF header"))?;
        let entry = r.word(24).ok_or(header("the ELF header"))?;
        let phoff = r.word(24 + w).ok_or(header("the ELF header"))?;
        let shoff = r.word(24 + 2 * w).ok_or(header("the ELF header"))?;
        let tail = 24 + 3 * w;
        let flags = r.u32(tail).ok_or(header("the ELF header"))?;
        let phentsize = r.u16(tail + 6).ok_or(header("the ELF header"))?;
        let phnum = r.u16(tail + 8).ok_or(header("the ELF header"))?;
        let shentsize = r.u16(tail + 10).ok_or(header("the ELF header"))?;
        let shnum = r.u16(tail + 12).ok_or(header("the ELF header"))?;
        let shstrndx = r.u16(tail + 14).ok_or(header("the ELF header"))?;
        let kind = match e_type {
            1 => FileKind::Relocatable,
            2 => FileKind::Executable,
            3 => FileKind::Dynamic,
            4 => FileKind::Core,
            t => FileKind::Other(t),
        };

        let raw_sections = read_section_headers(&r, shoff, shentsize, shnum)?;
        // Counts that overflow 16 bits live in section 0 (sh_size, sh_link, sh_info).
        let phnum = match (phnum, raw_sections.first()) {
            (0xffff, Some(s0)) => u64::from(s0.info),
            (n, _) => u64::from(n),
        };
        let shstrndx = match (shstrndx, raw_sections.first()) {
            (0xffff, Some(s0)) => u64::from(s0.link),
            (n, _) => u64::from(n),
        };
        let segments = read_program_headers(&r, phoff, phentsize, phnum)?;

        let names = usize::try_from(shstrndx)
            .ok()
            .and_then(|i| raw_sections.get(i))
            .filter(|s| s.sh_type != SHT_NOBITS)
            .copied();
        let sections = raw_sections
            .iter()
            .map(|s| {
                let name = names
                    .and_then(|strtab| r.str_in(strtab.offset, strtab.size, u64::from(s.name)))
                    .unwrap_or("");
                Section {
                    name,
                    sh_type: s.sh_type,
                    flags: s.flags,
                    addr: s.addr,
                    offset: s.offset,
                    size: s.size,
                    link: s.link,
                    info: s.info,
                    addralign: s.addralign,
                    entsize: s.entsize,
                }
            })
            .collect();
        Ok(Elf {
            data,
            class,
            byte_order,
            kind,
            machine,
            flags,
            entry,
            segments,
            sections,
        })
    }

    fn reader(&self) -> Reader<'a> {
        Reader {
            data: self.data,
            class: self.class,
            order: self.byte_order,
        }
    }

    /// The section called `name`, if there is one.
    pub fn section(&self, name: &str) -> Option<&Section<'a>> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The bytes of `section` in the file (empty for `.bss`-like sections).
    pub fn section_data(&self, section: &Section<'a>) -> Result<&'a [u8], ElfError> {
        if section.sh_type == SHT_NOBITS {
            return Ok(&[]);
        }
        self.reader()
            .bytes(section.offset, section.size)
            .ok_or(ElfError::Truncated("a section's contents"))
    }

    /// The file offset of virtual address `vaddr`: `vaddr - p_vaddr + p_offset` of the
    /// `PT_LOAD` segment whose file bytes hold it. This is what a uprobe takes, for
    /// executables (linked at fixed addresses), PIEs and shared libraries alike.
    pub fn file_offset(&self, vaddr: u64) -> Result<u64, ElfError> {
        self.segments
            .iter()
            .find(|s| s.holds(vaddr))
            .map(|s| vaddr - s.vaddr + s.offset)
            .ok_or(ElfError::NotMapped(vaddr))
    }

    /// The virtual address the byte at file `offset` is loaded at, if a `PT_LOAD` maps it (the
    /// reverse of [`Elf::file_offset`], for addresses read from `/proc/PID/maps`).
    pub fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| s.p_type == PT_LOAD && offset >= s.offset && offset - s.offset < s.filesz)
            .map(|s| offset - s.offset + s.vaddr)
    }

    /// True if `vaddr` is in an executable segment (where a uprobe can go).
    pub fn is_code(&self, vaddr: u64) -> bool {
        self.segments
            .iter()
            .any(|s| s.holds(vaddr) && s.flags & PF_X != 0)
    }

    /// The bytes at virtual address `vaddr`, `len` of them, from the file.
    fn bytes_at(&self, vaddr: u64, len: u64) -> Option<&'a [u8]> {
        let seg = self.segments.iter().find(|s| s.holds(vaddr))?;
        let room = seg.filesz - (vaddr - seg.vaddr);
        if len > room {
            return None;
        }
        self.reader().bytes(vaddr - seg.vaddr + seg.offset, len)
    }

    /// Word-sized value at virtual address `vaddr` (a PowerPC64 ELFv1 function descriptor).
    fn word_at(&self, vaddr: u64) -> Option<u64> {
        let r = self.reader();
        let bytes = self.bytes_at(vaddr, r.word_size() as u64)?;
        Reader { data: bytes, ..r }.word(0)
    }
}

/// A section header as stored; names resolved afterwards.
#[derive(Clone, Copy)]
struct RawSection {
    name: u32,
    sh_type: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    addralign: u64,
    entsize: u64,
}

fn read_section_headers(
    r: &Reader,
    shoff: u64,
    shentsize: u16,
    shnum: u16,
) -> Result<Vec<RawSection>, ElfError> {
    if shoff == 0 {
        return Ok(Vec::new());
    }
    let w = r.word_size() as u64;
    let need = 16 + 6 * w;
    if u64::from(shentsize) < need {
        return Err(ElfError::Malformed(format!(
            "section header entries of {shentsize} bytes"
        )));
    }
    let one = |i: u64| -> Option<RawSection> {
        let at = usize::try_from(shoff.checked_add(i.checked_mul(u64::from(shentsize))?)?).ok()?;
        // Past the end nothing can be read, and offsets below stay far from overflowing.
        if at > r.data.len() {
            return None;
        }
        let w = r.word_size();
        Some(RawSection {
            name: r.u32(at)?,
            sh_type: r.u32(at + 4)?,
            flags: r.word(at + 8)?,
            addr: r.word(at + 8 + w)?,
            offset: r.word(at + 8 + 2 * w)?,
            size: r.word(at + 8 + 3 * w)?,
            link: r.u32(at + 8 + 4 * w)?,
            info: r.u32(at + 12 + 4 * w)?,
            addralign: r.word(at + 16 + 4 * w)?,
            entsize: r.word(at + 16 + 5 * w)?,
        })
    };
    let first = one(0).ok_or(ElfError::Truncated("the section headers"))?;
    // More than 0xff00 sections: e_shnum is 0 and section 0's sh_size holds the count.
    let count = if shnum == 0 {
        first.size
    } else {
        u64::from(shnum)
    };
    // Each header takes at least `need` bytes of the file: a larger count is a lie.
    if count.saturating_mul(need) > r.data.len() as u64 {
        return Err(ElfError::Truncated("the section headers"));
    }
    (0..count)
        .map(|i| one(i).ok_or(ElfError::Truncated("the section headers")))
        .collect()
}

fn read_program_headers(
    r: &Reader,
    phoff: u64,
    phentsize: u16,
    phnum: u64,
) -> Result<Vec<Segment>, ElfError> {
    if phoff == 0 || phnum == 0 {
        return Ok(Vec::new());
    }
    let w = r.word_size();
    let need = 8 + 6 * w as u64;
    if u64::from(phentsize) < need {
        return Err(ElfError::Malformed(format!(
            "program header entries of {phentsize} bytes"
        )));
    }
    if phnum.saturating_mul(need) > r.data.len() as u64 {
        return Err(ElfError::Truncated("the program headers"));
    }
    (0..phnum)
        .map(|i| {
            let at = phoff
                .checked_add(i.checked_mul(u64::from(phentsize))?)
                .and_then(|a| usize::try_from(a).ok())
                .filter(|&a| a <= r.data.len())?;
            Some(match r.class {
                // p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
                Class::Elf32 => Segment {
                    p_type: r.u32(at)?,
                    offset: r.word(at + 4)?,
                    vaddr: r.word(at + 8)?,
                    filesz: r.word(at + 16)?,
                    memsz: r.word(at + 20)?,
                    flags: r.u32(at + 24)?,
                },
                // p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
                Class::Elf64 => Segment {
                    p_type: r.u32(at)?,
                    flags: r.u32(at + 4)?,
                    offset: r.word(at + 8)?,
                    vaddr: r.word(at + 16)?,
                    filesz: r.word(at + 32)?,
                    memsz: r.word(at + 40)?,
                },
            })
        })
        .map(|s| s.ok_or(ElfError::Truncated("the program headers")))
        .collect()
}
