//! Probes in the userspace VM: the executor that `ktap --vm` (and the fallback where `bpf()` is
//! missing or refused) and `ktap-vm --replay` share. Tables live in process memory
//! ([`MemHost`]); each event runs its probes with the raw tracepoint record as context and the
//! sample's task, CPU and time as what the helpers report; output records go to the same
//! printer as in kernel mode, so a script prints the same text either way.
//!
//! A probe that faults (a bad access, the instruction budget) stops that event only: the first
//! fault at each instruction is reported with the script line and the instruction, later ones
//! are counted and summed up at the end.

use crate::host::{Output, Tables};
use ktap_bpf::asm::disasm_one;
use ktap_bpf::{Arch, Endian, Event, Function, Program, Target};
use ktap_fmt::MapSource;
use ktap_vm::{Host, MemHost, RunEnv, Space, EFAULT};
use std::collections::BTreeMap;

/// What produces an event, as the executor dispatches on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKey {
    Tracepoint {
        category: String,
        name: String,
    },
    Profile {
        period_ns: u64,
    },
    /// A probe the VM executor cannot serve yet (kprobes and uprobes), named for the message.
    Unsupported(String),
}

impl SourceKey {
    /// The source a probe listens to.
    pub fn of(event: &Event) -> SourceKey {
        match event {
            Event::Tracepoint { category, name } => SourceKey::Tracepoint {
                category: category.clone(),
                name: name.clone(),
            },
            Event::Profile { period_ns, .. } => SourceKey::Profile {
                period_ns: *period_ns,
            },
            Event::Kprobe { symbol, .. } => SourceKey::Unsupported(format!("kprobe {symbol}")),
            Event::Uprobe { path, symbol, .. } => {
                SourceKey::Unsupported(format!("uprobe {path}:{symbol}"))
            }
        }
    }
}

/// The distinct sources of a program's probes, in probe order.
pub fn sources(prog: &Program) -> Vec<SourceKey> {
    let mut out: Vec<SourceKey> = Vec::new();
    for p in &prog.probes {
        let key = SourceKey::of(&p.event);
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// The task an event happened in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub tid: u32,
    pub comm: [u8; 16],
    pub uid: u32,
    pub gid: u32,
}

/// One event to run probes on.
pub struct EventData<'r> {
    /// Index into the sources the executor was made with.
    pub source: usize,
    pub cpu: u32,
    pub task: Task,
    pub time_ns: u64,
    /// The interrupted instruction pointer (profile events).
    pub ip: u64,
    /// The raw tracepoint record (tracepoint events).
    pub raw: &'r [u8],
}

/// The memory of the traced processes, for `probe_read_user*`: live process memory, or the
/// bytes a recording kept.
pub trait UserMemory {
    /// Fills `buf` from `addr` in process `pid`; false if it cannot be read.
    fn read(&mut self, pid: u32, addr: u64, buf: &mut [u8]) -> bool;
    /// The NUL-terminated string at `addr` into `buf` (at most `buf.len() - 1` bytes and a
    /// NUL); its length with the NUL, or `None`.
    fn read_str(&mut self, pid: u32, addr: u64, buf: &mut [u8]) -> Option<usize>;
}

/// Faults of one probe instruction.
struct FaultCount {
    count: u64,
}

/// Runs a program's probes and userspace blocks over in-memory tables.
pub struct Executor<'p> {
    pub prog: &'p Program,
    pub maps: MemHost,
    /// For each source, the probes that listen to it.
    by_source: Vec<Vec<usize>>,
    /// (probe, pc) → faults there.
    faults: BTreeMap<(usize, usize), FaultCount>,
    /// Events run, and events stopped by a fault.
    pub events: u64,
    pub faulted: u64,
}

