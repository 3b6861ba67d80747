//! The compiled program: per probe its event, instructions and a source span per instruction;
//! the maps; the output formats; the userspace blocks. Plain data, read by every consumer.

use crate::insn::{Endian, Insn};

/// The architecture a program is compiled for. Byte order and word size are explicit so a host
/// can compile for a board of another kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Arch {
    X86_64,
    Aarch64,
    Arm,
    Mips,
    Mips64,
    Powerpc,
    Powerpc64,
}

/// Everything about the machine that changes the bytes a program is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Target {
    pub arch: Arch,
    pub endian: Endian,
    /// Bytes in a pointer and a C `long`: 4 or 8.
    pub word_size: u8,
}

impl Target {
    /// The target this binary was built for.
    pub const fn host() -> Target {
        let arch = if cfg!(target_arch = "x86_64") {
            Arch::X86_64
        } else if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else if cfg!(target_arch = "arm") {
            Arch::Arm
        } else if cfg!(target_arch = "mips") {
            Arch::Mips
        } else if cfg!(target_arch = "mips64") {
            Arch::Mips64
        } else if cfg!(target_arch = "powerpc") {
            Arch::Powerpc
        } else {
            Arch::Powerpc64
        };
        Target {
            arch,
            endian: Endian::host(),
            word_size: if cfg!(target_pointer_width = "64") {
                8
            } else {
                4
            },
        }
    }

    /// The names `make dist` and `ktapc --target` use, one per target.
    pub const NAMES: &'static [&'static str] = &[
        "x86_64",
        "aarch64",
        "armv7",
        "mipsel",
        "mips",
        "mips64el",
        "mips64",
        "powerpc64le",
        "powerpc64",
        "powerpc",
    ];

    /// This target's name in [`Target::NAMES`]; `by_name(t.name()) == Some(t)` for every
    /// target `by_name` returns.
    pub const fn name(self) -> &'static str {
        match (self.arch, self.endian) {
            (Arch::X86_64, _) => "x86_64",
            (Arch::Aarch64, _) => "aarch64",
            (Arch::Arm, _) => "armv7",
            (Arch::Mips, Endian::Little) => "mipsel",
            (Arch::Mips, Endian::Big) => "mips",
            (Arch::Mips64, Endian::Little) => "mips64el",
            (Arch::Mips64, Endian::Big) => "mips64",
            (Arch::Powerpc, _) => "powerpc",
            (Arch::Powerpc64, Endian::Little) => "powerpc64le",
            (Arch::Powerpc64, Endian::Big) => "powerpc64",
        }
    }

    /// The target called `name` (the names `make dist` uses), if ktap knows it.
    pub fn by_name(name: &str) -> Option<Target> {
        let (arch, endian, word_size) = match name {
            "x86_64" => (Arch::X86_64, Endian::Little, 8),
            "aarch64" | "arm64" => (Arch::Aarch64, Endian::Little, 8),
            "armv7" | "arm" => (Arch::Arm, Endian::Little, 4),
            "mips" => (Arch::Mips, Endian::Big, 4),
            "mipsel" => (Arch::Mips, Endian::Little, 4),
            "mips64el" => (Arch::Mips64, Endian::Little, 8),
            "mips64" => (Arch::Mips64, Endian::Big, 8),
            "powerpc" => (Arch::Powerpc, Endian::Big, 4),
            "powerpc64" => (Arch::Powerpc64, Endian::Big, 8),
            "powerpc64le" => (Arch::Powerpc64, Endian::Little, 8),
            _ => return None,
        };
        Some(Target {
            arch,
            endian,
            word_size,
        })
    }
}

/// A byte range in the script's source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Span {
    pub lo: u32,
    pub hi: u32,
}

impl Span {
    pub const fn new(lo: u32, hi: u32) -> Span {
        Span { lo, hi }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            lo: self.lo.min(other.lo),
            hi: self.hi.max(other.hi),
        }
    }
}

/// The script a program was compiled from, so every consumer can point at a line.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    /// 1-based line and column (in characters) of byte offset `pos`.
    pub fn line_col(&self, pos: u32) -> (usize, usize) {
        // A span read from a file may point past the end or into a character: clamp it to the
        // start of that character rather than slice through it.
        let mut pos = (pos as usize).min(self.text.len());
        while !self.text.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[start..].chars().count() + 1)
    }
    /// The text of 1-based line `line`, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line.saturating_sub(1)).unwrap_or("")
    }
}

