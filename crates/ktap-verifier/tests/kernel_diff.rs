//! Differential testing against the kernel's own verifier on this machine: every program the
//! compiler produces for the samples and its tests, the golden files, and generated programs
//! go through both verifiers. Required: nothing ktap accepts is rejected by the kernel. Where
//! ktap rejects what the kernel accepts, the cases are counted by reason and printed; each
//! reason is one of the known, deliberate strictnesses listed in `EXPLAINED`.
//!
//! Needs root and `bpf()`; without them the tests say so and pass. The fast subset runs in
//! `cargo test`; `make verifier-diff` (and `make test`) runs the 10,000 programs with
//! `--ignored`.

mod common;

use ktap_bpf::insn::Insn;
use ktap_bpf::{MapDef, Target};
use ktap_loader::verdict::{kernel_verdict, Verdict, VerdictMaps};
use ktap_verifier::{asmfile, gen, verify, verify_program_with, Limits, ProgType};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// Why ktap rejects some programs the kernel here accepts: each a deliberate choice.
const EXPLAINED: &[(&str, &str)] = &[
    (
        "read from stack",
        "reads of stack never written: Linux 6.3+ allows them to privileged programs, earlier kernels (and ktap) do not",
    ),
    (
        "variable-offset stack access",
        "stack accesses at a variable offset: privileged kernels allow some, ktap needs constant offsets",
    ),
    (
        "atomic operations on a spilled pointer",
        "atomics on a stack slot holding a pointer",
    ),
    (
        "pointer arithmetic with",
        "neg/endian on a pointer, which the kernel turns into a number",
    ),
    (
        "sign-extension part of pointer",
        "a sign-extending move of a pointer",
    ),
    (
        "before the start of the record",
        "a negative tracepoint context offset: the kernel compares it as unsigned and lets it through (a kernel bug)",
    ),
    (
        "BPF_ST stores into",
        "immediate stores into a context",
    ),
    (
        "invalid access to map value",
        "bounds Linux 6.18 tracks more precisely than Linux 6.1, whose precision ktap keeps",
    ),
    (
        "unbounded memory access",
        "bounds Linux 6.18 tracks more precisely than Linux 6.1, whose precision ktap keeps",
    ),
    (
        "min value is negative",
        "bounds Linux 6.18 tracks more precisely than Linux 6.1, whose precision ktap keeps",
    ),
    (
        "returns without setting",
        "a function returning without setting r0: the kernel objects only if the caller reads r0",
    ),
    (
        "combined stack size",
        "more than 512 bytes of stack over a call chain: Linux 6.13+ gives tracing programs on x86_64 a private stack per function, other kernels refuse",
    ),
    (
        "program of this type cannot use helper",
        "helpers ktap allows in tracing programs only; newer kernels give socket filters more",
    ),
    (
        "type=fp expected=scalar",
        "a pointer where ktap's prototype wants a number (the kernel's ARG_ANYTHING)",
    ),
    (
        "type=map_value expected=scalar",
        "a pointer where ktap's prototype wants a number (the kernel's ARG_ANYTHING)",
    ),
    (
        "type=ctx expected=scalar",
        "a pointer where ktap's prototype wants a number (the kernel's ARG_ANYTHING)",
    ),
];

/// The running kernel's limits, or `None` (with a note) when the kernel cannot be asked.
fn kernel() -> Option<Limits> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let limits = Limits::for_release(release.trim())?;
    let probe = [Insn::mov64_imm(0, 0), Insn::exit()];
    match VerdictMaps::create(&[]).and_then(|m| kernel_verdict(1, &probe, &m)) {
        Ok(Verdict::Accepted) => Some(limits),
        other => {
            eprintln!("skipped: the kernel's verifier cannot be asked here ({other:?})");
            None
        }
    }
}

/// Counts of one comparison run.
#[derive(Default)]
struct Tally {
    both_accept: usize,
    both_reject: usize,
    /// ktap rejects, the kernel accepts: by ktap's reason.
    stricter: BTreeMap<String, usize>,
    /// ktap accepts, the kernel rejects: never allowed.
    violations: Vec<String>,
    /// One program for each reason ktap is stricter, and each program both reject.
    examples: BTreeMap<String, String>,
    rejected_by_both: Vec<String>,
}

impl Tally {
    fn record(&mut self, what: &str, ours: Result<(), String>, theirs: &Verdict, insns: &[Insn]) {
        match (ours, theirs) {
            (Ok(()), Verdict::Accepted) => self.both_accept += 1,
            (Err(m), Verdict::Rejected { .. }) => {
                self.both_reject += 1;
                self.rejected_by_both
                    .push(format!("{what}: {m} / {}", theirs.reason()));
            }
            (Err(m), Verdict::Accepted) => {
                let class = reason_class(&m);
                *self.stricter.entry(class.clone()).or_default() += 1;
                self.examples.entry(class).or_insert_with(|| {
                    format!("{what}: {m}\n{}", ktap_bpf::asm::disasm_listing(insns))
                });
            }
            (Ok(()), Verdict::Rejected { .. }) => self.violations.push(format!(
                "{what}: ktap accepts, the kernel rejects: {}\n{}",
                theirs.reason(),
                ktap_bpf::asm::disasm_listing(insns)
            )),
        }
    }

