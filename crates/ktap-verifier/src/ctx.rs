//! Program types and their contexts: which bytes of the context `r1` points to a program may
//! read or write, and which helpers it may call, as the kernel decides for each type.

use ktap_bpf::helpers::{self, Helper};
use ktap_bpf::{arch, Event, Target};

/// The kind of program, which fixes its context and its helpers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgType {
    /// `BPF_PROG_TYPE_TRACEPOINT`: the context is the raw tracepoint record, read-only, and
    /// its first 8 bytes (the common header) are off limits.
    Tracepoint,
    /// `BPF_PROG_TYPE_PERF_EVENT`: the context is `struct bpf_perf_event_data`, the
    /// architecture's user register set (`regs_size` bytes of `word_size`-byte registers)
    /// followed by the 64-bit `sample_period` and `addr`.
    PerfEvent { regs_size: u32, word_size: u32 },
    /// `BPF_PROG_TYPE_KPROBE`, for kprobes and uprobes: the context is the architecture's
    /// `struct pt_regs`, read-only, at any aligned offset and size inside it.
    Kprobe { regs_size: u32 },
    /// `BPF_PROG_TYPE_SOCKET_FILTER`: the context is `struct __sk_buff`; ktap allows reads of
    /// the 32-bit fields from `len` to `hash`, and writes to `cb[]` only.
    SocketFilter,
}

/// Where the context's fields end that ktap lets a socket filter read (`hash` ends at 72),
/// and the `cb[0]`..`cb[4]` scratch words it may also write.
const SKB_READ_END: i64 = 72;
const SKB_CB: std::ops::Range<i64> = 48..68;
/// `PERF_MAX_TRACE_SIZE` on current kernels: the end of what a tracepoint program may read.
/// Older kernels (before 6.5) have 2048, but reading past a record is never useful: the
/// compiler reads only fields the record's format names.
const TRACE_MAX: i64 = 8192;

impl ProgType {
    /// The perf-event context of `target`'s architecture.
    pub fn perf_event(target: &Target) -> ProgType {
        let layout = arch::regs(*target);
        // The kernel lets the registers be read only as C longs, even where (MIPS) they are
        // stored as 64-bit values on a 32-bit kernel.
        ProgType::PerfEvent {
            regs_size: layout.perf_regs_size,
            word_size: u32::from(layout.word),
        }
    }

    /// The kprobe (and uprobe) context of `target`'s architecture: its kernel's `struct
    /// pt_regs`, as far as ktap's table of it goes (the registers; what follows them in some
    /// kernels' struct is never read).
    pub fn kprobe(target: &Target) -> ProgType {
        let layout = arch::regs(*target);
        let regs_size = layout
            .names()
            .iter()
            .filter_map(|n| layout.reg(n))
            .map(|s| s.offset + u32::from(s.size))
            .max()
            .unwrap_or(0);
        ProgType::Kprobe { regs_size }
    }

    /// The type of the program that runs for `event`.
    pub fn for_event(event: &Event, target: &Target) -> ProgType {
        match event {
            Event::Tracepoint { .. } => ProgType::Tracepoint,
            Event::Profile { .. } => ProgType::perf_event(target),
            Event::Kprobe { .. } | Event::Uprobe { .. } => ProgType::kprobe(target),
        }
    }

    /// The type called `name` in a `; type:` directive or `--type`.
    pub fn by_name(name: &str, target: &Target) -> Option<ProgType> {
        match name {
            "tracepoint" => Some(ProgType::Tracepoint),
            "perf_event" => Some(ProgType::perf_event(target)),
            "kprobe" => Some(ProgType::kprobe(target)),
            "socket_filter" => Some(ProgType::SocketFilter),
            _ => None,
        }
    }

    /// The names [`ProgType::by_name`] knows.
    pub const NAMES: [&'static str; 4] = ["tracepoint", "perf_event", "kprobe", "socket_filter"];

    pub fn name(&self) -> &'static str {
        match self {
            ProgType::Tracepoint => "tracepoint",
            ProgType::PerfEvent { .. } => "perf_event",
            ProgType::Kprobe { .. } => "kprobe",
            ProgType::SocketFilter => "socket_filter",
        }
    }

    /// The kernel's `bpf_prog_type` number.
    pub fn kernel_type(&self) -> u32 {
        match self {
            ProgType::SocketFilter => 1,
            ProgType::Kprobe { .. } => 2,
            ProgType::Tracepoint => 5,
            ProgType::PerfEvent { .. } => 7,
        }
    }