/// A straight sequence of instructions with the source span each came from.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Function {
    pub insns: Vec<Insn>,
    /// `spans[i]` is the script text instruction `i` implements (same length as `insns`).
    pub spans: Vec<Span>,
}

/// What a kernel-side program is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Event {
    /// A tracepoint, `category:name`; the context is the raw tracepoint record.
    Tracepoint { category: String, name: String },
    /// A software cpu-clock perf event on every CPU (only on CPU `cpu` when it is set, as
    /// `ktap -C` asks); the context is `bpf_perf_event_data`.
    Profile { period_ns: u64, cpu: Option<u32> },
    /// A kprobe (or, with `ret`, a kretprobe) on a kernel function; the context is the
    /// architecture's `struct pt_regs`.
    Kprobe {
        symbol: String,
        offset: u64,
        ret: bool,
    },
    /// A uprobe (or uretprobe) at byte `offset` of the ELF file `path` (the file offset, not
    /// the virtual address); `symbol` names it in messages. The context is `struct pt_regs`.
    Uprobe {
        path: String,
        symbol: String,
        offset: u64,
        ret: bool,
    },
}

/// One program that runs in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Probe {
    /// What `probename` gives inside the block, e.g. `sys_enter_openat`.
    pub name: String,
    pub event: Event,
    pub func: Function,
    /// Where the probe block is in the script.
    pub span: Span,
    /// One of the functions a pattern matched (`probe:vfs_*`): when the kernel refuses to
    /// attach it (an instruction uprobes cannot step over, a function kprobes cannot reach),
    /// the loader skips it with a warning and the others run.
    pub optional: bool,
}

/// A block that runs in ktap's process, in the VM.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UserBlock {
    pub when: When,
    pub func: Function,
    pub span: Span,
}

/// When a userspace block runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum When {
    /// Once, before tracing starts: the script's top-level statements.
    Begin,
    /// Every `period_ns` while tracing.
    Tick { period_ns: u64 },
    /// Once, when tracing stops.
    End,
}

/// Kinds of BPF map ktap uses (values are the kernel's `bpf_map_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MapKind {
    Hash = 1,
    Array = 2,
    PerfEventArray = 4,
    PercpuHash = 5,
    PercpuArray = 6,
    /// Stack traces by id, written by `get_stackid`.
    StackTrace = 7,
}

/// What a map is for, so output and cleanup know how to read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MapRole {
    /// A script table: a hash, or a per-CPU hash of numbers when probes only add to it
    /// (`t[k] += n`); readers of that one sum the CPUs' values ([`sum_cpus`]).
    Table,
    /// The script's global variables, one array entry laid out by the compiler.
    Globals,
    /// The perf buffer that carries output records to userspace.
    Output,
    /// Per-CPU scratch memory for values too big for the stack.
    Scratch,
    /// Per-CPU counters, one slot per table, of updates dropped because a table was full.
    Drops,
    /// An aggregation (`s[k] <<< v`): a per-CPU hash whose values have the [`agg`] layout;
    /// readers merge the CPUs' values with [`agg::merge`].
    Aggregation,
    /// One zero-filled array value, the initial value of a new aggregation entry.
    Zeros,
    /// The stack traces `stack()` and `ustack()` record (a `StackTrace` map).
    Stacks,
    /// The system calls a probe attached to `raw_syscalls` stands for: an array indexed by the
    /// call's number less the ABI's base, each value the call's event name (what `probename`
    /// gives), empty for the calls it does not trace. Its entries are in [`MapDef::init`].
    SyscallNames,
}

/// The value of a per-CPU table entry as readers see it: the 64-bit numbers of every CPU
/// (one at each multiple of `stride` in `per_cpu`), in byte order `e`, added up.
pub fn sum_cpus(per_cpu: &[u8], stride: usize, e: Endian) -> [u8; 8] {
    let total = per_cpu
        .chunks(stride.max(1))
        .filter_map(|cpu| cpu.first_chunk::<8>())
        .map(|b| match e {
            Endian::Little => i64::from_le_bytes(*b),
            Endian::Big => i64::from_be_bytes(*b),
        })
        .fold(0i64, i64::wrapping_add);
    match e {
        Endian::Little => total.to_le_bytes(),
        Endian::Big => total.to_be_bytes(),
    }
}

/// The value layout of aggregation maps, and merging the values of several CPUs.
pub mod agg {
    use crate::insn::Endian;

