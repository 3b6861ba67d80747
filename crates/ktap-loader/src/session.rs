//! Loading and running a compiled program in the kernel with aya: the [`Session`] that owns
//! every map, program, link and perf buffer, and [`load`] that makes one.

use crate::{elf, error, maps, LoadError, TracefsKernel};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::time::{Duration, Instant};
use std::{io, thread};

use aya::maps::perf::{PerfEvent as PerfRecord, PerfEventArrayBuffer};
use aya::maps::{Map, MapData, MapError, PerfEventArray};
use aya::programs::kprobe::KProbeError;
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::trace_point::TracePointError;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use aya::programs::{KProbe, PerfEvent, ProgramError, TracePoint, UProbe};
use aya::{EbpfError, EbpfLoader, VerifierLogLevel};
use ktap_bpf::insn::Endian;
use ktap_bpf::{Event, MapKind, MapRole, Program, Target};

/// How to load a program.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Pages in each CPU's output buffer; a power of two.
    pub perf_pages: usize,
    /// Ask the verifier for its instruction-by-instruction log when it rejects a probe
    /// (the default log already says why; this one also shows every state it explored).
    pub verbose_verifier: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            perf_pages: 64,
            verbose_verifier: false,
        }
    }
}

/// One of the program's maps as the userspace VM reaches it.
struct MapSlot {
    name: String,
    kind: MapKind,
    key_size: usize,
    /// Bytes of a value as `bpf(2)` moves it: per-CPU maps carry one 8-byte-aligned value
    /// per possible CPU.
    value_len: usize,
    max_entries: u32,
    /// `None` for the output map, which belongs to the perf buffers.
    data: Option<MapData>,
    /// For aggregations and per-CPU tables: lookups return the CPUs' values merged into
    /// one, and updates store the value as CPU 0's share.
    merged: Option<Merge>,
}

/// How the CPUs' values of a per-CPU map are read as one.
#[derive(Clone, Copy, Debug)]
enum Merge {
    /// An aggregation's values of this many bytes: [`ktap_bpf::agg::merge`].
    Aggregation(usize),
    /// A table's numbers, added up: [`ktap_bpf::sum_cpus`].
    Sum,
}

impl Merge {
    /// Bytes of the merged value.
    fn size(self) -> usize {
        match self {
            Merge::Aggregation(size) => size,
            Merge::Sum => 8,
        }
    }
}

/// A kernel attachment (an aya link), held only so that dropping it detaches.
type Attachment = Box<dyn Send>;

/// Attachments that are detached in parallel when dropped, on success and error paths alike.
#[derive(Default)]
struct Links(Vec<Attachment>);

impl Drop for Links {
    fn drop(&mut self) {
        detach_all(std::mem::take(&mut self.0));
    }
}

/// A loaded and attached program. Dropping it (or [`Session::detach`]) removes every program,
/// link, perf event and map it created.
pub struct Session {
    /// Declared first so it is dropped first: the links go before the programs and buffers
    /// they reference.
    links: Links,
    buffers: Vec<PerfEventArrayBuffer>,
    _output: Option<PerfEventArray<MapData>>,
    maps: Vec<MapSlot>,
    _ebpf: aya::Ebpf,
    epoll: OwnedFd,
    program_ids: Vec<u32>,
    /// Record size per format id, to cut the kernel's padding off each sample.
    format_sizes: Vec<u32>,
    order: Endian,
    scratch: Vec<u8>,
    lost: u64,
    /// Why each function a pattern matched and the kernel refused was left out.
    skipped: Vec<LoadError>,
    startup: Duration,
}

