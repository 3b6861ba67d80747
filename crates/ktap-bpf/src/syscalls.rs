//! System call numbers by the kernel's entry point names, per architecture, and how a probe on
//! many syscall tracepoints rides on `raw_syscalls` instead.
//!
//! Every `syscalls:sys_enter_NAME`/`sys_exit_NAME` event is a filter on one of two real
//! tracepoints, `raw_syscalls:sys_enter` and `sys_exit`, and the kernel waits for an RCU grace
//! period, under a global mutex, each time the last program leaves one of them: detaching
//! `syscalls:sys_enter_*` one event at a time takes many seconds. A probe on many of them is
//! therefore attached once to the raw tracepoint, and its program looks the call's number up in
//! a table of the calls it stands for. The records line up: both carry the number at offset 8
//! (`__syscall_nr` is an `int`, `id` a `long`) and the arguments (`args[6]`) or the result
//! (`ret`) after it, a word each.
//!
//! On 64-bit MIPS (n64) the 6.1 kernel's syscall events attach but never fire (its syscall
//! metadata is indexed without the n64 base of 5000), so there every syscall event is attached
//! that way, even alone.
//!
//! The numbers come from `data/syscalls.txt`, which `tools/syscalls-table.sh` writes from the
//! kernel's own syscall tables: a call is named by its entry point (`newfstat`, not `fstat`),
//! because that is how the kernel names its tracepoint.

use crate::Arch;

/// One row per entry point: the name, then a column per architecture (see the file's header).
const TABLE: &str = include_str!("../data/syscalls.txt");

/// The fewest syscall events of one kind (entry or exit) one probe must name before it is
/// attached to `raw_syscalls` instead: below it, the per-call events cost less per event (they
/// fire only for their own calls) and little to detach.
pub const MERGE_MIN: usize = 8;

/// The table's column of an architecture.
fn column(arch: Arch) -> usize {
    match arch {
        Arch::X86_64 => 0,
        Arch::Aarch64 => 1,
        Arch::Arm => 2,
        Arch::Mips => 3,
        Arch::Mips64 => 4,
        Arch::Powerpc => 5,
        Arch::Powerpc64 => 6,
    }
}

/// The lowest system call number of `arch`'s ABI: MIPS o32 numbers start at 4000, n64 at 5000.
pub fn base(arch: Arch) -> u32 {
    match arch {
        Arch::Mips => 4000,
        Arch::Mips64 => 5000,
        _ => 0,
    }
}

/// Whether the kernel's `syscalls:*` events fire on `arch` (see the module comment).
pub fn events_fire(arch: Arch) -> bool {
    arch != Arch::Mips64
}

/// The raw tracepoint a syscall event rides on and the call it names:
/// `syscalls:sys_enter_read` is `("sys_enter", "read")`.
pub fn split<'a>(category: &str, name: &'a str) -> Option<(&'static str, &'a str)> {
    if category != "syscalls" {
        return None;
    }
    if let Some(call) = name.strip_prefix("sys_enter_") {
        Some(("sys_enter", call))
    } else {
        Some(("sys_exit", name.strip_prefix("sys_exit_")?))
    }
}

/// Where each row of [`TABLE`] starts: every line that is neither blank nor a comment. The
/// index is built when ktap is compiled, so a run reads only the rows it looks up: splitting
/// the whole 18 KB text into rows at run time took 570,000 of the 1.36 million instructions
/// ktap ran to compile and attach a one-probe count of getppid (callgrind).
const ROWS: [u16; row_count(TABLE.as_bytes())] = row_starts(TABLE.as_bytes());

const _: () = assert!(TABLE.len() <= u16::MAX as usize, "row offsets are 16-bit");

/// Whether the line starting at byte `i` of `t` is a row.
const fn is_row(t: &[u8], i: usize) -> bool {
    i < t.len() && t[i] != b'\n' && t[i] != b'#'
}

