//! `ktap --vm` and `ktap --record FILE`: a script's probes run in the userspace VM over live
//! events from perf (the loader's `perf_exec`), for kernels whose `bpf()` is missing or
//! refused, with the same output as kernel mode. Tracing runs as in kernel mode: top-level
//! code, then events and `tick` blocks until Ctrl-C / SIGTERM / `exit()` / the workload's end,
//! then the events still buffered, then `trace_end`.

use crate::host::Output;
use crate::kernel::monotonic_ns;
use crate::loader::perf_exec::{self, PerfExec, Record, Source};
use crate::loader::TracefsKernel;
use crate::record::{self, RecEvent, RecRead, RecSource, RecTask, Recording};
use crate::run::RunArgs;
use crate::signals;
use crate::vmexec::{sources, EventData, Executor, SourceKey, Task, UserMemory};
use ktap_bpf::{Function, Program, When};
use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Ring buffer pages per CPU: 1 MiB holds about 15000 syscall records, what a busy workload
/// makes between two reads; the kernel counts what does not fit, and ktap reports it.
const RING_PAGES: usize = 256;

pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Whether a probe reads the memory of the task it runs for: its samples then carry the user
/// stack, and the workload is held at its exit until its events are handled.
fn reads_user_memory(prog: &Program) -> bool {
    use ktap_bpf::helpers::{PROBE_READ, PROBE_READ_STR, PROBE_READ_USER, PROBE_READ_USER_STR};
    use ktap_bpf::insn::{BPF_CALL, BPF_JMP};
    prog.probes.iter().flat_map(|p| &p.func.insns).any(|i| {
        i.code == BPF_JMP | BPF_CALL
            && i.src == 0
            && matches!(
                i.imm,
                PROBE_READ | PROBE_READ_STR | PROBE_READ_USER | PROBE_READ_USER_STR
            )
    })
}

/// Live process memory, the event's stack snapshot first; while recording, each successful
/// read is kept for the event.
struct LiveMemory {
    record: bool,
    reads: Vec<RecRead>,
    /// The current event's user stack pointer and the stack bytes from there up.
    stack: Option<(u64, Vec<u8>)>,
}

impl LiveMemory {
    /// The snapshot's bytes from `addr` on, if `addr` lies inside it.
    fn snapshot(&self, addr: u64) -> Option<&[u8]> {
        let (sp, bytes) = self.stack.as_ref()?;
        let at = usize::try_from(addr.checked_sub(*sp)?).ok()?;
        bytes.get(at..).filter(|b| !b.is_empty())
    }
}

impl UserMemory for LiveMemory {
    fn read(&mut self, pid: u32, addr: u64, buf: &mut [u8]) -> bool {
        let ok = match self.snapshot(addr) {
            Some(snap) if snap.len() >= buf.len() => {
                buf.copy_from_slice(&snap[..buf.len()]);
                true
            }
            _ => perf_exec::read_process(pid, addr, buf),
        };
        if ok && self.record {
            self.reads.push(RecRead {
                addr,
                string: false,
                bytes: buf.to_vec(),
            });
        }
        ok
    }
    fn read_str(&mut self, pid: u32, addr: u64, buf: &mut [u8]) -> Option<usize> {
        let max = buf.len().checked_sub(1)?;
        let from_stack = self.snapshot(addr).and_then(|snap| {
            let nul = snap.iter().take(max).position(|&b| b == 0);
            match nul {
                Some(n) => Some(n),
                None if snap.len() >= max => Some(max),
                None => None,
            }
        });
        let n = match from_stack {
            Some(n) => {
                let snap = self.snapshot(addr).unwrap_or_default();
                buf[..n].copy_from_slice(&snap[..n]);
                buf[n] = 0;
                n + 1
            }
            None => perf_exec::read_process_str(pid, addr, buf)?,
        };
        if self.record {
            self.reads.push(RecRead {
                addr,
                string: true,
                bytes: buf[..n].to_vec(),
            });
        }
        Some(n)
    }
}

/// What is known about each live task, kept current by the task tracker's records.
#[derive(Default)]
struct Tasks(HashMap<u32, Task>);

impl Tasks {
    fn get(&mut self, pid: u32, tid: u32) -> Task {
        *self.0.entry(tid).or_insert_with(|| {
            let info = perf_exec::task_info(pid, tid).or_else(|| perf_exec::task_info(pid, pid));
            Task {
                pid,
                tid,
                comm: info.map_or([0; 16], |i| i.comm),
                uid: info.map_or(0, |i| i.uid),
                gid: info.map_or(0, |i| i.gid),
            }
        })
    }
}