/// Loads `prog`, attaches every probe, and opens its output buffers.
///
/// Probes are verified before anything is attached, so a rejected probe leaves nothing behind
/// and costs no attach/detach round trip.
pub fn load(prog: &Program, opts: &LoadOptions) -> Result<Session, LoadError> {
    let start = Instant::now();
    check_target(prog)?;
    elf::validate(prog).map_err(|e| LoadError::Invalid {
        probe: e
            .probe
            .and_then(|i| prog.probes.get(i))
            .map(|p| p.name.clone()),
        message: e.message,
    })?;
    if !opts.perf_pages.is_power_of_two() {
        return Err(LoadError::Invalid {
            probe: None,
            message: format!(
                "the output buffer size must be a power of two pages, not {}",
                opts.perf_pages
            ),
        });
    }
    check_tracepoints(prog)?;
    raise_memlock();

    let object = elf::write_object(prog);
    let mut loader = EbpfLoader::new();
    if opts.verbose_verifier {
        loader.verifier_log_level(VerifierLogLevel::VERBOSE | VerifierLogLevel::STATS);
    }
    let mut ebpf = loader.load(&object).map_err(|e| ebpf_error(prog, e))?;

    let possible = aya::util::nr_cpus()
        .map_err(|(path, e)| LoadError::system(e, format!("read {path}")))?
        .get() as usize;
    let online = aya::util::online_cpus()
        .map_err(|(path, e)| LoadError::system(e, format!("read {path}")))?;

    let output_index = prog.map_with_role(MapRole::Output).map(|i| i as usize);
    let mut output = None;
    let mut slots = Vec::with_capacity(prog.maps.len());
    for (i, def) in prog.maps.iter().enumerate() {
        let missing = || LoadError::Object(format!("map `{}` is missing", def.name));
        let map = ebpf
            .take_map(&elf::map_symbol(prog, i))
            .ok_or_else(missing)?;
        let per_cpu = matches!(def.kind, MapKind::PercpuHash | MapKind::PercpuArray);
        let value_len = if per_cpu {
            (def.value_size as usize).next_multiple_of(8) * possible
        } else {
            def.value_size as usize
        };
        let (key_size, max_entries) = match def.kind {
            MapKind::PerfEventArray => (4, possible as u32),
            _ => (def.key_size as usize, def.max_entries),
        };
        let data = if Some(i) == output_index {
            output = Some(PerfEventArray::try_from(map).map_err(|e| {
                LoadError::Object(format!("map `{}` is not a perf event array: {e}", def.name))
            })?);
            None
        } else {
            Some(map_data(map).ok_or_else(missing)?)
        };
        slots.push(MapSlot {
            name: def.name.clone(),
            kind: def.kind,
            key_size,
            value_len,
            max_entries,
            data,
            merged: match (def.role, def.kind) {
                (MapRole::Aggregation, _) => Some(Merge::Aggregation(def.value_size as usize)),
                (MapRole::Table, MapKind::PercpuHash) => Some(Merge::Sum),
                _ => None,
            },
        });
    }

    // Maps that start with entries (the calls a probe on raw_syscalls stands for) get them
    // before any probe is attached.
    for (slot, def) in slots.iter().zip(&prog.maps) {
        let Some(data) = slot.data.as_ref() else {
            continue;
        };
        for (index, value) in &def.init {
            maps::update(data.fd().as_fd(), &index.to_ne_bytes(), value, 0)
                .map_err(|e| Session::access_error(slot, "filling in", e))?;
        }
    }

    // SAFETY: epoll_create1 has no memory preconditions; a non-negative result is a new
    // descriptor that nothing else owns.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(LoadError::system(
            io::Error::last_os_error(),
            "create an epoll instance",
        ));
    }
    // SAFETY: see above: the descriptor is fresh and owned here alone.
    let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
    let mut buffers = Vec::new();
    // Each CPU's buffer costs a perf event and a mapping of `perf_pages` pages (together about
    // 0.1 ms per CPU on the benchmark machine, a twentieth of the time to attach), so a program
    // that never writes a record, such as a count read by `trace_end`, gets none.
    let writes_output = output_index.is_some_and(|i| elf::probes_load_map(prog, i));
    if let Some(array) = output.as_mut().filter(|_| writes_output) {
        for &cpu in &online {
            let fail = |source: io::Error| {
                LoadError::from_io(source, "open perf buffers", |source| {
                    LoadError::PerfBuffer { cpu, source }
                })
            };
            let buf =
                PerfEventArrayBuffer::open(cpu, opts.perf_pages).map_err(|e| fail(perf_io(e)))?;
            array.set(cpu, &buf).map_err(|e| fail(map_io(e)))?;
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: buffers.len() as u64,
            };
            // SAFETY: both descriptors are open and `ev` is a valid epoll_event.
            let rc = unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    buf.as_raw_fd(),
                    &mut ev,
                )
            };
            if rc < 0 {
                return Err(fail(io::Error::last_os_error()));
            }
            buffers.push(buf);
        }
    }

    let layout = elf::layout(prog);
    let mut program_ids = Vec::with_capacity(layout.len());
    for unit in &layout {
        let probe = &prog.probes[unit.probes[0]];
        let program = ebpf
            .program_mut(&unit.symbol)
            .ok_or_else(|| LoadError::Object(format!("program `{}` is missing", unit.symbol)))?;
        let loaded = match &probe.event {
            Event::Tracepoint { .. } => {
                let p: &mut TracePoint = program.try_into().map_err(object_error)?;
                p.load().and_then(|()| p.info())
            }
            Event::Profile { .. } => {
                let p: &mut PerfEvent = program.try_into().map_err(object_error)?;
                p.load().and_then(|()| p.info())
            }
            Event::Kprobe { .. } => {
                let p: &mut KProbe = program.try_into().map_err(object_error)?;
                p.load().and_then(|()| p.info())
            }
            Event::Uprobe { .. } => {
                let p: &mut UProbe = program.try_into().map_err(object_error)?;
                p.load().and_then(|()| p.info())
            }
        };
        let info = loaded.map_err(|e| rejected(prog, unit, e))?;
        program_ids.push(info.id());
    }

    let mut links = Links::default();
    let mut skipped = Vec::new();
    for unit in &layout {
        let Some(program) = ebpf.program_mut(&unit.symbol) else {
            continue;
        };
        for &i in &unit.probes {
            let probe = &prog.probes[i];
            let fail = |e: ProgramError| attach_error(&probe.name, &probe.event, e);
            // A function a pattern matched that the kernel will not probe is skipped, as
            // bpftrace and ktap do with wildcards; the run fails only if none attaches.
            let mut refused = |e: LoadError| -> Result<(), LoadError> {
                if probe.optional {
                    skipped.push(e);
                    Ok(())
                } else {
                    Err(e)
                }
            };
            match &probe.event {
                Event::Tracepoint { category, name } => {
                    let p: &mut TracePoint = program.try_into().map_err(object_error)?;
                    let id = p.attach(category, name).map_err(fail)?;
                    links.0.push(Box::new(p.take_link(id).map_err(fail)?));
                }
                Event::Profile { period_ns, cpu } => {
                    let p: &mut PerfEvent = program.try_into().map_err(object_error)?;
                    // `ktap -C CPU` samples that CPU alone.
                    let cpus: Vec<u32> = match cpu {
                        Some(c) if !online.contains(c) => {
                            return Err(LoadError::Invalid {
                                probe: Some(probe.name.clone()),
                                message: format!(
                                    "CPU {c} is not online (online: {})",
                                    cpu_list(&online)
                                ),
                            })
                        }
                        Some(c) => vec![*c],
                        None => online.clone(),
                    };
                    for &cpu in &cpus {
                        let id = p
                            .attach(
                                PerfEventConfig::Software(SoftwareEvent::CpuClock),
                                PerfEventScope::AllProcessesOneCpu { cpu },
                                SamplePolicy::Period(*period_ns),
                                false,
                            )
                            .map_err(fail)?;
                        links.0.push(Box::new(p.take_link(id).map_err(fail)?));
                    }
                }
                Event::Kprobe { symbol, offset, .. } => {
                    let p: &mut KProbe = program.try_into().map_err(object_error)?;
                    match p.attach(symbol, *offset).map_err(fail) {
                        Ok(id) => links.0.push(Box::new(p.take_link(id).map_err(fail)?)),
                        Err(e) => refused(e)?,
                    }
                }
                Event::Uprobe { path, offset, .. } => {
                    let p: &mut UProbe = program.try_into().map_err(object_error)?;
                    let attached = p.attach(
                        [UProbeAttachLocation::AbsoluteOffset(*offset)],
                        path,
                        UProbeScope::AllProcesses,
                    );
                    match attached.map_err(fail) {
                        Ok(id) => links.0.push(Box::new(p.take_link(id).map_err(fail)?)),
                        Err(e) => refused(e)?,
                    }
                }
            }
        }
    }
    if links.0.is_empty() && !skipped.is_empty() {
        return Err(skipped.swap_remove(0));
    }

    Ok(Session {
        links,
        buffers,
        _output: output,
        maps: slots,
        _ebpf: ebpf,
        epoll,
        program_ids,
        // A record carrying a raw tracepoint record (`argstr`) says its own length.
        format_sizes: prog
            .formats
            .iter()
            .map(|f| if f.has_tail() { 0 } else { f.size })
            .collect(),
        order: prog.target.endian,
        scratch: Vec::new(),
        lost: 0,
        skipped,
        startup: start.elapsed(),
    })
}

