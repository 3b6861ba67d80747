//! The report: a Markdown table of medians with min–max and ktap/peer ratios, the compile
//! time of every sample, and which of issue 8's targets are met. The same text goes to the
//! terminal and to bench/RESULTS.md.

use std::fmt::Write as _;

use crate::bench::{Figure, Results};
use crate::tracers::{Tracer, GLOB, READ_SIZE};

enum Unit {
    Seconds,
    Bytes,
    Insns,
}

impl Figure {
    fn label(self) -> String {
        match self {
            Figure::LiveCount => "launch → probe live, count".into(),
            Figure::LiveCpu => "launch → probe live, count (tracer CPU)".into(),
            Figure::LiveHist => "launch → probe live, hist".into(),
            Figure::KtapCompile => "ktap -v: compiled in, count".into(),
            Figure::KtapVerify => "ktap -v: verified in, count".into(),
            Figure::KtapAttach => "ktap -v: attached in, count".into(),
            Figure::ExitWall => "launch → exit, `getppid 1` (wall)".into(),
            Figure::ExitCpu => "launch → exit, `getppid 1` (CPU)".into(),
            Figure::StopExit => "Ctrl-C → exit, count".into(),
            Figure::Rss => "peak RSS, count".into(),
            Figure::EventCount => "per event, count by name".into(),
            Figure::EventHist => format!("per event, hist of {READ_SIZE}-byte reads"),
            Figure::InsnsCount => "eBPF insns (xlated), count".into(),
            Figure::InsnsHist => "eBPF insns (xlated), hist".into(),
            Figure::GlobWall => format!("`{GLOB}` attach+detach (total)"),
            Figure::GlobCompile => format!("ktap -v: compiled in, `{GLOB}`"),
            Figure::GlobVerify => format!("ktap -v: verified in, `{GLOB}`"),
            Figure::GlobAttach => format!("ktap -v: attached in, `{GLOB}`"),
        }
    }

    fn unit(self) -> Unit {
        match self {
            Figure::Rss => Unit::Bytes,
            Figure::InsnsCount | Figure::InsnsHist => Unit::Insns,
            _ => Unit::Seconds,
        }
    }

    const ALL: [Figure; 18] = [
        Figure::LiveCount,
        Figure::LiveCpu,
        Figure::LiveHist,
        Figure::KtapCompile,
        Figure::KtapVerify,
        Figure::KtapAttach,
        Figure::ExitWall,
        Figure::ExitCpu,
        Figure::StopExit,
        Figure::Rss,
        Figure::EventCount,
        Figure::EventHist,
        Figure::InsnsCount,
        Figure::InsnsHist,
        Figure::GlobWall,
        Figure::GlobCompile,
        Figure::GlobVerify,
        Figure::GlobAttach,
    ];
}

/// Min, median and max of a non-empty list.
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

fn spread(values: &[f64]) -> Option<Spread> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return None;
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        min: v[0],
        median,
        max: v[n - 1],
    })
}

fn seconds(s: f64) -> String {
    let a = s.abs();
    if a < 1e-6 {
        format!("{:.0} ns", s * 1e9)
    } else if a < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if a < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.2} s", s)
    }
}

fn bytes(b: f64) -> String {
    if b < 1024.0 * 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    }
}

fn value(unit: &Unit, v: f64) -> String {
    match unit {
        Unit::Seconds => seconds(v),
        Unit::Bytes => bytes(v),
        Unit::Insns => format!("{v:.0}"),
    }
}

fn cell(unit: &Unit, s: &Spread) -> String {
    if matches!(unit, Unit::Insns) || s.min == s.max {
        value(unit, s.median)
    } else {
        format!(
            "{} ({}–{})",
            value(unit, s.median),
            value(unit, s.min),
            value(unit, s.max)
        )
    }
}

impl Results {
    fn median(&self, f: Figure, t: Tracer) -> Option<f64> {
        self.figures
            .get(&(f, t))
            .and_then(|v| spread(v))
            .map(|s| s.median)
    }
}

