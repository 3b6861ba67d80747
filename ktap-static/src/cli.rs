//! The `ktap` applet's command line, as ktap had it: `ktap [options] FILE [script args]
//! [-- cmd [args]]` or `ktap [options] -e SCRIPT [-- cmd [args]]`. FILE may also be an object
//! `ktapc` compiled elsewhere, recognised by its header and run without compiling.

use crate::loader::TracefsKernel;
use crate::run::{self, RunArgs};
use clap::Parser;
use ktap_bpf::{Program, Target};
use ktap_object::{Error as ObjectError, KernelDesc, Object};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ktap",
    about = "A lightweight script-based dynamic tracer: ktap scripts compiled to eBPF",
    disable_version_flag = true
)]
struct Cli {
    /// Run SCRIPT given on the command line instead of a file.
    #[arg(short = 'e', value_name = "SCRIPT")]
    script: Option<String>,
    /// Quiet: do not print "Tracing... Hit Ctrl-C to end.".
    #[arg(short = 'q')]
    quiet: bool,
    /// Write the script's output to FILE.
    #[arg(short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Trace only process PID.
    #[arg(short = 'p', value_name = "PID")]
    pid: Option<u32>,
    /// Verbose: say what was compiled and loaded, and how long it took.
    #[arg(short = 'v')]
    verbose: bool,
    /// Print the version and exit.
    #[arg(short = 'V')]
    version: bool,
    /// Print each probe's eBPF with the script line it came from, and exit.
    #[arg(short = 'b')]
    bytecode: bool,
    /// Run the probes in ktap's userspace VM over perf events instead of in the kernel (the
    /// default where bpf() is missing or refused).
    #[arg(long = "vm")]
    vm: bool,
    /// Save the raw events to FILE (runs the probes in the VM) for `ktap-vm --replay FILE`.
    #[arg(long = "record", value_name = "FILE")]
    record: Option<PathBuf>,
    /// The script file (or an object from `ktapc`), then its arguments (`arg[1]`, ...).
    #[arg(
        value_name = "FILE [ARGS]",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    rest: Vec<String>,
}

/// Entry point of the `ktap` applet; `args[0]` is the program name.
pub fn ktap_main(args: Vec<String>) -> i32 {
    // Everything after the first `--` is the workload, which clap must not see.
    let (ours, cmd) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), args[i + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let cli = match Cli::try_parse_from(&ours) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if cli.version {
        println!("ktap {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let mut compiled = None;
    let (name, text, script_args) = match (&cli.script, cli.rest.split_first()) {
        (Some(s), _) => ("-e".to_string(), s.clone(), cli.rest.clone()),
        (None, Some((file, rest))) => match std::fs::read(file) {
            Ok(bytes) if Object::is_object(&bytes) => {
                if !rest.is_empty() || cli.pid.is_some() {
                    eprintln!(
                        "ktap: {file} is compiled: its arguments and -p were fixed by ktapc \
                         (give them there)"
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
        verbose: cli.verbose,
        bytecode: cli.bytecode,
        vm: cli.vm,
        record: cli.record,
        compiled,
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
