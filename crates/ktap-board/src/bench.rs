//! `ktap-board bench`: the startup, memory and per-event parts of `make bench`, run inside one
//! boot of a board (JIT on). Under TCG an absolute time says little about real hardware, so the
//! figures that matter are the medians of ratios against the floor program.
//!
//! Every round runs six steps, in an order rotated from round to round: the workload alone
//! (`ktap-workload getppid N` and `getppid 1`), and the same two under ktap with the floor
//! program (an empty probe: `r0 = 0; exit`) and with the counting program. A step's figures are
//! the wall time, CPU time (user + system, the workload's included) and `ru_maxrss` the board
//! reports in its `usage` line. The per-event cost of a program in a round is
//! `((t(N) - t(1)) - (t_alone(N) - t_alone(1))) / (N - 1)`: subtracting the `getppid 1` run
//! takes ktap's startup and teardown out, and subtracting the workload alone takes out the
//! syscall itself.

use crate::case::Outcome;
use crate::proto::{Plan, Step, Usage};
use std::collections::BTreeMap;

/// The floor: an empty probe, which ktap compiles to `r0 = 0; exit` (2 instructions).
pub const FLOOR: &str = "trace syscalls:sys_enter_getppid { }";
/// The counting program of `make bench`'s `count` experiment.
pub const COUNT: &str = "var s = {} trace syscalls:sys_enter_getppid { s[execname] += 1 }";

/// What runs around the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tracer {
    Alone,
    Floor,
    Count,
}

impl Tracer {
    const ALL: [Tracer; 3] = [Tracer::Alone, Tracer::Floor, Tracer::Count];

    fn word(self) -> &'static str {
        match self {
            Tracer::Alone => "alone",
            Tracer::Floor => "floor",
            Tracer::Count => "count",
        }
    }
}

/// One step of the plan: a tracer, and whether the workload makes N calls (`big`) or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Exp {
    pub tracer: Tracer,
    pub big: bool,
}

/// How long a bench step may take on the board (seconds).
pub const STEP_TIMEOUT_S: u64 = 300;

/// The step name for round `round` (from 1), e.g. `r3.count.N`.
pub fn step_name(round: usize, e: Exp) -> String {
    format!(
        "r{round}.{}.{}",
        e.tracer.word(),
        if e.big { "N" } else { "1" }
    )
}

fn argv(e: Exp, events: u64) -> Vec<String> {
    let n = if e.big { events } else { 1 };
    let mut v: Vec<String> = match e.tracer {
        Tracer::Alone => vec![],
        Tracer::Floor => vec!["ktap".into(), "-q".into(), "-e".into(), FLOOR.into()],
        Tracer::Count => vec!["ktap".into(), "-q".into(), "-e".into(), COUNT.into()],
    };
    if !v.is_empty() {
        v.push("--".into());
    }
    v.extend(["ktap-workload".into(), "getppid".into(), n.to_string()]);
    v
}

/// The plan: `rounds` rounds of the six steps, the order rotated by one each round so that no
/// step always runs first, JIT on only.
pub fn plan(rounds: usize, events: u64) -> Plan {
    let exps: Vec<Exp> = Tracer::ALL
        .into_iter()
        .flat_map(|tracer| [true, false].map(|big| Exp { tracer, big }))
        .collect();
    let mut steps = Vec::new();
    for r in 1..=rounds {
        for i in 0..exps.len() {
            let e = exps[(i + r - 1) % exps.len()];
            steps.push(Step {
                name: step_name(r, e),
                modes: vec!["on".into()],
                timeout_ms: STEP_TIMEOUT_S * 1000,
                interrupt_ms: None,
                argv: argv(e, events),
            });
        }
    }
    Plan {
        modes: vec!["on".into()],
        steps,
    }
}

/// The median; `None` for no values.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// The unit a figure is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ns,
    Ms,
    Kib,
    Ratio,
}

/// One row of the table: a name and its value in every round that gave one.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: String,
    pub unit: Unit,
    pub values: Vec<f64>,
    /// For a ratio: the value itself (a ratio of two medians), not a median of `values`.
    pub ratio: Option<f64>,
}

