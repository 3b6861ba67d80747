//! Symbols: `.symtab` and `.dynsym` entries with their GNU versions (`malloc@@GLIBC_2.2.5`),
//! and the functions among them with the address a uprobe must use on each architecture
//! (PowerPC64 ELFv1 descriptors resolved, ELFv2 local entry points, ARM Thumb and MIPS
//! compressed-ISA bits cleared), looked up by name with near-name suggestions.

use crate::read::Reader;
use crate::{machine, Elf, ElfError};

const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const SHT_GNU_VERDEF: u32 = 0x6fff_fffd;
const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;
/// `VERSYM_HIDDEN`: the symbol is a non-default version (`name@VER`, not `name@@VER`).
const VERSYM_HIDDEN: u16 = 0x8000;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
const STB_LOCAL: u8 = 0;
const SHN_UNDEF: u16 = 0;

/// `STT_*`: what a symbol names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymKind {
    NoType,
    Object,
    Func,
    Section,
    File,
    Common,
    Tls,
    /// `STT_GNU_IFUNC`: the value is a resolver that picks the implementation at load time.
    IFunc,
    Other(u8),
}

impl SymKind {
    fn from_info(info: u8) -> SymKind {
        match info & 0xf {
            0 => SymKind::NoType,
            1 => SymKind::Object,
            STT_FUNC => SymKind::Func,
            3 => SymKind::Section,
            4 => SymKind::File,
            5 => SymKind::Common,
            6 => SymKind::Tls,
            STT_GNU_IFUNC => SymKind::IFunc,
            t => SymKind::Other(t),
        }
    }
}

/// Which table a symbol came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymbolTable {
    Symtab,
    Dynsym,
}

/// One symbol table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub name: &'a str,
    /// The GNU symbol version of a `.dynsym` definition (`GLIBC_2.2.5`).
    pub version: Option<&'a str>,
    /// True for the default version (`name@@VER`), false for a compatibility one (`name@VER`).
    pub default_version: bool,
    pub value: u64,
    pub size: u64,
    pub kind: SymKind,
    /// `STB_*`: 0 local, 1 global, 2 weak, 10 GNU unique.
    pub bind: u8,
    pub other: u8,
    pub shndx: u16,
    pub table: SymbolTable,
}

impl Symbol<'_> {
    /// Defined in this file (not an import).
    pub fn is_defined(&self) -> bool {
        self.shndx != SHN_UNDEF
    }
}

/// `name`, `name@@VER` or `name@VER`, as `nm -D` and `readelf` print it.
fn versioned(name: &str, version: Option<&str>, default: bool) -> String {
    match version {
        Some(v) if default => format!("{name}@@{v}"),
        Some(v) => format!("{name}@{v}"),
        None => name.to_string(),
    }
}

/// A function defined in the file, at the address a probe on it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
    pub default_version: bool,
    /// The first byte of its code (for PowerPC64 ELFv1, read from its `.opd` descriptor).
    pub addr: u64,
    pub size: u64,
    /// From `addr` to where every call passes: PowerPC64 ELFv2's local entry point, which
    /// calls from within the same file jump to, skipping the TOC setup. 0 elsewhere.
    pub entry_offset: u64,
    /// Thumb (ARM) or MIPS16/microMIPS code, whose symbols carry the ISA bit in bit 0 (cleared
    /// in `addr`). ARM uprobes decode ARM instructions only, so the loader must refuse these.
    pub compressed: bool,
    /// `STT_GNU_IFUNC`: `addr` is the resolver, which runs once, not the implementation.
    pub ifunc: bool,
    /// Global or weak (not a file-local static function).
    pub global: bool,
}

impl Function<'_> {
    /// Where a uprobe on this function goes: the entry every call executes.
    pub fn probe_addr(&self) -> u64 {
        self.addr.wrapping_add(self.entry_offset)
    }

    /// `name@@VER`, `name@VER` or `name`.
    pub fn versioned_name(&self) -> String {
        versioned(self.name, self.version, self.default_version)
    }
}

