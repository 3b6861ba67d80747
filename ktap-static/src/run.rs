//! Running a script: compile, load and attach, run top-level code, start the workload, print
//! output until Ctrl-C / SIGTERM / `exit()` / the workload's end, detach, run `trace_end`.

use crate::host::{Output, VmHost};
use crate::loader::{self as ktap_loader, LoadOptions, Session, TracefsKernel};
use crate::signals;
use ktap_bpf::{Event, Function, Program, Source, Target, When};
use ktap_lang::{compile, diag, Options};
use std::io::{BufWriter, Write};
use std::os::fd::{AsFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// What `ktap` was asked to do.
pub struct RunArgs {
    /// The script's name for messages (`-e` for an inline script).
    pub name: String,
    pub text: String,
    /// `arg[0]` (the script name) and the script's arguments.
    pub script_args: Vec<String>,
    /// The workload after `--`, started once every probe is attached.
    pub cmd: Vec<String>,
    pub quiet: bool,
    pub output: Option<PathBuf>,
    pub pid: Option<u32>,
    /// `-C CPU`: trace only events on this CPU.
    pub cpu: Option<u32>,
    /// `-T`: stamp each line probes print with the event's time.
    pub timestamps: bool,
    pub verbose: bool,
    pub bytecode: bool,
    /// Run the probes in the userspace VM over perf events (`--vm`).
    pub vm: bool,
    /// Record the raw events to this file (`--record`; implies the VM).
    pub record: Option<PathBuf>,
    /// A program `ktapc` compiled ahead of time (from an object file): run without compiling.
    pub compiled: Option<Program>,
    /// How output records are printed (`-f`).
    pub format: ktap_fmt::Mode,
}

/// Runs a script; returns the process exit code.
pub fn run(mut a: RunArgs) -> i32 {
    let t0 = Instant::now();
    let prog = match a.compiled.take() {
        Some(p) => p,
        None => match compile_script(&a) {
            Some(p) => p,
            None => return 1,
        },
    };
    let compiled = t0.elapsed();
    if a.bytecode {
        if a.verbose {
            eprintln!("ktap: {}", compile_summary(&prog, compiled));
        }
        // A closed pipe (`ktap -b ... | head`) is not an error worth a message.
        let _ = std::io::stdout().write_all(ktap_lang::listing(&prog).as_bytes());
        return 0;
    }
    // ktap's verifier sees every program before the kernel (or the VM) does: a program it
    // rejects is one located message, never a kernel log.
    let t1 = Instant::now();
    match crate::verify::check(&prog, &crate::verify::running_limits()) {
        Ok(stats) if a.verbose => {
            eprintln!("ktap: {}", crate::verify::summary(&stats, t1.elapsed()))
        }
        Ok(_) => {}
        Err(m) => {
            eprint!("{m}");
            return 1;
        }
    }
    let out: Box<dyn Write> = match &a.output {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => {
                eprintln!("ktap: cannot write {}: {}", path.display(), e);
                return 1;
            }
        },
        None => Box::new(std::io::stdout()),
    };
    if a.vm || a.record.is_some() || crate::vmlive::bpf_refused() {
        return crate::vmlive::run(&a, &prog, out);
    }
    signals::install();
    let mut session = match ktap_loader::load(&prog, &LoadOptions::default()) {
        Ok(s) => s,
        Err(e) => {
            match kprobe_problem(&prog, e.refused_probe()) {
                Some(d) => eprint!("{}", diag::render_all(&[d], &prog.source)),
                None => eprintln!("ktap: {}", e),
            }
            return 1;
        }
    };
    report_skipped(session.skipped());
    if a.verbose {
        eprintln!(
            "ktap: {}; attached in {:?}",
            compile_summary(&prog, compiled),
            session.startup()
        );
        let ids: Vec<String> = session
            .program_ids()
            .iter()
            .map(|i| i.to_string())
            .collect();
        eprintln!("ktap: program ids: {}", ids.join(" "));
    }
    let mut output = Output::new(&prog, out);
    output.printer.set_mode(a.format);
    // `-T` stamps count from here, when every probe is attached.
    output
        .printer
        .set_time_origin(crate::kernel::monotonic_ns());
    let code = trace(&a, &prog, &mut session, &mut output);
    let _ = output.out.flush();
    report_drops(&prog, &session);
    if session.lost() > 0 {
        eprintln!(
            "ktap: {} output records were lost (the kernel's buffer was full)",
            session.lost()
        );
    }
    session.detach();
    code
}

/// Compiles the script against the running kernel; `None` once the errors are printed.
/// What `-v` says of the compile: `compiled in T: N probes (M instructions), K maps`.
fn compile_summary(prog: &Program, compiled: std::time::Duration) -> String {
    let insns: usize = prog.probes.iter().map(|p| p.func.insns.len()).sum();
    format!(
        "compiled in {compiled:?}: {} probes ({insns} instructions), {} maps",
        prog.probes.len(),
        prog.maps.len()
    )
}