/// The figures from what the board reported, and a sentence for each step that failed (a
/// failed step leaves out the figures of its round that need it).
pub fn figures(
    outcomes: &BTreeMap<(String, String), Outcome>,
    rounds: usize,
    events: u64,
) -> (Vec<Figure>, Vec<String>) {
    let mut problems = Vec::new();
    let mut got: BTreeMap<(usize, Exp), Usage> = BTreeMap::new();
    for r in 1..=rounds {
        for tracer in Tracer::ALL {
            for big in [true, false] {
                let e = Exp { tracer, big };
                let name = step_name(r, e);
                match outcomes.get(&(name.clone(), "on".into())) {
                    None => problems.push(format!("{name}: never ended")),
                    Some(o) if o.timed_out => problems.push(format!("{name}: timed out")),
                    Some(o) if o.rc != 0 => problems.push(format!(
                        "{name}: exit code {}{}",
                        o.rc,
                        o.stderr
                            .first()
                            .map(|l| format!(": {l}"))
                            .unwrap_or_default()
                    )),
                    Some(o) if !o.leftover.is_empty() => {
                        problems.push(format!("{name}: left in the kernel: {}", o.leftover))
                    }
                    Some(o) => match o.usage {
                        Some(u) => {
                            got.insert((r, e), u);
                        }
                        None => problems.push(format!("{name}: no usage line")),
                    },
                }
            }
        }
    }
    let get = |r: usize, tracer: Tracer, big: bool| got.get(&(r, Exp { tracer, big })).copied();
    let wall = |u: Usage| u.wall_us as f64;
    let cpu = |u: Usage| (u.user_us + u.sys_us) as f64;
    let per_call = |r: usize, t: Tracer, f: &dyn Fn(Usage) -> f64| -> Option<f64> {
        let n1 = (events.max(2) - 1) as f64;
        let alone = f(get(r, Tracer::Alone, true)?) - f(get(r, Tracer::Alone, false)?);
        if t == Tracer::Alone {
            return Some(alone * 1000.0 / n1);
        }
        let with = f(get(r, t, true)?) - f(get(r, t, false)?);
        Some((with - alone) * 1000.0 / n1)
    };
    let series =
        |f: &dyn Fn(usize) -> Option<f64>| -> Vec<f64> { (1..=rounds).filter_map(f).collect() };
    let fig = |name: &str, unit: Unit, values: Vec<f64>| Figure {
        name: name.into(),
        unit,
        values,
        ratio: None,
    };
    let mut out = Vec::new();
    for (what, f) in [("wall", &wall as &dyn Fn(Usage) -> f64), ("CPU", &cpu)] {
        let alone = fig(
            &format!("getppid alone, per call ({what})"),
            Unit::Ns,
            series(&|r| per_call(r, Tracer::Alone, f)),
        );
        let floor = fig(
            &format!("per event, floor ({what})"),
            Unit::Ns,
            series(&|r| per_call(r, Tracer::Floor, f)),
        );
        let count = fig(
            &format!("per event, count by name ({what})"),
            Unit::Ns,
            series(&|r| per_call(r, Tracer::Count, f)),
        );
        // The per-round ratios only where both programs gave a figure in the round.
        let both: Vec<(f64, f64)> = (1..=rounds)
            .filter_map(|r| {
                Some((
                    per_call(r, Tracer::Count, f)?,
                    per_call(r, Tracer::Floor, f)?,
                ))
            })
            .collect();
        let c: Vec<f64> = both.iter().map(|p| p.0).collect();
        let fl: Vec<f64> = both.iter().map(|p| p.1).collect();
        let r = Figure {
            name: format!("per event, count / floor ({what})"),
            unit: Unit::Ratio,
            values: both.iter().map(|(c, fl)| c / fl).collect(),
            ratio: median(&c).zip(median(&fl)).map(|(a, b)| a / b),
        };
        out.extend([alone, floor, count, r]);
    }
    for (t, name) in [(Tracer::Floor, "floor"), (Tracer::Count, "count")] {
        out.push(fig(
            &format!("launch → exit, `ktap -- ktap-workload getppid 1`, {name} (wall)"),
            Unit::Ms,
            series(&|r| Some(get(r, t, false)?.wall_us as f64 / 1000.0)),
        ));
    }
    // The workload alone shows what ru_maxrss says for a tiny program: the image exec
    // replaced (the board's /init) counts too, so a figure near it is an upper bound.
    for (t, name) in [
        (Tracer::Alone, "workload alone"),
        (Tracer::Floor, "floor"),
        (Tracer::Count, "count"),
    ] {
        out.push(fig(
            &format!("peak RSS (ru_maxrss), {name}, getppid N"),
            Unit::Kib,
            series(&|r| Some(get(r, t, true)?.maxrss_kib as f64)),
        ));
    }
    out.push(fig(
        "workload alone, getppid N (wall)",
        Unit::Ms,
        series(&|r| Some(get(r, Tracer::Alone, true)?.wall_us as f64 / 1000.0)),
    ));
    (out, problems)
}