impl Session {
    /// Makes [`Session::poll`] return as soon as `fd` is readable too (a pidfd, when the
    /// workload exits), instead of at its timeout.
    pub fn wake_on(&self, fd: BorrowedFd<'_>) -> Result<(), LoadError> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: u64::MAX,
        };
        // SAFETY: both descriptors are open and `ev` is a valid epoll_event.
        let rc = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        };
        if rc < 0 {
            return Err(LoadError::system(
                io::Error::last_os_error(),
                "watch the workload",
            ));
        }
        Ok(())
    }

    /// Waits up to `timeout` for output and hands each record to `on_record`; returns how many
    /// were delivered. A record is cut to its format's size (the kernel pads samples to 8
    /// bytes plus a 4-byte header); records whose first 8 bytes name no known format are
    /// delivered whole. A signal ends the wait early with whatever was read.
    pub fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, LoadError> {
        // perf's poll reports readiness only on a new wakeup, so data already queued must be
        // drained before waiting, or it would wait behind the timeout.
        let n = self.drain(on_record);
        if n > 0 || timeout.is_zero() {
            return Ok(n);
        }
        let mut ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        if ms == 0 {
            ms = 1;
        }
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
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
                return Err(LoadError::system(e, "wait for output"));
            }
        }
        Ok(self.drain(on_record))
    }

    fn drain(&mut self, on_record: &mut dyn FnMut(&[u8])) -> usize {
        let Session {
            buffers,
            format_sizes,
            order,
            scratch,
            lost,
            ..
        } = self;
        let mut n = 0;
        for buf in buffers.iter_mut() {
            if !buf.readable() {
                continue;
            }
            buf.for_each(|event| match event {
                PerfRecord::Sample { head, tail } => {
                    let whole: &[u8] = if tail.is_empty() {
                        head
                    } else {
                        scratch.clear();
                        scratch.extend_from_slice(head);
                        scratch.extend_from_slice(tail);
                        scratch
                    };
                    on_record(&whole[..record_len(format_sizes, *order, whole)]);
                    n += 1;
                }
                PerfRecord::Lost { count } => *lost += count,
            });
        }
        n
    }

    /// Output records the kernel dropped because a buffer was full.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The kernel ids of the loaded programs (one per distinct probe body).
    pub fn program_ids(&self) -> &[u32] {
        &self.program_ids
    }

    /// How many kernel attachments are live (a profile probe has one per CPU).
    pub fn attachments(&self) -> usize {
        self.links.0.len()
    }

    /// The probes left out because the kernel refused them: each is a function a pattern
    /// matched ([`ktap_bpf::Probe::optional`]), and at least one other probe is attached.
    pub fn skipped(&self) -> &[LoadError] {
        &self.skipped
    }

    /// Time from the start of [`load`] until every probe was attached.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Bytes of a value of map `map` as [`Session::lookup`] returns and [`Session::update`]
    /// takes it: the map's value size, or for per-CPU maps one value rounded up to 8 bytes
    /// for each possible CPU, in CPU order.
    pub fn value_len(&self, map: u32) -> Option<usize> {
        self.maps
            .get(map as usize)
            .map(|m| m.merged.map_or(m.value_len, Merge::size))
    }

    fn slot(&self, map: u32) -> Result<(&MapSlot, &MapData), LoadError> {
        let slot = self
            .maps
            .get(map as usize)
            .ok_or_else(|| LoadError::MapAccess {
                map: format!("#{map}"),
                message: format!("no such map (the program has {})", self.maps.len()),
            })?;
        let data = slot.data.as_ref().ok_or_else(|| LoadError::MapAccess {
            map: slot.name.clone(),
            message: "this is the output buffer; its records are read with poll".into(),
        })?;
        Ok((slot, data))
    }

    fn check_len(slot: &MapSlot, what: &str, got: usize, want: usize) -> Result<(), LoadError> {
        if got == want {
            Ok(())
        } else {
            Err(LoadError::MapAccess {
                map: slot.name.clone(),
                message: format!("a {what} of {got} bytes, but the map's are {want}"),
            })
        }
    }

    fn access_error(slot: &MapSlot, what: &str, errno: i32) -> LoadError {
        LoadError::MapAccess {
            map: slot.name.clone(),
            message: format!(
                "{what} failed: {}",
                error::describe(&io::Error::from_raw_os_error(errno))
            ),
        }
    }

    /// The value under `key`, or `None`.
    pub fn lookup(&self, map: u32, key: &[u8]) -> Result<Option<Vec<u8>>, LoadError> {
        let (slot, data) = self.slot(map)?;
        Self::check_len(slot, "key", key.len(), slot.key_size)?;
        let mut value = vec![0; slot.value_len];
        match maps::lookup(data.fd().as_fd(), key, &mut value) {
            Ok(true) => Ok(Some(match slot.merged {
                Some(Merge::Aggregation(size)) => {
                    ktap_bpf::agg::merge(&value, size, size.next_multiple_of(8), Endian::host())
                }
                // A table's values are 8-byte numbers, so each CPU's is 8 bytes apart.
                Some(Merge::Sum) => ktap_bpf::sum_cpus(&value, 8, Endian::host()).to_vec(),
                None => value,
            })),
            Ok(false) => Ok(None),
            Err(e) => Err(Self::access_error(slot, "lookup", e)),
        }
    }

    /// Stores `value` under `key` with the `BPF_ANY`/`BPF_NOEXIST`/`BPF_EXIST` `flags`;
    /// returns 0 or the kernel's negative errno, as the BPF helper does. `Err` only for a
    /// malformed call (no such map, wrong sizes).
    pub fn update(&self, map: u32, key: &[u8], value: &[u8], flags: u64) -> Result<i64, LoadError> {
        let (slot, data) = self.slot(map)?;
        Self::check_len(slot, "key", key.len(), slot.key_size)?;
        let spread;
        let value = match slot.merged.map(Merge::size) {
            Some(size) => {
                Self::check_len(slot, "value", value.len(), size)?;
                let mut all = vec![0; slot.value_len];
                all[..size].copy_from_slice(value);
                spread = all;
                &spread[..]
            }
            None => {
                Self::check_len(slot, "value", value.len(), slot.value_len)?;
                value
            }
        };
        Ok(match maps::update(data.fd().as_fd(), key, value, flags) {
            Ok(()) => 0,
            Err(e) => -i64::from(e),
        })
    }

    /// Removes `key`; returns 0 or the kernel's negative errno (`-ENOENT` when absent).
    pub fn delete(&self, map: u32, key: &[u8]) -> Result<i64, LoadError> {
        let (slot, data) = self.slot(map)?;
        Self::check_len(slot, "key", key.len(), slot.key_size)?;
        Ok(match maps::delete(data.fd().as_fd(), key) {
            Ok(()) => 0,
            Err(e) => -i64::from(e),
        })
    }

    /// The key after `key`, or the first key for `None`; `None` at the end (and for a map
    /// that cannot be iterated).
    pub fn next_key(&self, map: u32, key: Option<&[u8]>) -> Option<Vec<u8>> {
        let (slot, data) = self.slot(map).ok()?;
        if key.is_some_and(|k| k.len() != slot.key_size) {
            return None;
        }
        let mut next = vec![0; slot.key_size];
        match maps::next_key(data.fd().as_fd(), key, &mut next) {
            Ok(true) => Some(next),
            _ => None,
        }
    }

    /// Every key, collected before anything is changed. Bounded by the map's capacity: a
    /// hash walk restarts from the top when the kernel deletes the current key under it.
    fn keys(slot: &MapSlot, data: &MapData) -> Result<Vec<Vec<u8>>, LoadError> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let limit = slot.max_entries as usize;
        while keys.len() < limit {
            let mut next = vec![0; slot.key_size];
            match maps::next_key(data.fd().as_fd(), keys.last().map(|k| &k[..]), &mut next) {
                Ok(true) => keys.push(next),
                Ok(false) => break,
                Err(e) => return Err(Self::access_error(slot, "walking the keys", e)),
            }
        }
        Ok(keys)
    }

    /// Empties map `map`: hash entries are deleted, array slots are zeroed.
    pub fn clear(&self, map: u32) -> Result<(), LoadError> {
        let (slot, data) = self.slot(map)?;
        match slot.kind {
            MapKind::Hash | MapKind::PercpuHash | MapKind::StackTrace => {
                for key in Self::keys(slot, data)? {
                    match maps::delete(data.fd().as_fd(), &key) {
                        Ok(()) | Err(libc::ENOENT) => {}
                        Err(e) => return Err(Self::access_error(slot, "delete", e)),
                    }
                }
            }
            MapKind::Array | MapKind::PercpuArray => {
                let zero = vec![0; slot.value_len];
                for index in 0..slot.max_entries {
                    maps::update(data.fd().as_fd(), &index.to_ne_bytes(), &zero, 0)
                        .map_err(|e| Self::access_error(slot, "zeroing a slot", e))?;
                }
            }
            MapKind::PerfEventArray => {
                return Err(LoadError::MapAccess {
                    map: slot.name.clone(),
                    message: "a perf event array cannot be cleared".into(),
                })
            }
        }
        Ok(())
    }

    /// The number of entries: every slot of an array, the present keys of a hash.
    pub fn count(&self, map: u32) -> Result<u64, LoadError> {
        let (slot, data) = self.slot(map)?;
        match slot.kind {
            MapKind::Hash | MapKind::PercpuHash | MapKind::StackTrace => {
                Ok(Self::keys(slot, data)?.len() as u64)
            }
            _ => Ok(u64::from(slot.max_entries)),
        }
    }

    /// Detaches every probe now but keeps the maps and buffers, so records already written can
    /// still be read and `trace_end` can read the tables. Calling it again does nothing.
    pub fn stop_probes(&mut self) {
        drop(std::mem::take(&mut self.links));
    }

    /// Detaches and unloads everything now (the same as dropping the Session).
    pub fn detach(self) {}
}