    /// Byte offsets of the fields of an aggregation value (all signed 64-bit).
    pub const COUNT: u32 = 0;
    pub const SUM: u32 = 8;
    pub const MIN: u32 = 16;
    pub const MAX: u32 = 24;
    /// Power-of-two histogram buckets follow when the script uses `hist()`: bucket 0 counts
    /// values ≤ 0, bucket `i` (1..=63) values in `[2^(i-1), 2^i)`.
    pub const HIST: u32 = 32;
    pub const BUCKETS: u32 = 64;

    /// The value size, with or without histogram buckets.
    pub const fn value_size(hist: bool) -> u32 {
        if hist {
            HIST + 8 * BUCKETS
        } else {
            HIST
        }
    }

    fn get(v: &[u8], off: usize, e: Endian) -> i64 {
        let mut b = [0u8; 8];
        if let Some(s) = v.get(off..off + 8) {
            b.copy_from_slice(s);
        }
        match e {
            Endian::Little => i64::from_le_bytes(b),
            Endian::Big => i64::from_be_bytes(b),
        }
    }

    fn put(v: &mut [u8], off: usize, x: i64, e: Endian) {
        if let Some(s) = v.get_mut(off..off + 8) {
            s.copy_from_slice(&match e {
                Endian::Little => x.to_le_bytes(),
                Endian::Big => x.to_be_bytes(),
            });
        }
    }

    /// Merges per-CPU values (`cpus` values of `size` bytes, each at a multiple of
    /// `stride`) into one: counts, sums and buckets add up; min and max over the CPUs that
    /// recorded something.
    pub fn merge(per_cpu: &[u8], size: usize, stride: usize, e: Endian) -> Vec<u8> {
        let mut out = vec![0u8; size];
        let mut seen = false;
        for cpu in per_cpu.chunks(stride.max(1)) {
            let count = get(cpu, COUNT as usize, e);
            if count == 0 {
                continue;
            }
            let (min, max) = (get(cpu, MIN as usize, e), get(cpu, MAX as usize, e));
            if seen {
                let (lo, hi) = (
                    get(&out, MIN as usize, e).min(min),
                    get(&out, MAX as usize, e).max(max),
                );
                put(&mut out, MIN as usize, lo, e);
                put(&mut out, MAX as usize, hi, e);
            } else {
                put(&mut out, MIN as usize, min, e);
                put(&mut out, MAX as usize, max, e);
                seen = true;
            }
            for off in [COUNT as usize, SUM as usize]
                .into_iter()
                .chain((HIST as usize..size).step_by(8))
            {
                let total = get(&out, off, e).wrapping_add(get(cpu, off, e));
                put(&mut out, off, total, e);
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn merges_cpus() {
            let e = Endian::Little;
            let size = value_size(true) as usize;
            let mut a = vec![0u8; size];
            let mut b = vec![0u8; size];
            let idle = vec![0u8; size];
            for (v, (c, s, mn, mx)) in [(&mut a, (2, 10, 3, 7)), (&mut b, (1, -5, -5, -5))] {
                put(v, COUNT as usize, c, e);
                put(v, SUM as usize, s, e);
                put(v, MIN as usize, mn, e);
                put(v, MAX as usize, mx, e);
                put(v, HIST as usize + 16, c, e);
            }
            let all = [a, idle, b].concat();
            let m = merge(&all, size, size, e);
            assert_eq!(get(&m, COUNT as usize, e), 3);
            assert_eq!(get(&m, SUM as usize, e), 5);
            assert_eq!(get(&m, MIN as usize, e), -5);
            assert_eq!(get(&m, MAX as usize, e), 7);
            assert_eq!(get(&m, HIST as usize + 16, e), 3);
        }
    }
}

/// A value's type as stored in a map key, map value or output record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ValueType {
    /// A signed 64-bit number, in the target's byte order.
    Int,
    /// A NUL-padded string buffer of this many bytes.
    Str(u32),
    /// A 64-bit 0 or 1.
    Bool,
    /// Nothing (8 bytes, ignored): `nil` printed.
    Nil,
    /// A value of several types, this many bytes in all: a 64-bit tag (see [`TAG_NIL`] ..
    /// [`TAG_BOOL`]) then the payload (a number, or a NUL-padded string).
    Any(u32),
    /// A kernel stack: the 64-bit id of its entry in the program's `Stacks` map (negative
    /// when the kernel could not record it).
    Stack,
    /// A user stack: the id as for `Stack`, then the 64-bit `tgid << 32 | pid` of the task,
    /// whose memory map names the frames.
    UStack,
    /// A number marked as a kernel address (`ipof(n)`): printed as `symbol+0xoff`.
    Addr,
    /// The kernel's `CLOCK_MONOTONIC` time of the event in nanoseconds (`bpf_ktime_get_ns`),
    /// which `ktap -T` adds as the first field of a probe's `print`/`printf` records; the
    /// printer shows it before the line rather than as a value.
    Time,
    /// `argstr`: a 64-bit word holding `index << 32 | length`, where `index` names the
    /// tracepoint's layout in [`Program::events`] and `length` counts the bytes of the raw
    /// tracepoint record that follow the record's fields (at [`Format::size`]); the printer
    /// renders those bytes as the kernel's `trace` file shows the event.
    Argstr,
}

/// Tags of [`ValueType::Any`] values.
pub const TAG_NIL: u64 = 0;
pub const TAG_NUM: u64 = 1;
pub const TAG_STR: u64 = 2;
pub const TAG_BOOL: u64 = 3;

impl ValueType {
    pub const fn size(self) -> u32 {
        match self {
            ValueType::Str(n) | ValueType::Any(n) => n,
            ValueType::UStack => 16,
            _ => 8,
        }
    }
}

/// One BPF map.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MapDef {
    /// The script's name for it (the table variable), or the role's name.
    pub name: String,
    pub kind: MapKind,
    pub role: MapRole,
    pub key: ValueType,
    pub value: ValueType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Where the script declares it.
    pub span: Span,
    /// Entries (key, value bytes) the map holds before any probe is attached; the key is an
    /// array index.
    pub init: Vec<(u32, Vec<u8>)>,
}