/// `bpf_perf_event_data` for a profile probe: the registers of the interrupted context (only the
/// instruction pointer is known from a sample) followed by `sample_period` and `addr`.
fn profile_ctx(target: Target, ip: u64, period_ns: u64) -> Vec<u8> {
    // (size of pt_regs, offset of the instruction pointer in it)
    let (regs, ip_at) = match (target.arch, target.word_size) {
        (Arch::X86_64, _) => (168, Some(128)),
        (Arch::Aarch64, _) => (272, Some(256)),
        (_, 4) => (256, None),
        _ => (512, None),
    };
    let word = |v: u64| match target.endian {
        Endian::Little => v.to_le_bytes(),
        Endian::Big => v.to_be_bytes(),
    };
    let mut ctx = vec![0u8; regs + 16];
    if let Some(at) = ip_at {
        ctx[at..at + 8].copy_from_slice(&word(ip));
    }
    ctx[regs..regs + 8].copy_from_slice(&word(period_ns));
    ctx
}

/// Every entry of a [`MemHost`] table, for `print_hist`.
pub struct MemMaps<'m>(pub &'m mut MemHost, pub &'m Program);

impl MapSource for MemMaps<'_> {
    fn entries(&mut self, map: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Some(def) = self.1.maps.get(map as usize) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        let mut next = vec![0u8; def.key_size as usize];
        // Bounded by the capacity, whatever the store does.
        for _ in 0..=def.max_entries {
            if self.0.map_next_key(map, key.as_deref(), &mut next) != 0 {
                break;
            }
            if let Some(v) = self.0.get(map, &next) {
                out.push((next.clone(), v));
            }
            key = Some(next.clone());
        }
        out
    }
}

impl Tables for MemMaps<'_> {
    fn clear(&mut self, map: u32) -> Result<(), String> {
        self.0.map_clear(map);
        Ok(())
    }
}

/// The helpers' world while one event (or a userspace block) runs.
struct EventHost<'e, 'o, 'a> {
    maps: &'e mut MemHost,
    prog: &'a Program,
    output: &'e mut Output<'o>,
    task: Task,
    cpu: u32,
    now_ns: u64,
    wall_ns: u64,
    memory: &'e mut dyn UserMemory,
}

impl Host for EventHost<'_, '_, '_> {
    fn map_lookup(&mut self, map: u32, key: &[u8], value: &mut [u8]) -> bool {
        self.maps.map_lookup(map, key, value)
    }
    fn map_update(&mut self, map: u32, key: &[u8], value: &[u8], flags: u64) -> i64 {
        self.maps.map_update(map, key, value, flags)
    }
    fn map_delete(&mut self, map: u32, key: &[u8]) -> i64 {
        self.maps.map_delete(map, key)
    }
    fn map_next_key(&mut self, map: u32, key: Option<&[u8]>, next: &mut [u8]) -> i64 {
        self.maps.map_next_key(map, key, next)
    }
    fn map_clear(&mut self, map: u32) -> i64 {
        self.maps.map_clear(map)
    }
    fn map_count(&mut self, map: u32) -> u64 {
        self.maps.map_count(map)
    }
    fn output(&mut self, _map: u32, _flags: u64, record: &[u8]) -> i64 {
        self.output
            .record_with(&mut MemMaps(self.maps, self.prog), record);
        0
    }
    fn ktime_ns(&mut self) -> u64 {
        self.now_ns
    }
    fn wall_clock_ns(&mut self) -> u64 {
        self.wall_ns
    }
    fn cpu(&mut self) -> u32 {
        self.cpu
    }
    fn pid_tgid(&mut self) -> u64 {
        u64::from(self.task.pid) << 32 | u64::from(self.task.tid)
    }
    fn uid_gid(&mut self) -> u64 {
        u64::from(self.task.gid) << 32 | u64::from(self.task.uid)
    }
    fn comm(&mut self) -> [u8; 16] {
        self.task.comm
    }
    fn num_cpus(&mut self) -> u32 {
        crate::kernel::online_cpus()
    }
    fn kernel_release(&mut self) -> Vec<u8> {
        crate::kernel::release().into_bytes()
    }
    fn probe_read(&mut self, space: Space, addr: u64, buf: &mut [u8]) -> i64 {
        // Kernel memory is out of reach from userspace.
        if space != Space::Kernel && self.memory.read(self.task.pid, addr, buf) {
            0
        } else {
            -EFAULT
        }
    }
    fn probe_read_str(&mut self, space: Space, addr: u64, buf: &mut [u8]) -> i64 {
        if space == Space::Kernel {
            return -EFAULT;
        }
        match self.memory.read_str(self.task.pid, addr, buf) {
            Some(n) => n as i64,
            None => -EFAULT,
        }
    }
}