/// The whole report for `tracers` (ktap first).
pub fn render(r: &Results, tracers: &[Tracer], rounds: usize, events: u64) -> String {
    let mut o = String::new();
    let peers: Vec<Tracer> = tracers
        .iter()
        .copied()
        .filter(|&t| t != Tracer::Ktap)
        .collect();
    let _ = writeln!(
        o,
        "Medians of {rounds} interleaved rounds, (min–max); per-event figures over {events} \
         syscalls; ratios are ktap's median over the other's. The `{GLOB}` row matched {} \
         tracepoints.\n",
        r.glob_size
    );
    let mut head = String::from("| figure |");
    let mut rule = String::from("|---|");
    for t in tracers {
        let _ = write!(head, " {} |", t.name());
        rule.push_str("---|");
    }
    for t in &peers {
        let _ = write!(head, " ktap/{} |", t.name());
        rule.push_str("---|");
    }
    let _ = writeln!(o, "{head}\n{rule}");
    for f in Figure::ALL {
        if !tracers.iter().any(|&t| r.figures.contains_key(&(f, t))) {
            continue;
        }
        let unit = f.unit();
        let mut row = format!("| {} |", f.label());
        for &t in tracers {
            let c = r
                .figures
                .get(&(f, t))
                .and_then(|v| spread(v))
                .map_or("—".into(), |s| cell(&unit, &s));
            let _ = write!(row, " {c} |");
        }
        for &t in &peers {
            let ratio = match (r.median(f, Tracer::Ktap), r.median(f, t)) {
                (Some(k), Some(p)) if p > 0.0 && k >= 0.0 => format!("{:.2}×", k / p),
                _ => "—".into(),
            };
            let _ = write!(row, " {ratio} |");
        }
        let _ = writeln!(o, "{row}");
    }
    let alone = |name: &str| {
        r.alone
            .get(name)
            .and_then(|v| spread(v))
            .map_or("—".into(), |s| seconds(s.median))
    };
    let _ = writeln!(
        o,
        "\nWith nothing attached, a getppid call costs {} and a {READ_SIZE}-byte read {} \
         (the workload's CPU time over its calls); per-event figures are what a tracer adds \
         to that.",
        alone("getppid"),
        alone("read")
    );

    let _ = writeln!(
        o,
        "\nCompile time of every sample (what `ktap -v` reports as `compiled in`: finding tracefs, \
         reading the event formats, compiling; the first round is the coldest):\n\n\
         | sample | median | min | max |\n|---|---|---|---|"
    );
    for (name, v) in &r.samples {
        if let Some(s) = spread(v) {
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} |",
                seconds(s.median),
                seconds(s.min),
                seconds(s.max)
            );
        }
    }

    let _ = writeln!(o, "\nTargets (issue 8, item 2):\n");
    for (verdict, text) in targets(r) {
        let _ = writeln!(o, "- **{verdict}** {text}");
    }
    if !r.failures.is_empty() {
        let _ = writeln!(o, "\nFailures:\n");
        for f in &r.failures {
            let _ = writeln!(o, "- {f}");
        }
    }
    o
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    }
}

/// Each target of item 2: its verdict and the figures it was judged on.
fn targets(r: &Results) -> Vec<(&'static str, String)> {
    let k = |f| r.median(f, Tracer::Ktap);
    let shown = |v: Option<f64>, fmt: fn(f64) -> String| v.map_or("—".into(), fmt);
    let mut out = Vec::new();

    let live = k(Figure::LiveCount);
    let ply_live = r.median(Figure::LiveCount, Tracer::Ply);
    let ok = match (live, ply_live) {
        (Some(l), Some(p)) => Some(l <= 2e-3 && l < p),
        (Some(l), None) if l > 2e-3 => Some(false),
        _ => None,
    };
    out.push((
        verdict(ok),
        format!(
            "launch → probe live ≤ 2 ms and below ply's: ktap {}, ply {}",
            shown(live, seconds),
            shown(ply_live, seconds)
        ),
    ));

    let rss = k(Figure::Rss);
    out.push((
        verdict(rss.map(|b| b <= 2.0 * 1024.0 * 1024.0)),
        format!("peak RSS ≤ 2 MiB: ktap {}", shown(rss, bytes)),
    ));

    let ev = k(Figure::EventCount);
    let floor = r.median(Figure::EventCount, Tracer::Floor);
    let ply = r.median(Figure::EventCount, Tracer::Ply);
    let ok = match (ev, floor, ply) {
        (Some(e), Some(f), Some(p)) => Some(e <= p && e <= 1.15 * f),
        (Some(e), Some(f), None) if e > 1.15 * f => Some(false),
        _ => None,
    };
    out.push((
        verdict(ok),
        format!(
            "per-event cost (count) ≤ ply's and within 15% of the floor: ktap {}, floor {} \
             (ktap/floor {}), ply {}",
            shown(ev, seconds),
            shown(floor, seconds),
            match (ev, floor) {
                (Some(e), Some(f)) if f > 0.0 => format!("{:.2}×", e / f),
                _ => "—".into(),
            },
            shown(ply, seconds)
        ),
    ));

    let insns = k(Figure::InsnsCount);
    out.push((
        verdict(insns.map(|n| n <= 31.0)),
        format!(
            "≤ 31 instructions for the counting program: ktap {}",
            shown(insns, |n| format!("{n:.0}"))
        ),
    ));

    let slowest = r
        .samples
        .iter()
        .filter_map(|(name, v)| spread(v).map(|s| (name, s.median)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    out.push((
        verdict(slowest.map(|(_, m)| m < 1e-3)),
        format!(
            "every sample compiles in < 1 ms: slowest {}",
            slowest.map_or("—".into(), |(n, m)| format!("{n}, {}", seconds(m)))
        ),
    ));

    let glob = k(Figure::GlobWall);
    out.push((
        verdict(glob.map(|s| s <= 2.0)),
        format!(
            "`{GLOB}` ({} tracepoints) attached and detached in ≤ 2 s: ktap {}",
            r.glob_size,
            shown(glob, seconds)
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn units() {
        assert_eq!(seconds(370e-9), "370 ns");
        assert_eq!(seconds(2.8e-3), "2.80 ms");
        assert_eq!(bytes(1.5 * 1024.0 * 1024.0), "1.50 MiB");
    }
}
