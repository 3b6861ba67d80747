//! The `ktapc` applet: compiles a script on one machine into an object that `ktap FILE` runs
//! on another (a board) without compiling, against the board's kernel description.

use crate::kernel;
use crate::loader::TracefsKernel;
use crate::opts::{self, Opt, Order};
use ktap_bpf::kernel::Kernel;
use ktap_bpf::{Source, Target};
use ktap_lang::{compile, diag, Options};
use ktap_object::{describe_target, KernelDesc, Object, Recording};
use std::path::{Path, PathBuf};

/// The options, in the order help lists them.
const OPTIONS: &[Opt] = &[
    Opt {
        short: None,
        long: Some("target"),
        value: Some("ARCH"),
        help: "the architecture to compile for (default: the kernel description's, else this machine's)",
    },
    Opt {
        short: None,
        long: Some("kernel"),
        value: Some("FILE"),
        help: "compile against this kernel description (`ktap-selftest --dump` on the board) \
               instead of this machine's tracefs",
    },
    Opt {
        short: Some('o'),
        long: None,
        value: Some("FILE"),
        help: "write the object to FILE (default: the script's name with `.kpo`)",
    },
    Opt {
        short: Some('e'),
        long: None,
        value: Some("SCRIPT"),
        help: "compile SCRIPT given on the command line instead of a file",
    },
    Opt {
        short: Some('p'),
        long: None,
        value: Some("PID"),
        help: "trace only process PID",
    },
    Opt {
        short: Some('C'),
        long: None,
        value: Some("CPU"),
        help: "trace only events on CPU number CPU",
    },
    Opt {
        short: Some('T'),
        long: None,
        value: None,
        help: "stamp each line the probes print with the event's time (as `ktap -T`)",
    },
];

const ABOUT: &str = "Compile a ktap script into an object that `ktap FILE` runs without compiling";
const USAGE: &str = "ktapc [options] FILE [-- ARGS]
       ktapc [options] -e SCRIPT -o FILE
ARGS are the script's `arg[1]`, ..., fixed into the object; options may follow FILE";

struct Cli {
    target: Option<String>,
    kernel: Option<PathBuf>,
    output: Option<PathBuf>,
    script: Option<String>,
    pid: Option<u32>,
    cpu: Option<u32>,
    timestamps: bool,
    /// The script file, then its arguments.
    rest: Vec<String>,
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
            eprintln!("ktapc: {e}; try `ktapc -h`");
            return 2;
        }
    };
    let pid = match p.value(4).map(str::parse) {
        None => None,
        Some(Ok(pid)) => Some(pid),
        Some(Err(_)) => {
            eprintln!("ktapc: `-p`: a PID is a positive number");
            return 2;
        }
    };
    let cpu = match p.value(5).map(str::parse) {
        None => None,
        Some(Ok(cpu)) => Some(cpu),
        Some(Err(_)) => {
            eprintln!("ktapc: `-C`: a CPU is a number from 0");
            return 2;
        }
    };
    let cli = Cli {
        target: p.value(0).map(String::from),
        kernel: p.value(1).map(PathBuf::from),
        output: p.value(2).map(PathBuf::from),
        script: p.value(3).map(String::from),
        pid,
        cpu,
        timestamps: p.flag(6),
        rest: p.rest,
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
    opts.limits.cpu = cli.cpu;
    opts.limits.timestamps = cli.timestamps;
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
