//! The `ktap-verify` applet, and the check every compile goes through before anything is
//! loaded: ktap's own verifier over a program, with a failure located in the script (or the
//! assembly file) and said in the kernel's words.
//!
//! `ktap-verify FILE` takes a script (compiled against this machine's tracefs), a compiled
//! object (`ktapc`'s output, checked with the limits of the kernel it was compiled for), or an
//! assembly file in the kernel's verifier-log syntax (`.s`, see `ktap_verifier::asmfile`).

use crate::kernel;
use crate::loader::TracefsKernel;
use crate::opts::{self, Opt, Order};
use ktap_bpf::asm::disasm_one;
use ktap_bpf::{Program, Source, Span, Target};
use ktap_lang::diag::Diagnostic;
use ktap_lang::{compile, diag, Options};
use ktap_loader::verdict::{kernel_verdict, Verdict, VerdictMaps};
use ktap_object::Object;
use ktap_verifier::{asmfile, verify, verify_program_with, Limits, ProgType, Stats, VerifyError};
use std::time::{Duration, Instant};

/// The options, in the order help lists them.
const OPTIONS: &[Opt] = &[
    Opt {
        short: None,
        long: Some("type"),
        value: Some("TYPE"),
        help: "program type of an assembly file without a `; type:` line: tracepoint, \
               perf_event or socket_filter",
    },
    Opt {
        short: None,
        long: Some("target"),
        value: Some("ARCH"),
        help: "architecture whose perf-event context and alignment rules an assembly file \
               follows (default: this machine's)",
    },
    Opt {
        short: None,
        long: Some("kernel"),
        value: Some("X.Y"),
        help: "verify with the limits of this kernel version (e.g. 5.2) instead of the running \
               kernel's, or, for an object, the kernel it was compiled against",
    },
    Opt {
        short: None,
        long: Some("compare"),
        value: None,
        help: "also load the program into the running kernel's verifier (nothing is attached) \
               and report whether the two agree",
    },
    Opt {
        short: Some('v'),
        long: None,
        value: None,
        help: "show the registers at a rejected instruction",
    },
];

const ABOUT: &str = "Check a script, compiled object or assembly file with ktap's eBPF verifier";
const USAGE: &str = "ktap-verify [options] FILE
FILE is a script (`.kp`), an object from `ktapc`, or an assembly file (`.s`)";

struct Cli {
    prog_type: Option<String>,
    target: Option<String>,
    kernel: Option<String>,
    compare: bool,
    verbose: bool,
    file: String,
}

/// Entry point; `args[0]` is the program name.
pub fn main(args: Vec<String>) -> i32 {
    let p = match opts::parse(args.get(1..).unwrap_or(&[]), OPTIONS, Order::Anywhere) {
        Ok(Some(p)) => p,
        Ok(None) => {
            print!("{}", opts::help(ABOUT, USAGE, OPTIONS));
            return 0;
        }
        Err(e) => {
            eprintln!("ktap-verify: {e}; try `ktap-verify -h`");
            return 2;
        }
    };
    let [file] = &p.rest[..] else {
        eprintln!("ktap-verify: one FILE expected; try `ktap-verify -h`");
        return 2;
    };
    let cli = Cli {
        prog_type: p.value(0).map(String::from),
        target: p.value(1).map(String::from),
        kernel: p.value(2).map(String::from),
        compare: p.flag(3),
        verbose: p.flag(4),
        file: file.clone(),
    };
    match run(&cli) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(m) => {
            eprintln!("ktap-verify: {m}");
            1
        }
    }
}

/// The limits of the running kernel (the one programs are about to be loaded into).
pub fn running_limits() -> Limits {
    Limits::for_release(&kernel::release()).unwrap_or_default()
}

/// Verifies every probe of a compiled program; the error is one located message, ready to
/// print, naming the script line the failing instruction came from.
pub fn check(prog: &Program, limits: &Limits) -> Result<Vec<Stats>, String> {
    verify_program_with(prog, limits).map_err(|(i, e)| located(prog, i, &e, true))
}

