//! Names for addresses in output: kernel addresses from `/proc/kallsyms`, user addresses from
//! the task's memory map and the ELF files mapped there. Loaded only when the program prints
//! stacks, `%p` or events whose text names kernel functions, since reading kallsyms costs
//! milliseconds.

use ktap_bpf::arch::Kallsyms;
use ktap_bpf::{Action, MapRole, Program};
use ktap_fmt::Symbolizer;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One file's functions: (start, size, name), sorted by start.
type FileSyms = Vec<(u64, u64, String)>;

/// A mapping of a file into a process: `[start, end)` maps file bytes from `offset`.
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    path: String,
}

pub struct Symbols {
    kernel: Option<Kallsyms>,
    /// The program records stacks, so user stacks may need a process's memory map.
    stacks: bool,
    /// When [`Symbols::remember`] last read a map.
    remembered: Cell<Option<Instant>>,
    /// Per process, its file mappings (read once, when first asked).
    maps: RefCell<HashMap<u32, Vec<Mapping>>>,
    /// Per file, its functions (parsed once).
    files: RefCell<HashMap<String, FileSyms>>,
}

impl Symbols {
    /// The symbols `prog`'s output may need.
    pub fn for_program(prog: &Program) -> Symbols {
        let stacks = prog.map_with_role(MapRole::Stacks).is_some();
        let pointers = prog
            .formats
            .iter()
            .any(|f| matches!(&f.action, Action::Printf(s) if s.contains("%p")))
            // `argstr` of an event whose `print fmt` names kernel functions (`%pS`, `%ps`).
            || prog
                .events
                .iter()
                .any(|e| ktap_fmt::argstr::names_kernel_functions(&e.print_fmt));
        let kernel = (stacks || pointers)
            .then(|| std::fs::read_to_string("/proc/kallsyms").ok())
            .flatten()
            .map(|t| Kallsyms::parse(&t));
        Symbols {
            kernel,
            stacks,
            remembered: Cell::new(None),
            maps: RefCell::new(HashMap::new()),
            files: RefCell::new(HashMap::new()),
        }
    }

    /// Whether [`Symbols::remember`] has anything to do: the program records stacks.
    pub fn wants_maps(&self) -> bool {
        self.stacks
    }

    /// Reads process `pid`'s memory map now (at most every 10 ms), so that its user stacks
    /// can still be named after it has exited, when `/proc/PID/maps` is gone: the workload of
    /// `ktap -- cmd` usually has by the time `trace_end` prints.
    pub fn remember(&self, pid: u32) {
        if !self.stacks
            || self
                .remembered
                .get()
                .is_some_and(|t| t.elapsed() < Duration::from_millis(10))
        {
            return;
        }
        self.remembered.set(Some(Instant::now()));
        let m = read_maps(pid);
        if !m.is_empty() {
            self.maps.borrow_mut().insert(pid, m);
        }
    }

    fn file_symbol(&self, path: &str, vaddr: u64) -> Option<(String, u64)> {
        let mut files = self.files.borrow_mut();
        let syms = files.entry(path.to_string()).or_insert_with(|| {
            let Ok(file) = ktap_elf::open(path) else {
                return Vec::new();
            };
            let Ok(elf) = file.parse() else {
                return Vec::new();
            };
            let mut v: FileSyms = elf
                .functions()
                .map(|fs| {
                    fs.iter()
                        .map(|f| (f.addr, f.size.max(1), f.name.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        });
        let i = syms.partition_point(|s| s.0 <= vaddr).checked_sub(1)?;
        let (start, size, name) = &syms[i];
        (vaddr < start + size).then(|| (name.clone(), vaddr - start))
    }
}

/// `/proc/PID/maps` lines with a file: `start-end perms offset dev inode path`.
fn read_maps(pid: u32) -> Vec<Mapping> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, _perms, off) = (f.next()?, f.next()?, f.next()?);
            let (_dev, _inode, path) = (f.next()?, f.next()?, f.next()?);
            let (s, e) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                offset: u64::from_str_radix(off, 16).ok()?,
                path: path.to_string(),
            })
        })
        .filter(|m| m.path.starts_with('/'))
        .collect()
}

impl Symbolizer for Symbols {
    fn symbol(&self, addr: u64) -> Option<(String, u64)> {
        let (sym, off) = self.kernel.as_ref()?.symbol(addr)?;
        Some((sym.name.clone(), off))
    }

    fn user_symbol(&self, pid: u32, addr: u64) -> Option<(String, u64)> {
        let (path, file_off) = {
            let mut maps = self.maps.borrow_mut();
            let m = maps.entry(pid).or_insert_with(|| read_maps(pid));
            let m = m.iter().find(|m| m.start <= addr && addr < m.end)?;
            (m.path.clone(), addr - m.start + m.offset)
        };
        let vaddr = {
            let file = ktap_elf::open(&path).ok()?;
            let elf = file.parse().ok()?;
            elf.vaddr_of_offset(file_off)?
        };
        self.file_symbol(&path, vaddr)
    }
}