    fn total(&self) -> usize {
        self.both_accept
            + self.both_reject
            + self.stricter.values().sum::<usize>()
            + self.violations.len()
    }

    fn report(&self, title: &str) {
        let stricter: usize = self.stricter.values().sum();
        let total = self.total();
        let agree = self.both_accept + self.both_reject;
        eprintln!(
            "{title}: {total} programs; agree on {agree} ({:.2}%): both accept {}, both reject {}; ktap stricter on {stricter}; ktap accepts what the kernel rejects: {}",
            100.0 * agree as f64 / total.max(1) as f64,
            self.both_accept,
            self.both_reject,
            self.violations.len()
        );
        for (reason, n) in &self.stricter {
            let why = EXPLAINED
                .iter()
                .find(|(k, _)| reason.contains(k))
                .map_or("UNEXPLAINED", |(_, why)| why);
            eprintln!("  {n:5}  {reason}  -- {why}");
            if why == "UNEXPLAINED" || std::env::var_os("KTAP_DIFF_EXAMPLES").is_some() {
                eprintln!("{}", self.examples[reason]);
            }
        }
        for v in &self.violations {
            eprintln!("VIOLATION {v}");
        }
    }

    fn check(&self) {
        assert!(
            self.violations.is_empty(),
            "{} programs ktap accepts are rejected by the kernel:\n{}",
            self.violations.len(),
            self.violations.join("\n")
        );
        for reason in self.stricter.keys() {
            assert!(
                EXPLAINED.iter().any(|(k, _)| reason.contains(k)),
                "ktap rejects, for an unexplained reason, programs the kernel accepts: {reason}"
            );
        }
    }
}

/// A reason without its numbers, so that cases group.
fn reason_class(m: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in m.chars() {
        let digit = c.is_ascii_digit() || (in_number && c.is_ascii_hexdigit());
        if digit && !in_number {
            if out.ends_with('-') {
                out.pop();
            }
            out.push('N');
        }
        if !digit {
            out.push(c);
        }
        in_number = digit;
    }
    out.chars().take(100).collect()
}

/// Maps are created once per shape and shared by every program using that shape.
#[derive(Default)]
struct MapCache(HashMap<Vec<(u32, u32, u32, u32)>, VerdictMaps>);

impl MapCache {
    fn get(&mut self, maps: &[MapDef]) -> &VerdictMaps {
        let key: Vec<_> = maps
            .iter()
            .map(|m| (m.kind as u32, m.key_size, m.value_size, m.max_entries))
            .collect();
        self.0
            .entry(key)
            .or_insert_with(|| VerdictMaps::create(maps).expect("maps for a verdict"))
    }
}

fn ask(maps: &mut MapCache, t: ProgType, insns: &[Insn], defs: &[MapDef]) -> Verdict {
    kernel_verdict(t.kernel_type(), insns, maps.get(defs)).expect("the kernel's verdict")
}

#[test]
fn compiled_programs_are_accepted_by_both() {
    let Some(limits) = kernel() else { return };
    let mut maps = MapCache::default();
    let mut tally = Tally::default();
    let live = ktap_loader::TracefsKernel::new().expect("tracefs");
    let fixture = common::FixtureKernel::new();
    // The samples against this machine's tracepoints, everything against the compiler's
    // fixture (compiling the kprobe tests against the live kallsyms takes long in a debug build).
    let samples = common::scripts_under(&common::root().join("samples"));
    let mut programs = common::compile_all(samples, &live, Target::host());
    programs.extend(common::compiled(&fixture, Target::host()));
    assert!(programs.len() >= 20, "{} programs", programs.len());
    for (path, p) in &programs {
        // One of each distinct body (a glob shares its code but for the event's name).
        let mut seen = std::collections::HashSet::new();
        let ours = verify_program_with(p, &limits);
        for (i, probe) in p.probes.iter().enumerate() {
            if !seen.insert(probe.func.insns.clone()) || seen.len() > 8 {
                continue;
            }
            let t = ProgType::for_event(&probe.event, &p.target);
            let theirs = ask(&mut maps, t, &probe.func.insns, &p.maps);
            let mine = match &ours {
                Err((j, e)) if *j == i => Err(e.message.clone()),
                _ => Ok(()),
            };
            tally.record(
                &format!("{} probe {}", path.display(), probe.name),
                mine,
                &theirs,
                &probe.func.insns,
            );
        }
    }
    tally.report("compiled scripts");
    tally.check();
    assert!(
        tally.stricter.is_empty(),
        "ktap rejects compiled programs the kernel accepts"
    );
    // Compiler output both verifiers reject is a compiler bug ktap's verifier caught before
    // the kernel saw it: agreement, but worth seeing.
    for r in &tally.rejected_by_both {
        eprintln!("compiler output both verifiers reject: {r}");
    }
}

