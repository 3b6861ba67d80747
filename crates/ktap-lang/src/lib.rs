//! The ktap language: from script text to a [`ktap_bpf::Program`].
//!
//! Stages, each a module with one entry function: [`parser::parse`] (driving the lexer),
//! [`types::check`], [`lower::lower`], [`regalloc::allocate`] and [`emit::emit`]; [`compile`]
//! runs them in order. Nothing here performs I/O: what the compiler must know about the kernel
//! comes through [`ktap_bpf::kernel::Kernel`].

pub mod ast;
pub mod diag;
pub mod emit;
pub mod ir;
pub mod lexer;
pub mod lower;
pub mod parser;
pub mod pretty;
pub mod regalloc;
pub mod types;

use diag::Diagnostic;
use ktap_bpf::kernel::Kernel;
use ktap_bpf::{Event, Probe, Program, Source, Target, UserBlock, When};
use lower::BlockKind;
pub use types::Limits;

/// What a compilation is for.
#[derive(Clone, Debug)]
pub struct Options {
    pub target: Target,
    pub limits: Limits,
}

impl Options {
    /// Defaults of LANGUAGE.md §7 for `target`, with the script's name and arguments.
    pub fn new(target: Target, script_args: Vec<String>) -> Options {
        Options {
            target,
            limits: Limits {
                str_cap: 64,
                table_cap: 2048,
                script_args,
                pid: None,
            },
        }
    }
}

/// Compiles a script into a program for `opts.target`, or every error found.
pub fn compile(
    source: &Source,
    kernel: &dyn Kernel,
    opts: &Options,
) -> Result<Program, Vec<Diagnostic>> {
    let script = parser::parse(source)?;
    let typed = types::check(&script, kernel, &opts.limits)?;
    let lowered = lower::lower(&script, &typed, opts.target, &opts.limits)?;
    let mut probes = Vec::new();
    let mut user = Vec::new();
    for block in lowered.blocks {
        let func = regalloc::allocate(&block.ir)
            .and_then(|a| emit::emit(&block.ir, &a))
            .map_err(|m| vec![Diagnostic::error(block.span, m)])?;
        match block.kind {
            BlockKind::Probe { event } => probes.push(Probe {
                name: event.name.clone(),
                event: Event::Tracepoint {
                    category: event.category,
                    name: event.name,
                },
                func,
                span: block.span,
            }),
            BlockKind::Profile { period_ns } => probes.push(Probe {
                name: "profile".into(),
                event: Event::Profile { period_ns },
                func,
                span: block.span,
            }),
            BlockKind::Begin => user.push(UserBlock {
                when: When::Begin,
                func,
                span: block.span,
            }),
            BlockKind::Tick { period_ns } => user.push(UserBlock {
                when: When::Tick { period_ns },
                func,
                span: block.span,
            }),
            BlockKind::End => user.push(UserBlock {
                when: When::End,
                func,
                span: block.span,
            }),
        }
    }
    Ok(Program {
        target: opts.target,
        source: source.clone(),
        maps: lowered.maps,
        formats: lowered.formats,
        probes,
        user,
    })
}
