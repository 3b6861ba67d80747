//! The `ktap-vm` applet: `ktap-vm FILE.s` assembles a program written in the kernel's
//! verifier-log syntax, runs it in the VM with an empty context and prints `r0` (unsigned
//! decimal) on the last line; `ktap-vm --replay FILE script.kp [args]` runs a script over the
//! events of a `ktap --record FILE` run, offline and on any architecture.

use crate::host::Output;
use crate::record::{self, RecRead, RecSource, Recording, RecordingKernel};
use crate::vmexec::{sources, EventData, Executor, SourceKey, Task, UserMemory};
use ktap_bpf::asm::{assemble, disasm_one};
use ktap_bpf::{Endian, Function, Source, Span, Target, When};
use ktap_lang::{compile, diag, Options};
use ktap_vm::{run, MemHost, RunEnv};
use std::io::{BufWriter, Write};

const USAGE: &str = "\
usage: ktap-vm FILE.s                          run a program (verifier-log syntax), print r0
       ktap-vm --replay FILE [-q] [-o OUT] SCRIPT [ARGS]
                                               run a script over a `ktap --record FILE` recording";

/// Entry point; `args[0]` is the applet name.
pub fn main(args: Vec<String>) -> i32 {
    let rest = args.get(1..).unwrap_or(&[]);
    match rest.first().map(String::as_str) {
        None => {
            eprintln!("{USAGE}");
            2
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            0
        }
        Some("--replay") => replay_main(&rest[1..]),
        Some(file) if rest.len() == 1 => run_file(file),
        Some(_) => {
            eprintln!("ktap-vm: one program file expected\n{USAGE}");
            2
        }
    }
}

/// `ktap-vm FILE.s`.
fn run_file(path: &str) -> i32 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ktap-vm: cannot read {path}: {e}");
            return 1;
        }
    };
    let insns = match assemble(&text) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("ktap-vm: {path}:{}:{}: {}", e.line, e.col, e.message);
            return 1;
        }
    };
    // The source line of each instruction, for a fault: lines assemble one at a time.
    let mut lines = Vec::with_capacity(insns.len());
    for (i, line) in text.lines().enumerate() {
        let n = assemble(line).map_or(0, |v| v.len());
        lines.extend(std::iter::repeat_n(i + 1, n));
    }
    let func = Function {
        spans: vec![Span::default(); insns.len()],
        insns,
    };
    let env = RunEnv::new(&[], Endian::host());
    let mut host = MemHost::new(&[], Endian::host());
    match run(&func, &mut [], &env, &mut host) {
        Ok(r0) => {
            println!("{r0}");
            0
        }
        Err(f) => {
            let line = lines.get(f.pc).copied().unwrap_or(0);
            eprintln!(
                "ktap-vm: {path}:{line}: runtime error at insn {} ({}): {}",
                f.pc,
                disasm_one(&func.insns, f.pc),
                f.message
            );
            1
        }
    }
}

/// The user memory the recording run's probes read, for the event being replayed.
struct ReplayMemory<'r> {
    reads: &'r [RecRead],
}

impl UserMemory for ReplayMemory<'_> {
    fn read(&mut self, _pid: u32, addr: u64, buf: &mut [u8]) -> bool {
        let end = addr.saturating_add(buf.len() as u64);
        let found = self.reads.iter().find(|r| {
            !r.string && r.addr <= addr && end <= r.addr.saturating_add(r.bytes.len() as u64)
        });
        match found {
            Some(r) => {
                let at = (addr - r.addr) as usize;
                buf.copy_from_slice(&r.bytes[at..at + buf.len()]);
                true
            }
            None => false,
        }
    }
    fn read_str(&mut self, _pid: u32, addr: u64, buf: &mut [u8]) -> Option<usize> {
        let r = self.reads.iter().find(|r| r.string && r.addr == addr)?;
        let max = buf.len().checked_sub(1)?;
        let text = r.bytes.strip_suffix(&[0]).unwrap_or(&r.bytes);
        let n = text.len().min(max);
        buf[..n].copy_from_slice(&text[..n]);
        buf[n] = 0;
        Some(n + 1)
    }
}

/// `ktap-vm --replay FILE [-q] [-o OUT] SCRIPT [ARGS]`.
fn replay_main(args: &[String]) -> i32 {
    let Some((file, mut rest)) = args.split_first() else {
        eprintln!("ktap-vm: --replay needs a recording and a script\n{USAGE}");
        return 2;
    };
    let mut out_path = None;
    loop {
        match rest.first().map(String::as_str) {
            Some("-q") => rest = &rest[1..],
            Some("-o") if rest.len() >= 2 => {
                out_path = Some(rest[1].clone());
                rest = &rest[2..];
            }
            _ => break,
        }
    }
    let Some((script, script_args)) = rest.split_first() else {
        eprintln!("ktap-vm: --replay needs a script after the recording\n{USAGE}");
        return 2;
    };
    let rec = match std::fs::read(file) {
        Ok(bytes) => match record::decode(&bytes) {
            Ok(r) => r,
            Err(m) => {
                eprintln!("ktap-vm: {file}: {m}");
                return 1;
            }
        },
        Err(e) => {
            eprintln!("ktap-vm: cannot read {file}: {e}");
            return 1;
        }
    };
    let text = match std::fs::read_to_string(script) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ktap-vm: cannot read {script}: {e}");
            return 1;
        }
    };
    let out: Box<dyn Write> = match &out_path {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => {
                eprintln!("ktap-vm: cannot write {p}: {e}");
                return 1;
            }
        },
        None => Box::new(std::io::stdout()),
    };
    let mut all_args = vec![script.clone()];
    all_args.extend(script_args.iter().cloned());
    match replay(&rec, script, text, all_args, out) {
        Ok(code) => code,
        Err(m) => {
            eprint!("{m}");
            1
        }
    }
}

