//! The only part of ktap that touches the kernel: turns a compiled [`Program`] into loaded,
//! attached BPF programs with aya, reads their output records, and gives the userspace VM
//! byte-level access to their maps. Everything it creates is owned by a [`Session`].
//!
//! Cleanup rests on one fact: every kernel object ktap creates (maps, programs, perf events,
//! BPF links) is held only through a file descriptor the [`Session`] owns. Nothing is pinned
//! and nothing is written to tracefs, so dropping the Session (or the process dying for any
//! reason, signals included) releases all of it.
//!
//! 32-bit PowerPC has no aya (aya-obj has no kernel bindings for it): there the crate is its
//! aya-free parts, tracefs and the perf-event executor's rings, and loads nothing.

#[cfg(not(target_arch = "powerpc"))]
pub mod elf;
pub mod error;
#[cfg(not(target_arch = "powerpc"))]
mod maps;
pub mod perf_exec;
#[cfg(not(target_arch = "powerpc"))]
mod session;
pub mod test_run;
pub mod tracefs;
pub mod verdict;

pub use error::LoadError;
#[cfg(not(target_arch = "powerpc"))]
pub use session::{load, LoadOptions, Session};
pub use tracefs::TracefsKernel;
