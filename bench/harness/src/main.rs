//! `ktap-bench`: the harness behind `make bench`. It runs ktap, bpftrace, ply (when given) and
//! a 2-instruction floor program on the same work, interleaved over several rounds, and
//! prints the table of bench/README.md; `--results FILE` also writes it there with the date
//! and machine. `ktap-bench floor ...` is the floor program itself (see floor.rs).

mod bench;
mod floor;
mod proc;
mod report;
mod tracers;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

use tracers::Tools;

const USAGE: &str =
    "usage: ktap-bench [--ktap PATH] [--workload PATH] [--bpftrace PATH|none] [--ply PATH]
                  [--bpftool PATH] [--rounds N] [--glob-rounds N] [--events N]
                  [--samples DIR] [--results FILE]
       ktap-bench floor CATEGORY:NAME... [-- CMD ARGS...]";

struct Args {
    tools: Tools,
    rounds: usize,
    glob_rounds: usize,
    events: u64,
    samples: PathBuf,
    results: Option<PathBuf>,
}

/// The first `name` on PATH (and in /usr/sbin, where Debian puts bpftool).
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    // make bench builds ktap, the workload and this harness into the same directory.
    let beside = |name: &str| exe.with_file_name(name);
    let mut a = Args {
        tools: Tools {
            ktap: beside("ktap"),
            workload: beside("ktap-workload"),
            floor: exe.clone(),
            bpftrace: on_path("bpftrace"),
            ply: None,
            bpftool: on_path("bpftool"),
        },
        rounds: 7,
        glob_rounds: 3,
        events: 1_000_000,
        samples: PathBuf::from("samples"),
        results: None,
    };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let num = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--ktap" => a.tools.ktap = val()?.into(),
            "--workload" => a.tools.workload = val()?.into(),
            "--bpftrace" => {
                let v = val()?;
                a.tools.bpftrace = (v != "none").then(|| v.into());
            }
            "--ply" => {
                let v = val()?;
                a.tools.ply = (!v.is_empty()).then(|| v.into());
            }
            "--bpftool" => a.tools.bpftool = Some(val()?.into()),
            "--rounds" => a.rounds = num(val()?)?.max(1) as usize,
            "--glob-rounds" => a.glob_rounds = num(val()?)? as usize,
            "--events" => a.events = num(val()?)?.max(1),
            "--samples" => a.samples = val()?.into(),
            "--results" => a.results = Some(val()?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    for (what, p) in [
        ("ktap", &a.tools.ktap),
        ("ktap-workload", &a.tools.workload),
    ] {
        if !p.is_file() {
            return Err(format!(
                "{what} not found at {} (build it first, or pass its path)",
                p.display()
            ));
        }
    }
    Ok(a)
}

/// Every `.kp` file under `dir`, sorted.
fn samples(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "kp") {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// The first line `cmd` prints on stdout or stderr.
fn first_line(cmd: &Path, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|e| format!("({e})"))
}

/// Today's date (UTC) as YYYY-MM-DD, from the days since 1970 (Hinnant's civil_from_days).
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Kernel release, CPU model and count.
fn machine() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("Linux {}, {model}, {cores} cores", release.trim())
}

fn run(argv: &[String]) -> Result<(), String> {
    let a = parse(argv)?;
    let scratch = std::env::temp_dir().join(format!("ktap-bench.{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("create {}: {e}", scratch.display()))?;
    let cfg = bench::Config {
        rounds: a.rounds,
        glob_rounds: a.glob_rounds,
        events: a.events,
        samples: samples(&a.samples),
        scratch: scratch.clone(),
    };
    if a.tools.bpftrace.is_none() {
        eprintln!("ktap-bench: no bpftrace (not on PATH, or --bpftrace none): comparing against the floor and ply only");
    }
    if a.tools.bpftool.is_none() {
        eprintln!("ktap-bench: bpftool not found; instruction counts are left out");
    }
    proc::kill_on_signal();
    let measured = bench::run(&a.tools, &cfg);
    // The scratch files are only ever a failed tracer's last words, reported already.
    let _ = std::fs::remove_dir_all(&scratch);
    let results = measured?;

    let mut versions = vec![format!(
        "{} ({})",
        first_line(&a.tools.ktap, "-V"),
        a.tools.ktap.display()
    )];
    versions.extend(
        a.tools
            .bpftrace
            .as_deref()
            .map(|p| first_line(p, "--version")),
    );
    versions.extend(a.tools.ply.as_deref().map(|p| first_line(p, "-v")));
    let table = report::render(&results, &a.tools.tracers(), a.rounds, a.events);
    print!("{table}");
    if let Some(path) = &a.results {
        // The file's later sections (the boards' figures, written from `make bench-board`
        // runs) are kept.
        let kept = std::fs::read_to_string(path)
            .ok()
            .and_then(|old| old.find("\n## ").map(|i| old[i..].to_string()))
            .unwrap_or_default();
        let text = format!(
            "# ktap benchmark results\n\nWritten by `make bench` (bench/README.md says how each \
             figure is measured). Machines are noisy: read the medians and ratios, not one \
             absolute time.\n\n- date: {}\n- machine: {}\n- tools: {}\n\n{table}{kept}",
            today(),
            machine(),
            versions.join("; ")
        );
        std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        eprintln!("ktap-bench: wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match argv.first().map(String::as_str) {
        Some("floor") => floor::run(&argv[1..]).map(|code| code as u8),
        _ => run(&argv).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ktap-bench: {e}");
            ExitCode::from(1)
        }
    }
}