/// The most threads detaching at once.
const DETACH_THREADS: usize = 8;

/// Drops every attachment. The kernel waits for an RCU grace period when the last program
/// leaves a tracepoint, which costs tens of milliseconds of mostly idle time per tracepoint;
/// closing from several threads lets those waits overlap. If a thread cannot be started its
/// share is dropped on this one, so nothing is ever left attached.
fn detach_all(links: Vec<Attachment>) {
    if links.len() < 2 {
        drop(links);
        return;
    }
    let threads = DETACH_THREADS.min(links.len());
    let per_thread = links.len().div_ceil(threads);
    let mut chunks: Vec<Vec<Attachment>> = Vec::with_capacity(threads);
    let mut rest = links.into_iter();
    for _ in 0..threads {
        chunks.push(rest.by_ref().take(per_thread).collect());
    }
    thread::scope(|s| {
        for chunk in chunks {
            let spawned = thread::Builder::new()
                .name("ktap-detach".into())
                .spawn_scoped(s, move || drop(chunk));
            // On failure the closure, and with it the chunk, is dropped right here.
            drop(spawned);
        }
    });
}

/// CPU numbers as `0 1 2 3`.
fn cpu_list(cpus: &[u32]) -> String {
    let list: Vec<String> = cpus.iter().map(u32::to_string).collect();
    list.join(" ")
}