fn compile_script(a: &RunArgs) -> Option<Program> {
    let source = Source {
        name: a.name.clone(),
        text: a.text.clone(),
    };
    let kernel = match TracefsKernel::new() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("ktap: {}", e);
            return None;
        }
    };
    let mut opts = Options::new(Target::host(), a.script_args.clone());
    opts.limits.pid = a.pid;
    opts.limits.cpu = a.cpu;
    opts.limits.timestamps = a.timestamps;
    match compile(&source, &kernel, &opts) {
        Ok(p) => Some(p),
        Err(diags) => {
            eprint!("{}", diag::render_all(&diags, &source));
            None
        }
    }
}

/// The life of a loaded session; returns the exit code. The session's probes are detached
/// when this returns, whatever the path.
fn trace(a: &RunArgs, prog: &Program, session: &mut Session, output: &mut Output) -> i32 {
    let mut failed = false;
    for b in prog.user.iter().filter(|b| b.when == When::Begin) {
        if let Err(m) = run_block(prog, &b.func, session, output) {
            eprintln!("ktap: {}", m);
            return 1;
        }
    }
    if let Some(e) = output.error.take() {
        eprintln!("ktap: {}", e);
        return 1;
    }
    let mut child: Option<Child> = None;
    let mut pid_fd: Option<OwnedFd> = None;
    // A script whose every block runs in userspace has nothing to trace: like ktap, it ends
    // after its top-level code (and trace_end), unless it has a workload to wait for.
    let traces = !prog.probes.is_empty()
        || prog
            .user
            .iter()
            .any(|b| matches!(b.when, When::Tick { .. }));
    if output.exit.is_none() && (traces || !a.cmd.is_empty()) {
        if !a.quiet {
            banner(a.format);
        }
        if !a.cmd.is_empty() {
            let mut cmd = Command::new(&a.cmd[0]);
            cmd.args(&a.cmd[1..]);
            // A program that records stacks needs the workload's memory map, which a short
            // workload may take with it before the first look: it stops right after exec
            // (ptrace's exec stop) until ktap has read it.
            let hold = output.printer.symbolizer().wants_maps();
            if hold {
                // SAFETY: only ptrace(2), which is async-signal-safe, runs between fork and
                // exec.
                unsafe {
                    cmd.pre_exec(|| {
                        if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            match cmd.spawn() {
                Ok(c) => {
                    if hold {
                        release_at_exec(c.id(), output);
                    }
                    // The wait for output ends when the workload does, not at the next
                    // timeout; kernels without pidfds (before 5.3) keep the timeout.
                    if let Some(fd) = pidfd(c.id()) {
                        let _ = session.wake_on(fd.as_fd());
                        pid_fd = Some(fd);
                    }
                    child = Some(c)
                }
                Err(e) => {
                    eprintln!("ktap: cannot run `{}`: {}", a.cmd[0], e);
                    return 1;
                }
            }
        }
        failed = !event_loop(prog, session, output, &mut child);
    }
    session.stop_probes();
    drain(session, output);
    drop(pid_fd);
    if let Some(mut c) = child {
        // Tracing stopped before the workload ended (Ctrl-C, exit()): it is ours, end it.
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
    for b in prog.user.iter().filter(|b| b.when == When::End) {
        if let Err(m) = run_block(prog, &b.func, session, output) {
            eprintln!("ktap: {}", m);
            failed = true;
        }
    }
    if let Some(e) = output.error.take() {
        eprintln!("ktap: {}", e);
        failed = true;
    }
    if failed {
        1
    } else {
        output.exit.map_or(0, |c| c as i32)
    }
}

/// For a kprobe the kernel would not attach, what kallsyms and the kprobe blacklist say is wrong
/// with its function (no such function, with near names; not a function; blacklisted), at the
/// probe's place in the script. The compiler leaves plain names to this check, since reading
/// kallsyms is slow.
fn kprobe_problem(prog: &Program, probe: Option<&str>) -> Option<diag::Diagnostic> {
    let probe = probe?;
    let (p, symbol) = prog.probes.iter().find_map(|p| match &p.event {
        Event::Kprobe { symbol, .. } if p.name == probe => Some((p, symbol)),
        _ => None,
    })?;
    let kernel = TracefsKernel::new().ok()?;
    let msg = ktap_lang::types::kprobe_symbol_problem(&kernel, symbol)?;
    Some(diag::Diagnostic::error(p.span, msg))
}

/// Waits for child `pid`'s stop after exec (it asked to be traced), reads its memory map, and
/// lets it go.
fn release_at_exec(pid: u32, output: &Output) {
    let pid = pid as libc::pid_t;
    let mut status = 0;
    // SAFETY: `status` is writable; `pid` is our child, stopped or about to be.
    let stopped = unsafe { libc::waitpid(pid, &mut status, 0) } == pid && libc::WIFSTOPPED(status);
    if stopped {
        output.printer.symbolizer().remember(pid as u32);
    }
    // SAFETY: detaching our own tracee, with no signal to deliver (the exec stop's SIGTRAP is
    // ptrace's, not the program's).
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
}

/// A descriptor that becomes readable when process `pid` exits, if the kernel has pidfds.
fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the descriptor is new and owned here alone.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// "Tracing... Hit Ctrl-C to end.", on standard error with `-f json`, whose standard output
/// holds nothing but JSON lines.
pub fn banner(format: ktap_fmt::Mode) {
    let mut o: Box<dyn Write> = match format {
        ktap_fmt::Mode::Json => Box::new(std::io::stderr()),
        ktap_fmt::Mode::Text => Box::new(std::io::stdout()),
    };
    let _ = writeln!(o, "Tracing... Hit Ctrl-C to end.").and_then(|()| o.flush());
}

/// Prints output and runs `tick` blocks until something stops tracing; false after an error.
fn event_loop(
    prog: &Program,
    session: &mut Session,
    output: &mut Output,
    child: &mut Option<Child>,
) -> bool {
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
    let started = Instant::now();
    loop {
        if signals::stop_requested() || output.exit.is_some() {
            return true;
        }
        if let Some(c) = child {
            if !matches!(c.try_wait(), Ok(None)) {
                return true;
            }
            output.printer.symbolizer().remember(c.id());
        }
        let now = Instant::now();
        let next_tick = ticks.iter().map(|t| t.1).min();
        let mut wait = Duration::from_millis(100);
        if let Some(t) = next_tick {
            wait = wait.min(t.saturating_duration_since(now));
        }
        // A dynamically linked workload maps its libraries just after it starts: its memory
        // map is read every 10 ms for a while, so the last copy has them.
        if child.is_some()
            && output.printer.symbolizer().wants_maps()
            && started.elapsed() < Duration::from_millis(300)
        {
            wait = wait.min(Duration::from_millis(10));
        }
        let mut records = Vec::new();
        if let Err(e) = session.poll(wait, &mut |r| records.push(r.to_vec())) {
            eprintln!("ktap: {}", e);
            return false;
        }
        for r in &records {
            output.record(session, r);
        }
        let _ = output.out.flush();
        for t in ticks.iter_mut() {
            if Instant::now() >= t.1 {
                t.1 += t.0;
                if let Err(m) = run_block(prog, t.2, session, output) {
                    eprintln!("ktap: {}", m);
                    return false;
                }
                let _ = output.out.flush();
            }
        }
        if let Some(e) = output.error.take() {
            eprintln!("ktap: {}", e);
            return false;
        }
    }
}

/// Prints whatever the probes wrote before they were detached.
fn drain(session: &mut Session, output: &mut Output) {
    loop {
        let mut records = Vec::new();
        match session.poll(Duration::ZERO, &mut |r| records.push(r.to_vec())) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        for r in &records {
            output.record(session, r);
        }
    }
}

/// Runs a userspace block in the VM against the live maps.
fn run_block(
    prog: &Program,
    func: &Function,
    session: &Session,
    output: &mut Output,
) -> Result<(), String> {
    let env = ktap_vm::RunEnv::new(&prog.maps, prog.target.endian);
    let mut host = VmHost { session, output };
    let mut ctx = [0u8; 8];
    ktap_vm::run(func, &mut ctx, &env, &mut host)
        .map(|_| ())
        .map_err(|f| {
            let span = func.spans.get(f.pc).copied().unwrap_or_default();
            let (line, col) = prog.source.line_col(span.lo);
            format!(
                "{}:{}:{}: runtime error: {}",
                prog.source.name, line, col, f.message
            )
        })
}

/// Says which tables filled up and how many updates each dropped (LANGUAGE.md §7.4).
fn report_drops(prog: &Program, session: &Session) {
    let Some(drops) = prog.map_with_role(ktap_bpf::MapRole::Drops) else {
        return;
    };
    let tables = prog
        .maps
        .iter()
        .filter(|m| m.role == ktap_bpf::MapRole::Table);
    for (i, table) in tables.enumerate() {
        let Ok(Some(per_cpu)) = session.lookup(drops, &(i as u32).to_ne_bytes()) else {
            continue;
        };
        let n: u64 = per_cpu
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
            .sum();
        if n > 0 {
            let (line, col) = prog.source.line_col(table.span.lo);
            eprintln!(
                "ktap: {}:{}:{}: table `{}` was full ({} entries): {} updates were dropped",
                prog.source.name, line, col, table.name, table.max_entries, n
            );
        }
    }
}

/// Says which functions a pattern matched were left out because the kernel refused them:
/// the first few in full, then how many more.
fn report_skipped(skipped: &[impl std::fmt::Display]) {
    const SHOWN: usize = 5;
    for e in skipped.iter().take(SHOWN) {
        eprintln!("ktap: warning: skipped: {e}");
    }
    if skipped.len() > SHOWN {
        eprintln!(
            "ktap: warning: skipped {} more functions the kernel refused to probe",
            skipped.len() - SHOWN
        );
    }
}