fn show(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ns => format!("{v:.0} ns"),
        Unit::Ms => format!("{v:.1} ms"),
        Unit::Kib => format!("{v:.0} KiB"),
        Unit::Ratio => format!("{v:.2}×"),
    }
}

/// The Markdown table: per figure its median (for a ratio, the ratio of the medians) and the
/// range over the rounds (for a ratio, of the per-round ratios).
pub fn table(figs: &[Figure]) -> String {
    let mut out = String::from("| figure | median | min–max | rounds |\n|---|---|---|---|\n");
    for f in figs {
        // A ratio over a zero floor (a kernel that accounts no CPU time) is no figure.
        let mid = match f.unit {
            Unit::Ratio => f.ratio,
            _ => median(&f.values),
        }
        .filter(|m| m.is_finite());
        let finite = || f.values.iter().copied().filter(|v| v.is_finite());
        let lo = finite().reduce(f64::min);
        let hi = finite().reduce(f64::max);
        out += &format!(
            "| {} | {} | {} | {} |\n",
            f.name,
            mid.map_or("—".into(), |m| show(f.unit, m)),
            lo.zip(hi).map_or("—".into(), |(a, b)| format!(
                "{}–{}",
                show(f.unit, a),
                show(f.unit, b)
            )),
            f.values.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Undoes `step_name`.
    fn parse_name(name: &str) -> Option<(usize, Exp)> {
        let mut f = name.split('.');
        let round = f.next()?.strip_prefix('r')?.parse().ok()?;
        let word = f.next()?;
        let tracer = Tracer::ALL.into_iter().find(|t| t.word() == word)?;
        let big = match f.next()? {
            "N" => true,
            "1" => false,
            _ => return None,
        };
        f.next().is_none().then_some((round, Exp { tracer, big }))
    }

    #[test]
    fn names_round_trip_and_rounds_rotate() {
        let p = plan(3, 1000);
        assert_eq!(p.steps.len(), 18);
        assert_eq!(p.modes, vec!["on".to_string()]);
        for s in &p.steps {
            let (r, e) = parse_name(&s.name).unwrap();
            assert_eq!(step_name(r, e), s.name);
            assert_eq!(s.argv.last().unwrap(), if e.big { "1000" } else { "1" });
        }
        assert_eq!(p.steps[0].name, "r1.alone.N");
        assert_eq!(p.steps[6].name, "r2.alone.1");
        assert_eq!(
            p.steps[4].argv,
            [
                "ktap",
                "-q",
                "-e",
                COUNT,
                "--",
                "ktap-workload",
                "getppid",
                "1000"
            ]
        );
        assert_eq!(p.steps[0].argv, ["ktap-workload", "getppid", "1000"]);
        for bad in [
            "r1.count",
            "x1.count.N",
            "r1.cnt.N",
            "r1.count.2",
            "r1.count.N.x",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    fn outcome(wall_us: u64, cpu_us: u64, rss: u64) -> Outcome {
        Outcome {
            usage: Some(Usage {
                wall_us,
                user_us: cpu_us / 2,
                sys_us: cpu_us - cpu_us / 2,
                maxrss_kib: rss,
            }),
            ..Outcome::default()
        }
    }

    #[test]
    fn per_event_costs_subtract_startup_and_the_syscall() {
        // N = 1001: the workload makes 1000 more calls in the big run than in the small one.
        let mut o = BTreeMap::new();
        let mut put = |r: usize, tracer, big, oc: Outcome| {
            o.insert((step_name(r, Exp { tracer, big }), "on".to_string()), oc);
        };
        for r in 1..=3 {
            let k = r as u64; // round 2 is the median of everything
            put(r, Tracer::Alone, false, outcome(100, 50, 500));
            put(
                r,
                Tracer::Alone,
                true,
                outcome(100 + 1000 * k, 50 + 1000 * k, 500),
            );
            // startup 2 ms; the floor adds 1 µs per event, the count 3 µs
            put(r, Tracer::Floor, false, outcome(2000 * k, 2000, 3000));
            put(
                r,
                Tracer::Floor,
                true,
                outcome(2000 * k + 2000 * k, 2000 + 2000 * k, 3000 + k),
            );
            put(r, Tracer::Count, false, outcome(2500, 2500, 3200));
            put(
                r,
                Tracer::Count,
                true,
                outcome(2500 + 4000 * k, 2500 + 4000 * k, 3300),
            );
        }
        let (figs, problems) = figures(&o, 3, 1001);
        assert!(problems.is_empty(), "{problems:?}");
        let by = |n: &str| figs.iter().find(|f| f.name == n).unwrap();
        assert_eq!(
            by("getppid alone, per call (wall)").values,
            [1000.0, 2000.0, 3000.0]
        );
        assert_eq!(median(&by("per event, floor (wall)").values), Some(2000.0));
        assert_eq!(
            median(&by("per event, count by name (CPU)").values),
            Some(6000.0)
        );
        let r = by("per event, count / floor (wall)");
        assert_eq!(r.ratio, Some(3.0));
        assert_eq!(r.values, [3.0, 3.0, 3.0]);
        let s = by("launch → exit, `ktap -- ktap-workload getppid 1`, floor (wall)");
        assert_eq!(median(&s.values), Some(4.0));
        assert_eq!(
            median(&by("peak RSS (ru_maxrss), floor, getppid N").values),
            Some(3002.0)
        );
        let t = table(&figs);
        assert!(
            t.contains("| per event, count / floor (wall) | 3.00× | 3.00×–3.00× | 3 |"),
            "{t}"
        );
        assert!(
            t.contains("| peak RSS (ru_maxrss), count, getppid N | 3300 KiB |"),
            "{t}"
        );
    }

    #[test]
    fn a_failed_step_drops_its_round_and_is_named() {
        let mut o = BTreeMap::new();
        for r in 1..=2 {
            for tracer in Tracer::ALL {
                for big in [true, false] {
                    let oc = outcome(if big { 5000 } else { 1000 }, 1, 1);
                    o.insert((step_name(r, Exp { tracer, big }), "on".into()), oc);
                }
            }
        }
        o.get_mut(&("r2.count.N".to_string(), "on".to_string()))
            .unwrap()
            .rc = 1;
        o.remove(&("r1.floor.1".to_string(), "on".to_string()));
        let (figs, problems) = figures(&o, 2, 11);
        assert_eq!(
            problems,
            ["r1.floor.1: never ended", "r2.count.N: exit code 1"]
        );
        let by = |n: &str| figs.iter().find(|f| f.name == n).unwrap();
        assert_eq!(by("per event, floor (wall)").values.len(), 1);
        assert_eq!(by("per event, count by name (wall)").values.len(), 1);
        assert!(by("per event, count / floor (wall)").values.is_empty());
        assert!(table(&figs).contains("| per event, count / floor (wall) | — | — | 0 |"));
        let zero = Figure {
            name: "z".into(),
            unit: Unit::Ratio,
            values: vec![f64::NAN, f64::INFINITY],
            ratio: Some(f64::NAN),
        };
        assert!(table(&[zero]).contains("| z | — | — | 2 |"));
    }
}
