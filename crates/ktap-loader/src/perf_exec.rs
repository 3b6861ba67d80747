//! Events without BPF: tracepoint and cpu-clock samples from `perf_event_open`, read from
//! per-CPU ring buffers, for running probes in ktap's own VM on kernels that have perf events
//! but no (usable) `bpf()`; and the process facts those probes ask for (names, ids, memory).
//!
//! Per online CPU, every event of every source is opened with `PERF_SAMPLE_RAW` (tracepoints)
//! or the sample's ip (cpu-clock), plus the pid/tid, the CPU and a `CLOCK_MONOTONIC` time, and
//! all of them write into one ring buffer per CPU (`PERF_EVENT_IOC_SET_OUTPUT`). One extra
//! dummy event per CPU reports task names as they change (`comm`, `comm_exec`) and forks and
//! exits (`task`), so a sample's `execname` is the name the task had when the event happened,
//! even for a process that has exited since. [`PerfExec::poll`] hands out the records of all
//! CPUs in time order.
//!
//! Like everything in a [`crate::Session`], the events are held only by descriptors; dropping a
//! [`PerfExec`] (or the process dying) removes them.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

use crate::error::LoadError;

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
const PERF_COUNT_SW_DUMMY: u64 = 9;

const SAMPLE_IP: u64 = 1 << 0;
const SAMPLE_TID: u64 = 1 << 1;
const SAMPLE_TIME: u64 = 1 << 2;
const SAMPLE_CPU: u64 = 1 << 7;
const SAMPLE_RAW: u64 = 1 << 10;
const SAMPLE_REGS_USER: u64 = 1 << 12;
const SAMPLE_STACK_USER: u64 = 1 << 13;
/// Bytes of user stack a tracepoint sample copies from the task's stack pointer up, with `stacks`.
const STACK_BYTES: u32 = 8192;

/// The perf register number of the user stack pointer (`PERF_REG_*_SP`), where known.
const SP_REGISTER: Option<u32> = if cfg!(target_arch = "x86_64") {
    Some(7)
} else if cfg!(target_arch = "aarch64") {
    Some(31)
} else if cfg!(target_arch = "arm") {
    Some(13)
} else if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
    Some(29)
} else if cfg!(any(target_arch = "powerpc", target_arch = "powerpc64")) {
    Some(1)
} else {
    None
};
const SAMPLE_IDENTIFIER: u64 = 1 << 16;
const FORMAT_ID: u64 = 1 << 2;

// Bits of the attribute's flag word.
const FLAG_DISABLED: u64 = 1 << 0;
const FLAG_COMM: u64 = 1 << 9;
const FLAG_TASK: u64 = 1 << 13;
const FLAG_WATERMARK: u64 = 1 << 14;
const FLAG_SAMPLE_ID_ALL: u64 = 1 << 18;
const FLAG_COMM_EXEC: u64 = 1 << 24;
const FLAG_USE_CLOCKID: u64 = 1 << 25;

// `_IO('$', n)`, which differs by architecture: MIPS and PowerPC encode "no direction" as a
// bit of its own (0x20002400 there, 0x2400 elsewhere), and the generic number is ENOTTY on them.
const IOC_ENABLE: libc::c_ulong = libc::_IO(b'$' as u32, 0) as libc::c_ulong;
const IOC_DISABLE: libc::c_ulong = libc::_IO(b'$' as u32, 1) as libc::c_ulong;
const IOC_SET_OUTPUT: libc::c_ulong = libc::_IO(b'$' as u32, 5) as libc::c_ulong;

