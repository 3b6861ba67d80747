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

/// The system call numbers of one architecture, by entry point name.
pub struct Table {
    rows: Vec<(&'static str, &'static str)>,
}

impl Table {
    /// `arch`'s column of the table.
    pub fn new(arch: Arch) -> Table {
        let col = column(arch) + 1;
        let rows = TABLE
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let mut cols = l.split(' ');
                let name = cols.next()?;
                let nums = cols.nth(col - 1)?;
                (nums != "-").then_some((name, nums))
            })
            .collect();
        Table { rows }
    }

    /// The numbers whose entry point is `sys_CALL` (several calls can share one), in
    /// increasing order; empty when the architecture has none.
    pub fn numbers(&self, call: &str) -> Vec<u32> {
        match self.rows.binary_search_by(|(n, _)| (*n).cmp(call)) {
            Ok(i) => self.rows[i]
                .1
                .split(',')
                .filter_map(|n| n.parse().ok())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Every entry point and its numbers.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Vec<u32>)> + '_ {
        self.rows.iter().map(|(n, nums)| {
            let nums = nums.split(',').filter_map(|x| x.parse().ok()).collect();
            (*n, nums)
        })
    }
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

    #[test]
    fn the_table_is_sorted_and_every_row_has_every_column() {
        let rows: Vec<&str> = TABLE
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
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