/// Runs `prog`'s probes in the VM; returns the exit code.
pub fn run(a: &RunArgs, prog: &Program, out: Box<dyn Write>) -> i32 {
    match trace(a, prog, out) {
        Ok(code) => code,
        Err(m) => {
            eprintln!("ktap: {m}");
            1
        }
    }
}

fn trace(a: &RunArgs, prog: &Program, out: Box<dyn Write>) -> Result<i32, String> {
    let keys = sources(prog);
    let mut perf_sources = Vec::new();
    let mut rec_sources = Vec::new();
    let kernel = if keys
        .iter()
        .any(|k| matches!(k, SourceKey::Tracepoint { .. }))
    {
        Some(TracefsKernel::new().map_err(|e| e.to_string())?)
    } else {
        None
    };
    for key in &keys {
        match (key, &kernel) {
            (SourceKey::Tracepoint { category, name }, Some(k)) => {
                use ktap_bpf::kernel::Kernel as _;
                let format = k.tp_format(category, name)?;
                perf_sources.push(Source::Tracepoint {
                    id: format.id.into(),
                });
                let path = k.event_dir(category, name).join("format");
                let text = if a.record.is_some() {
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                } else {
                    String::new()
                };
                rec_sources.push(RecSource::Tracepoint {
                    category: category.clone(),
                    name: name.clone(),
                    format: text,
                });
            }
            (SourceKey::Profile { period_ns }, _) => {
                perf_sources.push(Source::CpuClock {
                    period_ns: *period_ns,
                });
                rec_sources.push(RecSource::Profile {
                    period_ns: *period_ns,
                });
            }
            (SourceKey::Tracepoint { .. }, None) => {}
            (SourceKey::Unsupported(what), _) => {
                return Err(format!(
                    "the VM executor (--vm) cannot serve the {what} yet: run without --vm"
                ))
            }
        }
    }
    signals::install();
    let mut perf = if perf_sources.is_empty() {
        None
    } else {
        Some(
            PerfExec::open(&perf_sources, RING_PAGES, reads_user_memory(prog))
                .map_err(|e| e.to_string())?,
        )
    };
    if a.verbose {
        eprintln!(
            "ktap: running {} probes in the userspace VM over {} perf events",
            prog.probes.len(),
            perf.as_ref().map_or(0, |p| p.events())
        );
    }
    let mut output = Output::new(prog, out);
    output.printer.set_mode(a.format);
    output.printer.set_time_origin(monotonic_ns());
    let mut exec = Executor::new(prog, &keys);
    let mut memory = LiveMemory {
        record: a.record.is_some(),
        reads: Vec::new(),
        stack: None,
    };
    let mut recording = Recording {
        target: prog.target.name().to_string(),
        start_ns: 0,
        end_ns: 0,
        start_wall_ns: 0,
        sources: rec_sources,
        tasks: Vec::new(),
        events: Vec::new(),
    };
    let mut failed = false;
    for b in prog.user.iter().filter(|b| b.when == When::Begin) {
        exec.run_block(&b.func, &mut output, monotonic_ns(), wall_ns(), &mut memory)?;
    }
    if let Some(e) = output.error.take() {
        return Err(e);
    }
    let traces = !prog.probes.is_empty()
        || prog
            .user
            .iter()
            .any(|b| matches!(b.when, When::Tick { .. }));
    let mut child: Option<Workload> = None;
    let mut tasks = Tasks::default();
    let mut task_index = HashMap::new();
    recording.start_ns = monotonic_ns();
    recording.start_wall_ns = wall_ns();
    if output.exit.is_none() && (traces || !a.cmd.is_empty()) {
        if let Some(p) = &perf {
            p.enable().map_err(|e| e.to_string())?;
        }
        if !a.quiet {
            crate::run::banner(a.format);
        }
        if !a.cmd.is_empty() {
            child = Some(Workload::start(&a.cmd, reads_user_memory(prog))?);
        }
        let mut ticks: Vec<(Duration, Instant, &Function)> = prog
            .user
            .iter()
            .filter_map(|b| match b.when {
                When::Tick { period_ns } => {
                    let p = Duration::from_nanos(period_ns.max(1_000_000));
                    Some((p, Instant::now() + p, &b.func))
                }
                _ => None,
            })
            .collect();
        loop {
            if signals::stop_requested() || output.exit.is_some() {
                break;
            }
            if let Some(c) = &mut child {
                match c.check() {
                    State::Running => {}
                    State::Exiting => {
                        // Held at its exit: run the probes over its last events while its
                        // memory can still be read, then let it go.
                        if let Some(p) = &mut perf {
                            let mut step = Step {
                                exec: &mut exec,
                                output: &mut output,
                                memory: &mut memory,
                                tasks: &mut tasks,
                                recording: a
                                    .record
                                    .is_some()
                                    .then_some((&mut recording, &mut task_index)),
                            };
                            while p
                                .poll(Duration::ZERO, &mut |r| step.record(r))
                                .map_err(|e| e.to_string())?
                                > 0
                            {}
                        }
                        c.release();
                        continue;
                    }
                    State::Gone => break,
                }
            }
            let now = Instant::now();
            let mut wait = Duration::from_millis(100);
            if let Some(t) = ticks.iter().map(|t| t.1).min() {
                wait = wait.min(t.saturating_duration_since(now));
            }
            match &mut perf {
                Some(p) => {
                    let mut step = Step {
                        exec: &mut exec,
                        output: &mut output,
                        memory: &mut memory,
                        tasks: &mut tasks,
                        recording: a
                            .record
                            .is_some()
                            .then_some((&mut recording, &mut task_index)),
                    };
                    p.poll(wait, &mut |r| step.record(r))
                        .map_err(|e| e.to_string())?;
                }
                None => std::thread::sleep(wait),
            }
            let _ = output.out.flush();
            for t in ticks.iter_mut() {
                if Instant::now() >= t.1 {
                    t.1 += t.0;
                    exec.run_block(t.2, &mut output, monotonic_ns(), wall_ns(), &mut memory)
                        .inspect_err(|_| failed = true)
                        .map_err(|m| eprintln!("ktap: {m}"))
                        .ok();
                    let _ = output.out.flush();
                }
            }
            if failed {
                break;
            }
            if let Some(e) = output.error.take() {
                eprintln!("ktap: {e}");
                failed = true;
                break;
            }
        }
    }
    // Stop the events, then run the probes over what is still buffered.
    if let Some(p) = &mut perf {
        p.disable();
        recording.end_ns = monotonic_ns();
        loop {
            let mut step = Step {
                exec: &mut exec,
                output: &mut output,
                memory: &mut memory,
                tasks: &mut tasks,
                recording: a
                    .record
                    .is_some()
                    .then_some((&mut recording, &mut task_index)),
            };
            match p.poll(Duration::ZERO, &mut |r| step.record(r)) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if p.lost() > 0 {
            eprintln!(
                "ktap: {} events were lost (the kernel's ring buffer was full)",
                p.lost()
            );
        }
    } else {
        recording.end_ns = monotonic_ns();
    }
    if let Some(c) = child {
        c.end();
    }
    for b in prog.user.iter().filter(|b| b.when == When::End) {
        if let Err(m) = exec.run_block(&b.func, &mut output, monotonic_ns(), wall_ns(), &mut memory)
        {
            eprintln!("ktap: {m}");
            failed = true;
        }
    }
    if let Some(e) = output.error.take() {
        eprintln!("ktap: {e}");
        failed = true;
    }
    let _ = output.out.flush();
    for line in exec.fault_summary() {
        eprintln!("ktap: {line}");
    }
    if let Some(path) = &a.record {
        std::fs::write(path, record::encode(&recording))
            .map_err(|e| format!("cannot write the recording {}: {e}", path.display()))?;
        if a.verbose {
            eprintln!(
                "ktap: recorded {} events to {}",
                recording.events.len(),
                path.display()
            );
        }
    }
    Ok(if failed {
        1
    } else {
        output.exit.map_or(0, |c| c as i32)
    })
}

/// Everything one perf record touches.
struct Step<'s, 'o, 'p> {
    exec: &'s mut Executor<'p>,
    output: &'s mut Output<'o>,
    memory: &'s mut LiveMemory,
    tasks: &'s mut Tasks,
    /// The recording and the index of each task in it, when recording.
    recording: Option<(&'s mut Recording, &'s mut HashMap<RecTask, u32>)>,
}

