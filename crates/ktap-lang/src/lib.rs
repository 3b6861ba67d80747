//! The ktap language: from script text to a [`ktap_bpf::Program`].
//!
//! Stages, each a module with one entry function: [`lexer::lex`], [`parser::parse`],
//! then types, lowering and emission. Nothing here performs I/O: what the compiler must know
//! about the kernel comes through [`ktap_bpf::kernel::Kernel`].

pub mod ast;
pub mod diag;
pub mod lexer;
pub mod parser;
pub mod pretty;
pub mod ir;
pub mod types;
pub mod regalloc;
pub mod emit;
