//! ktap's own eBPF verifier: proves a program safe before the kernel sees it, says why not in
//! the kernel's words, and names the instruction so the caller can point at the script line.
//!
//! [`verify`] is a linear driver of named passes over one function (with its bpf-to-bpf
//! callees):
//!
//! 1. **validity** ([`op`]): every instruction against a data table per opcode: fields,
//!    registers, reserved bits, `ld_imm64` pairs, map references.
//! 2. **cfg** ([`cfg`]): jumps in range and not into an `ld_imm64`, functions ending in `exit`,
//!    no unreachable code, no recursion, loops only where the kernel allows bounded loops.
//! 3. **walk** ([`walk`]): every path with register and stack states: types, bounds, null
//!    tests, context, stack and map value accesses, helper prototypes, `r0` at exit, the
//!    instruction budget, and the proof that each loop ends.
//! 4. **stack**: the combined stack of the deepest call chain.
//!
//! The promise: what this verifier accepts, the kernel accepts; where the kernel would reject,
//! this rejects first. It is stricter than the kernel in a few places, each for a reason
//! given where it is decided (reads of uninitialised stack, variable stack offsets, narrow
//! spills). Nothing here performs I/O.

mod cfg;
mod ctx;
mod op;
mod scalar;
mod state;
mod tnum;
mod walk;

pub mod asmfile;
pub mod gen;

pub use ctx::ProgType;

use ktap_bpf::insn::Insn;
use ktap_bpf::{Arch, MapDef, Program, Target};
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;

/// What the target kernel allows; [`Limits::default`] is a privileged loader on any kernel
/// from 5.3 on (bounded loops, a million instructions) without the cpu v4 instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest program the kernel loads.
    pub max_insns: usize,
    /// Instructions the walk may process over all paths (`BPF_COMPLEXITY_LIMIT_INSNS`).
    pub max_processed: u64,
    /// Back edges are allowed, when the walk proves the loop ends (Linux 5.3).
    pub bounded_loops: bool,
    /// Sign-extending loads and moves, signed division, `bswap`, `gotol` (Linux 6.6).
    pub cpu_v4: bool,
    /// Map values must be accessed at aligned offsets: kernels of architectures without
    /// efficient unaligned access demand it.
    pub strict_alignment: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::for_kernel(5, 3)
    }
}

impl Limits {
    /// The limits of a privileged loader on Linux `major.minor`.
    pub fn for_kernel(major: u32, minor: u32) -> Limits {
        let v = (major, minor);
        Limits {
            max_insns: if v >= (5, 2) { 1_000_000 } else { 4096 },
            max_processed: if v >= (5, 2) {
                1_000_000
            } else if v >= (4, 14) {
                131_072
            } else {
                65_536
            },
            bounded_loops: v >= (5, 3),
            cpu_v4: v >= (6, 6),
            strict_alignment: false,
        }
    }

    /// The limits for a kernel release string as `uname -r` prints it (`6.1.0-18-amd64`).
    pub fn for_release(release: &str) -> Option<Limits> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Limits::for_kernel(major, minor))
    }

    /// These limits for programs that run on `target`: strict alignment everywhere but on
    /// x86_64 and arm64, whose kernels have efficient unaligned access on every CPU.
    pub fn for_target(self, target: &Target) -> Limits {
        Limits {
            strict_alignment: self.strict_alignment
                || !matches!(target.arch, Arch::X86_64 | Arch::Aarch64),
            ..self
        }
    }
}

/// What verifying one program found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stats {
    pub insns: usize,
    /// Instructions walked over all paths.
    pub processed: u64,
    /// The budget `processed` had.
    pub limit: u64,
    /// States kept at prune points, and the most at one instruction.
    pub states: usize,
    pub max_states_per_insn: usize,
    /// Bytes of stack the deepest call chain uses (one function: its deepest offset).
    pub stack_depth: u32,
    /// Functions: the program and its bpf-to-bpf callees.
    pub funcs: usize,
    /// For a probe of [`verify_program`] verified as an earlier one (the same code but for
    /// constants the verdict cannot depend on), that probe's index.
    pub same_as: Option<usize>,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        write!(
            f,
            "{} instructions, {} processed (limit {}), {} state{} kept",
            self.insns,
            self.processed,
            self.limit,
            self.states,
            plural(self.states)
        )?;
        if self.states > 1 {
            write!(
                f,
                " (at most {} at one instruction)",
                self.max_states_per_insn
            )?;
        }
        write!(f, ", stack {} bytes", self.stack_depth)?;
        if self.funcs > 1 {
            write!(f, ", {} functions", self.funcs)?;
        }
        Ok(())
    }
}

/// The verifier's passes, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Validity,
    Cfg,
    Walk,
    Stack,
}

impl Pass {
    pub fn name(self) -> &'static str {
        match self {
            Pass::Validity => "validity",
            Pass::Cfg => "cfg",
            Pass::Walk => "walk",
            Pass::Stack => "stack",
        }
    }
}

/// Why a program was rejected, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The instruction the message is about; map it to the script with `Function::spans`.
    pub insn: usize,
    pub pass: Pass,
    /// The kernel's words where the kernel has them.
    pub message: String,
    /// The registers of the failing path at that instruction, as a kernel log shows them
    /// (`R1=ctx R10=fp0`); empty before the walk.
    pub regs: String,
}