/// The functions of a file, sorted by address then name, one entry per (address, name,
/// version) however many tables list it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Functions<'a> {
    list: Vec<Function<'a>>,
}

impl<'a> Functions<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &Function<'a>> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The function `query` names: a base name (`malloc`, which matches any version and
    /// prefers the default one and global definitions) or a versioned one (`malloc@@GLIBC_2.2.5`,
    /// `memcpy@GLIBC_2.2.5`).
    pub fn find(&self, query: &str) -> Result<Function<'a>, ElfError> {
        let (base, version) = match query.split_once('@') {
            Some((b, v)) => match v.strip_prefix('@') {
                Some(v) => (b, Some((v, true))),
                None => (b, Some((v, false))),
            },
            None => (query, None),
        };
        let mut found: Vec<&Function<'a>> = self
            .list
            .iter()
            .filter(|f| f.name == base)
            .filter(|f| match version {
                Some((v, default)) => f.version == Some(v) && (f.default_version || !default),
                None => true,
            })
            .collect();
        if found.is_empty() {
            return Err(ElfError::SymbolNotFound {
                name: query.to_string(),
                suggestions: suggest(query, self.list.iter().map(|f| f.name)),
            });
        }
        // Narrow by preference while something is left: global over static, the default
        // version (or none) over compatibility versions.
        let keep = |found: &mut Vec<&Function<'a>>, pred: &dyn Fn(&Function) -> bool| {
            if found.iter().any(|f| pred(f)) {
                found.retain(|f| pred(f));
            }
        };
        keep(&mut found, &|f| f.global);
        keep(&mut found, &|f| f.version.is_none() || f.default_version);
        let mut addrs: Vec<u64> = found.iter().map(|f| f.addr).collect();
        addrs.dedup();
        match (addrs.len(), found.first()) {
            (1, Some(f)) => Ok(**f),
            _ => Err(ElfError::Ambiguous {
                name: query.to_string(),
                addrs,
            }),
        }
    }

    /// The function holding `vaddr` and the offset into it (for user stack symbolization):
    /// the nearest function starting at or before it whose size covers it (size 0: exactly
    /// at it), preferring a global, default-version name where several share the address.
    pub fn at(&self, vaddr: u64) -> Option<(&Function<'a>, u64)> {
        let end = self.list.partition_point(|f| f.addr <= vaddr);
        let mut best: Option<&Function<'a>> = None;
        // Scan back over the functions that start at or before vaddr: one further back can be
        // larger than the nearest and still cover it (an alias, an outer function).
        for f in self.list[..end].iter().rev().take(64) {
            let off = vaddr - f.addr;
            if off < f.size.max(1) {
                let rank = |f: &Function| (f.global, f.version.is_none() || f.default_version);
                best = match best {
                    Some(b) if b.addr > f.addr || rank(b) >= rank(f) => Some(b),
                    _ => Some(f),
                };
            }
        }
        best.map(|f| (f, vaddr - f.addr))
    }
}

