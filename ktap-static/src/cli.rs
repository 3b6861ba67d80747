//! The `ktap` applet's command line, as ktap had it: `ktap [options] FILE [script args]
//! [-- cmd [args]]` or `ktap [options] -e SCRIPT [-- cmd [args]]`. FILE may also be an object
//! `ktapc` compiled elsewhere, recognised by its header and run without compiling.

use crate::list;
use crate::loader::TracefsKernel;
use crate::opts::{self, Opt, Order};
use crate::run::{self, RunArgs};
use ktap_bpf::{Program, Target};
use ktap_fmt::Mode;
use ktap_object::{Error as ObjectError, KernelDesc, Object};
use std::path::PathBuf;

/// The options, in the order help lists them.
const OPTIONS: &[Opt] = &[
    Opt {
        short: Some('e'),
        long: None,
        value: Some("SCRIPT"),
        help: "run SCRIPT given on the command line instead of a file",
    },
    Opt {
        short: Some('q'),
        long: None,
        value: None,
        help: "quiet: do not print \"Tracing... Hit Ctrl-C to end.\"",
    },
    Opt {
        short: Some('o'),
        long: None,
        value: Some("FILE"),
        help: "write the script's output to FILE",
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
        help: "trace only events on CPU number CPU (profile-N samples that CPU alone)",
    },
    Opt {
        short: Some('T'),
        long: None,
        value: None,
        help: "start each line a probe prints with the event's time: seconds.microseconds since \
               tracing started (`    1.250042: ...`; with -f json, a \"time\" member)",
    },
    Opt {
        short: Some('v'),
        long: None,
        value: None,
        help: "verbose: say what was compiled and loaded, and how long it took",
    },
    Opt {
        short: Some('V'),
        long: None,
        value: None,
        help: "print the version and exit",
    },
    Opt {
        short: Some('b'),
        long: None,
        value: None,
        help: "print each probe's eBPF with the script line it came from, and exit",
    },
    Opt {
        short: None,
        long: Some("vm"),
        value: None,
        help: "run the probes in ktap's userspace VM over perf events instead of in the kernel \
               (the default where bpf() is missing or refused)",
    },
    Opt {
        short: None,
        long: Some("record"),
        value: Some("FILE"),
        help: "save the raw events to FILE (runs the probes in the VM) for `ktap-vm --replay FILE`",
    },
    Opt {
        short: Some('f'),
        long: None,
        value: Some("FORMAT"),
        help: "output format: text (the default) or json, one object a line (docs/json.md)",
    },
    Opt {
        short: Some('l'),
        long: None,
        value: Some("e|f|m"),
        help: "list and exit: -le [GLOB] tracepoints, -lf ELF functions, -lm ELF SDT markers",
    },
];

const ABOUT: &str = "A lightweight script-based dynamic tracer: ktap scripts compiled to eBPF";
const USAGE: &str = "ktap [options] FILE [ARGS] [-- cmd [args]]
       ktap [options] -e SCRIPT [-- cmd [args]]
FILE is a script or an object from `ktapc`; ARGS are the script's `arg[1]`, ...";

struct Cli {
    script: Option<String>,
    quiet: bool,
    output: Option<PathBuf>,
    pid: Option<u32>,
    cpu: Option<u32>,
    timestamps: bool,
    verbose: bool,
    version: bool,
    bytecode: bool,
    vm: bool,
    record: Option<PathBuf>,
    format: Mode,
    /// `-l`: list instead of running; `rest` holds the glob or the ELF file.
    list: Option<list::What>,
    /// The script file (or an object from `ktapc`), then its arguments.
    rest: Vec<String>,
}

