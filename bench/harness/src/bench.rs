//! The measurements: rounds in which every tracer (and no tracer at all, the baseline) does
//! the same work in turn, the order rotated each round so no tracer always runs first or
//! right after a cold cache. See bench/README.md for what each figure means.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::proc::{self, Spawned};
use crate::tracers::{ktap_reported, Tools, Tracer, Work, GLOB};

/// Every figure the table reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Figure {
    LiveCount,
    LiveCpu,
    LiveHist,
    KtapCompile,
    KtapVerify,
    KtapAttach,
    ExitWall,
    ExitCpu,
    StopExit,
    Rss,
    EventCount,
    EventHist,
    InsnsCount,
    InsnsHist,
    GlobWall,
    GlobCompile,
    GlobVerify,
    GlobAttach,
}

/// How many rounds and events.
pub struct Config {
    pub rounds: usize,
    pub glob_rounds: usize,
    /// Syscalls per per-event workload run.
    pub events: u64,
    pub samples: Vec<PathBuf>,
    /// Where tracers' output goes.
    pub scratch: PathBuf,
}

/// Every value measured, in seconds, bytes or instructions.
#[derive(Default)]
pub struct Results {
    pub figures: BTreeMap<(Figure, Tracer), Vec<f64>>,
    /// Seconds per syscall with nothing attached (the baseline's CPU time over its events).
    pub alone: BTreeMap<&'static str, Vec<f64>>,
    /// Seconds to compile each sample, as ktap does it.
    pub samples: BTreeMap<String, Vec<f64>>,
    /// Tracepoints the glob matched.
    pub glob_size: usize,
    pub failures: Vec<String>,
    /// Experiments a tracer failed once, skipped in later rounds.
    broken: HashSet<(Tracer, &'static str)>,
}

impl Results {
    fn add(&mut self, f: Figure, t: Tracer, v: f64) {
        self.figures.entry((f, t)).or_default().push(v);
    }

    fn fail(&mut self, t: Tracer, what: &'static str, e: String) {
        let msg = format!("{} ({what}): {e}", t.name());
        eprintln!("ktap-bench: {msg}");
        self.failures.push(msg);
        self.broken.insert((t, what));
    }

    /// A failure that leaves the tracer in the later rounds.
    fn note(&mut self, t: Tracer, what: &'static str, round: usize, e: String) {
        let msg = format!("{} ({what}, round {}): {e}", t.name(), round + 1);
        eprintln!("ktap-bench: {msg}");
        self.failures.push(msg);
    }

    /// The compile, verify and attach times ktap -v reported in `stderr`.
    fn ktap_reports(&mut self, stderr: &str, compile: Figure, verify: Figure, attach: Figure) {
        for (f, key) in [
            (compile, "compiled in "),
            (verify, "verified in "),
            (attach, "attached in "),
        ] {
            if let Some(v) = ktap_reported(stderr, key) {
                self.add(f, Tracer::Ktap, v);
            }
        }
    }

    fn skips(&self, t: Tracer, what: &'static str) -> bool {
        self.broken.contains(&(t, what))
    }
}

/// How long a command that should end by itself may run before it is killed and the round
/// reported as failed: the workloads and `launch → exit` take well under a second, so this only
/// ends hangs (ply 2.4's `-c` run has been seen to wait for ever).
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// The same for attaching to and detaching from every tracepoint of the glob, which a tracer
/// that detaches one by one needs about a minute for.
const GLOB_LIMIT: Duration = Duration::from_secs(300);

/// `items` rotated left by `round`.
fn rotated<T: Clone>(items: &[T], round: usize) -> Vec<T> {
    let mut v = items.to_vec();
    if !v.is_empty() {
        let k = round % v.len();
        v.rotate_left(k);
    }
    v
}

/// What one tracing session measured.
struct Session {
    live: Duration,
    /// The tracer's CPU time until then.
    live_cpu: Duration,
    insns: Option<u64>,
    /// CPU time of the workload run while attached.
    workload_cpu: Duration,
    stop: Duration,
    rss: u64,
    stderr: String,
}

/// Makes the syscall a work's probe fires on, from the harness itself.
struct Trigger {
    work: Work,
    zero: File,
}

impl Trigger {
    fn new(work: Work) -> Result<Trigger, String> {
        let zero = File::open("/dev/zero").map_err(|e| format!("open /dev/zero: {e}"))?;
        Ok(Trigger { work, zero })
    }