impl Step<'_, '_, '_> {
    fn record(&mut self, r: Record) {
        match r {
            Record::Comm { pid, tid, comm, .. } => {
                let mut task = self.tasks.get(pid, tid);
                task.comm = [0; 16];
                let n = comm.len().min(15);
                task.comm[..n].copy_from_slice(&comm[..n]);
                self.tasks.0.insert(tid, task);
            }
            Record::Fork {
                pid,
                ppid,
                tid,
                ptid,
                ..
            } => {
                let parent = self.tasks.get(ppid, ptid);
                self.tasks.0.insert(tid, Task { pid, tid, ..parent });
            }
            Record::Exit { tid, .. } => {
                self.tasks.0.remove(&tid);
            }
            Record::Sample(s) => {
                if self.output.exit.is_some() {
                    // exit() was called: like detached probes, later events are not run.
                    return;
                }
                let task = self.tasks.get(s.pid, s.tid);
                let ev = EventData {
                    source: s.source,
                    cpu: s.cpu,
                    task,
                    time_ns: s.time_ns,
                    ip: s.ip,
                    raw: s.raw,
                };
                self.memory.reads.clear();
                self.memory.stack = s.stack.map(|(sp, b)| (sp, b.to_vec()));
                self.exec.event(&ev, self.output, wall_ns(), self.memory);
                if let Some((rec, index)) = self.recording.as_mut() {
                    let t = RecTask {
                        pid: task.pid,
                        tid: task.tid,
                        comm: task.comm,
                        uid: task.uid,
                        gid: task.gid,
                    };
                    let task = *index.entry(t).or_insert_with(|| {
                        rec.tasks.push(t);
                        rec.tasks.len() as u32 - 1
                    });
                    rec.events.push(RecEvent {
                        source: s.source as u32,
                        cpu: s.cpu,
                        task,
                        time_ns: s.time_ns,
                        ip: s.ip,
                        raw: s.raw.to_vec(),
                        reads: std::mem::take(&mut self.memory.reads),
                    });
                }
            }
        }
    }
}