    /// Checks an access of `size` bytes at offset `off` of the context; the error is the
    /// kernel's message.
    pub fn ctx_access(&self, off: i64, size: u32, write: bool) -> Result<(), String> {
        let size_i = i64::from(size);
        let ok = off >= 0
            && off % size_i == 0
            && match *self {
                ProgType::Tracepoint => !write && off >= 8 && off + size_i <= TRACE_MAX,
                ProgType::PerfEvent {
                    regs_size,
                    word_size,
                } => {
                    let regs = i64::from(regs_size);
                    !write
                        && if off < regs {
                            size == word_size
                        } else {
                            off + size_i <= regs + 16
                        }
                }
                // Any size, aligned, inside the registers.
                ProgType::Kprobe { regs_size } => !write && off + size_i <= i64::from(regs_size),
                // The scratch words may be read and written at any aligned size inside them;
                // the other fields are 32-bit and read-only, narrow reads allowed.
                ProgType::SocketFilter => {
                    let in_cb = SKB_CB.contains(&off) && off + size_i <= SKB_CB.end;
                    in_cb || (!write && size <= 4 && off + size_i <= SKB_READ_END)
                }
            };
        if ok {
            Ok(())
        } else if off < 0 && *self == ProgType::Tracepoint {
            // The kernel lets these through (it compares the offset as unsigned): reading
            // before the record is never meant.
            Err(format!(
                "invalid bpf_context access off={off} size={size}: before the start of the record"
            ))
        } else {
            Err(format!("invalid bpf_context access off={off} size={size}"))
        }
    }

    /// True when a program of this type may call `h`. Tracing programs have every kernel
    /// helper ktap knows; socket filters have the few every program type has.
    pub fn allows(&self, h: &Helper) -> bool {
        if h.user_only {
            return false;
        }
        match self {
            ProgType::Tracepoint | ProgType::PerfEvent { .. } | ProgType::Kprobe { .. } => true,
            ProgType::SocketFilter => matches!(
                h.id,
                helpers::MAP_LOOKUP_ELEM
                    | helpers::MAP_UPDATE_ELEM
                    | helpers::MAP_DELETE_ELEM
                    | helpers::KTIME_GET_NS
                    | helpers::GET_SMP_PROCESSOR_ID
                    | helpers::PERF_EVENT_OUTPUT
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracepoint_context() {
        let t = ProgType::Tracepoint;
        assert!(t.ctx_access(8, 4, false).is_ok());
        assert!(t.ctx_access(24, 8, false).is_ok());
        assert_eq!(
            t.ctx_access(4, 4, false).unwrap_err(),
            "invalid bpf_context access off=4 size=4"
        );
        assert!(t.ctx_access(12, 8, false).is_err());
        assert!(t.ctx_access(16, 8, true).is_err());
        assert!(t.ctx_access(8184, 8, false).is_ok());
        assert!(t.ctx_access(8192, 8, false).is_err());
    }

    #[test]
    fn perf_event_context_per_architecture() {
        let x86 = ProgType::perf_event(&Target::by_name("x86_64").unwrap());
        assert_eq!(
            x86,
            ProgType::PerfEvent {
                regs_size: 168,
                word_size: 8
            }
        );
        assert!(x86.ctx_access(128, 8, false).is_ok());
        assert!(x86.ctx_access(128, 4, false).is_err());
        assert!(x86.ctx_access(168, 8, false).is_ok());
        assert!(x86.ctx_access(176, 4, false).is_ok());
        assert!(x86.ctx_access(184, 8, false).is_err());
        let arm = ProgType::perf_event(&Target::by_name("armv7").unwrap());
        assert!(arm.ctx_access(60, 4, false).is_ok());
        assert!(arm.ctx_access(72, 8, false).is_ok());
    }

    #[test]
    fn kprobe_context_is_pt_regs() {
        let x86 = ProgType::kprobe(&Target::by_name("x86_64").unwrap());
        assert_eq!(x86, ProgType::Kprobe { regs_size: 168 });
        assert!(x86.ctx_access(112, 8, false).is_ok());
        assert!(x86.ctx_access(112, 4, false).is_ok());
        assert!(x86.ctx_access(160, 8, false).is_ok());
        assert!(x86.ctx_access(168, 8, false).is_err());
        assert!(x86.ctx_access(112, 8, true).is_err());
        // 32-bit MIPS keeps eight argument words before the registers.
        let mips = ProgType::kprobe(&Target::by_name("mips").unwrap());
        assert!(matches!(mips, ProgType::Kprobe { regs_size } if regs_size > 32 * 4 + 32));
    }

    #[test]
    fn socket_filter_context() {
        let s = ProgType::SocketFilter;
        assert!(s.ctx_access(0, 4, false).is_ok());
        assert!(s.ctx_access(2, 2, false).is_ok());
        assert!(s.ctx_access(0, 4, true).is_err());
        assert!(s.ctx_access(48, 4, true).is_ok());
        assert!(s.ctx_access(56, 8, false).is_ok());
        assert!(s.ctx_access(64, 8, true).is_err());
        assert!(s.ctx_access(72, 4, false).is_err());
    }
}