/// A value inside an output record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Field {
    /// Byte offset from the start of the record (the format id occupies bytes 0..8).
    pub offset: u32,
    pub ty: ValueType,
}

/// What userspace does with an output record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Action {
    /// `print(...)`: the fields separated by a TAB, then a newline.
    Print,
    /// `printf(fmt, ...)` with the format string.
    Printf(String),
    /// `print_hist(t [, n])`: the table's bar chart; the optional field is `n`.
    PrintHist { map: u32 },
    /// `delete(t)` from a probe: userspace empties the table.
    Clear { map: u32 },
    /// `exit([code])`: stop tracing; the optional field is the code.
    Exit,
    /// `hist(s[k])`: the power-of-two histogram of aggregation `map` under the key in the
    /// record's one field.
    Hist { map: u32 },
}

/// One output format; records start with its index as a u64 in the target's byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Format {
    pub action: Action,
    pub fields: Vec<Field>,
    /// The record's size in bytes, format id included.
    pub size: u32,
    pub span: Span,
}

/// Bytes at the start of every output record holding the format id.
pub const RECORD_HEADER: u32 = 8;

impl Format {
    /// True when records of this format carry a raw tracepoint record after their fields
    /// (`argstr`), so they are longer than [`Format::size`].
    pub fn has_tail(&self) -> bool {
        self.fields.iter().any(|f| f.ty == ValueType::Argstr)
    }
}

/// A compiled script.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Program {
    pub target: Target,
    pub source: Source,
    pub maps: Vec<MapDef>,
    pub formats: Vec<Format>,
    pub probes: Vec<Probe>,
    pub user: Vec<UserBlock>,
    /// The tracepoint layouts `argstr` fields name (see [`ValueType::Argstr`]).
    pub events: Vec<crate::kernel::TpFormat>,
}

impl Program {
    /// The index of the map with role `role`, if the program has one.
    pub fn map_with_role(&self, role: MapRole) -> Option<u32> {
        self.maps
            .iter()
            .position(|m| m.role == role)
            .map(|i| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let s = Source {
            name: "t.kp".into(),
            text: "a\nbc d\n".into(),
        };
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(5), (2, 4));
        assert_eq!(s.line_text(2), "bc d");
    }

    #[test]
    fn targets_by_name() {
        let m = Target::by_name("mips").unwrap();
        assert_eq!((m.endian, m.word_size), (Endian::Big, 4));
        assert!(Target::by_name("vax").is_none());
        for name in Target::NAMES {
            assert_eq!(Target::by_name(name).map(Target::name), Some(*name));
        }
    }

    #[test]
    fn line_col_inside_a_character() {
        let s = Source {
            name: "t.kp".into(),
            text: "é\n".into(),
        };
        assert_eq!(s.line_col(1), (1, 1));
        assert_eq!(s.line_col(99), (2, 1));
    }
}