impl<'a> Elf<'a> {
    /// Every entry of `.symtab` and `.dynsym` (either may be missing; both missing is
    /// [`ElfError::NoSymbols`]), with versions for `.dynsym` definitions. The null entry and
    /// nameless entries are left out.
    pub fn symbols(&self) -> Result<Vec<Symbol<'a>>, ElfError> {
        self.symbols_named(None)
    }

    /// [`Elf::symbols`], only those named `only` when it is given. The names are compared as
    /// bytes in the string table before anything is made of an entry: a C library has
    /// thousands of symbols, and making them all (each name checked as UTF-8 and kept) to find
    /// one was most of the time ktap took to compile a uprobe on `malloc`.
    fn symbols_named(&self, only: Option<&str>) -> Result<Vec<Symbol<'a>>, ElfError> {
        let r = self.reader();
        let mut out = Vec::new();
        let mut any = false;
        for (index, sec) in self.sections.iter().enumerate() {
            let table = match sec.sh_type {
                SHT_SYMTAB => SymbolTable::Symtab,
                SHT_DYNSYM => SymbolTable::Dynsym,
                _ => continue,
            };
            any = true;
            let strtab = usize::try_from(sec.link)
                .ok()
                .and_then(|i| self.sections.get(i))
                .ok_or_else(|| ElfError::Malformed(format!("{} has no string table", sec.name)))?;
            let versions = match table {
                SymbolTable::Dynsym => self.versions(index)?,
                SymbolTable::Symtab => Versions::default(),
            };
            let entsize = match (sec.entsize, r.word_size()) {
                (0, 4) => 16,
                (0, _) => 24,
                (e, _) => e,
            };
            let need = if r.word_size() == 4 { 16 } else { 24 };
            if entsize < need {
                return Err(ElfError::Malformed(format!(
                    "{} entries of {entsize} bytes",
                    sec.name
                )));
            }
            let bytes = self.section_data(sec)?;
            let syms = Reader { data: bytes, ..r };
            let count = bytes.len() as u64 / entsize;
            let names = r.bytes(strtab.offset, strtab.size);
            for i in 1..count {
                let Some(at) = usize::try_from(i * entsize).ok() else {
                    break;
                };
                // st_name leads the entry in both layouts.
                if let (Some(only), Some(strings)) = (only, names) {
                    let named = syms
                        .u32(at)
                        .and_then(|n| strings.get(n as usize..))
                        .is_some_and(|n| {
                            n.starts_with(only.as_bytes()) && n.get(only.len()) == Some(&0)
                        });
                    if !named {
                        continue;
                    }
                }
                let Some(raw) = read_symbol(&syms, at) else {
                    return Err(ElfError::Truncated("a symbol table"));
                };
                let Some(name) = r.str_in(strtab.offset, strtab.size, u64::from(raw.name)) else {
                    continue;
                };
                if name.is_empty() {
                    continue;
                }
                let (version, default_version) = versions.of(i);
                out.push(Symbol {
                    name,
                    version,
                    default_version,
                    value: raw.value,
                    size: raw.size,
                    kind: SymKind::from_info(raw.info),
                    bind: raw.info >> 4,
                    other: raw.other,
                    shndx: raw.shndx,
                    table,
                });
            }
        }
        if any {
            Ok(out)
        } else {
            Err(ElfError::NoSymbols)
        }
    }

    /// The functions defined in the file (for `ktap -lf ELF`), at their probe addresses.
    pub fn functions(&self) -> Result<Functions<'a>, ElfError> {
        self.functions_named(None)
    }

    /// [`Elf::functions`], only those named `only` when it is given.
    fn functions_named(&self, only: Option<&str>) -> Result<Functions<'a>, ElfError> {
        let opd = self
            .section(".opd")
            .filter(|_| self.machine == machine::PPC64)
            .map(|s| s.addr..s.addr.saturating_add(s.size));
        // ELFv2 says so in e_flags; ELFv1 files have `.opd` instead.
        let elfv2 = self.machine == machine::PPC64 && self.flags & 3 == 2;
        let mut list = Vec::new();
        for s in self.symbols_named(only)? {
            let ifunc = s.kind == SymKind::IFunc;
            if !(s.kind == SymKind::Func || ifunc) || !s.is_defined() {
                continue;
            }
            let mut addr = s.value;
            let mut compressed = false;
            match self.machine {
                machine::ARM if addr & 1 == 1 => {
                    addr &= !1;
                    compressed = true;
                }
                // STO_MIPS16 (0xf0) and STO_MICROMIPS (0x80 in the top two bits).
                machine::MIPS if s.other & 0xf0 == 0xf0 || s.other & 0xc0 == 0x80 => {
                    addr &= !1;
                    compressed = true;
                }
                machine::PPC64 if opd.as_ref().is_some_and(|r| r.contains(&addr)) => {
                    match self.word_at(addr) {
                        Some(code) => addr = code,
                        // A descriptor outside the file's bytes: nothing to probe.
                        None => continue,
                    }
                }
                _ => {}
            }
            let entry_offset = if elfv2 {
                // The top three bits of st_other encode the local entry's distance from the
                // global one: (1 << v) >> 2 instructions for v in 2..=6.
                match s.other >> 5 {
                    v @ 2..=6 => ((1u64 << v) >> 2) << 2,
                    _ => 0,
                }
            } else {
                0
            };
            list.push(Function {
                name: s.name,
                version: s.version,
                default_version: s.default_version,
                addr,
                size: s.size,
                entry_offset,
                compressed,
                ifunc,
                global: s.bind != STB_LOCAL,
            });
        }
        list.sort_by(|a, b| {
            (a.addr, a.name, a.version.is_none(), a.version).cmp(&(
                b.addr,
                b.name,
                b.version.is_none(),
                b.version,
            ))
        });
        // `.symtab` repeats `.dynsym`'s definitions without their versions: keep one entry
        // per (address, name, version), and drop the unversioned twin of a versioned one.
        list.dedup_by(|later, earlier| {
            later.addr == earlier.addr
                && later.name == earlier.name
                && (later.version == earlier.version || later.version.is_none())
        });
        Ok(Functions { list })
    }

    /// The function `name` names (see [`Functions::find`]).
    pub fn find_function(&self, name: &str) -> Result<Function<'a>, ElfError> {
        // Only that name's entries are gathered (a C library defines thousands of functions);
        // all of them only when it is missing, for the suggestions.
        let base = name.split_once('@').map_or(name, |(b, _)| b);
        match self.functions_named(Some(base))?.find(name) {
            Err(ElfError::SymbolNotFound { .. }) => self.functions()?.find(name),
            found => found,
        }
    }

    /// The file offset a uprobe on function `name` takes.
    pub fn uprobe_offset(&self, name: &str) -> Result<u64, ElfError> {
        self.file_offset(self.find_function(name)?.probe_addr())
    }

    /// The version names `.gnu.version` gives the entries of the dynamic symbol table at
    /// section index `dynsym`.
    fn versions(&self, dynsym: usize) -> Result<Versions<'a>, ElfError> {
        let r = self.reader();
        let linked = |ty: u32| {
            self.sections
                .iter()
                .find(|s| s.sh_type == ty && usize::try_from(s.link).ok() == Some(dynsym))
        };
        let Some(versym) = linked(SHT_GNU_VERSYM) else {
            return Ok(Versions::default());
        };
        let mut names: Vec<Option<&'a str>> = Vec::new();
        if let Some(verdef) = self.sections.iter().find(|s| s.sh_type == SHT_GNU_VERDEF) {
            let strtab = usize::try_from(verdef.link)
                .ok()
                .and_then(|i| self.sections.get(i))
                .ok_or(ElfError::Malformed(
                    ".gnu.version_d has no string table".into(),
                ))?;
            let data = self.section_data(verdef)?;
            let d = Reader { data, ..r };
            // Verdef: vd_version u16, vd_flags u16, vd_ndx u16, vd_cnt u16, vd_hash u32,
            // vd_aux u32, vd_next u32; its first Verdaux (vda_name u32, vda_next u32) names it.
            let mut at = 0usize;
            for _ in 0..u64::from(verdef.info).clamp(1, 0x1_0000) {
                if at > data.len() {
                    break;
                }
                let (Some(ndx), Some(aux), Some(next)) =
                    (d.u16(at + 4), d.u32(at + 12), d.u32(at + 16))
                else {
                    break;
                };
                let name = at
                    .checked_add(aux as usize)
                    .and_then(|a| d.u32(a))
                    .and_then(|n| r.str_in(strtab.offset, strtab.size, u64::from(n)));
                let ndx = usize::from(ndx & 0x7fff);
                if names.len() <= ndx {
                    names.resize(ndx + 1, None);
                }
                names[ndx] = name;
                if next == 0 {
                    break;
                }
                match at.checked_add(next as usize) {
                    Some(n) => at = n,
                    None => break,
                }
            }
        }
        Ok(Versions {
            versym: self.section_data(versym)?,
            reader: Some(r),
            names,
        })
    }
}