/// Compiles `text` against the recording and runs it over the recorded events; `Err` is the
/// text to print (diagnostics or one `ktap-vm:` line).
pub fn replay(
    rec: &Recording,
    name: &str,
    text: String,
    script_args: Vec<String>,
    out: Box<dyn Write>,
) -> Result<i32, String> {
    // `decode` checked the name.
    let target = Target::by_name(&rec.target).unwrap_or(Target::host());
    let source = Source {
        name: name.to_string(),
        text,
    };
    let opts = Options::new(target, script_args);
    let prog = compile(&source, &RecordingKernel(rec), &opts)
        .map_err(|d| diag::render_all(&d, &source))?;
    // What a live run would load: ktap's verifier sees it first here too.
    crate::verify::check(&prog, &ktap_verifier::Limits::default())?;
    let keys = sources(&prog);
    // The executor's source for each recorded one (a profile probe takes any profile samples).
    let map: Vec<Option<usize>> = rec
        .sources
        .iter()
        .map(|s| {
            keys.iter().position(|k| match (s, k) {
                (
                    RecSource::Tracepoint { category, name, .. },
                    SourceKey::Tracepoint {
                        category: c,
                        name: n,
                    },
                ) => category == c && name == n,
                (RecSource::Profile { .. }, SourceKey::Profile { .. }) => true,
                _ => false,
            })
        })
        .collect();
    let mut output = Output::new(&prog, out);
    output.printer.set_time_origin(rec.start_ns);
    let mut exec = Executor::new(&prog, &keys);
    let wall = |t: u64| rec.start_wall_ns.wrapping_add(t.wrapping_sub(rec.start_ns));
    let mut failed = false;
    let mut no_reads = ReplayMemory { reads: &[] };
    for b in prog.user.iter().filter(|b| b.when == When::Begin) {
        exec.run_block(
            &b.func,
            &mut output,
            rec.start_ns,
            wall(rec.start_ns),
            &mut no_reads,
        )
        .map_err(|m| format!("ktap-vm: {m}\n"))?;
    }
    // tick blocks at the times they would have run: every period from the start.
    let mut ticks: Vec<(u64, u64, &Function)> = prog
        .user
        .iter()
        .filter_map(|b| match b.when {
            When::Tick { period_ns } => {
                let p = period_ns.max(1_000_000);
                Some((p, rec.start_ns.saturating_add(p), &b.func))
            }
            _ => None,
        })
        .collect();
    let mut run_ticks = |until: u64, exec: &mut Executor, output: &mut Output| -> bool {
        loop {
            let Some(t) = ticks
                .iter_mut()
                .filter(|t| t.1 <= until)
                .min_by_key(|t| t.1)
            else {
                return true;
            };
            let at = t.1;
            t.1 = t.1.saturating_add(t.0);
            if let Err(m) =
                exec.run_block(t.2, output, at, wall(at), &mut ReplayMemory { reads: &[] })
            {
                eprintln!("ktap-vm: {m}");
                return false;
            }
            if output.exit.is_some() {
                return true;
            }
        }
    };
    for ev in &rec.events {
        if output.exit.is_some() || output.error.is_some() {
            break;
        }
        if !run_ticks(ev.time_ns, &mut exec, &mut output) {
            failed = true;
            break;
        }
        let Some(Some(source)) = map.get(ev.source as usize).copied() else {
            continue;
        };
        let t = rec.tasks[ev.task as usize];
        let data = EventData {
            source,
            cpu: ev.cpu,
            task: Task {
                pid: t.pid,
                tid: t.tid,
                comm: t.comm,
                uid: t.uid,
                gid: t.gid,
            },
            time_ns: ev.time_ns,
            ip: ev.ip,
            raw: &ev.raw,
        };
        exec.event(
            &data,
            &mut output,
            wall(ev.time_ns),
            &mut ReplayMemory { reads: &ev.reads },
        );
    }
    if !failed && output.exit.is_none() && output.error.is_none() {
        failed = !run_ticks(rec.end_ns, &mut exec, &mut output);
    }
    for b in prog.user.iter().filter(|b| b.when == When::End) {
        if let Err(m) = exec.run_block(
            &b.func,
            &mut output,
            rec.end_ns,
            wall(rec.end_ns),
            &mut no_reads,
        ) {
            eprintln!("ktap-vm: {m}");
            failed = true;
        }
    }
    if let Some(e) = output.error.take() {
        eprintln!("ktap-vm: {e}");
        failed = true;
    }
    let _ = output.out.flush();
    for line in exec.fault_summary() {
        eprintln!("ktap-vm: {line}");
    }
    Ok(if failed {
        1
    } else {
        output.exit.map_or(0, |c| c as i32)
    })
}