/// Walks the rows of `t`, writing where each starts into `starts` while there is room, and
/// returns how many there are: with no room it counts them, with room for all it indexes them.
const fn scan_rows(t: &[u8], starts: &mut [u16]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < t.len() {
        if is_row(t, i) {
            if n < starts.len() {
                starts[n] = i as u16;
            }
            n += 1;
        }
        while i < t.len() && t[i] != b'\n' {
            i += 1;
        }
        i += 1;
    }
    n
}

const fn row_count(t: &[u8]) -> usize {
    scan_rows(t, &mut [])
}

const fn row_starts<const N: usize>(t: &[u8]) -> [u16; N] {
    let mut rows = [0u16; N];
    scan_rows(t, &mut rows);
    rows
}

/// How the name of the row starting at byte `start` (its bytes up to the first blank) orders
/// against `call`: what a lookup compares, byte by byte as far as they agree, without finding
/// the name's end first or calling `memcmp` (a byte loop itself in a size-optimized musl).
fn cmp_name(start: u16, call: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let row = &TABLE.as_bytes()[usize::from(start)..];
    for (i, &c) in call.iter().enumerate() {
        match row.get(i) {
            None | Some(b' ' | b'\n') => return Ordering::Less,
            Some(&r) if r != c => return r.cmp(&c),
            Some(_) => {}
        }
    }
    match row.get(call.len()) {
        None | Some(b' ' | b'\n') => Ordering::Equal,
        Some(_) => Ordering::Greater,
    }
}

/// The row starting at byte `start`: the entry point's name and its columns.
fn row(start: u16) -> (&'static str, impl Iterator<Item = &'static str>) {
    let rest = &TABLE[usize::from(start)..];
    let line = rest.split_once('\n').map_or(rest, |(l, _)| l);
    let mut cols = line.split(' ');
    (cols.next().unwrap_or(""), cols)
}

/// The system call numbers of one architecture, by entry point name.
pub struct Table {
    col: usize,
}

impl Table {
    /// `arch`'s column of the table.
    pub fn new(arch: Arch) -> Table {
        Table { col: column(arch) }
    }

    /// The numbers of `arch` in the row starting at `start`, or None when it has none.
    fn column_of(&self, start: u16) -> (&'static str, Option<&'static str>) {
        let (name, mut cols) = row(start);
        (name, cols.nth(self.col).filter(|&c| c != "-"))
    }

    /// The numbers whose entry point is `sys_CALL` (several calls can share one), in
    /// increasing order; empty when the architecture has none.
    pub fn numbers(&self, call: &str) -> Vec<u32> {
        match ROWS.binary_search_by(|&start| cmp_name(start, call.as_bytes())) {
            Ok(i) => parse(self.column_of(ROWS[i]).1),
            Err(_) => Vec::new(),
        }
    }

    /// Every entry point and its numbers.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Vec<u32>)> + '_ {
        ROWS.iter()
            .filter_map(|&start| match self.column_of(start) {
                (name, Some(nums)) => Some((name, parse(Some(nums)))),
                (_, None) => None,
            })
    }
}

