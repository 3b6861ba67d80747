//! ktap-board: as pid 1 on a board it is the initramfs's /init (guest.rs); on the host,
//! `ktap-board run` boots one architecture under qemu-system and judges its cases, and
//! `ktap-board shell` boots it with a prompt for a person, and `ktap-board bench` measures
//! ktap's startup, memory and per-event cost on it (bench.rs).

mod bench;
mod case;
mod cpio;
mod guest;
mod host;
mod proto;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: ktap-board run|shell|bench --arch ARCH --kernel FILE --ktap FILE --board FILE --workload FILE
                  --host-ktap FILE [--cases DIR] [--samples DIR] [--targets DIR] [--work DIR]
                  [--only TEXT[,TEXT...]] [--rounds N] [--events N]
  run     boot ARCH's kernel with the cases of DIR (default board-tests) and judge them; the
          last line is `board-test ARCH: N passed, M failed`
  shell   boot it with a prompt on this terminal
  bench   boot it once and measure ktap there: --rounds rounds (default 7) of the workload
          alone, under the floor program and under the counting program, each making
          --events getppid calls (default 1000000) and one; prints medians and ratios
  --ktap, --board, --workload   ARCH's ktap, ktap-board and ktap-workload binaries
  --host-ktap                   this machine's ktap (ktapc for the cases' `-- host` lines)";

fn main() -> ExitCode {
    if std::process::id() == 1 {
        guest::main();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args).and_then(|(verb, cfg)| match verb.as_str() {
        "run" => host::run(&cfg),
        "bench" => host::bench(&cfg),
        _ => host::shell(&cfg).map(|()| true),
    }) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ktap-board: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse(args: &[String]) -> Result<(String, host::Config), String> {
    let verb = match args.first().map(String::as_str) {
        Some(v @ ("run" | "shell" | "bench")) => v.to_string(),
        _ => return Err(format!("give `run`, `shell` or `bench`\n{USAGE}")),
    };
    let mut get = std::collections::BTreeMap::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let key = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected `{a}`\n{USAGE}"))?;
        let v = it.next().ok_or_else(|| format!("`{a}` needs a value"))?;
        get.insert(key.to_string(), v.clone());
    }
    let mut take = |k: &str| get.remove(k);
    let number = |v: Option<String>, k: &str, default: u64| match v {
        None => Ok(default),
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| format!("--{k} wants a number, not `{s}`")),
    };
    let need = |v: Option<String>, k: &str| v.ok_or_else(|| format!("missing --{k}\n{USAGE}"));
    let cfg = host::Config {
        arch: need(take("arch"), "arch")?,
        kernel: need(take("kernel"), "kernel")?.into(),
        ktap: need(take("ktap"), "ktap")?.into(),
        board: need(take("board"), "board")?.into(),
        workload: need(take("workload"), "workload")?.into(),
        host_ktap: need(take("host-ktap"), "host-ktap")?.into(),
        cases: take("cases").unwrap_or_else(|| "board-tests".into()).into(),
        samples: take("samples").unwrap_or_else(|| "samples".into()).into(),
        targets: take("targets").unwrap_or_else(|| "targets".into()).into(),
        work: take("work").map_or_else(|| PathBuf::from("target/board"), PathBuf::from),
        only: take("only"),
        rounds: number(take("rounds"), "rounds", 7)? as usize,
        events: number(take("events"), "events", 1_000_000)?,
    };
    if cfg.rounds == 0 || cfg.events < 2 {
        return Err("--rounds must be at least 1 and --events at least 2".into());
    }
    if let Some(k) = get.keys().next() {
        return Err(format!("unknown option --{k}\n{USAGE}"));
    }
    if !case::ARCHES.contains(&cfg.arch.as_str()) {
        return Err(format!(
            "no board for `{}`; boards: {}",
            cfg.arch,
            case::ARCHES.join(" ")
        ));
    }
    Ok((verb, cfg))
}