/// The command line (without the workload), `Ok(None)` after printing help.
fn parse_cli(args: &[String]) -> Result<Option<Cli>, String> {
    let Some(p) = opts::parse(args.get(1..).unwrap_or(&[]), OPTIONS, Order::OptionsFirst)? else {
        print!("{}", opts::help(ABOUT, USAGE, OPTIONS));
        return Ok(None);
    };
    let pid = match p.value(3) {
        Some(v) => Some(
            v.parse()
                .map_err(|_| format!("`-p {v}`: a PID is a positive number"))?,
        ),
        None => None,
    };
    let cpu = match p.value(4) {
        Some(v) => Some(
            v.parse()
                .map_err(|_| format!("`-C {v}`: a CPU is a number from 0"))?,
        ),
        None => None,
    };
    Ok(Some(Cli {
        script: p.value(0).map(String::from),
        quiet: p.flag(1),
        output: p.value(2).map(PathBuf::from),
        pid,
        cpu,
        timestamps: p.flag(5),
        verbose: p.flag(6),
        version: p.flag(7),
        bytecode: p.flag(8),
        vm: p.flag(9),
        record: p.value(10).map(PathBuf::from),
        format: match p.value(11) {
            None | Some("text") => Mode::Text,
            Some("json") => Mode::Json,
            Some(f) => return Err(format!("`-f {f}`: the output formats are text and json")),
        },
        list: p.value(12).map(list::What::parse).transpose()?,
        rest: p.rest,
    }))
}

/// Entry point of the `ktap` applet; `args[0]` is the program name.
pub fn ktap_main(args: Vec<String>) -> i32 {
    // Everything after the first `--` is the workload, which the options must not see.
    let (ours, cmd) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), args[i + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let cli = match parse_cli(&ours) {
        Ok(Some(c)) => c,
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("ktap: {e}; try `ktap -h`");
            return 2;
        }
    };
    if cli.version {
        println!("ktap {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    if let Some(what) = cli.list {
        return list::main(what, &cli.rest);
    }
    let mut compiled = None;
    let (name, text, script_args) = match (&cli.script, cli.rest.split_first()) {
        (Some(s), _) => ("-e".to_string(), s.clone(), cli.rest.clone()),
        (None, Some((file, rest))) => match std::fs::read(file) {
            Ok(bytes) if Object::is_object(&bytes) => {
                if !rest.is_empty() || cli.pid.is_some() || cli.cpu.is_some() || cli.timestamps {
                    eprintln!(
                        "ktap: {file} is compiled: its arguments, -p, -C and -T were fixed by \
                         ktapc (give them there)"
                    );
                    return 2;
                }
                match load_object(&bytes) {
                    Ok(p) => {
                        let text = p.source.text.clone();
                        compiled = Some(p);
                        (file.clone(), text, Vec::new())
                    }
                    Err(m) => {
                        eprintln!("ktap: {file}: {m}");
                        return 1;
                    }
                }
            }
            Ok(bytes) if KernelDesc::is_desc(&bytes) => {
                eprintln!(
                    "ktap: {file} is a kernel description: compile against it with \
                     `ktapc --kernel {file}`"
                );
                return 1;
            }
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => (file.clone(), t, rest.to_vec()),
                Err(_) => {
                    eprintln!(
                        "ktap: {file} is neither a script (it is not text) nor a compiled object"
                    );
                    return 1;
                }
            },
            Err(e) => {
                eprintln!("ktap: cannot read {}: {}", file, e);
                return 1;
            }
        },
        (None, None) => {
            eprintln!("ktap: no script given (a FILE or -e SCRIPT); try `ktap -h`");
            return 2;
        }
    };
    let mut all_args = vec![name.clone()];
    all_args.extend(script_args);
    run::run(RunArgs {
        name,
        text,
        script_args: all_args,
        cmd,
        quiet: cli.quiet,
        output: cli.output,
        pid: cli.pid,
        cpu: cli.cpu,
        timestamps: cli.timestamps,
        verbose: cli.verbose,
        bytecode: cli.bytecode,
        vm: cli.vm,
        record: cli.record,
        compiled,
        format: cli.format,
    })
}

/// The program in an object file compiled for this machine, once the running kernel's
/// tracepoints are checked to be laid out as the compiler assumed.
fn load_object(bytes: &[u8]) -> Result<Program, String> {
    let obj = Object::decode(bytes, Target::host()).map_err(|e| match e {
        ObjectError::WrongTarget { .. } => format!(
            "{e}: compile it with `ktapc --target {}`",
            Target::host().name()
        ),
        e => e.to_string(),
    })?;
    if !obj.kernel.formats.is_empty() {
        let live = TracefsKernel::new().map_err(|e| e.to_string())?;
        obj.kernel.check(&live)?;
    }
    Ok(obj.program)
}
