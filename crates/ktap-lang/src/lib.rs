//! The ktap language: from script text to a [`ktap_bpf::Program`].
//!
//! Stages, each a module with one entry function: [`parser::parse`] (driving the lexer),
//! [`alias::resolve`] (names for built-in functions), [`types::check`], [`lower::lower`],
//! [`regalloc::allocate`] and [`emit::emit`]; [`compile`] runs them in order. Nothing here
//! performs I/O: what the compiler must know about the kernel comes through
//! [`ktap_bpf::kernel::Kernel`].

pub mod alias;
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
use ktap_bpf::{Event, Function, Probe, Program, Source, Target, UserBlock, When};
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
                cpu: None,
                timestamps: false,
                endian: target.endian,
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
    let mut script = parser::parse(source)?;
    alias::resolve(&mut script);
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
                optional: false,
            }),
            // Its program tests the call's number itself.
            BlockKind::Syscalls { raw, name } => probes.push(Probe {
                name,
                event: Event::Tracepoint {
                    category: "raw_syscalls".into(),
                    name: raw.into(),
                },
                func,
                span: block.span,
                optional: false,
            }),
            BlockKind::Site { site } => probes.push(Probe {
                name: site.symbol().to_string(),
                optional: site.from_pattern(),
                event: match site {
                    types::ProbeSite::Kprobe {
                        symbol,
                        offset,
                        ret,
                        ..
                    } => Event::Kprobe {
                        symbol,
                        offset,
                        ret,
                    },
                    types::ProbeSite::Uprobe {
                        path,
                        symbol,
                        offset,
                        ret,
                        ..
                    } => Event::Uprobe {
                        path,
                        symbol,
                        offset,
                        ret,
                    },
                },
                func,
                span: block.span,
            }),
            BlockKind::Profile { period_ns } => probes.push(Probe {
                name: "profile".into(),
                event: Event::Profile {
                    period_ns,
                    cpu: opts.limits.cpu,
                },
                func,
                span: block.span,
                optional: false,
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
        events: lowered.events,
    })
}

/// Each block's instructions in the kernel's verifier-log syntax, under the script line each
/// group came from.
pub fn listing(prog: &Program) -> String {
    let mut s = String::new();
    let mut block = |title: String, f: &Function| {
        s.push_str(&format!("{}: {} instructions\n", title, f.insns.len()));
        let mut last_line = 0;
        let mut pc = 0;
        while pc < f.insns.len() {
            let span = f.spans.get(pc).copied().unwrap_or_default();
            let (line, _) = prog.source.line_col(span.lo);
            if line != last_line {
                s.push_str(&format!(
                    "; {}:{}: {}\n",
                    prog.source.name,
                    line,
                    prog.source.line_text(line).trim()
                ));
                last_line = line;
            }
            s.push_str(&format!(
                "{:4}: {}\n",
                pc,
                ktap_bpf::asm::disasm_one(&f.insns, pc)
            ));
            pc += if f.insns[pc].is_ld_imm64() { 2 } else { 1 };
        }
    };
    // A glob gives many probes with the same code: list each body once, naming its events
    // (grouped through a map: a glob over kernel functions has tens of thousands of probes).
    let mut groups: Vec<Vec<&str>> = Vec::new();
    let mut first: Vec<usize> = Vec::new();
    let mut by_code: std::collections::HashMap<&[ktap_bpf::Insn], usize> =
        std::collections::HashMap::new();
    for (i, p) in prog.probes.iter().enumerate() {
        let g = *by_code.entry(p.func.insns.as_slice()).or_insert_with(|| {
            groups.push(Vec::new());
            first.push(i);
            groups.len() - 1
        });
        groups[g].push(p.name.as_str());
    }
    for (same, i) in groups.iter().zip(first) {
        let p = &prog.probes[i];
        let title = if same.len() > 3 {
            format!(
                "probe {} (and {} more with the same code)",
                p.name,
                same.len() - 1
            )
        } else {
            format!("probe {}", same.join(", "))
        };
        block(title, &p.func);
    }
    for u in &prog.user {
        let name = match u.when {
            When::Begin => "top-level code".to_string(),
            When::Tick { period_ns } => format!("tick every {} ns", period_ns),
            When::End => "trace_end".to_string(),
        };
        block(name, &u.func);
    }
    // Maps that start with entries: a key and the value as text (the names of the calls a
    // probe on raw_syscalls stands for).
    for (i, m) in prog
        .maps
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.init.is_empty())
    {
        s.push_str(&format!(
            "map[{}] {}: {} of {} entries\n",
            i,
            m.name,
            m.init.len(),
            m.max_entries
        ));
        for (key, value) in &m.init {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            s.push_str(&format!("{:4}: {}\n", key, String::from_utf8_lossy(text)));
        }
    }
    s
}

/// The places that hold values of several types and so get a tagged representation, one line
/// each (`file:line:col: ...`), for `ktap -v`. Empty when the script does not check.
pub fn tagged_places(source: &Source, kernel: &dyn Kernel, opts: &Options) -> Vec<String> {
    let Ok(script) = parser::parse(source) else {
        return Vec::new();
    };
    let Ok(typed) = types::check(&script, kernel, &opts.limits) else {
        return Vec::new();
    };
    let place = |span: ktap_bpf::Span| {
        let (line, col) = source.line_col(span.lo);
        format!("{}:{}:{}", source.name, line, col)
    };
    let mut out = Vec::new();
    for g in &typed.globals {
        if let types::Ty::Any(_) = g.slot.ty {
            out.push(format!(
                "{}: variable `{}` holds values of several types (tagged)",
                place(g.span),
                g.name
            ));
        }
    }
    for t in &typed.tables {
        for (what, slot) in [("keys", t.key), ("values", t.value)] {
            if let types::Ty::Any(_) = slot.ty {
                out.push(format!(
                    "{}: the {} of table `{}` are of several types (tagged)",
                    place(t.span),
                    what,
                    t.name
                ));
            }
        }
    }
    out
}