/// A column's numbers, joined by `,`.
fn parse(col: Option<&str>) -> Vec<u32> {
    col.into_iter()
        .flat_map(|c| c.split(','))
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCHES: [Arch; 7] = [
        Arch::X86_64,
        Arch::Aarch64,
        Arch::Arm,
        Arch::Mips,
        Arch::Mips64,
        Arch::Powerpc,
        Arch::Powerpc64,
    ];

    /// The table's rows as a plain reading of the text finds them.
    fn text_rows() -> Vec<&'static str> {
        TABLE
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }

    #[test]
    fn the_table_is_sorted_and_every_row_has_every_column() {
        let rows = text_rows();
        assert!(rows.len() > 400, "{} rows", rows.len());
        let names: Vec<&str> = rows.iter().map(|r| r.split(' ').next().unwrap()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        for r in &rows {
            let cols: Vec<&str> = r.split(' ').collect();
            assert_eq!(cols.len(), 1 + ARCHES.len(), "{r}");
            for (arch, c) in ARCHES.iter().zip(&cols[1..]) {
                if *c == "-" {
                    continue;
                }
                for n in c.split(',') {
                    let n: u32 = n.parse().unwrap_or_else(|_| panic!("{r}"));
                    assert!((base(*arch)..base(*arch) + 1000).contains(&n), "{r}");
                }
            }
        }
    }

    #[test]
    fn the_row_index_finds_every_row() {
        let rows = text_rows();
        let indexed: Vec<&str> = ROWS
            .iter()
            .map(|&s| TABLE[usize::from(s)..].lines().next().unwrap())
            .collect();
        assert_eq!(indexed, rows);
        for arch in ARCHES {
            let plain = rows
                .iter()
                .filter(|r| r.split(' ').nth(column(arch) + 1) != Some("-"))
                .count();
            assert_eq!(Table::new(arch).iter().count(), plain, "{arch:?}");
        }
        // Every row is found by its own name, and only by it: not by a prefix or an extension.
        let x86 = Table::new(Arch::X86_64);
        for r in &rows {
            let mut cols = r.split(' ');
            let name = cols.next().unwrap();
            let want = cols.next().unwrap();
            let got: Vec<String> = x86.numbers(name).iter().map(|n| n.to_string()).collect();
            assert_eq!(got.join(","), if want == "-" { "" } else { want }, "{name}");
        }
        assert!(x86.numbers("rea").is_empty() && x86.numbers("readx").is_empty());
        assert!(x86.numbers("").is_empty() && x86.numbers("zzzz").is_empty());
    }

    #[test]
    fn numbers_by_entry_point() {
        let x86 = Table::new(Arch::X86_64);
        assert_eq!(x86.numbers("read"), [0]);
        assert_eq!(x86.numbers("getppid"), [110]);
        // x86_64's `fstat` (5) and `sendfile` (40) enter the kernel as these.
        assert_eq!(x86.numbers("newfstat"), [5]);
        assert_eq!(x86.numbers("sendfile64"), [40]);
        assert!(x86.numbers("fstat").is_empty());
        assert!(x86.numbers("nonesuch").is_empty());
        let getppid = [
            (Arch::Aarch64, 173),
            (Arch::Arm, 64),
            (Arch::Mips, 4064),
            (Arch::Mips64, 5108),
            (Arch::Powerpc, 64),
            (Arch::Powerpc64, 64),
        ];
        for (arch, nr) in getppid {
            assert_eq!(Table::new(arch).numbers("getppid"), [nr], "{arch:?}");
        }
        assert!(Table::new(Arch::Mips64).iter().count() > 300);
    }

    #[test]
    fn syscall_events_split_into_raw_tracepoint_and_call() {
        assert_eq!(
            split("syscalls", "sys_enter_read"),
            Some(("sys_enter", "read"))
        );
        assert_eq!(
            split("syscalls", "sys_exit_getppid"),
            Some(("sys_exit", "getppid"))
        );
        assert_eq!(split("sched", "sys_enter_read"), None);
        assert_eq!(split("syscalls", "other"), None);
        assert!(!events_fire(Arch::Mips64));
        assert!(events_fire(Arch::Mips));
    }

    /// The n64 numbers agree with Debian's uapi header for MIPS, an independent source, for
    /// every call whose uapi name is its entry point's.
    #[test]
    fn n64_numbers_match_the_uapi_header() {
        let path = "/usr/mips-linux-gnu/include/asm/unistd_n64.h";
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{path}: {e} (make deps installs linux-libc-dev-mips-cross)")
        });
        let table = Table::new(Arch::Mips64);
        let mut same = 0;
        for l in text.lines() {
            let Some(rest) = l.strip_prefix("#define __NR_") else {
                continue;
            };
            let Some((name, val)) = rest.split_once(" (__NR_Linux + ") else {
                continue;
            };
            let nr: u32 = val.trim_end_matches(')').parse().unwrap();
            let got = table.numbers(name);
            if !got.is_empty() {
                assert!(got.contains(&(5000 + nr)), "{name}: {got:?} vs {nr}");
                same += 1;
            }
        }
        assert!(same > 300, "{same} calls compared");
    }
}
