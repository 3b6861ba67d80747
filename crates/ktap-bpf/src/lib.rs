//! The eBPF instruction set and ktap's compiled-program format: the plain data every stage reads.
//!
//! The compiler produces a [`Program`]; the verifier, the VM, the ELF writer, the object-file writer
//! and the loader consume it. Nothing here performs I/O, and nothing here assumes the host's byte
//! order or word size: those are fields of [`Target`].

pub mod arch;
pub mod asm;
pub mod btf;
pub mod helpers;
pub mod insn;
pub mod kernel;
pub mod program;
pub mod syscalls;
pub mod testcase;

pub use helpers::Helper;
pub use insn::{Endian, Insn};
pub use program::*;