/// The number of bytes of a record that belong to it.
fn record_len(format_sizes: &[u32], order: Endian, rec: &[u8]) -> usize {
    let Some(head) = rec.first_chunk::<8>() else {
        return rec.len();
    };
    let id = match order {
        Endian::Little => u64::from_le_bytes(*head),
        Endian::Big => u64::from_be_bytes(*head),
    };
    match usize::try_from(id).ok().and_then(|i| format_sizes.get(i)) {
        Some(&size) if (8..=rec.len()).contains(&(size as usize)) => size as usize,
        _ => rec.len(),
    }
}

fn check_target(prog: &Program) -> Result<(), LoadError> {
    let host = Target::host();
    if prog.target == host {
        return Ok(());
    }
    let text = |t: Target| {
        let order = match t.endian {
            Endian::Little => "little-endian",
            Endian::Big => "big-endian",
        };
        format!("{:?} ({order}, {}-bit)", t.arch, u32::from(t.word_size) * 8)
    };
    Err(LoadError::WrongTarget {
        compiled: text(prog.target),
        host: text(host),
    })
}

/// Every tracepoint must exist before any verification is spent on the probes.
fn check_tracepoints(prog: &Program) -> Result<(), LoadError> {
    let mut tracepoints = prog.probes.iter().filter_map(|p| match &p.event {
        Event::Tracepoint { category, name } => Some((category, name)),
        _ => None,
    });
    let Some(first) = tracepoints.next() else {
        return Ok(());
    };
    let kernel = TracefsKernel::new()?;
    for (category, name) in std::iter::once(first).chain(tracepoints) {
        if !kernel.exists(category, name) {
            return Err(LoadError::NoTracepoint {
                category: category.clone(),
                name: name.clone(),
                path: kernel.event_dir(category, name),
            });
        }
    }
    Ok(())
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK, whose default is tiny; newer ones
/// ignore it. Failing to raise it is not an error: the map creation that needs it will say so.
fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `unlimited` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        log::debug!(
            "cannot raise RLIMIT_MEMLOCK: {}",
            io::Error::last_os_error()
        );
    }
}

