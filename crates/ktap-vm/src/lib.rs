//! The userspace eBPF virtual machine: runs the bytecode the compiler emits for the kernel, with
//! tagged, bounds-checked memory and the helpers provided by a [`Host`].
//!
//! It runs a script's top-level code, its `tick` blocks and `trace_end` against the live kernel
//! maps (the loader implements [`Host`]), and whole probes on kernels without BPF, dry runs and
//! tests against [`MemHost`]. It performs no I/O itself.
//!
//! # Memory
//!
//! No register ever holds a host address. A pointer is a tagged 64-bit value, so the program's
//! pointer arithmetic and comparisons work unchanged:
//!
//! ```text
//!  63      56 55  52 51          32 31                     0
//! +----------+------+--------------+------------------------+
//! |   0x4b   | kind |    index     |  0x8000_0000 + offset  |
//! +----------+------+--------------+------------------------+
//! ```
//!
//! `kind` is 0 for the context (the entry `r1` buffer), 1 for a stack frame (`index` = call depth;
//! `r10` points at offset 512, the end), 2 for a map reference (`index` = map, never dereferenced)
//! and 3 for a map value returned by a lookup or a direct value access (`index` = the VM's copy,
//! read-only data when the map is in [`RunEnv::read_only_maps`]). The offset is biased by
//! 2^31 so that moving a pointer below its region never borrows into the tag, and the fault names
//! the region and offset the program really used. Every load and store decodes the tag and checks
//! the region's bounds and writability; anything that is not a live pointer faults with the
//! kernel's `invalid mem access`.
//!
//! # Map values
//!
//! A lookup copies the value into a VM region and returns a pointer to it; the same key of the
//! same map always gets the same region, as the kernel returns the same element. Stores through
//! the pointer mark the copy dirty, and dirty copies are written back with `BPF_EXIST` before the
//! next helper that reads or writes maps, and when the run ends (also by a fault), so
//! `lock *(u64 *)(r0 + 0) += r1` on a looked-up value changes the map as it does in the kernel.

mod helpers;
mod host;
mod interp;
mod mem;
mod memhost;

pub use host::{Host, Space, E2BIG, EEXIST, EFAULT, EINVAL, ENOENT};
pub use memhost::MemHost;

use ktap_bpf::{Endian, Function, MapDef};
use std::fmt;

/// The instruction budget [`RunEnv::new`] sets: enough for a `trace_end` that walks large tables,
/// small enough that an endless loop stops within about a second.
pub const DEFAULT_BUDGET: u64 = 50_000_000;

/// What a run needs besides the code: the program's maps, the target's byte order and limits.
#[derive(Clone, Copy, Debug)]
pub struct RunEnv<'a> {
    /// The program's maps; `ld_imm64` with `src == BPF_PSEUDO_MAP_FD` indexes this slice.
    pub maps: &'a [MapDef],
    /// The byte order of the target: every load and store, and `to_le`/`to_be`, follow it.
    pub endian: Endian,
    /// The most instructions one run may execute before it faults.
    pub budget: u64,
    /// Whether the program may store into the context, which the kernel forbids for tracepoint
    /// and perf-event contexts.
    pub ctx_writable: bool,
    /// Maps the program may only read (the kernel's `BPF_F_RDONLY_PROG`, as for `.rodata`):
    /// pointers to their values are read-only data, and stores through them fault.
    pub read_only_maps: &'a [u32],
}

impl<'a> RunEnv<'a> {
    /// An environment with [`DEFAULT_BUDGET`] and a read-only context.
    pub fn new(maps: &'a [MapDef], endian: Endian) -> RunEnv<'a> {
        RunEnv {
            maps,
            endian,
            budget: DEFAULT_BUDGET,
            ctx_writable: false,
            read_only_maps: &[],
        }
    }

    /// Whether map `map` is read-only to the program.
    pub fn read_only(&self, map: u32) -> bool {
        self.read_only_maps.contains(&map)
    }
}

/// Why a run stopped early: the index of the instruction that could not execute and what was
/// wrong, in the kernel verifier's words where they fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub pc: usize,
    pub message: String,
}

impl Fault {
    pub(crate) fn new(pc: usize, message: impl Into<String>) -> Fault {
        Fault {
            pc,
            message: message.into(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "insn {}: {}", self.pc, self.message)
    }
}

impl std::error::Error for Fault {}

/// Runs `func` from its first instruction with `r1` pointing at `ctx` and returns `r0` at the
/// final `exit`. Map values the program changed through pointers reach `host` before this
/// returns, whether the run ended by `exit` or by a fault.
pub fn run(
    func: &Function,
    ctx: &mut [u8],
    env: &RunEnv,
    host: &mut dyn Host,
) -> Result<u64, Fault> {
    interp::Vm::new(&func.insns, ctx, env, host).run()
}