/// True, after saying so, when this kernel has no `bpf()` or refuses it to ktap, so the probes
/// must run in the VM.
pub fn bpf_refused() -> bool {
    use crate::loader::LoadError;
    match perf_exec::bpf_usable() {
        Err(e @ (LoadError::NoBpf { .. } | LoadError::Permission { .. })) => {
            eprintln!(
                "ktap: {e}; running the probes in ktap's userspace VM instead (as --vm does)"
            );
            true
        }
        _ => false,
    }
}

/// What the workload is doing.
enum State {
    Running,
    /// Stopped at its exit, memory intact, until [`Workload::release`].
    Exiting,
    Gone,
}

/// The command after `--`. For scripts that read user memory it is traced
/// (`PTRACE_O_TRACEEXIT`) only so that it stops at its exit until its last events are
/// handled: probes read a task's memory (`user_string`) after the event, and a short-lived
/// workload would otherwise be gone by then.
struct Workload {
    pid: libc::pid_t,
    gone: bool,
}

impl Workload {
    /// Starts `cmd`, held at its exit when `hold` (only then: a traced workload could not
    /// itself trace, as gdb or strace do).
    fn start(cmd: &[String], hold: bool) -> Result<Workload, String> {
        // Started as kernel mode starts it (the same system calls before exec), then traced
        // at once: the workload's dynamic loader alone takes far longer than the attach.
        let child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", cmd[0]))?;
        let pid = child.id() as libc::pid_t;
        // From here on the child is waited for by pid (std's wait would misread ptrace stops).
        drop(child);
        if !hold {
            return Ok(Workload { pid, gone: false });
        }
        // SAFETY: attaching to our own child. If it fails (the child already exited), the
        // workload is only untraced: nothing holds it at its exit.
        unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                pid,
                std::ptr::null_mut::<libc::c_void>(),
                libc::PTRACE_O_TRACEEXIT as usize as *mut libc::c_void,
            )
        };
        Ok(Workload { pid, gone: false })
    }

    /// Reaps any change of state without waiting.
    fn check(&mut self) -> State {
        if self.gone {
            return State::Gone;
        }
        let mut status = 0;
        // SAFETY: `status` is a valid out-parameter; the pid is our child.
        let rc = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG | libc::__WALL) };
        if rc == 0 {
            return State::Running;
        }
        if rc < 0 || libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            self.gone = true;
            return State::Gone;
        }
        if libc::WIFSTOPPED(status) {
            let sig = libc::WSTOPSIG(status);
            let event = status >> 16;
            if sig == libc::SIGTRAP && event == libc::PTRACE_EVENT_EXIT {
                return State::Exiting;
            }
            // A group stop resumes at once; any other signal is delivered as it would be.
            let deliver = if event == 0 && sig != libc::SIGSTOP {
                sig
            } else {
                0
            };
            // SAFETY: restarting our own stopped tracee.
            unsafe {
                libc::ptrace(
                    libc::PTRACE_CONT,
                    self.pid,
                    std::ptr::null_mut::<libc::c_void>(),
                    deliver as usize as *mut libc::c_void,
                )
            };
        }
        State::Running
    }

    /// Lets a workload held at its exit finish exiting.
    fn release(&mut self) {
        // SAFETY: restarting our own stopped tracee.
        unsafe {
            libc::ptrace(
                libc::PTRACE_CONT,
                self.pid,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
    }

    /// Ends a workload that outlived tracing (Ctrl-C, `exit()`), and reaps it.
    fn end(mut self) {
        if !self.gone {
            // SAFETY: our own child; SIGKILL ends it even while it is stopped.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            while !matches!(self.check(), State::Gone) {
                self.release();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