fn map_data(map: Map) -> Option<MapData> {
    match map {
        Map::HashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::Array(d)
        | Map::PerCpuArray(d)
        | Map::StackTraceMap(d)
        | Map::PerfEventArray(d) => Some(d),
        _ => None,
    }
}

fn event_text(event: &Event) -> String {
    match event {
        Event::Tracepoint { category, name } => format!("tracepoint {category}:{name}"),
        Event::Profile {
            period_ns,
            cpu: None,
        } => format!("profile every {period_ns} ns"),
        Event::Profile {
            period_ns,
            cpu: Some(c),
        } => format!("profile every {period_ns} ns on CPU {c}"),
        Event::Kprobe {
            symbol,
            offset,
            ret,
        } => format!(
            "{} {symbol}{}",
            if *ret { "kretprobe" } else { "kprobe" },
            if *offset > 0 {
                format!("+{offset}")
            } else {
                String::new()
            }
        ),
        Event::Uprobe {
            path, symbol, ret, ..
        } => format!(
            "{} {path}:{symbol}",
            if *ret { "uretprobe" } else { "uprobe" }
        ),
    }
}

/// aya's error for anything ktap itself got wrong: kept with aya's words for the bug report.
fn object_error(e: impl std::error::Error) -> LoadError {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        text.push_str(": ");
        text.push_str(&s.to_string());
        next = s.source();
    }
    LoadError::Object(text)
}

