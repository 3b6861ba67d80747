//! The `ktapc` applet: compiles a script on one machine into an object that `ktap FILE` runs
//! on another (a board) without compiling, against the board's kernel description.

use crate::kernel;
use crate::loader::TracefsKernel;
use clap::Parser;
use ktap_bpf::kernel::Kernel;
use ktap_bpf::{Source, Target};
use ktap_lang::{compile, diag, Options};
use ktap_object::{describe_target, KernelDesc, Object, Recording};
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "ktapc",
    about = "Compile a ktap script into an object that `ktap FILE` runs without compiling",
    disable_version_flag = true
)]
struct Cli {
    /// The architecture to compile for (default: the kernel description's, else this machine's).
    #[arg(long, value_name = "ARCH")]
    target: Option<String>,
    /// Compile against this kernel description (from `ktap-selftest --dump` on the board)
    /// instead of this machine's tracefs.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// Write the object to FILE (default: the script's name with `.kpo`).
    #[arg(short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Compile SCRIPT given on the command line instead of a file.
    #[arg(short = 'e', value_name = "SCRIPT")]
    script: Option<String>,
    /// Trace only process PID.
    #[arg(short = 'p', value_name = "PID")]
    pid: Option<u32>,
    /// The script file, then its arguments (`arg[1]`, ...), fixed into the object. Options may
    /// come after the file (unlike `ktap`, nothing here is a workload); `--` ends them.
    #[arg(value_name = "FILE [ARGS]")]
    rest: Vec<String>,
}

/// Entry point; `args[0]` is the program name.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(m) => {
            if !m.is_empty() {
                eprintln!("ktapc: {m}");
            }
            1
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let named = match &cli.target {
        Some(n) => Some(Target::by_name(n).ok_or_else(|| {
            format!(
                "unknown target `{}` (known: {})",
                n,
                Target::NAMES.join(", ")
            )
        })?),
        None => None,
    };
    let desc = match &cli.kernel {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read {}: {}", path.display(), e))?;
            Some(KernelDesc::decode(&bytes).map_err(|e| format!("{}: {}", path.display(), e))?)
        }
        None => None,
    };
    let target = match (named, &desc) {
        (Some(t), Some(d)) if t != d.target => {
            return Err(format!(
                "{} describes a {} kernel, but --target is {}",
                cli.kernel.as_deref().unwrap_or(Path::new("")).display(),
                describe_target(d.target),
                describe_target(t)
            ))
        }
        (Some(t), _) => t,
        (None, Some(d)) => d.target,
        (None, None) => Target::host(),
    };
    let (name, text, script_args) = match (&cli.script, cli.rest.split_first()) {
        (Some(s), _) => ("-e".to_string(), s.clone(), cli.rest.clone()),
        (None, Some((file, rest))) => {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
            (file.clone(), text, rest.to_vec())
        }
        (None, None) => return Err("no script given (a FILE or -e SCRIPT); try `ktapc -h`".into()),
    };
    let output = match (&cli.output, &cli.script) {
        (Some(o), _) => o.clone(),
        (None, None) => Path::new(&name).with_extension("kpo"),
        (None, Some(_)) => return Err("-e needs -o FILE to name the object".into()),
    };

    let live;
    let (kernel, release): (&dyn Kernel, String) = match &desc {
        Some(d) => (d, d.release.clone()),
        None => {
            live = TracefsKernel::new().map_err(|e| e.to_string())?;
            (&live, kernel::release())
        }
    };
    let recording = Recording::new(kernel);
    let source = Source { name, text };
    let mut all_args = vec![source.name.clone()];
    all_args.extend(script_args);
    let mut opts = Options::new(target, all_args);
    opts.limits.pid = cli.pid;
    // Diagnostics name their own place and are printed as the compiler renders them; the
    // empty error tells `main` there is nothing left to say.
    let program = compile(&source, &recording, &opts).map_err(|d| {
        eprint!("{}", diag::render_all(&d, &source));
        String::new()
    })?;
    // No object the board's kernel would refuse: ktap's verifier, with that kernel's limits.
    let limits = ktap_verifier::Limits::for_release(&release).unwrap_or_default();
    crate::verify::check(&program, &limits).map_err(|m| {
        eprint!("{m}");
        String::new()
    })?;
    let assumptions = recording.assumptions(release);
    if desc.is_none() && target != Target::host() && !assumptions.formats.is_empty() {
        eprintln!(
            "ktapc: warning: tracepoint layouts are this machine's ({}), not the board's; \
             give the board's with --kernel FILE (from `ktap-selftest --dump FILE` there)",
            Target::host().name()
        );
    }
    let object = Object {
        program,
        kernel: assumptions,
    };
    std::fs::write(&output, object.encode())
        .map_err(|e| format!("cannot write {}: {}", output.display(), e))
}