impl VerifyError {
    pub(crate) fn validity(insn: usize, message: String) -> VerifyError {
        VerifyError {
            insn,
            pass: Pass::Validity,
            message,
            regs: String::new(),
        }
    }
    pub(crate) fn cfg(insn: usize, message: String) -> VerifyError {
        VerifyError {
            insn,
            pass: Pass::Cfg,
            message,
            regs: String::new(),
        }
    }
    pub(crate) fn walk(insn: usize, message: String, regs: String) -> VerifyError {
        VerifyError {
            insn,
            pass: Pass::Walk,
            message,
            regs,
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "insn {}: {}", self.insn, self.message)
    }
}

impl std::error::Error for VerifyError {}

/// Verifies one program of type `prog` that references `maps` (its `ld_imm64` map indices).
pub fn verify(
    prog: ProgType,
    insns: &[Insn],
    maps: &[MapDef],
    limits: &Limits,
) -> Result<Stats, VerifyError> {
    if insns.len() > limits.max_insns {
        return Err(VerifyError::validity(
            0,
            format!(
                "the program has {} instructions; the target kernel loads at most {}",
                insns.len(),
                limits.max_insns
            ),
        ));
    }
    let ops = op::decode(insns, maps, limits.cpu_v4)?;
    let cfg = cfg::build(&ops, limits.bounded_loops)?;
    let walked = walk::walk(&ops, &cfg, prog, maps, limits)?;
    let stack_depth = combined_stack(&cfg, &walked.depth)?;
    Ok(Stats {
        insns: insns.len(),
        processed: walked.processed,
        limit: limits.max_processed,
        states: walked.states,
        max_states_per_insn: walked.max_states_per_insn,
        stack_depth,
        funcs: cfg.funcs.len(),
        same_as: None,
    })
}

/// The stack of the deepest call chain. Each frame takes its depth rounded up to 32 bytes, as
/// the kernel's interpreter allocates it, and all of them together must fit in 512 bytes.
fn combined_stack(cfg: &cfg::Cfg, depth: &[u32]) -> Result<u32, VerifyError> {
    if cfg.funcs.len() == 1 {
        return Ok(depth.first().copied().unwrap_or(0));
    }
    let round = |d: u32| d.max(1).div_ceil(32) * 32;
    // Functions in an order where every callee comes before its callers (the call graph has
    // no cycles: the cfg pass refused recursion).
    let n = cfg.funcs.len();
    let mut total: Vec<Option<(u32, u32)>> = vec![None; n];
    let mut stack = vec![(0usize, false)];
    while let Some((f, expanded)) = stack.pop() {
        if total[f].is_some() {
            continue;
        }
        if !expanded {
            stack.push((f, true));
            stack.extend(
                cfg.callees[f]
                    .iter()
                    .filter(|&&c| total[c].is_none())
                    .map(|&c| (c, false)),
            );
            continue;
        }
        let (deepest, calls) = cfg.callees[f]
            .iter()
            .filter_map(|&c| total[c])
            .max()
            .unwrap_or((0, 0));
        total[f] = Some((round(depth[f]) + deepest, calls + 1));
    }
    let (bytes, calls) = total[0].unwrap_or((0, 1));
    if bytes > ktap_bpf::insn::STACK_SIZE as u32 {
        return Err(VerifyError {
            insn: 0,
            pass: Pass::Stack,
            message: format!("combined stack size of {calls} calls is {bytes}. Too large"),
            regs: String::new(),
        });
    }
    Ok(bytes)
}

/// The instructions with what cannot change the verdict taken out: the value a `BPF_ST`
/// stores is only ever known to the walk as zero or not zero (loading it back gives an unknown
/// number), so probes that differ only in such constants (a glob of tracepoints, each storing
/// its own name) share one verification.
fn shape(insns: &[Insn]) -> Vec<Insn> {
    insns
        .iter()
        .map(|i| {
            let st = i.class() == ktap_bpf::insn::BPF_ST;
            Insn {
                imm: if st { i32::from(i.imm != 0) } else { i.imm },
                ..*i
            }
        })
        .collect()
}

/// Probes verified so far, by type and [`shape`]: the first such probe and its statistics.
type Verified = HashMap<(ProgType, Vec<Insn>), (usize, Stats), BuildHasherDefault<walk::FxHasher>>;

/// Verifies every probe of a compiled program with [`Limits::default`] for its target.
pub fn verify_program(p: &Program) -> Result<Vec<Stats>, (usize, VerifyError)> {
    verify_program_with(p, &Limits::default())
}

/// Verifies every probe of `p`, in order; the error names the probe by its index. Probes with
/// the same instructions (a tracepoint glob) are verified once.
pub fn verify_program_with(
    p: &Program,
    limits: &Limits,
) -> Result<Vec<Stats>, (usize, VerifyError)> {
    let limits = limits.for_target(&p.target);
    let mut seen: Verified = HashMap::default();
    let mut out = Vec::with_capacity(p.probes.len());
    for (i, probe) in p.probes.iter().enumerate() {
        let t = ProgType::for_event(&probe.event, &p.target);
        let key = (t, shape(&probe.func.insns));
        let stats = match seen.get(&key) {
            Some(&(first, s)) => Stats {
                same_as: Some(first),
                ..s
            },
            None => {
                let s = verify(t, &probe.func.insns, &p.maps, &limits).map_err(|e| (i, e))?;
                seen.insert(key, (i, s));
                s
            }
        };
        out.push(stats);
    }
    Ok(out)
}