/// What `ktap -v` says about verification: the work done, counting once the probes that
/// share their code (a glob's).
pub fn summary(stats: &[Stats], took: Duration) -> String {
    let done: Vec<&Stats> = stats.iter().filter(|s| s.same_as.is_none()).collect();
    let processed: u64 = done.iter().map(|s| s.processed).sum();
    let states: usize = done.iter().map(|s| s.states).sum();
    let stack = done.iter().map(|s| s.stack_depth).max().unwrap_or(0);
    let shared = if done.len() < stats.len() {
        format!(" ({} verified, the others share their code)", done.len())
    } else {
        String::new()
    };
    let n = stats.len();
    format!(
        "verified in {took:?}: {n} probe{}{shared}, {processed} instructions processed, {states} state{} kept, stack at most {stack} bytes",
        if n == 1 { "" } else { "s" },
        if states == 1 { "" } else { "s" },
    )
}

fn located(prog: &Program, probe: usize, e: &VerifyError, regs: bool) -> String {
    let Some(p) = prog.probes.get(probe) else {
        return format!("the verifier rejects the program: {e}");
    };
    let span = p.func.spans.get(e.insn).copied().unwrap_or(p.span);
    let d = Diagnostic::error(
        span,
        format!("the verifier rejects probe `{}`: {}", p.name, e.message),
    );
    let mut out = d.render(&prog.source);
    out.push_str(&format!(
        "  = insn {}: {} (the {} pass)\n",
        e.insn,
        disasm_one(&p.func.insns, e.insn),
        e.pass.name()
    ));
    if regs && !e.regs.is_empty() {
        out.push_str(&format!("  = registers: {}\n", e.regs));
    }
    out
}