const RECORD_LOST: u32 = 2;
const RECORD_COMM: u32 = 3;
const RECORD_EXIT: u32 = 4;
const RECORD_FORK: u32 = 7;
const RECORD_SAMPLE: u32 = 9;
const RECORD_LOST_SAMPLES: u32 = 13;
/// `misc` bit of a COMM record caused by exec.
const MISC_COMM_EXEC: u16 = 1 << 13;

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER5` (112 bytes, Linux 4.1), which has every
/// field used here and which every kernel since accepts.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Attr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_watermark: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved: u16,
}

/// What produces events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A tracepoint, by the id in its tracefs `id` file; samples carry the raw record.
    Tracepoint { id: u64 },
    /// A cpu-clock sample every `period_ns` on every CPU; samples carry the interrupted ip.
    CpuClock { period_ns: u64 },
}

/// One event.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// The index into the sources given to [`PerfExec::open`].
    pub source: usize,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    /// `CLOCK_MONOTONIC` nanoseconds, the clock of `bpf_ktime_get_ns`.
    pub time_ns: u64,
    /// The instruction pointer (cpu-clock samples; 0 for tracepoints).
    pub ip: u64,
    /// The raw tracepoint record, common fields first (empty for cpu-clock samples).
    pub raw: &'a [u8],
    /// With `stacks` (see [`PerfExec::open`]), the task's user stack when the event happened: its stack
    /// pointer and the bytes from there up, so memory the event pointed into on the stack
    /// reads as it was then.
    pub stack: Option<(u64, &'a [u8])>,
}

/// What the rings report, in time order.
#[derive(Clone, Copy, Debug)]
pub enum Record<'a> {
    Sample(Sample<'a>),
    /// Task `tid` of process `pid` is now called `comm` (by exec when `exec`).
    Comm {
        pid: u32,
        tid: u32,
        comm: &'a [u8],
        exec: bool,
        time_ns: u64,
    },
    /// Task `tid` of process `pid` was created by `ptid` of `ppid`.
    Fork {
        pid: u32,
        ppid: u32,
        tid: u32,
        ptid: u32,
        time_ns: u64,
    },
    /// Task `tid` of process `pid` ended.
    Exit {
        pid: u32,
        tid: u32,
        time_ns: u64,
    },
}

/// One CPU's ring buffer: the metadata page and the data pages after it.
struct Ring {
    base: NonNull<u8>,
    len: usize,
    data_offset: usize,
    data_size: usize,
}

// SAFETY: the mapping is owned by the Ring alone and only accessed through &mut self.
unsafe impl Send for Ring {}

impl Ring {
    fn map(fd: RawFd, pages: usize) -> io::Result<Ring> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let len = page * (pages + 1);
        // SAFETY: a fresh shared mapping of a perf event descriptor; the kernel checks the size.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p as *mut u8).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let mut ring = Ring {
            base,
            len,
            data_offset: page,
            data_size: page * pages,
        };
        // Kernels since 4.1 say where the data is; older ones put it right after the page.
        let (off, size) = (ring.word(1040), ring.word(1048));
        if off != 0 && size != 0 && off as usize + size as usize <= len {
            ring.data_offset = off as usize;
            ring.data_size = size as usize;
        }
        Ok(ring)
    }

    /// The u64 of the metadata page at byte `off`.
    fn word(&self, off: usize) -> u64 {
        // A volatile load and a fence, not AtomicU64: 32-bit MIPS and PowerPC have no 64-bit
        // atomics. There the two halves load separately, which matters only when a ring's
        // head crosses a 4 GiB boundary between them.
        // SAFETY: off + 8 lies inside the first page of the mapping, 8-byte aligned.
        let v = unsafe { std::ptr::read_volatile(self.base.as_ptr().add(off) as *const u64) };
        fence(Ordering::Acquire);
        v
    }

    fn set_tail(&self, tail: u64) {
        fence(Ordering::Release);
        // SAFETY: data_tail is at byte 1032 of the metadata page, 8-byte aligned.
        unsafe { std::ptr::write_volatile(self.base.as_ptr().add(1032) as *mut u64, tail) }
    }

    /// Appends every complete record to `out` (each as its bytes, unwrapped) and frees the
    /// space; returns the (start, len) ranges of the records within `out`.
    fn drain(&mut self, out: &mut Vec<u8>, ranges: &mut Vec<(usize, usize)>) {
        let head = self.word(1024);
        let mut tail = self.word(1032);
        fence(Ordering::Acquire);
        let size = self.data_size as u64;
        // SAFETY: data_offset + data_size lies inside the mapping (checked in `map`).
        let data = unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(self.data_offset), self.data_size)
        };
        let byte = |pos: u64| data[(pos % size) as usize];
        while head.wrapping_sub(tail) >= 8 {
            let len = u16::from_ne_bytes([byte(tail + 6), byte(tail + 7)]) as u64;
            if len < 8 || head.wrapping_sub(tail) < len {
                break;
            }
            let start = out.len();
            let first = (tail % size) as usize;
            let until_end = (size as usize - first).min(len as usize);
            out.extend_from_slice(&data[first..first + until_end]);
            out.extend_from_slice(&data[..len as usize - until_end]);
            ranges.push((start, len as usize));
            tail = tail.wrapping_add(len);
        }
        self.set_tail(tail);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly the mapping made in `map`.
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.len) };
    }
}

/// The kernel's id of each event → its source index, whether it is a cpu-clock (whose
/// samples carry an ip and no raw record) and whether its samples carry the user stack;
/// `None` for the task trackers.
type Ids = HashMap<u64, Option<(usize, bool, bool)>>;

/// Open perf events and their rings.
pub struct PerfExec {
    /// Declared first: the rings are unmapped before the events are closed.
    rings: Vec<Ring>,
    events: Vec<OwnedFd>,
    ids: Ids,
    epoll: OwnedFd,
    lost: u64,
    /// Scratch: the bytes and ranges of one poll's records.
    buf: Vec<u8>,
    ranges: Vec<(usize, usize)>,
}

/// The attribute's flag word as the kernel reads it: the flags are a C bitfield, which
/// big-endian ABIs fill from the most significant bit, so `disabled` (bit 0 in the constants
/// above) is the word's top bit there.
fn flag_word(flags: u64) -> u64 {
    if cfg!(target_endian = "big") {
        flags.reverse_bits()
    } else {
        flags
    }
}

fn perf_event_open(attr: &Attr, cpu: i32, group: RawFd) -> io::Result<OwnedFd> {
    let attr = Attr {
        flags: flag_word(attr.flags),
        ..*attr
    };
    // SAFETY: `attr` is a valid attribute of the size it declares; the flags are valid.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const Attr,
            -1 as libc::pid_t,
            cpu,
            group,
            libc::c_ulong::from(8u8), // PERF_FLAG_FD_CLOEXEC
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn ioctl(fd: RawFd, request: libc::c_ulong, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the perf ioctls used here take an integer argument.
    if unsafe { libc::ioctl(fd, request as _, arg) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's id of an event opened with `PERF_FORMAT_ID`: the second word `read` gives.
fn event_id(fd: RawFd) -> io::Result<u64> {
    let mut v = [0u64; 2];
    // SAFETY: `v` is 16 writable bytes.
    let n = unsafe { libc::read(fd, v.as_mut_ptr() as *mut libc::c_void, 16) };
    if n != 16 {
        return Err(io::Error::last_os_error());
    }
    Ok(v[1])
}

/// Lets this process hold one descriptor per event and CPU: a glob over every syscall
/// tracepoint is about 700 events on each CPU.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill and then pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The CPUs that are online, from sysfs (`0-3,5`).
fn online_cpus() -> Result<Vec<u32>, LoadError> {
    let path = "/sys/devices/system/cpu/online";
    let text =
        fs::read_to_string(path).map_err(|e| LoadError::system(e, format!("read {path}")))?;
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        match (a.parse::<u32>(), b.parse::<u32>()) {
            (Ok(a), Ok(b)) if a <= b => cpus.extend(a..=b),
            _ => {
                return Err(LoadError::system(
                    io::Error::from(io::ErrorKind::InvalidData),
                    format!("parse {path} ({:?})", text.trim()),
                ))
            }
        }
    }
    Ok(cpus)
}

/// The error for a failed `perf_event_open` of `what`.
fn open_error(e: io::Error, what: &str) -> LoadError {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => LoadError::Permission {
            action: format!("open perf events ({what})"),
        },
        Some(libc::ENOSYS) | Some(libc::ENOENT) | Some(libc::ENODEV) => LoadError::System {
            context: format!(
                "this kernel cannot open {what} as a perf event (is CONFIG_PERF_EVENTS on?)"
            ),
            source: e,
        },
        Some(libc::EMFILE) => LoadError::System {
            context: format!("too many open files while opening {what} (raise `ulimit -n`)"),
            source: e,
        },
        _ => LoadError::system(e, format!("open {what} as a perf event")),
    }
}

impl PerfExec {
    /// Opens every source on every online CPU, disabled, with `pages` (a power of two) pages of
    /// ring buffer per CPU. Nothing is counted until [`PerfExec::enable`].
    ///
    /// With `stacks`, each tracepoint sample also carries the task's user stack (see
    /// [`Sample::stack`]), for probes that read the memory an event points to.
    pub fn open(sources: &[Source], pages: usize, stacks: bool) -> Result<PerfExec, LoadError> {
        if !pages.is_power_of_two() {
            return Err(LoadError::Invalid {
                probe: None,
                message: format!("the ring buffer must be a power of two pages, not {pages}"),
            });
        }
        raise_nofile();
        // SAFETY: epoll_create1 has no memory preconditions.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(LoadError::system(
                io::Error::last_os_error(),
                "create an epoll instance",
            ));
        }
        // SAFETY: a fresh descriptor owned here alone.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        let mut exec = PerfExec {
            rings: Vec::new(),
            events: Vec::new(),
            ids: HashMap::new(),
            epoll,
            lost: 0,
            buf: Vec::new(),
            ranges: Vec::new(),
        };
        let common = SAMPLE_IDENTIFIER | SAMPLE_TID | SAMPLE_TIME | SAMPLE_CPU;
        let (stack_type, stack_regs, stack_size) = match SP_REGISTER {
            Some(sp) if stacks => (
                SAMPLE_REGS_USER | SAMPLE_STACK_USER,
                1u64 << sp,
                STACK_BYTES,
            ),
            _ => (0, 0, 0),
        };
        // The reader is woken when an eighth of a ring is full, and `poll` waits its timeout
        // otherwise. Waking per sample would feed back: the reader's own system calls are
        // events too, and each would wake it for more.
        let base = Attr {
            size: std::mem::size_of::<Attr>() as u32,
            read_format: FORMAT_ID,
            flags: FLAG_DISABLED | FLAG_SAMPLE_ID_ALL | FLAG_USE_CLOCKID | FLAG_WATERMARK,
            wakeup_watermark: (pages as u32 * 4096 / 8).max(1),
            clockid: libc::CLOCK_MONOTONIC,
            ..Default::default()
        };
        for cpu in online_cpus()? {
            // The task tracker comes first on each CPU and owns the ring the others write to.
            let tracker = Attr {
                kind: PERF_TYPE_SOFTWARE,
                config: PERF_COUNT_SW_DUMMY,
                sample_type: common,
                flags: base.flags | FLAG_COMM | FLAG_COMM_EXEC | FLAG_TASK,
                ..base
            };
            let fd = perf_event_open(&tracker, cpu as i32, -1)
                .map_err(|e| open_error(e, "the task tracker"))?;
            let ring = Ring::map(fd.as_raw_fd(), pages)
                .map_err(|e| LoadError::system(e, format!("map the ring buffer of CPU {cpu}")))?;
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: exec.rings.len() as u64,
            };
            // SAFETY: both descriptors are open; `ev` is a valid epoll_event.
            if unsafe {
                libc::epoll_ctl(
                    exec.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    fd.as_raw_fd(),
                    &mut ev,
                )
            } < 0
            {
                return Err(LoadError::system(
                    io::Error::last_os_error(),
                    "watch a ring buffer",
                ));
            }
            let leader = fd.as_raw_fd();
            exec.ids.insert(
                event_id(leader).map_err(|e| LoadError::system(e, "read a perf event id"))?,
                None,
            );
            exec.events.push(fd);
            exec.rings.push(ring);
            for (i, source) in sources.iter().enumerate() {
                let (attr, what) = match source {
                    Source::Tracepoint { id } => (
                        Attr {
                            kind: PERF_TYPE_TRACEPOINT,
                            config: *id,
                            sample_period: 1,
                            sample_type: common | SAMPLE_RAW | stack_type,
                            sample_regs_user: stack_regs,
                            sample_stack_user: stack_size,
                            ..base
                        },
                        format!("tracepoint #{id}"),
                    ),
                    Source::CpuClock { period_ns } => (
                        Attr {
                            kind: PERF_TYPE_SOFTWARE,
                            config: PERF_COUNT_SW_CPU_CLOCK,
                            sample_period: (*period_ns).max(1),
                            sample_type: common | SAMPLE_IP,
                            ..base
                        },
                        "the cpu-clock".to_string(),
                    ),
                };
                let fd =
                    perf_event_open(&attr, cpu as i32, -1).map_err(|e| open_error(e, &what))?;
                ioctl(fd.as_raw_fd(), IOC_SET_OUTPUT, leader as libc::c_ulong)
                    .map_err(|e| LoadError::system(e, format!("share CPU {cpu}'s ring buffer")))?;
                let id = event_id(fd.as_raw_fd())
                    .map_err(|e| LoadError::system(e, "read a perf event id"))?;
                let cpu_clock = matches!(source, Source::CpuClock { .. });
                exec.ids
                    .insert(id, Some((i, cpu_clock, !cpu_clock && stack_size > 0)));
                exec.events.push(fd);
            }
        }
        Ok(exec)
    }

    /// Starts counting: every event from now on is recorded.
    pub fn enable(&self) -> Result<(), LoadError> {
        for fd in &self.events {
            ioctl(fd.as_raw_fd(), IOC_ENABLE, 0)
                .map_err(|e| LoadError::system(e, "enable a perf event"))?;
        }
        Ok(())
    }

    /// Stops counting; records already in the rings can still be polled.
    pub fn disable(&self) {
        for fd in &self.events {
            // A failure leaves an event counting until it is closed, which the caller's
            // drop does; there is nothing better to do with it here.
            let _ = ioctl(fd.as_raw_fd(), IOC_DISABLE, 0);
        }
    }

    /// Samples the kernel dropped because a ring was full.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// How many perf events are open (sources × CPUs, plus a task tracker per CPU).
    pub fn events(&self) -> usize {
        self.events.len()
    }

    /// Hands every record of every CPU to `on_record` in time order, after waiting up to
    /// `timeout` unless a ring is filling up; returns how many samples there were. A signal
    /// ends the wait early.
    pub fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Record),
    ) -> Result<usize, LoadError> {
        self.buf.clear();
        self.ranges.clear();
        for ring in &mut self.rings {
            ring.drain(&mut self.buf, &mut self.ranges);
        }
        // A batch this small is mostly what the last wait let in, the reader's own system
        // calls included: wait (for the watermark or the timeout) before the next round.
        let busy = self.ranges.len() >= 4096;
        if !busy && !timeout.is_zero() {
            let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
            // SAFETY: `events` is a writable array of the length passed.
            let rc = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    ms,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(LoadError::system(e, "wait for events"));
                }
            }
            for ring in &mut self.rings {
                ring.drain(&mut self.buf, &mut self.ranges);
            }
        }
        let buf = &self.buf;
        let mut parsed: Vec<(u64, Record)> = Vec::with_capacity(self.ranges.len());
        for &(start, len) in &self.ranges {
            match parse(&buf[start..start + len], &self.ids) {
                Parsed::Record(time, r) => parsed.push((time, r)),
                Parsed::Lost(n) => self.lost += n,
                Parsed::Other => {}
            }
        }
        // Each ring is in time order already; a stable sort merges the CPUs.
        parsed.sort_by_key(|(time, _)| *time);
        let mut samples = 0;
        for (_, r) in parsed {
            samples += usize::from(matches!(r, Record::Sample(_)));
            on_record(r);
        }
        Ok(samples)
    }
}

enum Parsed<'a> {
    Record(u64, Record<'a>),
    Lost(u64),
    Other,
}

/// Reads native-endian fields from a record, front to back.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn u32(&mut self) -> Option<u32> {
        let v = self.b.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_ne_bytes(v.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        let v = self.b.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(u64::from_ne_bytes(v.try_into().ok()?))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(v)
    }
}

/// The time of a non-sample record from its `sample_id_all` trailer (pid/tid, time, cpu,
/// identifier: 32 bytes at the end).
fn trailer_time(rec: &[u8]) -> u64 {
    rec.len()
        .checked_sub(24)
        .and_then(|at| rec.get(at..at + 8))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

fn parse<'a>(rec: &'a [u8], ids: &Ids) -> Parsed<'a> {
    parse_record(rec, ids).unwrap_or(Parsed::Other)
}

fn parse_record<'a>(rec: &'a [u8], ids: &Ids) -> Option<Parsed<'a>> {
    let kind = u32::from_ne_bytes(rec.get(0..4)?.try_into().ok()?);
    let misc = u16::from_ne_bytes(rec.get(4..6)?.try_into().ok()?);
    let mut c = Cursor { b: rec, pos: 8 };
    Some(match kind {
        RECORD_SAMPLE => {
            let id = c.u64()?;
            let Some(&Some((source, cpu_clock, with_stack))) = ids.get(&id) else {
                return Some(Parsed::Other);
            };
            // Fields in the kernel's order: ip (cpu-clock only), pid/tid, time, cpu, raw
            // (tracepoints only).
            let ip = if cpu_clock { c.u64()? } else { 0 };
            let (pid, tid) = (c.u32()?, c.u32()?);
            let time_ns = c.u64()?;
            let cpu = c.u32()?;
            c.u32()?;
            let raw = if cpu_clock {
                &[][..]
            } else {
                let n = c.u32()? as usize;
                c.bytes(n)?
            };
            // regs_user (abi, then the one register asked for, absent for abi 0) and
            // stack_user (size, bytes, then the size actually copied when size is not 0).
            let stack = if with_stack {
                let abi = c.u64()?;
                let sp = if abi != 0 { c.u64()? } else { 0 };
                let size = c.u64()? as usize;
                let bytes = c.bytes(size)?;
                let used = if size > 0 { c.u64()? as usize } else { 0 };
                (abi != 0 && used > 0).then(|| (sp, &bytes[..used.min(size)]))
            } else {
                None
            };
            Parsed::Record(
                time_ns,
                Record::Sample(Sample {
                    source,
                    cpu,
                    pid,
                    tid,
                    time_ns,
                    ip,
                    raw,
                    stack,
                }),
            )
        }
        RECORD_COMM => {
            let (pid, tid) = (c.u32()?, c.u32()?);
            let name = c.bytes(rec.len().checked_sub(8 + 8 + 32)?)?;
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            Parsed::Record(
                trailer_time(rec),
                Record::Comm {
                    pid,
                    tid,
                    comm: &name[..end],
                    exec: misc & MISC_COMM_EXEC != 0,
                    time_ns: trailer_time(rec),
                },
            )
        }
        RECORD_FORK | RECORD_EXIT => {
            let (pid, ppid, tid, ptid) = (c.u32()?, c.u32()?, c.u32()?, c.u32()?);
            let time_ns = c.u64()?;
            Parsed::Record(
                time_ns,
                if kind == RECORD_FORK {
                    Record::Fork {
                        pid,
                        ppid,
                        tid,
                        ptid,
                        time_ns,
                    }
                } else {
                    Record::Exit { pid, tid, time_ns }
                },
            )
        }
        RECORD_LOST => {
            c.u64()?;
            Parsed::Lost(c.u64()?)
        }
        RECORD_LOST_SAMPLES => Parsed::Lost(c.u64()?),
        _ => Parsed::Other,
    })
}

/// Whether `bpf()` can load programs here: `Err(LoadError::NoBpf)` when the kernel has no BPF
/// system call (ENOSYS), `Err(LoadError::Permission)` when it refuses (EPERM, or EACCES from a
/// security module), so the caller can fall back to running probes in the VM before anything
/// else is tried.
///
/// It asks for a program of no instructions. Every kernel since `bpf()` began decides who may
/// load (`unprivileged_bpf_disabled`, capabilities, security modules) before it looks at the
/// instruction count, and refuses an empty program there (E2BIG), so nothing is verified,
/// compiled or freed: loading a real two-instruction program cost about 90 µs of the 1.9 ms
/// from exec to attached.
pub fn bpf_usable() -> Result<(), LoadError> {
    use crate::test_run::{bpf, ProgLoadAttr, BPF_PROG_LOAD, BPF_PROG_TYPE_SOCKET_FILTER};
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        license: c"GPL".as_ptr() as u64,
        ..Default::default()
    };
    let action = || "load BPF programs".to_string();
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => {
            // No kernel loads an empty program; should one, its descriptor is not kept.
            // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor nothing else owns.
            drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            Ok(())
        }
        Err(e) => match e.raw_os_error() {
            Some(libc::ENOSYS) => Err(LoadError::NoBpf { action: action() }),
            Some(libc::EPERM | libc::EACCES) => Err(LoadError::Permission { action: action() }),
            _ => Ok(()),
        },
    }
}

/// Copies `buf.len()` bytes at `addr` in process `pid`'s memory; false if any is unreadable
/// (the process has exited, or the address is not mapped).
pub fn read_process(pid: u32, addr: u64, buf: &mut [u8]) -> bool {
    if buf.is_empty() {
        return true;
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, writable for its length; the remote side is only read
    // by the kernel, which checks it.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    n >= 0 && n as usize == buf.len()
}

/// Reads the NUL-terminated string at `addr` in process `pid` into `buf` (at most
/// `buf.len() - 1` bytes and a NUL) and returns its length with the NUL, or `None` if the
/// memory cannot be read. Reads stop at page ends so a string near the end of a mapping is
/// still found.
pub fn read_process_str(pid: u32, addr: u64, buf: &mut [u8]) -> Option<usize> {
    let max = buf.len().checked_sub(1)?;
    let mut got = 0;
    while got < max {
        let at = addr.checked_add(got as u64)?;
        let to_page_end = (4096 - (at % 4096)) as usize;
        let n = to_page_end.min(max - got);
        if !read_process(pid, at, &mut buf[got..got + n]) {
            return None;
        }
        if let Some(nul) = buf[got..got + n].iter().position(|&b| b == 0) {
            return Some(got + nul + 1);
        }
        got += n;
    }
    buf[max] = 0;
    Some(max + 1)
}

/// What `/proc` says about a task: its name and real uid and gid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    pub comm: [u8; 16],
    pub uid: u32,
    pub gid: u32,
}

/// The name and ids of task `tid` of process `pid`, if it still exists.
pub fn task_info(pid: u32, tid: u32) -> Option<TaskInfo> {
    let dir = format!("/proc/{pid}/task/{tid}");
    let name = fs::read(format!("{dir}/comm")).ok()?;
    let status = fs::read_to_string(format!("{dir}/status")).ok()?;
    let id = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut comm = [0u8; 16];
    let name = name.strip_suffix(b"\n").unwrap_or(&name);
    let n = name.len().min(15);
    comm[..n].copy_from_slice(&name[..n]);
    Some(TaskInfo {
        comm,
        uid: id("Uid:"),
        gid: id("Gid:"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers the kernel's uapi headers give for the architecture being built.
    #[test]
    fn perf_ioctls_follow_the_architecture() {
        let none_bit = if cfg!(any(
            target_arch = "mips",
            target_arch = "mips64",
            target_arch = "powerpc",
            target_arch = "powerpc64"
        )) {
            0x2000_0000
        } else {
            0
        };
        assert_eq!(IOC_ENABLE, none_bit | 0x2400);
        assert_eq!(IOC_DISABLE, none_bit | 0x2401);
        assert_eq!(IOC_SET_OUTPUT, none_bit | 0x2405);
    }

    #[test]
    fn bitfield_flags_follow_the_byte_order() {
        let w = flag_word(FLAG_DISABLED | FLAG_COMM);
        if cfg!(target_endian = "big") {
            assert_eq!(w, (1 << 63) | (1 << 54));
        } else {
            assert_eq!(w, 1 | (1 << 9));
        }
    }

    #[test]
    fn reads_this_process() {
        let text = b"hello\0world";
        let mut buf = [0u8; 5];
        let pid = std::process::id();
        assert!(read_process(pid, text.as_ptr() as u64, &mut buf));
        assert_eq!(&buf, b"hello");
        let mut s = [0xffu8; 16];
        assert_eq!(read_process_str(pid, text.as_ptr() as u64, &mut s), Some(6));
        assert_eq!(&s[..6], b"hello\0");
        let mut short = [0u8; 3];
        assert_eq!(
            read_process_str(pid, text.as_ptr() as u64, &mut short),
            Some(3)
        );
        assert_eq!(&short, b"he\0");
        assert!(!read_process(pid, 8, &mut buf));
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let info = task_info(pid, tid).unwrap();
        assert_ne!(info.comm[0], 0);
    }
}