/// `.gnu.version` entries and the names of the versions this file defines.
#[derive(Default)]
struct Versions<'a> {
    versym: &'a [u8],
    reader: Option<Reader<'a>>,
    /// Index 1 is the file itself (the base version): such symbols print unversioned.
    names: Vec<Option<&'a str>>,
}

impl<'a> Versions<'a> {
    /// The version of dynamic symbol `index` and whether it is the default one.
    fn of(&self, index: u64) -> (Option<&'a str>, bool) {
        let Some(r) = self.reader else {
            return (None, true);
        };
        let entry = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(2))
            .and_then(|at| {
                Reader {
                    data: self.versym,
                    ..r
                }
                .u16(at)
            });
        match entry {
            Some(v) => {
                let ndx = usize::from(v & 0x7fff);
                // 0 is local and 1 the base version: no version suffix.
                let name = if ndx >= 2 {
                    self.names.get(ndx).copied().flatten()
                } else {
                    None
                };
                (name, v & VERSYM_HIDDEN == 0)
            }
            None => (None, true),
        }
    }
}

struct RawSym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

fn read_symbol(r: &Reader, at: usize) -> Option<RawSym> {
    Some(if r.word_size() == 4 {
        // st_name, st_value, st_size, st_info, st_other, st_shndx
        RawSym {
            name: r.u32(at)?,
            value: r.word(at + 4)?,
            size: r.word(at + 8)?,
            info: *r.data.get(at + 12)?,
            other: *r.data.get(at + 13)?,
            shndx: r.u16(at + 14)?,
        }
    } else {
        // st_name, st_info, st_other, st_shndx, st_value, st_size
        RawSym {
            name: r.u32(at)?,
            info: *r.data.get(at + 4)?,
            other: *r.data.get(at + 5)?,
            shndx: r.u16(at + 6)?,
            value: r.word(at + 8)?,
            size: r.word(at + 16)?,
        }
    })
}