fn run(cli: &Cli) -> Result<bool, String> {
    let bytes = std::fs::read(&cli.file).map_err(|e| format!("cannot read {}: {}", cli.file, e))?;
    let forced = match &cli.kernel {
        Some(v) => Some(
            Limits::for_release(v)
                .ok_or_else(|| format!("`--kernel {v}`: expected a version like 5.2 or 6.1"))?,
        ),
        None => None,
    };
    if Object::is_object(&bytes) {
        let target = Object::target(&bytes).map_err(|e| format!("{}: {}", cli.file, e))?;
        let obj = Object::decode(&bytes, target).map_err(|e| format!("{}: {}", cli.file, e))?;
        let limits = forced
            .or_else(|| Limits::for_release(&obj.kernel.release))
            .unwrap_or_default();
        return program(cli, &obj.program, &limits);
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{} is neither a ktap object nor text", cli.file))?;
    let limits = forced.unwrap_or_else(running_limits);
    if cli.file.ends_with(".s") {
        return assembly(cli, &text, &limits);
    }
    let source = Source {
        name: cli.file.clone(),
        text,
    };
    let live = TracefsKernel::new().map_err(|e| e.to_string())?;
    let opts = Options::new(Target::host(), vec![cli.file.clone()]);
    match compile(&source, &live, &opts) {
        Ok(p) => program(cli, &p, &limits),
        Err(d) => {
            eprint!("{}", diag::render_all(&d, &source));
            Ok(false)
        }
    }
}

/// Verifies a compiled program's probes: each distinct body once, named by its probes.
fn program(cli: &Cli, prog: &Program, limits: &Limits) -> Result<bool, String> {
    let t = Instant::now();
    let result = verify_program_with(prog, limits);
    let took = t.elapsed();
    let stats = match result {
        Ok(s) => s,
        Err((i, e)) => {
            eprint!("{}", located(prog, i, &e, cli.verbose));
            if cli.compare {
                let p = &prog.probes[i];
                compare(
                    ProgType::for_event(&p.event, &prog.target),
                    &p.func.insns,
                    prog,
                    false,
                )?;
            }
            return Ok(false);
        }
    };
    // Probes verified as one (a glob's probes differ only in the event's name) share a line.
    let mut alike = vec![0usize; stats.len()];
    for first in stats.iter().filter_map(|s| s.same_as) {
        alike[first] += 1;
    }
    for (i, p) in prog.probes.iter().enumerate() {
        if stats[i].same_as.is_some() {
            continue;
        }
        let same = alike[i];
        let also = if same > 0 {
            format!(" (and {same} more alike)")
        } else {
            String::new()
        };
        println!("accepted: probe {}{also}: {}", p.name, stats[i]);
        if cli.compare {
            let t = ProgType::for_event(&p.event, &prog.target);
            if !compare(t, &p.func.insns, prog, true)? {
                return Ok(false);
            }
        }
    }
    if prog.probes.is_empty() {
        println!("accepted: the script has no probes (everything runs in userspace)");
    } else {
        println!("{}", summary(&stats, took));
    }
    Ok(true)
}

fn assembly(cli: &Cli, text: &str, limits: &Limits) -> Result<bool, String> {
    let target = match &cli.target {
        Some(n) => Target::by_name(n)
            .ok_or_else(|| format!("unknown target `{n}` (known: {})", Target::NAMES.join(", ")))?,
        None => Target::host(),
    };
    let source = Source {
        name: cli.file.clone(),
        text: text.to_string(),
    };
    let at_line = |line: usize, col: usize| {
        let start: usize = text
            .split_inclusive('\n')
            .take(line - 1)
            .map(str::len)
            .sum();
        let line_text = text[start..].lines().next().unwrap_or("");
        let lo = start
            + line_text
                .char_indices()
                .nth(col.saturating_sub(1))
                .map_or(0, |(b, _)| b);
        let hi = (start + line_text.trim_end().len()).max(lo + 1);
        Span::new(lo as u32, hi as u32)
    };
    let asm = match asmfile::parse(text, &target) {
        Ok(a) => a,
        Err(e) => {
            eprint!(
                "{}",
                Diagnostic::error(at_line(e.line, e.col), e.message).render(&source)
            );
            return Ok(false);
        }
    };
    let named = match &cli.prog_type {
        Some(n) => Some(ProgType::by_name(n, &target).ok_or_else(|| {
            format!(
                "unknown program type `{n}` (known: {})",
                ProgType::NAMES.join(", ")
            )
        })?),
        None => None,
    };
    let prog_type = asm.prog_type.or(named).unwrap_or(ProgType::Tracepoint);
    let limits = limits.for_target(&target);
    match verify(prog_type, &asm.insns, &asm.maps, &limits) {
        Ok(stats) => {
            println!("accepted: {} program: {stats}", prog_type.name());
            if cli.compare {
                return compare_asm(prog_type, &asm, true);
            }
            Ok(true)
        }
        Err(e) => {
            let line = asm.lines.get(e.insn).copied().unwrap_or(1);
            let mut out = Diagnostic::error(at_line(line, 1), &e.message).render(&source);
            out.push_str(&format!(
                "  = insn {}: {} (the {} pass)\n",
                e.insn,
                disasm_one(&asm.insns, e.insn),
                e.pass.name()
            ));
            if cli.verbose && !e.regs.is_empty() {
                out.push_str(&format!("  = registers: {}\n", e.regs));
            }
            eprint!("{out}");
            if cli.compare {
                compare_asm(prog_type, &asm, false)?;
            }
            Ok(false)
        }
    }
}

fn compare_asm(t: ProgType, asm: &asmfile::AsmProgram, ours: bool) -> Result<bool, String> {
    let maps = VerdictMaps::create(&asm.maps).map_err(|e| e.to_string())?;
    report(kernel_verdict(t.kernel_type(), &asm.insns, &maps), ours)
}

fn compare(
    t: ProgType,
    insns: &[ktap_bpf::insn::Insn],
    prog: &Program,
    ours: bool,
) -> Result<bool, String> {
    let maps = VerdictMaps::create(&prog.maps).map_err(|e| e.to_string())?;
    report(kernel_verdict(t.kernel_type(), insns, &maps), ours)
}

/// Prints the running kernel's verdict next to ktap's; false when ktap accepted and the
/// kernel did not, the one disagreement that must never happen.
fn report(v: Result<Verdict, crate::loader::LoadError>, ours: bool) -> Result<bool, String> {
    match v.map_err(|e| e.to_string())? {
        Verdict::Accepted if ours => println!("the kernel agrees: accepted"),
        Verdict::Accepted => eprintln!("the kernel accepts it: ktap is stricter here"),
        r @ Verdict::Rejected { .. } if ours => {
            eprintln!("the kernel REJECTS it: {}", r.reason());
            return Ok(false);
        }
        r @ Verdict::Rejected { .. } => eprintln!("the kernel agrees: {}", r.reason()),
    }
    Ok(true)
}