fn ebpf_error(prog: &Program, e: EbpfError) -> LoadError {
    match e {
        EbpfError::MapError(MapError::CreateError { name, io_error }) => {
            let map = (0..prog.maps.len())
                .find(|&i| elf::map_symbol(prog, i) == name)
                .map_or(name, |i| prog.maps[i].name.clone());
            LoadError::from_io(io_error, format!("create map `{map}`"), |source| {
                LoadError::CreateMap { map, source }
            })
        }
        EbpfError::FileError { path, error } => {
            LoadError::system(error, format!("read {}", path.display()))
        }
        e => object_error(e),
    }
}

fn rejected(prog: &Program, unit: &elf::ObjectProgram, e: ProgramError) -> LoadError {
    let first = &prog.probes[unit.probes[0]];
    let probe = match unit.probes.len() {
        1 => first.name.clone(),
        n => format!("{} (and {} more sharing its code)", first.name, n - 1),
    };
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let event = event_text(&first.event);
            // A log means the verifier ran and refused the code, whatever the errno. Without
            // one, EPERM and EACCES are the privilege check refusing before any verification.
            if log.trim().is_empty() && io_error.raw_os_error() == Some(libc::EACCES) {
                return LoadError::Permission {
                    action: "load BPF programs".into(),
                };
            }
            if log.trim().is_empty() {
                return LoadError::from_io(io_error, "load BPF programs", |source| {
                    LoadError::Rejected {
                        probe,
                        event,
                        source,
                        log,
                    }
                });
            }
            LoadError::Rejected {
                probe,
                event,
                source: io_error,
                log,
            }
        }
        ProgramError::SyscallError(s) => {
            LoadError::system(s.io_error, format!("load probe `{probe}` ({})", s.call))
        }
        e => object_error(e),
    }
}