#[test]
fn golden_files_agree_with_the_kernel() {
    let Some(_) = kernel() else { return };
    let mut maps = MapCache::default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let target = Target::host();
    let mut checked = 0;
    for dir in ["accept", "reject"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            let p = asmfile::parse(&std::fs::read_to_string(&f).unwrap(), &target).unwrap();
            let t = p.prog_type.unwrap_or(ProgType::Tracepoint);
            let directive = |k: &str| {
                p.directives
                    .iter()
                    .find(|(d, _)| d == k)
                    .map(|(_, v)| v.clone())
            };
            let limits = directive("kernel")
                .and_then(|v| Limits::for_release(&v))
                .unwrap_or_default();
            if directive("kernel-skip").is_some() {
                continue;
            }
            let ours = verify(t, &p.insns, &p.maps, &limits);
            let theirs = ask(&mut maps, t, &p.insns, &p.maps);
            let name = f.display();
            match (&ours, &theirs) {
                (Ok(_), Verdict::Rejected { .. }) => {
                    panic!(
                        "{name}: ktap accepts, the kernel rejects: {}",
                        theirs.reason()
                    )
                }
                (Err(e), Verdict::Accepted) => {
                    // A deliberate strictness, or the limits of an older kernel than this one.
                    assert!(
                        directive("kernel-accepts").is_some() || directive("kernel").is_some(),
                        "{name}: ktap rejects ({e}), the kernel accepts; mark it `; kernel-accepts:` with the reason"
                    );
                }
                (Err(e), Verdict::Rejected { .. }) => {
                    eprintln!(
                        "{name}\n  ktap:   {}\n  kernel: {}",
                        e.message,
                        theirs.reason()
                    )
                }
                (Ok(_), Verdict::Accepted) => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 40);
}

/// Runs `count` generated programs from `first` through both verifiers.
fn generated(first: u64, count: u64) {
    let Some(limits) = kernel() else { return };
    let mut maps = MapCache::default();
    let mut tally = Tally::default();
    let target = Target::host();
    let limits = limits.for_target(&target);
    let mut by_snippet: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let (mut ours_time, mut theirs_time) = (Duration::ZERO, Duration::ZERO);
    let mut slowest = (Duration::ZERO, 0);
    let mut kernel_slowest = (Duration::ZERO, 0);
    for seed in first..first + count {
        let case = gen::generate(seed, &target);
        let t = Instant::now();
        let ours = verify(case.prog_type, &case.insns, &case.maps, &limits)
            .map(|_| ())
            .map_err(|e| e.message);
        let mine = t.elapsed();
        ours_time += mine;
        slowest = slowest.max((mine, seed));
        let accepted = ours.is_ok();
        let t = Instant::now();
        let theirs = ask(&mut maps, case.prog_type, &case.insns, &case.maps);
        let took = t.elapsed();
        theirs_time += took;
        kernel_slowest = kernel_slowest.max((took, seed));
        if took > Duration::from_millis(200) {
            eprintln!(
                "  slow for the kernel: seed {seed} ({}) {took:?}",
                case.what.join(", ")
            );
        }
        for w in &case.what {
            let e = by_snippet.entry(w).or_default();
            e.0 += 1;
            e.1 += usize::from(accepted);
        }
        tally.record(
            &format!("seed {seed} ({})", case.what.join(", ")),
            ours,
            &theirs,
            &case.insns,
        );
    }
    tally.report(&format!("generated programs {first}..{}", first + count));
    eprintln!("  time: ktap {ours_time:?} (slowest: seed {} in {:?}), kernel {theirs_time:?} (slowest: seed {} in {:?})", slowest.1, slowest.0, kernel_slowest.1, kernel_slowest.0);
    let snippets: Vec<String> = by_snippet
        .iter()
        .map(|(w, (n, a))| format!("{w} {a}/{n}"))
        .collect();
    eprintln!("  accepted per snippet: {}", snippets.join(", "));
    tally.check();
    // The generator must reach both sides of the line, or the comparison says little.
    assert!(
        tally.both_accept * 5 > tally.total(),
        "too few accepted programs"
    );
    assert!(
        tally.both_reject * 5 > tally.total(),
        "too few rejected programs"
    );
}

#[test]
fn generated_programs_agree_fast_subset() {
    generated(0, 1000);
}

#[test]
#[ignore = "10,000 programs through the kernel: `make verifier-diff`"]
fn generated_programs_agree_ten_thousand() {
    generated(1_000_000, 10_000);
}