/// `file:line:col` of instruction `pc` of `func`.
pub fn place(prog: &Program, func: &Function, pc: usize) -> String {
    let span = func.spans.get(pc).copied().unwrap_or_default();
    let (line, col) = prog.source.line_col(span.lo);
    format!("{}:{}:{}", prog.source.name, line, col)
}

impl<'p> Executor<'p> {
    /// An executor for `prog` whose events come from `sources` (see [`sources`]).
    pub fn new(prog: &'p Program, sources: &[SourceKey]) -> Executor<'p> {
        let by_source = sources
            .iter()
            .map(|s| {
                (0..prog.probes.len())
                    .filter(|&i| SourceKey::of(&prog.probes[i].event) == *s)
                    .collect()
            })
            .collect();
        Executor {
            prog,
            maps: MemHost::new(&prog.maps, prog.target.endian),
            by_source,
            faults: BTreeMap::new(),
            events: 0,
            faulted: 0,
        }
    }

    /// Runs a userspace block (top-level code, a tick, `trace_end`) in ktap's own task; an
    /// error is the message to print, naming the script line.
    pub fn run_block(
        &mut self,
        func: &Function,
        output: &mut Output,
        now_ns: u64,
        wall_ns: u64,
        memory: &mut dyn UserMemory,
    ) -> Result<(), String> {
        let env = RunEnv::new(&self.prog.maps, self.prog.target.endian);
        let mut host = EventHost {
            maps: &mut self.maps,
            prog: self.prog,
            output,
            task: own_task(),
            cpu: 0,
            now_ns,
            wall_ns,
            memory,
        };
        let mut ctx = [0u8; 8];
        ktap_vm::run(func, &mut ctx, &env, &mut host)
            .map(drop)
            .map_err(|f| {
                format!(
                    "{}: runtime error: {}",
                    place(self.prog, func, f.pc),
                    f.message
                )
            })
    }

    /// Runs every probe listening to the event's source. A fault stops that probe's run for this
    /// event only; the first at each instruction is printed to stderr.
    pub fn event(
        &mut self,
        ev: &EventData,
        output: &mut Output,
        wall_ns: u64,
        memory: &mut dyn UserMemory,
    ) {
        let Some(probes) = self.by_source.get(ev.source) else {
            return;
        };
        self.events += 1;
        let mut ctx = Vec::new();
        for &i in probes {
            let probe = &self.prog.probes[i];
            ctx.clear();
            match probe.event {
                Event::Tracepoint { .. } => ctx.extend_from_slice(ev.raw),
                Event::Profile { period_ns, .. } => {
                    ctx = profile_ctx(self.prog.target, ev.ip, period_ns);
                }
                // No source delivers these: the live executor refuses them before tracing.
                Event::Kprobe { .. } | Event::Uprobe { .. } => continue,
            }
            let env = RunEnv::new(&self.prog.maps, self.prog.target.endian);
            let mut host = EventHost {
                maps: &mut self.maps,
                prog: self.prog,
                output,
                task: ev.task,
                cpu: ev.cpu,
                now_ns: ev.time_ns,
                wall_ns,
                memory,
            };
            if let Err(f) = ktap_vm::run(&probe.func, &mut ctx, &env, &mut host) {
                self.faulted += 1;
                let entry = self
                    .faults
                    .entry((i, f.pc))
                    .or_insert(FaultCount { count: 0 });
                entry.count += 1;
                if entry.count == 1 {
                    eprintln!(
                        "ktap: {}: runtime error in probe {}: {} (insn {}: {}); the event is \
                         skipped, tracing goes on, and later faults here are counted",
                        place(self.prog, &probe.func, f.pc),
                        probe.name,
                        f.message,
                        f.pc,
                        disasm_one(&probe.func.insns, f.pc)
                    );
                }
            }
        }
    }

    /// One line per faulting instruction that faulted more than once: how many events it
    /// stopped.
    pub fn fault_summary(&self) -> Vec<String> {
        self.faults
            .iter()
            .filter(|(_, c)| c.count > 1)
            .map(|(&(i, pc), c)| {
                let probe = &self.prog.probes[i];
                format!(
                    "{}: probe {} faulted in {} events in all (insn {})",
                    place(self.prog, &probe.func, pc),
                    probe.name,
                    c.count,
                    pc
                )
            })
            .collect()
    }
}

/// ktap's own task, for userspace blocks.
fn own_task() -> Task {
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"ktap");
    let pid = std::process::id();
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Task {
        pid,
        tid: pid,
        comm,
        uid,
        gid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktap_bpf::insn::{Insn, BPF_DW, R0, R1};
    use ktap_bpf::{Probe, Source, Span};

    struct NoMemory;

    impl UserMemory for NoMemory {
        fn read(&mut self, _: u32, _: u64, _: &mut [u8]) -> bool {
            false
        }
        fn read_str(&mut self, _: u32, _: u64, _: &mut [u8]) -> Option<usize> {
            None
        }
    }

    #[test]
    fn a_faulting_probe_stops_its_event_only_and_is_counted() {
        let text = "trace a:b {\n  x = args.far\n}\n";
        let func = Function {
            insns: vec![Insn::ldx(BPF_DW, R0, R1, 64), Insn::exit()],
            spans: vec![Span::new(14, 24), Span::new(0, 0)],
        };
        let prog = Program {
            target: Target::host(),
            source: Source {
                name: "t.kp".into(),
                text: text.into(),
            },
            maps: Vec::new(),
            formats: Vec::new(),
            probes: vec![Probe {
                name: "b".into(),
                event: Event::Tracepoint {
                    category: "a".into(),
                    name: "b".into(),
                },
                func: func.clone(),
                span: Span::new(0, 30),
                optional: false,
            }],
            user: Vec::new(),
            events: Vec::new(),
        };
        let keys = sources(&prog);
        let mut exec = Executor::new(&prog, &keys);
        let mut output = Output::new(&prog, Box::new(Vec::new()));
        let raw = [0u8; 16];
        for _ in 0..3 {
            let ev = EventData {
                source: 0,
                cpu: 0,
                task: Task::default(),
                time_ns: 1,
                ip: 0,
                raw: &raw,
            };
            exec.event(&ev, &mut output, 0, &mut NoMemory);
        }
        assert_eq!((exec.events, exec.faulted), (3, 3));
        assert_eq!(place(&prog, &func, 0), "t.kp:2:3");
        assert_eq!(
            exec.fault_summary(),
            ["t.kp:2:3: probe b faulted in 3 events in all (insn 0)"]
        );
        // Events of other sources run nothing.
        let ev = EventData {
            source: 5,
            cpu: 0,
            task: Task::default(),
            time_ns: 1,
            ip: 0,
            raw: &raw,
        };
        exec.event(&ev, &mut output, 0, &mut NoMemory);
        assert_eq!(exec.events, 3);
    }

    #[test]
    fn profile_contexts_carry_the_ip() {
        let t = Target::by_name("x86_64").unwrap_or(Target::host());
        let ctx = profile_ctx(t, 0x1234, 10);
        assert_eq!(ctx.len(), 184);
        assert_eq!(ctx[128..136], 0x1234u64.to_le_bytes());
        assert_eq!(ctx[168..176], 10u64.to_le_bytes());
    }
}