fn attach_error(probe: &str, event: &Event, e: ProgramError) -> LoadError {
    let attach = |source: io::Error| {
        LoadError::from_io(
            source,
            format!("attach to {}", event_text(event)),
            |source| LoadError::Attach {
                probe: probe.to_string(),
                event: event_text(event),
                source,
            },
        )
    };
    match e {
        // The uprobe code decodes the instruction at the address when the probe is
        // registered and refuses those it cannot single-step or emulate (on x86, for one,
        // lock-prefixed instructions); the errno alone would blame the JIT.
        ProgramError::SyscallError(s)
            if s.io_error.raw_os_error() == Some(524) && matches!(event, Event::Uprobe { .. }) =>
        {
            attach(io::Error::new(
                io::ErrorKind::Unsupported,
                "uprobes cannot probe the instruction at this address (ENOTSUPP)",
            ))
        }
        ProgramError::SyscallError(s) => attach(s.io_error),
        ProgramError::TracePointError(TracePointError::FileError { filename, io_error }) => {
            match (io_error.kind(), event) {
                (io::ErrorKind::NotFound, Event::Tracepoint { category, name }) => {
                    LoadError::NoTracepoint {
                        category: category.clone(),
                        name: name.clone(),
                        path: filename,
                    }
                }
                _ => attach(io_error),
            }
        }
        // aya finds the kprobe PMU's type in sysfs: a kernel without kprobes has none.
        ProgramError::KProbeError(KProbeError::FileError { filename, io_error })
            if io_error.kind() == io::ErrorKind::NotFound =>
        {
            attach(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "this kernel has no kprobes ({} does not exist)",
                    filename.display()
                ),
            ))
        }
        e => attach(io::Error::other(object_error(e).to_string())),
    }
}

fn perf_io(e: aya::maps::perf::PerfBufferError) -> io::Error {
    use aya::maps::perf::PerfBufferError as P;
    match e {
        P::OpenError { io_error }
        | P::MMapError { io_error }
        | P::PerfEventEnableError { io_error } => io_error,
        e => io::Error::other(e.to_string()),
    }
}

fn map_io(e: MapError) -> io::Error {
    match e {
        MapError::SyscallError(s) => s.io_error,
        e => io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_cut_to_their_format() {
        let sizes = [16, 12];
        let mut rec = vec![0u8; 20];
        assert_eq!(record_len(&sizes, Endian::Little, &rec), 16);
        rec[0] = 1;
        assert_eq!(record_len(&sizes, Endian::Little, &rec), 12);
        // An unknown id, a format bigger than the sample, or too few bytes: deliver it all.
        rec[0] = 2;
        assert_eq!(record_len(&sizes, Endian::Little, &rec), 20);
        assert_eq!(record_len(&[64], Endian::Little, &[0; 20]), 20);
        assert_eq!(record_len(&sizes, Endian::Little, &[0; 4]), 4);
        let mut be = vec![0u8; 20];
        be[7] = 1;
        assert_eq!(record_len(&sizes, Endian::Big, &be), 12);
    }
}