    fn fire(&self) {
        let mut byte = 0u8;
        // SAFETY: getppid has no preconditions; read writes at most 1 byte into `byte`.
        unsafe {
            match self.work {
                Work::Count => {
                    libc::getppid();
                }
                Work::Hist => {
                    libc::read(self.zero.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
                }
            }
        }
    }
}

/// Polls until a BPF program held by `p` has run once, firing the trigger between polls:
/// the moment the probe is live, seen from outside and the same way for every tracer.
fn wait_live(p: &Spawned, trigger: &Trigger) -> Result<(Instant, Vec<u32>), String> {
    const TIMEOUT: Duration = Duration::from_secs(60);
    loop {
        trigger.fire();
        let progs = proc::programs(p.pid());
        if progs.iter().any(|h| h.run_cnt > 0) {
            return Ok((Instant::now(), progs.iter().map(|h| h.id).collect()));
        }
        if p.exited() {
            return Err(format!(
                "exited before its probe fired: {}",
                p.stderr_tail()
            ));
        }
        if p.start.elapsed() > TIMEOUT {
            return Err(format!(
                "no probe fired within {TIMEOUT:?}: {}",
                p.stderr_tail()
            ));
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

fn scratch(cfg: &Config, name: &str) -> (PathBuf, PathBuf) {
    (
        cfg.scratch.join(format!("{name}.out")),
        cfg.scratch.join(format!("{name}.err")),
    )
}

/// Why a session gave no figures.
struct Failed {
    message: String,
    /// Worth trying again next round: the tracer raced, it did not refuse.
    again: bool,
}

impl Failed {
    fn again(message: String) -> Failed {
        Failed {
            message,
            again: true,
        }
    }
}

impl From<proc::RunError> for Failed {
    fn from(e: proc::RunError) -> Failed {
        Failed {
            message: e.message,
            again: e.overran,
        }
    }
}

impl From<String> for Failed {
    fn from(message: String) -> Failed {
        Failed {
            message,
            again: false,
        }
    }
}

/// A tracer started on `work`, live, then the workload under it, then Ctrl-C.
fn session(
    tools: &Tools,
    cfg: &Config,
    t: Tracer,
    work: Work,
    count_insns: bool,
) -> Result<Session, Failed> {
    let (out, err) = scratch(cfg, t.name());
    let trigger = Trigger::new(work)?;
    let stats = proc::enable_bpf_stats()?;
    let p = proc::spawn(&tools.tracing(t, work), &out, &err)?;
    let (live_at, ids) = wait_live(&p, &trigger)?;
    let live_cpu = proc::cpu_so_far(p.pid());
    drop(stats);
    let insns = match (&tools.bpftool, count_insns) {
        (Some(bpftool), true) => ids
            .iter()
            .map(|&id| proc::xlated_insns(bpftool, id))
            .sum::<Option<u64>>(),
        _ => None,
    };
    let (wout, werr) = scratch(cfg, "workload");
    let (_, w) = proc::run(&tools.workload(work, cfg.events), &wout, &werr, RUN_LIMIT)?;
    let start = p.start;
    let watched = p.interrupt();
    let exit = watched.exit;
    if watched.resent {
        return Err(Failed::again(format!(
            "did not exit on Ctrl-C; a second one 5 s later {}",
            if exit.success() {
                "ended it"
            } else {
                "did not either"
            }
        )));
    }
    if !exit.success() {
        return Err(format!(
            "{} after Ctrl-C: {}",
            exit.describe(),
            proc::stderr_tail(&err)
        )
        .into());
    }
    Ok(Session {
        live: live_at - start,
        live_cpu,
        insns,
        workload_cpu: w.cpu(),
        stop: exit.at - watched.sent,
        rss: watched.peak_rss,
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    })
}

/// The workload alone: its CPU time with nothing attached.
fn baseline(tools: &Tools, cfg: &Config, work: Work) -> Result<Duration, String> {
    let (out, err) = scratch(cfg, "baseline");
    let (_, exit) = proc::run(&tools.workload(work, cfg.events), &out, &err, RUN_LIMIT)
        .map_err(|e| e.message)?;
    Ok(exit.cpu())
}

/// Runs every round and returns what was measured. A tracer that fails an experiment is
/// reported and left out of that experiment's later rounds; the baseline failing is fatal.
pub fn run(tools: &Tools, cfg: &Config) -> Result<Results, String> {
    let mut r = Results::default();
    let tracers = tools.tracers();
    let per_event = |cpu: Duration, base: Duration| {
        (cpu.as_secs_f64() - base.as_secs_f64()) / cfg.events as f64
    };

    for round in 0..cfg.rounds {
        eprintln!("ktap-bench: round {}/{}", round + 1, cfg.rounds);
        for (work, what) in [(Work::Count, "count"), (Work::Hist, "hist")] {
            // None is the baseline, rotated in among the tracers.
            let slots: Vec<Option<Tracer>> = std::iter::once(None)
                .chain(tracers.iter().copied().map(Some))
                .collect();
            let mut base = None;
            let mut attached = Vec::new();
            for slot in rotated(&slots, round) {
                match slot {
                    None => base = Some(baseline(tools, cfg, work)?),
                    Some(t) if r.skips(t, what) => {}
                    Some(t) => match session(tools, cfg, t, work, round == 0) {
                        Ok(s) => attached.push((t, s)),
                        Err(f) if f.again => r.note(t, what, round, f.message),
                        Err(f) => r.fail(t, what, f.message),
                    },
                }
            }
            let base = base.ok_or("the baseline did not run")?;
            r.alone
                .entry(match work {
                    Work::Count => "getppid",
                    Work::Hist => "read",
                })
                .or_default()
                .push(base.as_secs_f64() / cfg.events as f64);
            for (t, s) in attached {
                let (live, event, insns) = match work {
                    Work::Count => (Figure::LiveCount, Figure::EventCount, Figure::InsnsCount),
                    Work::Hist => (Figure::LiveHist, Figure::EventHist, Figure::InsnsHist),
                };
                r.add(live, t, s.live.as_secs_f64());
                r.add(event, t, per_event(s.workload_cpu, base));
                if let Some(n) = s.insns {
                    r.add(insns, t, n as f64);
                }
                if work == Work::Count {
                    r.add(Figure::LiveCpu, t, s.live_cpu.as_secs_f64());
                    r.add(Figure::StopExit, t, s.stop.as_secs_f64());
                    r.add(Figure::Rss, t, s.rss as f64);
                    if t == Tracer::Ktap {
                        r.ktap_reports(
                            &s.stderr,
                            Figure::KtapCompile,
                            Figure::KtapVerify,
                            Figure::KtapAttach,
                        );
                    }
                }
            }
        }

        let trivial = tools.workload(Work::Count, 1);
        for t in rotated(&tracers, round) {
            if r.skips(t, "exit") {
                continue;
            }
            let (out, err) = scratch(cfg, t.name());
            match proc::run(&tools.running(t, &trivial), &out, &err, RUN_LIMIT) {
                Ok((wall, exit)) => {
                    r.add(Figure::ExitWall, t, wall.as_secs_f64());
                    r.add(Figure::ExitCpu, t, exit.cpu().as_secs_f64());
                }
                Err(e) if e.overran => r.note(t, "exit", round, e.message),
                Err(e) => r.fail(t, "exit", e.message),
            }
        }

        for sample in rotated(&cfg.samples, round) {
            let name = sample.display().to_string();
            match compile_time(tools, cfg, &sample) {
                Ok(v) => r.samples.entry(name).or_default().push(v),
                Err(e) => {
                    if round == 0 {
                        eprintln!("ktap-bench: sample {name}: {e}");
                        r.failures.push(format!("sample {name}: {e}"));
                    }
                }
            }
        }
    }

    r.glob_size = crate::floor::tracepoints(&[GLOB.to_string()]).map_or(0, |v| v.len());
    let globbing: Vec<Tracer> = tracers
        .iter()
        .copied()
        .filter(|&t| tools.globbing(t).is_some())
        .collect();
    for round in 0..cfg.glob_rounds {
        for t in rotated(&globbing, round) {
            if r.skips(t, "glob") {
                continue;
            }
            eprintln!(
                "ktap-bench: {} on {} tracepoints, round {}/{}",
                t.name(),
                r.glob_size,
                round + 1,
                cfg.glob_rounds
            );
            let Some(argv) = tools.globbing(t) else {
                continue;
            };
            let (out, err) = scratch(cfg, t.name());
            match proc::run(&argv, &out, &err, GLOB_LIMIT) {
                Ok((wall, _)) => {
                    r.add(Figure::GlobWall, t, wall.as_secs_f64());
                    if t == Tracer::Ktap {
                        let text = std::fs::read_to_string(&err).unwrap_or_default();
                        r.ktap_reports(
                            &text,
                            Figure::GlobCompile,
                            Figure::GlobVerify,
                            Figure::GlobAttach,
                        );
                    }
                }
                Err(e) if e.overran => r.note(t, "glob", round, e.message),
                Err(e) => r.fail(t, "glob", e.message),
            }
        }
    }
    Ok(r)
}

/// Seconds the ktap under test takes to compile `sample`: finding tracefs and compiling
/// against it, as `ktap -q -v -b` reports it (`compiled in`). `-b` lists the program and
/// exits, so no sample is attached (kprobe samples could not be here).
fn compile_time(tools: &Tools, cfg: &Config, sample: &Path) -> Result<f64, String> {
    let (out, err) = scratch(cfg, "compile");
    let argv = vec![
        tools.path(Tracer::Ktap),
        "-q".into(),
        "-v".into(),
        "-b".into(),
        sample.display().to_string(),
    ];
    proc::run(&argv, &out, &err, RUN_LIMIT).map_err(|e| e.message)?;
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    ktap_reported(&text, "compiled in ").ok_or_else(|| format!("no `compiled in` in: {text}"))
}