/// Up to five names close to `wanted`: small edit distances first, then names containing it
/// (or contained in it), each once.
pub(crate) fn suggest<'s>(wanted: &str, names: impl Iterator<Item = &'s str>) -> Vec<String> {
    let wanted = wanted.split('@').next().unwrap_or(wanted);
    let limit = (wanted.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, &str)> = names
        .filter_map(|n| {
            if let Some(d) = edit_distance(wanted, n, limit) {
                Some((d, n))
            } else if wanted.len() >= 3 && (n.contains(wanted) || wanted.contains(n)) {
                Some((limit + 1 + n.len().abs_diff(wanted.len()), n))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Levenshtein distance between `a` and `b`, or `None` when it exceeds `limit`.
fn edit_distance(a: &str, b: &str, limit: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        if cur.iter().min().is_some_and(|&m| m > limit) {
            return None;
        }
        prev = cur;
    }
    prev.last().copied().filter(|&d| d <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("malloc", "malloc", 2), Some(0));
        assert_eq!(edit_distance("mallocc", "malloc", 2), Some(1));
        assert_eq!(edit_distance("free", "fre", 1), Some(1));
        assert_eq!(edit_distance("abc", "xyz", 2), None);
        assert_eq!(edit_distance("", "ab", 2), Some(2));
    }

    #[test]
    fn suggestions_rank_typos_first() {
        let names = [
            "malloc",
            "__libc_malloc",
            "calloc",
            "free",
            "malloc_usable_size",
        ];
        let s = suggest("mallc", names.iter().copied());
        assert_eq!(s[0], "malloc");
        let s = suggest("libc_malloc", names.iter().copied());
        assert_eq!(s[0], "__libc_malloc");
        assert!(suggest("zzzzzz", names.iter().copied()).is_empty());
        assert_eq!(
            suggest("malloc@@GLIBC_2.0", names.iter().copied())[0],
            "malloc"
        );
    }
}
