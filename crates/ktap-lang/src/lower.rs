//! Lowering: a checked script to IR, one function per probe (each expanded event) and per
//! userspace block, plus the maps and output formats they share.
//!
//! Values: numbers and booleans live in virtual registers; strings live in stack buffers whose
//! size is their capacity rounded up to 8 bytes, always NUL-padded so they can serve as map keys
//! and be compared word by word; tables are BPF maps. Reading a missing table entry gives 0 or
//! the empty string; `t[k] == nil` and `if (t[k])` test presence. Globals live in one array map
//! entry whose address each block looks up once. Functions are inlined at every call.

use crate::ast::*;
use crate::diag::Diagnostic;
use crate::ir::{Arg, Base, Inst, IrFunc, Label, Opnd, VReg};
use crate::types::{
    const_int, fetch_ty, site_filter_field, Binding, BuiltinVar, Limits, Mode, ProbeSite,
    SiteField, TaskRead, Ty, Typed,
};
use ktap_bpf::arch::{self, ArgLoc, CallKind, RegSlot};
use ktap_bpf::helpers as h;
use ktap_bpf::insn::*;
use ktap_bpf::kernel::{TpField, TpFormat};
use ktap_bpf::syscalls;
use ktap_bpf::{
    agg, Action, Field, Format, MapDef, MapKind, MapRole, Span, ValueType, RECORD_HEADER, TAG_BOOL,
    TAG_NIL, TAG_NUM, TAG_STR,
};
use std::collections::HashMap;

/// `BPF_F_CURRENT_CPU` for `perf_event_output`.
const CURRENT_CPU: i64 = 0xffff_ffff;
/// `map_update_elem` flags.
const BPF_ANY: i64 = 0;
const BPF_NOEXIST: i64 = 1;
const E2BIG: i32 = 7;
/// Bytes of the per-CPU scratch value: a string being assembled may spill a whole string past
/// its end in the verifier's worst case (offset < cap, size ≤ cap), then 24 bytes of digits.
const SCRATCH_STR: u32 = 128;
const SCRATCH_SIZE: u32 = SCRATCH_STR + 24;
/// Distinct stacks the stack map holds; more are not recorded (printed as such).
const STACK_ENTRIES: u32 = 4096;
/// Bytes of a raw tracepoint record an `argstr` record carries at most; a longer record
/// (long `__data_loc` strings) is cut, and renders as far as it goes.
const ARGSTR_RAW: u32 = 1024;

/// What lowering produces for the whole script.
pub struct Lowered {
    pub maps: Vec<MapDef>,
    pub formats: Vec<Format>,
    pub blocks: Vec<LoweredBlock>,
    /// The tracepoint layouts `argstr` records name by index.
    pub events: Vec<TpFormat>,
}

/// One function and where it runs.
pub struct LoweredBlock {
    pub kind: BlockKind,
    pub ir: IrFunc,
    pub span: Span,
}

pub enum BlockKind {
    Probe {
        event: TpFormat,
    },
    /// Many syscall events in one program on `raw_syscalls:RAW` (`sys_enter` or `sys_exit`);
    /// `name` says which in messages.
    Syscalls {
        raw: &'static str,
        name: String,
    },
    /// A kprobe or uprobe.
    Site {
        site: ProbeSite,
    },
    Profile {
        period_ns: u64,
    },
    Begin,
    Tick {
        period_ns: u64,
    },
    End,
}

/// Rounds a byte count up to whole 8-byte words.
fn round8(n: u32) -> u32 {
    n.div_ceil(8) * 8
}

fn vtype(t: Ty) -> ValueType {
    match t {
        Ty::Str(n) => ValueType::Str(round8(n)),
        Ty::Any(n) => ValueType::Any(8 + round8(n)),
        Ty::Stack => ValueType::Stack,
        Ty::UStack => ValueType::UStack,
        Ty::Bool => ValueType::Bool,
        Ty::Addr => ValueType::Addr,
        Ty::Argstr => ValueType::Argstr,
        Ty::Nil | Ty::Unknown => ValueType::Nil,
        _ => ValueType::Int,
    }
}

/// Lowers a trace item's body once for a syscall group, as one program on `raw_syscalls`; `None`
/// when the body reads a field that is not the same in every event of the group (nothing of
/// the attempt is kept then).
fn lower_syscall_group(
    g: &mut Shared,
    group: &SyscallGroup,
    probename_cap: u32,
    stmts: &[&Stmt],
    tr: &Trace,
    filter: Option<&FilterExpr>,
) -> Result<Option<LoweredBlock>, Diagnostic> {
    let saved = g.clone();
    g.field_uses.clear();
    let names = g.syscall_names(group, round8(probename_cap));
    let base = syscalls::base(g.target.arch);
    let ir = {
        let mut f = FnLower::new(g, Mode::Kernel, Some(group.events[0].0));
        f.filter = filter;
        f.syscalls = Some((names, base));
        f.run(stmts, tr.span)?
    };
    if !same_reads(&group.events, &g.field_uses) {
        *g = saved;
        return Ok(None);
    }
    let name = match group.events.as_slice() {
        [(e, _)] => e.name.clone(),
        events => format!("{} ({} system calls)", group.raw, events.len()),
    };
    Ok(Some(LoweredBlock {
        kind: BlockKind::Syscalls {
            raw: group.raw,
            name,
        },
        ir,
        span: tr.span,
    }))
}

/// Lowers every block of a checked script.
pub fn lower(
    script: &Script,
    typed: &Typed,
    target: ktap_bpf::Target,
    limits: &Limits,
) -> Result<Lowered, Vec<Diagnostic>> {
    let mut g = Shared::new(typed, target, limits, &per_cpu_tables(script, typed));
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    let mut begin: Vec<&Stmt> = Vec::new();
    let mut begin_span: Option<Span> = None;
    for (i, item) in script.items.iter().enumerate() {
        let mut run = |g: &mut Shared,
                       kind: BlockKind,
                       mode: Mode,
                       stmts: &[&Stmt],
                       span: Span,
                       event: Option<&TpFormat>,
                       filter: Option<&FilterExpr>,
                       site: Option<&ProbeSite>| {
            let mut f = FnLower::new(g, mode, event);
            f.filter = filter;
            f.site = site;
            match f.run(stmts, span) {
                Ok(ir) => blocks.push(LoweredBlock { kind, ir, span }),
                Err(d) => errors.push(d),
            }
        };
        match item {
            Item::Stmt(s) => {
                if !matches!(s.kind, StmtKind::Function(_)) {
                    begin_span = Some(begin_span.map_or(s.span, |b| b.to(s.span)));
                    begin.push(s);
                }
            }
            Item::Trace(tr) => {
                let stmts: Vec<&Stmt> = tr.body.stmts.iter().collect();
                let info = &typed.traces[&i];
                let filter = tr.filter.as_ref().map(|f| &f.expr);
                let (groups, mut single) = syscall_groups(&info.events, target);
                // Pushed after the events attached one by one (`run` holds the lists until then).
                let (mut merged, mut merged_errors) = (Vec::new(), Vec::new());
                for group in groups {
                    match lower_syscall_group(
                        &mut g,
                        &group,
                        info.probename_cap,
                        &stmts,
                        tr,
                        filter,
                    ) {
                        Ok(Some(block)) => merged.push(block),
                        // The body reads something that differs between the events: each is
                        // a program of its own, still on raw_syscalls where the events do
                        // not fire.
                        Ok(None) if syscalls::events_fire(target.arch) => {
                            single.extend(group.events.iter().map(|(e, _)| *e))
                        }
                        Ok(None) => {
                            for one in group.events {
                                let alone = SyscallGroup {
                                    raw: group.raw,
                                    events: vec![one],
                                };
                                let cap = info.probename_cap;
                                match lower_syscall_group(&mut g, &alone, cap, &stmts, tr, filter) {
                                    Ok(Some(block)) => merged.push(block),
                                    Ok(None) => {}
                                    Err(d) => merged_errors.push(d),
                                }
                            }
                        }
                        Err(d) => merged_errors.push(d),
                    }
                }
                ktap_bpf::kernel::sort_events(&mut single);
                for ev in single {
                    run(
                        &mut g,
                        BlockKind::Probe { event: ev.clone() },
                        Mode::Kernel,
                        &stmts,
                        tr.span,
                        Some(ev),
                        filter,
                        None,
                    );
                }
                // `ftrace:function`'s filter chose the functions probed: it tests no event.
                let ftrace = tr
                    .events
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::Ftrace { .. }));
                let site_filter = filter.filter(|_| !ftrace);
                for site in &info.others {
                    run(
                        &mut g,
                        BlockKind::Site { site: site.clone() },
                        Mode::Kernel,
                        &stmts,
                        tr.span,
                        None,
                        site_filter,
                        Some(site),
                    );
                }
                blocks.extend(merged);
                errors.extend(merged_errors);
            }
            Item::Profile { period, body, span } => {
                let stmts: Vec<&Stmt> = body.stmts.iter().collect();
                run(
                    &mut g,
                    BlockKind::Profile {
                        period_ns: period.ns,
                    },
                    Mode::Kernel,
                    &stmts,
                    *span,
                    None,
                    None,
                    None,
                );
            }
            Item::Tick { period, body, span } => {
                let stmts: Vec<&Stmt> = body.stmts.iter().collect();
                run(
                    &mut g,
                    BlockKind::Tick {
                        period_ns: period.ns,
                    },
                    Mode::User,
                    &stmts,
                    *span,
                    None,
                    None,
                    None,
                );
            }
            Item::TraceEnd { body, span } => {
                let stmts: Vec<&Stmt> = body.stmts.iter().collect();
                run(
                    &mut g,
                    BlockKind::End,
                    Mode::User,
                    &stmts,
                    *span,
                    None,
                    None,
                    None,
                );
            }
        }
    }
    // Values probes take from userspace (the wall clock's offset, the CPU count, the kernel's
    // release) are recorded by the top-level code, which then exists even if the script has
    // none.
    if !begin.is_empty() || g.runtime.any() {
        let span = begin_span.unwrap_or_default();
        let mut f = FnLower::new(&mut g, Mode::User, None);
        f.init_runtime = true;
        match f.run(&begin, span) {
            Ok(ir) => blocks.insert(
                0,
                LoweredBlock {
                    kind: BlockKind::Begin,
                    ir,
                    span,
                },
            ),
            Err(d) => errors.push(d),
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|d| d.span.lo);
        return Err(errors);
    }
    Ok(Lowered {
        maps: g.maps,
        formats: g.formats,
        blocks,
        events: g.events,
    })
}

/// Where, in the globals' array entry, the values probes take from userspace live: byte
/// offsets after the script's own globals.
#[derive(Clone, Copy, Debug, Default)]
struct Runtime {
    /// Nanoseconds to add to `ktime_get_ns()` for the wall clock (`gettimeofday_*`).
    clock: Option<u32>,
    /// The number of online CPUs (`num_cpus()`).
    cpus: Option<u32>,
    /// The kernel's release (`kernel_v()`): offset and buffer size.
    release: Option<(u32, u32)>,
}

impl Runtime {
    fn any(&self) -> bool {
        self.clock.is_some() || self.cpus.is_some() || self.release.is_some()
    }
}

/// What a probe body reads of its event's record, so that one program can stand for several
/// syscall events when each such read means the same in all of them.
#[derive(Clone, Debug)]
enum FieldUse {
    Named(String),
    Arg(u32),
    Argstr,
}

/// Syscall events one program on `raw_syscalls:RAW` stands for, each with its numbers.
struct SyscallGroup<'e> {
    raw: &'static str,
    events: Vec<(&'e TpFormat, Vec<u32>)>,
}

/// Splits a trace item's events into the syscall groups that ride on `raw_syscalls`
/// ([`syscalls::MERGE_MIN`] or more events of one kind, or any number where the kernel's
/// syscall events do not fire) and the events attached one by one.
fn syscall_groups(
    events: &[TpFormat],
    target: ktap_bpf::Target,
) -> (Vec<SyscallGroup<'_>>, Vec<&TpFormat>) {
    let mut rest = Vec::new();
    if !events.iter().any(|e| e.category == "syscalls") {
        return (Vec::new(), events.iter().collect());
    }
    let table = syscalls::Table::new(target.arch);
    let mut enter = SyscallGroup {
        raw: "sys_enter",
        events: Vec::new(),
    };
    let mut exit = SyscallGroup {
        raw: "sys_exit",
        events: Vec::new(),
    };
    for e in events {
        let nums = syscalls::split(&e.category, &e.name)
            .map(|(raw, call)| (raw, table.numbers(call)))
            .filter(|(_, nums)| !nums.is_empty());
        match nums {
            Some(("sys_enter", nums)) => enter.events.push((e, nums)),
            Some((_, nums)) => exit.events.push((e, nums)),
            None => rest.push(e),
        }
    }
    let mut groups = Vec::new();
    for g in [enter, exit] {
        if g.events.len() >= syscalls::MERGE_MIN || !syscalls::events_fire(target.arch) {
            if !g.events.is_empty() {
                groups.push(g);
            }
        } else {
            rest.extend(g.events.into_iter().map(|(e, _)| e));
        }
    }
    ktap_bpf::kernel::sort_events(&mut rest);
    (groups, rest)
}

/// Whether every read `uses` lists finds the same bytes, read the same way, in each event.
fn same_reads(events: &[(&TpFormat, Vec<u32>)], uses: &[FieldUse]) -> bool {
    let same = |a: Option<&TpField>, b: Option<&TpField>| match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            (a.offset, a.size, a.signed, a.array_len) == (b.offset, b.size, b.signed, b.array_len)
        }
        _ => false,
    };
    let Some((first, _)) = events.first() else {
        return true;
    };
    // Events that share the first one's layout (every `sys_exit_*` does) read the same.
    let layout = |e: &TpFormat| std::sync::Arc::ptr_eq(&e.fields, &first.fields);
    uses.iter().all(|u| match u {
        FieldUse::Argstr => false,
        FieldUse::Named(n) => events
            .iter()
            .all(|(e, _)| layout(e) || same(e.field(n), first.field(n))),
        FieldUse::Arg(i) => events.iter().all(|(e, _)| {
            layout(e) || same(e.args().nth(*i as usize), first.args().nth(*i as usize))
        }),
    })
}

/// State shared by every block: maps and formats.
#[derive(Clone)]
struct Shared<'a> {
    typed: &'a Typed,
    target: ktap_bpf::Target,
    maps: Vec<MapDef>,
    formats: Vec<Format>,
    /// Map index of each table.
    table_map: Vec<u32>,
    output: u32,
    globals: Option<u32>,
    /// Per-CPU counters of updates dropped because a table was full, one slot per table.
    drops: Option<u32>,
    /// The per-CPU scratch value, when some block needs one.
    scratch: Option<u32>,
    /// A zero-filled value, the initial value of new aggregation entries.
    zeros: Option<u32>,
    global_off: Vec<u32>,
    str_cap: u32,
    script_args: Vec<String>,
    pid: Option<u32>,
    cpu: Option<u32>,
    timestamps: bool,
    runtime: Runtime,
    /// The tracepoint layouts `argstr` records name, and the map their records are built in.
    events: Vec<TpFormat>,
    /// Each layout's index in `events`, by category, name and `print fmt` (probes on one
    /// function with different fetch-args have layouts of one name): a glob over thousands
    /// of functions must not search the list for each.
    event_ids: HashMap<(String, String, String), u32>,
    argstr_map: Option<u32>,
    /// Formats by their content, so a print inlined twice or in many probes shares one id.
    format_ids: HashMap<(String, Vec<Field>, u32), u32>,
    /// What the block being lowered reads of its event's record.
    field_uses: Vec<FieldUse>,
}

impl<'a> Shared<'a> {
    fn new(
        typed: &'a Typed,
        target: ktap_bpf::Target,
        limits: &Limits,
        per_cpu: &[bool],
    ) -> Shared<'a> {
        let mut maps = Vec::new();
        let mut table_map = Vec::new();
        for (i, t) in typed.tables.iter().enumerate() {
            let key = match t.key.ty {
                Ty::Unknown | Ty::Nil => Ty::Num,
                k => k,
            };
            let value = match t.value.ty {
                Ty::Unknown | Ty::Nil => Ty::Num,
                v => v,
            };
            let (key, value) = (vtype(key), vtype(value));
            table_map.push(maps.len() as u32);
            // An aggregation is per CPU, so recording needs no atomic instruction (the arm32
            // JIT has no 64-bit atomic add); readers merge the CPUs.
            let (kind, role, value_size) = match t.agg {
                Some(_) => (
                    MapKind::PercpuHash,
                    MapRole::Aggregation,
                    agg::value_size(t.hist),
                ),
                // Probes only add to it: each CPU counts in its own slot, and readers sum
                // the slots (see `per_cpu_tables`).
                None if per_cpu.get(i).copied().unwrap_or(false) => {
                    (MapKind::PercpuHash, MapRole::Table, value.size())
                }
                None => (MapKind::Hash, MapRole::Table, value.size()),
            };
            maps.push(MapDef {
                name: t.name.clone(),
                kind,
                role,
                key,
                value: if t.agg.is_some() {
                    ValueType::Int
                } else {
                    value
                },
                key_size: key.size(),
                value_size,
                max_entries: t.capacity,
                span: t.span,
                init: Vec::new(),
            });
        }
        let zeros = typed
            .tables
            .iter()
            .filter(|t| t.agg.is_some())
            .map(|t| agg::value_size(t.hist))
            .max()
            .map(|size| {
                maps.push(MapDef {
                    name: "ktap_zeros".into(),
                    kind: MapKind::Array,
                    role: MapRole::Zeros,
                    key: ValueType::Int,
                    value: ValueType::Nil,
                    key_size: 4,
                    value_size: size,
                    max_entries: 1,
                    span: Span::default(),
                    init: Vec::new(),
                });
                maps.len() as u32 - 1
            });
        let output = maps.len() as u32;
        maps.push(MapDef {
            name: "ktap_output".into(),
            kind: MapKind::PerfEventArray,
            role: MapRole::Output,
            key: ValueType::Int,
            value: ValueType::Int,
            key_size: 4,
            value_size: 4,
            max_entries: 0,
            span: Span::default(),
            init: Vec::new(),
        });
        let mut global_off = Vec::new();
        let mut size = 0;
        for gl in &typed.globals {
            global_off.push(size);
            size += match gl.slot.ty {
                Ty::Table(_) => 0,
                t => vtype(t).size(),
            };
        }
        let mut runtime = Runtime::default();
        let clock = [
            "gettimeofday_ns",
            "gettimeofday_us",
            "gettimeofday_ms",
            "gettimeofday_s",
        ];
        if clock.iter().any(|c| typed.runtime.contains(c)) {
            runtime.clock = Some(size);
            size += 8;
        }
        if typed.runtime.contains("num_cpus") {
            runtime.cpus = Some(size);
            size += 8;
        }
        if typed.runtime.contains("kernel_v") {
            let cap = round8(crate::types::RELEASE_CAP.min(limits.str_cap));
            runtime.release = Some((size, cap));
            size += cap;
        }
        let drops = if typed.tables.is_empty() {
            None
        } else {
            maps.push(MapDef {
                name: "ktap_drops".into(),
                kind: MapKind::PercpuArray,
                role: MapRole::Drops,
                key: ValueType::Int,
                value: ValueType::Int,
                key_size: 4,
                value_size: 8,
                max_entries: typed.tables.len() as u32,
                span: Span::default(),
                init: Vec::new(),
            });
            Some(maps.len() as u32 - 1)
        };
        let globals = if size > 0 {
            maps.push(MapDef {
                name: "ktap_globals".into(),
                kind: MapKind::Array,
                role: MapRole::Globals,
                key: ValueType::Int,
                value: ValueType::Nil,
                key_size: 4,
                value_size: size,
                max_entries: 1,
                span: Span::default(),
                init: Vec::new(),
            });
            Some(maps.len() as u32 - 1)
        } else {
            None
        };
        Shared {
            typed,
            target,
            maps,
            formats: Vec::new(),
            table_map,
            output,
            globals,
            drops,
            zeros,
            scratch: None,
            global_off,
            str_cap: limits.str_cap,
            script_args: limits.script_args.clone(),
            pid: limits.pid,
            cpu: limits.cpu,
            timestamps: limits.timestamps,
            runtime,
            events: Vec::new(),
            event_ids: HashMap::new(),
            argstr_map: None,
            format_ids: HashMap::new(),
            field_uses: Vec::new(),
        }
    }

    /// The [`MapRole::SyscallNames`] map of a syscall group: each number's event name in a
    /// value of `cap` bytes.
    fn syscall_names(&mut self, group: &SyscallGroup, cap: u32) -> u32 {
        let base = syscalls::base(self.target.arch);
        // A slot per number (they start at `base` and stay below base + 1000), so the entries
        // come out in number order without a sort: sorting them cost as much as the rest of
        // lowering a 360-call group.
        let mut slots: Vec<Option<Vec<u8>>> = Vec::new();
        for (e, nums) in &group.events {
            let mut value = vec![0u8; cap as usize];
            let n = e.name.len().min(cap as usize - 1);
            value[..n].copy_from_slice(&e.name.as_bytes()[..n]);
            for nr in nums {
                let i = (nr - base) as usize;
                if slots.len() <= i {
                    slots.resize(i + 1, None);
                }
                slots[i] = Some(value.clone());
            }
        }
        let init: Vec<(u32, Vec<u8>)> = slots
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| Some((i as u32, v?)))
            .collect();
        let max_entries = init.last().map_or(1, |(k, _)| k + 1);
        self.maps.push(MapDef {
            name: format!("ktap_{}_calls", group.raw),
            kind: MapKind::Array,
            role: MapRole::SyscallNames,
            key: ValueType::Int,
            value: ValueType::Str(cap),
            key_size: 4,
            value_size: cap,
            max_entries,
            span: Span::default(),
            init,
        });
        self.maps.len() as u32 - 1
    }

    fn format(&mut self, action: Action, fields: Vec<Field>, size: u32, span: Span) -> u32 {
        let key = (format!("{:?}", action), fields.clone(), size);
        if let Some(id) = self.format_ids.get(&key) {
            return *id;
        }
        let id = self.formats.len() as u32;
        self.formats.push(Format {
            action,
            fields,
            size,
            span,
        });
        self.format_ids.insert(key, id);
        id
    }
}

/// A lowered value.
#[derive(Clone, Copy, Debug)]
enum Val {
    /// A number or boolean.
    Num(Opnd),
    /// A NUL-padded stack buffer at `r10 + off` of `size` bytes (a multiple of 8).
    Str {
        off: i16,
        size: u32,
    },
    Nil,
    Table(u32),
    /// A tagged value in a stack buffer at `r10 + off`: the tag word, then the payload.
    Any {
        off: i16,
        size: u32,
    },
    /// `argstr`: nothing in the probe; its output record carries the raw event.
    Argstr,
}

/// A buffer-held value of map/record type `vt` at `r10 + off`.
fn buf_val(vt: ValueType, off: i16, size: u32) -> Val {
    match vt {
        ValueType::Any(_) => Val::Any { off, size },
        _ => Val::Str { off, size },
    }
}

/// Where a local variable lives.
#[derive(Clone, Copy, Debug)]
enum Local {
    Reg(VReg),
    Buf { off: i16, size: u32 },
    Any { off: i16, size: u32 },
    Table(u32),
}

struct Inline {
    ret_label: Label,
    /// Where `return` leaves its value.
    result: Option<Local>,
}

struct FnLower<'s, 'a> {
    g: &'s mut Shared<'a>,
    f: IrFunc,
    mode: Mode,
    event: Option<&'s TpFormat>,
    /// The trace block's `/filter/`: events it rejects end at entry.
    filter: Option<&'s FilterExpr>,
    /// The kprobe or uprobe this function serves, if it is one.
    site: Option<&'s ProbeSite>,
    /// For a program on `raw_syscalls` standing for a syscall group: its names map and the
    /// ABI's base number; `event` is then the group's first event.
    syscalls: Option<(u32, u32)>,
    /// That names map's entry for the current call, looked up at entry.
    call_name: Option<VReg>,
    /// The top-level code, which records the values probes take from userspace first.
    init_runtime: bool,
    ctx: VReg,
    /// The globals' address, looked up once at entry when the block needs it.
    gp: Option<VReg>,
    /// Current stack depth in bytes below r10.
    sp: u32,
    locals: HashMap<u32, Local>,
    /// Loop exit labels, innermost last.
    breaks: Vec<Label>,
    inlines: Vec<Inline>,
    span: Span,
}

type R<T> = Result<T, Diagnostic>;

impl<'s, 'a> FnLower<'s, 'a> {
    fn new(g: &'s mut Shared<'a>, mode: Mode, event: Option<&'s TpFormat>) -> FnLower<'s, 'a> {
        FnLower {
            g,
            f: IrFunc::default(),
            mode,
            event,
            filter: None,
            site: None,
            syscalls: None,
            call_name: None,
            init_runtime: false,
            ctx: 0,
            gp: None,
            sp: 0,
            locals: HashMap::new(),
            breaks: Vec::new(),
            inlines: Vec::new(),
            span: Span::default(),
        }
    }

    /// Lowers a block; its entry code (context, pid filter, globals) is attributed to `span`,
    /// the block's header.
    fn run(mut self, stmts: &[&Stmt], span: Span) -> R<IrFunc> {
        self.span = Span::new(span.lo, span.lo);
        self.ctx = self.f.new_reg();
        self.push(Inst::EntryCtx { dst: self.ctx });
        if let (Mode::Kernel, Some(pid)) = (self.mode, self.g.pid) {
            let r = self.f.new_reg();
            self.push(Inst::Call {
                helper: h::GET_CURRENT_PID_TGID,
                args: vec![],
                dst: Some(r),
            });
            self.push(Inst::Alu {
                op: BPF_RSH,
                dst: r,
                src: Opnd::Imm(32),
                w32: false,
            });
            let ours = self.f.new_label();
            self.push(Inst::Jmp {
                op: BPF_JEQ,
                a: r,
                b: Opnd::Imm(pid as i32),
                target: ours,
            });
            self.push(Inst::Exit { code: Opnd::Imm(0) });
            self.push(Inst::Label(ours));
        }
        if let Some((names, base)) = self.syscalls {
            // The program runs for every system call (raw_syscalls): only the calls in its
            // names map, whose entries are not empty, pass.
            let id = self.f.new_reg();
            self.push(Inst::Load {
                size: if self.g.target.word_size == 8 {
                    BPF_DW
                } else {
                    BPF_W
                },
                dst: id,
                base: Base::V(self.ctx),
                off: 8,
            });
            if base != 0 {
                self.push(Inst::Alu {
                    op: BPF_SUB,
                    dst: id,
                    src: Opnd::Imm(base as i32),
                    w32: false,
                });
            }
            let key = self.alloc(8, self.span)?;
            self.push(Inst::Store {
                size: BPF_W,
                base: Base::Fp,
                off: key,
                src: Opnd::V(id),
            });
            let p = self.lookup(names, key);
            let (found, ours) = (self.f.new_label(), self.f.new_label());
            self.push(Inst::Jmp {
                op: BPF_JNE,
                a: p,
                b: Opnd::Imm(0),
                target: found,
            });
            self.push(Inst::Exit { code: Opnd::Imm(0) });
            self.push(Inst::Label(found));
            let first = self.f.new_reg();
            self.push(Inst::Load {
                size: BPF_B,
                dst: first,
                base: Base::V(p),
                off: 0,
            });
            self.push(Inst::Jmp {
                op: BPF_JNE,
                a: first,
                b: Opnd::Imm(0),
                target: ours,
            });
            self.push(Inst::Exit { code: Opnd::Imm(0) });
            self.push(Inst::Label(ours));
            self.call_name = Some(p);
        }
        if let (Mode::Kernel, Some(cpu)) = (self.mode, self.g.cpu) {
            let r = self.f.new_reg();
            self.push(Inst::Call {
                helper: h::GET_SMP_PROCESSOR_ID,
                args: vec![],
                dst: Some(r),
            });
            let ours = self.f.new_label();
            self.push(Inst::Jmp {
                op: BPF_JEQ,
                a: r,
                b: Opnd::Imm(cpu as i32),
                target: ours,
            });
            self.push(Inst::Exit { code: Opnd::Imm(0) });
            self.push(Inst::Label(ours));
        }
        if let Some(filter) = self.filter {
            let pass = self.f.new_label();
            self.filter_cond(filter, true, pass)?;
            self.push(Inst::Exit { code: Opnd::Imm(0) });
            self.push(Inst::Label(pass));
        }
        let init = self.init_runtime && self.g.runtime.any();
        if self.g.globals.is_some() && (init || stmts.iter().any(|s| self.uses_globals_stmt(s))) {
            let gmap = self.g.globals.unwrap_or_default();
            let key = self.zero_word()?;
            let gp = self.lookup(gmap, key);
            let ok = self.f.new_label();
            self.push(Inst::Jmp {
                op: BPF_JNE,
                a: gp,
                b: Opnd::Imm(0),
                target: ok,
            });
            self.push(Inst::Exit { code: Opnd::Imm(0) });
            self.push(Inst::Label(ok));
            self.gp = Some(gp);
        }
        if init {
            self.record_runtime();
        }
        for s in stmts {
            self.stmt(s)?;
        }
        self.span = stmts
            .last()
            .map_or(Span::default(), |s| Span::new(s.span.hi, s.span.hi));
        self.push(Inst::Exit { code: Opnd::Imm(0) });
        self.f.frame = self.f.frame.max(self.sp);
        drop_unreachable(&mut self.f);
        // A block that never needs its context does not keep it in a register.
        let ctx = self.ctx;
        if !self.f.insts.iter().any(|(i, _)| i.uses().contains(&ctx)) {
            self.f
                .insts
                .retain(|(i, _)| !matches!(i, Inst::EntryCtx { .. }));
        }
        Ok(self.f)
    }

    /// Whether a statement, or a function it calls, reads or writes a global variable.
    fn uses_globals_stmt(&self, s: &Stmt) -> bool {
        let mut found = false;
        let mut seen = Vec::new();
        self.scan_stmt(s, &mut found, &mut seen);
        found
    }

    fn scan_stmt(&self, s: &Stmt, found: &mut bool, seen: &mut Vec<u32>) {
        let mut exprs: Vec<&Expr> = Vec::new();
        let mut blocks: Vec<&Block> = Vec::new();
        match &s.kind {
            StmtKind::Var { names, values } => {
                // A `var` of top-level code declares globals (no declaration id of its own).
                if names
                    .iter()
                    .any(|n| !self.g.typed.decls.contains_key(&n.span.lo))
                {
                    *found = true;
                }
                exprs.extend(values);
            }
            StmtKind::Assign { targets, values } => {
                exprs.extend(targets);
                exprs.extend(values);
            }
            StmtKind::AddAssign { target, value } | StmtKind::Aggregate { target, value } => {
                exprs.push(target);
                exprs.push(value);
            }
            StmtKind::Expr(e) => exprs.push(e),
            StmtKind::If { arms, otherwise } => {
                for (c, b) in arms {
                    exprs.push(c);
                    blocks.push(b);
                }
                blocks.extend(otherwise);
            }
            StmtKind::While { cond, body } | StmtKind::Repeat { body, cond } => {
                exprs.push(cond);
                blocks.push(body);
            }
            StmtKind::ForNum {
                start,
                end,
                step,
                body,
                ..
            } => {
                exprs.push(start);
                exprs.push(end);
                exprs.extend(step);
                blocks.push(body);
            }
            StmtKind::ForIn { iter, body, .. } => {
                exprs.push(iter);
                blocks.push(body);
            }
            StmtKind::Return(e) => exprs.extend(e),
            StmtKind::Break | StmtKind::Function(_) => {}
        }
        for e in exprs {
            self.scan_expr(e, found, seen);
        }
        for b in blocks {
            for st in &b.stmts {
                self.scan_stmt(st, found, seen);
            }
        }
    }

    fn scan_expr(&self, e: &Expr, found: &mut bool, seen: &mut Vec<u32>) {
        if *found {
            return;
        }
        match self.g.typed.bindings.get(&e.id) {
            Some(Binding::Global(g))
                if !matches!(self.g.typed.globals[*g as usize].slot.ty, Ty::Table(_)) =>
            {
                *found = true;
                return;
            }
            // A probe's clock, CPU count and kernel release come from the globals' entry.
            Some(Binding::Builtin(name))
                if self.mode == Mode::Kernel && self.g.typed.runtime.contains(name) =>
            {
                *found = true;
                return;
            }
            Some(Binding::Func(f)) if !seen.contains(f) => {
                seen.push(*f);
                for st in &self.g.typed.funcs[*f as usize].decl.body.stmts {
                    self.scan_stmt(st, found, seen);
                }
            }
            _ => {}
        }
        match &e.kind {
            ExprKind::Index { obj, key } => {
                self.scan_expr(obj, found, seen);
                self.scan_expr(key, found, seen);
            }
            ExprKind::Field { obj, .. } => self.scan_expr(obj, found, seen),
            ExprKind::Call { callee, args } => {
                self.scan_expr(callee, found, seen);
                for a in args {
                    self.scan_expr(a, found, seen);
                }
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                self.scan_expr(lhs, found, seen);
                self.scan_expr(rhs, found, seen);
            }
            ExprKind::Unary { expr, .. } => self.scan_expr(expr, found, seen),
            ExprKind::Table(items) => {
                for it in items {
                    match it {
                        TableItem::Positional(v) | TableItem::Named(_, v) => {
                            self.scan_expr(v, found, seen)
                        }
                        TableItem::Keyed(k, v) => {
                            self.scan_expr(k, found, seen);
                            self.scan_expr(v, found, seen);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, i: Inst) {
        self.f.push(i, self.span);
    }

    fn err(&self, span: Span, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(span, msg)
    }

    /// Reserves `size` bytes (a multiple of 8) of stack; returns the offset from r10.
    fn alloc(&mut self, size: u32, span: Span) -> R<i16> {
        self.sp += round8(size.max(8));
        self.f.frame = self.f.frame.max(self.sp);
        if self.sp > 512 {
            return Err(self.err(
                span,
                format!(
                    "this needs {} bytes of stack, more than the 512 a probe may use",
                    self.sp
                ),
            ));
        }
        Ok(-(self.sp as i16))
    }

    /// A zeroed stack word for a key, stored right before its use: a word stored once and
    /// reused could sit on a path that does not reach the next use (the miss path of an
    /// update), or in a slot that a later statement has taken back.
    fn zero_word(&mut self) -> R<i16> {
        let off = self.alloc(8, self.span)?;
        self.push(Inst::Store {
            size: BPF_DW,
            base: Base::Fp,
            off,
            src: Opnd::Imm(0),
        });
        Ok(off)
    }

    fn ty(&self, e: &Expr) -> Ty {
        self.g
            .typed
            .expr_ty
            .get(&e.id)
            .copied()
            .unwrap_or(Ty::Unknown)
    }

    fn reg(&mut self, o: Opnd) -> VReg {
        match o {
            Opnd::V(v) => v,
            Opnd::Imm(i) => {
                let v = self.f.new_reg();
                self.push(Inst::Mov {
                    dst: v,
                    src: Opnd::Imm(i),
                });
                v
            }
        }
    }

    fn konst(&mut self, n: i64) -> Opnd {
        match i32::try_from(n) {
            Ok(i) => Opnd::Imm(i),
            Err(_) => {
                let v = self.f.new_reg();
                self.push(Inst::Const { dst: v, imm: n });
                Opnd::V(v)
            }
        }
    }

    // ---- memory helpers ----

    /// Fills `size` bytes at `r10 + off` with zeros.
    fn zero_buf(&mut self, off: i16, size: u32) {
        for w in 0..size / 8 {
            self.push(Inst::Store {
                size: BPF_DW,
                base: Base::Fp,
                off: off + (w * 8) as i16,
                src: Opnd::Imm(0),
            });
        }
    }

    /// Copies a string value into a buffer of `dsize` bytes, zero-padding or truncating.
    fn copy_str(&mut self, (doff, dsize): (i16, u32), src: Val) {
        match src {
            Val::Str { off, size } | Val::Any { off, size } => {
                if off == doff {
                    return;
                }
                let n = size.min(dsize);
                let t = self.f.new_reg();
                for w in 0..n / 8 {
                    let o = (w * 8) as i16;
                    self.push(Inst::Load {
                        size: BPF_DW,
                        dst: t,
                        base: Base::Fp,
                        off: off + o,
                    });
                    self.push(Inst::Store {
                        size: BPF_DW,
                        base: Base::Fp,
                        off: doff + o,
                        src: Opnd::V(t),
                    });
                }
                for w in n / 8..dsize / 8 {
                    self.push(Inst::Store {
                        size: BPF_DW,
                        base: Base::Fp,
                        off: doff + (w * 8) as i16,
                        src: Opnd::Imm(0),
                    });
                }
                if size > dsize {
                    // Truncated: keep the terminating NUL.
                    self.push(Inst::Store {
                        size: BPF_B,
                        base: Base::Fp,
                        off: doff + dsize as i16 - 1,
                        src: Opnd::Imm(0),
                    });
                }
            }
            _ => self.zero_buf(doff, dsize),
        }
    }

    /// Writes constant bytes (NUL-padded) into a buffer.
    fn const_str(&mut self, off: i16, size: u32, bytes: &[u8]) {
        let mut buf = vec![0u8; size as usize];
        let n = bytes.len().min(size as usize - 1);
        buf[..n].copy_from_slice(&bytes[..n]);
        for (w, chunk) in buf.chunks(4).enumerate() {
            let word: [u8; 4] = chunk.try_into().unwrap_or([0; 4]);
            let v = match self.g.target.endian {
                Endian::Little => i32::from_le_bytes(word),
                Endian::Big => i32::from_be_bytes(word),
            };
            self.push(Inst::Store {
                size: BPF_W,
                base: Base::Fp,
                off: off + (w * 4) as i16,
                src: Opnd::Imm(v),
            });
        }
    }

    /// A string value as a buffer of exactly `size` bytes (copying when it differs).
    fn str_buf(&mut self, v: Val, size: u32, span: Span) -> R<i16> {
        if let Val::Str { off, size: s } = v {
            if s == size {
                return Ok(off);
            }
        }
        let off = self.alloc(size, span)?;
        self.copy_str((off, size), v);
        Ok(off)
    }

    /// Stores a value into memory at `base + off` with the layout of type `ty`.
    fn store_val(&mut self, base: Base, off: i16, ty: ValueType, v: Val) {
        match ty {
            // A user stack is a 16-byte buffer (id, task): stored as one.
            ValueType::UStack => self.store_val(base, off, ValueType::Str(16), v),
            ValueType::Str(size) => {
                // Copy through a temporary register word by word.
                let t = self.f.new_reg();
                let (soff, ssize) = match v {
                    Val::Str { off, size } | Val::Any { off, size } => (Some(off), size),
                    _ => (None, 0),
                };
                for w in 0..size / 8 {
                    let o = (w * 8) as i16;
                    let src = match soff {
                        Some(s) if (w * 8) < ssize => {
                            self.push(Inst::Load {
                                size: BPF_DW,
                                dst: t,
                                base: Base::Fp,
                                off: s + o,
                            });
                            Opnd::V(t)
                        }
                        _ => Opnd::Imm(0),
                    };
                    self.push(Inst::Store {
                        size: BPF_DW,
                        base,
                        off: off + o,
                        src,
                    });
                }
            }
            ValueType::Nil => {}
            ValueType::Any(size) => {
                let (tag, rest) = match v {
                    Val::Any { .. } => (None, v),
                    Val::Num(_) => (Some(TAG_NUM), v),
                    Val::Str { .. } => (Some(TAG_STR), v),
                    _ => (Some(TAG_NIL), Val::Nil),
                };
                match (tag, rest) {
                    (None, v) => self.store_val(base, off, ValueType::Str(size), v),
                    (Some(tag), v) => {
                        self.push(Inst::Store {
                            size: BPF_DW,
                            base,
                            off,
                            src: Opnd::Imm(tag as i32),
                        });
                        match v {
                            Val::Num(o) => {
                                self.push(Inst::Store {
                                    size: BPF_DW,
                                    base,
                                    off: off + 8,
                                    src: o,
                                });
                                self.store_val(base, off + 16, ValueType::Str(size - 16), Val::Nil);
                            }
                            v => self.store_val(base, off + 8, ValueType::Str(size - 8), v),
                        }
                    }
                }
            }
            _ => {
                let src = match v {
                    Val::Num(o) => o,
                    _ => Opnd::Imm(0),
                };
                self.push(Inst::Store {
                    size: BPF_DW,
                    base,
                    off,
                    src,
                });
            }
        }
    }

    /// Loads a value of type `ty` from `base + off` (strings are copied onto the stack).
    fn load_val(&mut self, base: VReg, off: i16, ty: ValueType, span: Span) -> R<Val> {
        match ty {
            ValueType::UStack => self.load_val(base, off, ValueType::Str(16), span),
            ValueType::Str(size) | ValueType::Any(size) => {
                let dst = self.alloc(size, span)?;
                let t = self.f.new_reg();
                for w in 0..size / 8 {
                    let o = (w * 8) as i16;
                    self.push(Inst::Load {
                        size: BPF_DW,
                        dst: t,
                        base: Base::V(base),
                        off: off + o,
                    });
                    self.push(Inst::Store {
                        size: BPF_DW,
                        base: Base::Fp,
                        off: dst + o,
                        src: Opnd::V(t),
                    });
                }
                Ok(buf_val(ty, dst, size))
            }
            ValueType::Nil => Ok(Val::Nil),
            _ => {
                let v = self.f.new_reg();
                self.push(Inst::Load {
                    size: BPF_DW,
                    dst: v,
                    base: Base::V(base),
                    off,
                });
                Ok(Val::Num(Opnd::V(v)))
            }
        }
    }

    // ---- statements ----

    fn block(&mut self, b: &Block) -> R<()> {
        let mark = self.sp;
        for s in &b.stmts {
            self.stmt(s)?;
        }
        self.sp = mark;
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        self.span = s.span;
        let mark = self.sp;
        let keep = self.stmt_inner(s)?;
        if !keep {
            self.sp = mark;
        }
        Ok(())
    }

    /// Lowers one statement; returns true when it allocated stack that must outlive it (a `var`).
    fn stmt_inner(&mut self, s: &Stmt) -> R<bool> {
        match &s.kind {
            StmtKind::Var { names, values } => {
                let top = self.mode == Mode::User
                    && self.inlines.is_empty()
                    && self.breaks.is_empty()
                    && !self.is_local_decl(names);
                // Evaluate every value first (`var a, b = b, a` swaps), then bind.
                let mut vals = Vec::new();
                for v in values {
                    vals.push(self.expr(v)?);
                }
                let mut binds = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let val = vals.get(i).copied().unwrap_or(Val::Nil);
                    let from = values.get(i).map_or(Ty::Nil, |v| self.ty(v));
                    if top {
                        if let Some(gi) = self
                            .g
                            .typed
                            .globals
                            .iter()
                            .position(|g| g.name == name.name)
                        {
                            let to = self.g.typed.globals[gi].slot.ty;
                            let val = self.tag_bool(val, from, to, name.span)?;
                            self.store_global(gi as u32, val, name.span)?;
                        }
                        continue;
                    }
                    let Some(&vid) = self.g.typed.decls.get(&name.span.lo) else {
                        continue;
                    };
                    let ty = self.g.typed.var_ty[vid as usize].ty;
                    let val = self.tag_bool(val, from, ty, name.span)?;
                    let local = self.new_local(ty, name.span)?;
                    binds.push((vid, local, val));
                }
                for (vid, local, val) in binds {
                    self.assign_local(local, val);
                    self.locals.insert(vid, local);
                }
                Ok(true)
            }
            StmtKind::Assign { targets, values } => {
                let mut vals = Vec::new();
                for v in values {
                    vals.push(self.expr(v)?);
                }
                for ((t, v), e) in targets.iter().zip(vals).zip(values) {
                    let v = self.tag_bool(v, self.ty(e), self.ty(t), t.span)?;
                    self.assign(t, v)?;
                }
                Ok(false)
            }
            StmtKind::AddAssign { target, value } => {
                let v = self.expr(value)?;
                let Val::Num(amount) = v else {
                    return Err(self.err(value.span, "`+=` needs a number"));
                };
                self.add_assign(target, amount)?;
                Ok(false)
            }
            StmtKind::Expr(e) => {
                self.expr(e)?;
                Ok(false)
            }
            StmtKind::If { arms, otherwise } => {
                let end = self.f.new_label();
                for (cond, body) in arms {
                    let next = self.f.new_label();
                    self.cond(cond, false, next)?;
                    self.block(body)?;
                    self.push(Inst::Ja { target: end });
                    self.push(Inst::Label(next));
                }
                if let Some(b) = otherwise {
                    self.block(b)?;
                }
                self.push(Inst::Label(end));
                Ok(false)
            }
            StmtKind::While { cond, body } => {
                let (top, end) = (self.f.new_label(), self.f.new_label());
                self.push(Inst::Label(top));
                self.cond(cond, false, end)?;
                self.breaks.push(end);
                self.block(body)?;
                self.breaks.pop();
                self.push(Inst::Ja { target: top });
                self.push(Inst::Label(end));
                Ok(false)
            }
            StmtKind::Repeat { body, cond } => {
                let (top, end) = (self.f.new_label(), self.f.new_label());
                self.push(Inst::Label(top));
                self.breaks.push(end);
                let mark = self.sp;
                for st in &body.stmts {
                    self.stmt(st)?;
                }
                self.span = cond.span;
                self.cond(cond, false, top)?;
                self.sp = mark;
                self.breaks.pop();
                self.push(Inst::Label(end));
                Ok(false)
            }
            StmtKind::ForNum {
                var,
                start,
                end,
                step,
                body,
            } => {
                let step_n = match step {
                    Some(e) => const_int(e),
                    None => Some(1),
                };
                let a = self.num(start)?;
                let b = self.num(end)?;
                let b = self.reg(b);
                let i = self.f.new_reg();
                self.push(Inst::Mov { dst: i, src: a });
                let st = match (step, step_n) {
                    (_, Some(n)) => Opnd::Imm(
                        i32::try_from(n).map_err(|_| self.err(s.span, "loop step too large"))?,
                    ),
                    (Some(e), None) => {
                        let v = self.num(e)?;
                        Opnd::V(self.reg(v))
                    }
                    (None, None) => Opnd::Imm(1),
                };
                let (top, cont, done) =
                    (self.f.new_label(), self.f.new_label(), self.f.new_label());
                self.push(Inst::Label(top));
                match step_n {
                    Some(n) if n < 0 => self.push(Inst::Jmp {
                        op: BPF_JSLT,
                        a: i,
                        b: Opnd::V(b),
                        target: done,
                    }),
                    Some(_) => self.push(Inst::Jmp {
                        op: BPF_JSGT,
                        a: i,
                        b: Opnd::V(b),
                        target: done,
                    }),
                    None => {
                        // A runtime step (userspace only): its sign picks the test.
                        let neg = self.f.new_label();
                        let body_l = self.f.new_label();
                        let sv = self.reg(st);
                        self.push(Inst::Jmp {
                            op: BPF_JSLT,
                            a: sv,
                            b: Opnd::Imm(0),
                            target: neg,
                        });
                        self.push(Inst::Jmp {
                            op: BPF_JSGT,
                            a: i,
                            b: Opnd::V(b),
                            target: done,
                        });
                        self.push(Inst::Ja { target: body_l });
                        self.push(Inst::Label(neg));
                        self.push(Inst::Jmp {
                            op: BPF_JSLT,
                            a: i,
                            b: Opnd::V(b),
                            target: done,
                        });
                        self.push(Inst::Label(body_l));
                    }
                }
                let vid = self.g.typed.decls.get(&var.span.lo).copied();
                let mark = self.sp;
                if let Some(vid) = vid {
                    // The body sees a copy, so assigning to the loop variable cannot change the trip count.
                    let copy = self.f.new_reg();
                    self.push(Inst::Mov {
                        dst: copy,
                        src: Opnd::V(i),
                    });
                    self.locals.insert(vid, Local::Reg(copy));
                }
                self.breaks.push(done);
                self.block(body)?;
                self.breaks.pop();
                self.sp = mark;
                self.push(Inst::Label(cont));
                self.push(Inst::Alu {
                    op: BPF_ADD,
                    dst: i,
                    src: st,
                    w32: false,
                });
                self.push(Inst::Ja { target: top });
                self.push(Inst::Label(done));
                Ok(false)
            }
            StmtKind::ForIn {
                key,
                value,
                iter,
                body,
            } => {
                let ExprKind::Call { args, .. } = &iter.kind else {
                    return Err(self.err(iter.span, "`for ... in` needs `pairs(table)`"));
                };
                let Val::Table(t) = self.expr(&args[0])? else {
                    return Err(self.err(args[0].span, "pairs() needs a table"));
                };
                self.for_pairs(t, key, value.as_ref(), body)?;
                Ok(false)
            }
            StmtKind::Break => {
                match self.breaks.last() {
                    Some(l) => {
                        let l = *l;
                        self.push(Inst::Ja { target: l });
                    }
                    None => return Err(self.err(s.span, "`break` outside a loop")),
                }
                Ok(false)
            }
            StmtKind::Return(e) => {
                if self.inlines.is_empty() {
                    if let Some(e) = e {
                        self.expr(e)?;
                    }
                    self.push(Inst::Exit { code: Opnd::Imm(0) });
                    return Ok(false);
                }
                let v = match e {
                    Some(e) => self.expr(e)?,
                    None => Val::Nil,
                };
                let inl = self.inlines.last().map(|i| (i.ret_label, i.result));
                if let Some((label, result)) = inl {
                    if let Some(r) = result {
                        self.assign_local(r, v);
                    }
                    self.push(Inst::Ja { target: label });
                }
                Ok(false)
            }
            StmtKind::Aggregate { target, value } => {
                self.record(target, value)?;
                Ok(false)
            }
            StmtKind::Function(f) => {
                Err(self.err(f.span, "functions can only be defined at top level"))
            }
        }
    }

    /// True when a `var` at top-level code really declares locals (inside a nested block).
    fn is_local_decl(&self, names: &[Ident]) -> bool {
        names
            .iter()
            .any(|n| self.g.typed.decls.contains_key(&n.span.lo))
    }

    fn new_local(&mut self, ty: Ty, span: Span) -> R<Local> {
        Ok(match ty {
            Ty::Str(n) => {
                let size = round8(n);
                let off = self.alloc(size, span)?;
                Local::Buf { off, size }
            }
            // A user stack is two words (its id, and the task it was taken in), kept as a
            // 16-byte buffer like a table key of that type.
            Ty::UStack => {
                let off = self.alloc(16, span)?;
                Local::Buf { off, size: 16 }
            }
            Ty::Any(n) => {
                let size = 8 + round8(n);
                let off = self.alloc(size, span)?;
                Local::Any { off, size }
            }
            Ty::Table(t) => Local::Table(t),
            _ => Local::Reg(self.f.new_reg()),
        })
    }

    /// Writes `v` as a tagged value into the buffer at `r10 + doff` (numbers, strings and nil
    /// get their tag here; booleans come tagged from [`FnLower::tag_bool`]).
    fn write_any(&mut self, (doff, dsize): (i16, u32), v: Val) {
        match v {
            Val::Any { .. } => self.copy_str((doff, dsize), v),
            Val::Num(o) => {
                self.zero_buf(doff, dsize);
                self.push(Inst::Store {
                    size: BPF_DW,
                    base: Base::Fp,
                    off: doff,
                    src: Opnd::Imm(TAG_NUM as i32),
                });
                self.push(Inst::Store {
                    size: BPF_DW,
                    base: Base::Fp,
                    off: doff + 8,
                    src: o,
                });
            }
            Val::Str { .. } => {
                self.push(Inst::Store {
                    size: BPF_DW,
                    base: Base::Fp,
                    off: doff,
                    src: Opnd::Imm(TAG_STR as i32),
                });
                self.copy_str((doff + 8, dsize - 8), v);
            }
            _ => self.zero_buf(doff, dsize),
        }
    }

    /// A boolean headed for a tagged place becomes a tagged boolean (elsewhere booleans are
    /// numbers 0 and 1, which a tag would print as numbers).
    fn tag_bool(&mut self, v: Val, from: Ty, to: Ty, span: Span) -> R<Val> {
        match (v, from, to) {
            (Val::Num(o), Ty::Bool, Ty::Any(n)) => {
                let size = 8 + round8(n);
                let off = self.alloc(size, span)?;
                self.write_any((off, size), Val::Num(o));
                self.push(Inst::Store {
                    size: BPF_DW,
                    base: Base::Fp,
                    off,
                    src: Opnd::Imm(TAG_BOOL as i32),
                });
                Ok(Val::Any { off, size })
            }
            _ => Ok(v),
        }
    }

    /// The number in a tagged value (0 when it holds something else).
    fn any_num(&mut self, off: i16) -> Opnd {
        let (tag, v) = (self.f.new_reg(), self.f.new_reg());
        self.push(Inst::Load {
            size: BPF_DW,
            dst: v,
            base: Base::Fp,
            off: off + 8,
        });
        self.push(Inst::Load {
            size: BPF_DW,
            dst: tag,
            base: Base::Fp,
            off,
        });
        let ok = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: tag,
            b: Opnd::Imm(TAG_NUM as i32),
            target: ok,
        });
        self.push(Inst::Mov {
            dst: v,
            src: Opnd::Imm(0),
        });
        self.push(Inst::Label(ok));
        Opnd::V(v)
    }

    fn assign_local(&mut self, l: Local, v: Val) {
        match l {
            Local::Reg(r) => {
                let src = match v {
                    Val::Num(o) => o,
                    _ => Opnd::Imm(0),
                };
                self.push(Inst::Mov { dst: r, src });
            }
            Local::Buf { off, size } => self.copy_str((off, size), v),
            Local::Any { off, size } => self.write_any((off, size), v),
            Local::Table(_) => {}
        }
    }

    fn local_val(&self, l: Local) -> Val {
        match l {
            Local::Reg(r) => Val::Num(Opnd::V(r)),
            Local::Buf { off, size } => Val::Str { off, size },
            Local::Any { off, size } => Val::Any { off, size },
            Local::Table(t) => Val::Table(t),
        }
    }

    fn global_slot(&self, gi: u32) -> (VReg, i16, ValueType, Ty) {
        let ty = self.g.typed.globals[gi as usize].slot.ty;
        (
            self.gp.unwrap_or_default(),
            self.g.global_off[gi as usize] as i16,
            vtype(ty),
            ty,
        )
    }

    fn store_global(&mut self, gi: u32, v: Val, span: Span) -> R<()> {
        let (gp, off, vt, ty) = self.global_slot(gi);
        if let Ty::Table(_) = ty {
            return Ok(());
        }
        if self.gp.is_none() {
            return Err(self.err(span, "internal: globals are not mapped in this block"));
        }
        self.store_val(Base::V(gp), off, vt, v);
        Ok(())
    }

    fn assign(&mut self, target: &Expr, v: Val) -> R<()> {
        self.span = target.span;
        match &target.kind {
            ExprKind::Name(_) => match self.g.typed.bindings.get(&target.id) {
                Some(Binding::Local(vid)) => {
                    let l = match self.locals.get(vid) {
                        Some(l) => *l,
                        None => {
                            let ty = self.g.typed.var_ty[*vid as usize].ty;
                            let l = self.new_local(ty, target.span)?;
                            self.locals.insert(*vid, l);
                            l
                        }
                    };
                    self.assign_local(l, v);
                    Ok(())
                }
                Some(Binding::Global(gi)) => self.store_global(*gi, v, target.span),
                _ => Err(self.err(target.span, "cannot assign to this name")),
            },
            ExprKind::Index { obj, key } => {
                let Val::Table(t) = self.expr(obj)? else {
                    return Err(self.err(obj.span, "only tables can be indexed"));
                };
                let k = self.expr(key)?;
                self.table_store(t, k, v, target.span)
            }
            _ => Err(self.err(target.span, "cannot assign to this expression")),
        }
    }

    /// `t[k] = v`: an update, or a delete when `v` is nil.
    fn table_store(&mut self, t: u32, k: Val, v: Val, span: Span) -> R<()> {
        let map = self.g.table_map[t as usize];
        let kbuf = self.value_buf(self.g.maps[map as usize].key, k, span)?;
        if let Val::Nil = v {
            self.push(Inst::Call {
                helper: h::MAP_DELETE_ELEM,
                args: vec![Arg::Map(map), Arg::Fp(kbuf)],
                dst: None,
            });
            return Ok(());
        }
        let vt = self.g.maps[map as usize].value;
        let vbuf = self.value_buf(vt, v, span)?;
        self.update_counted(t, map, kbuf, Arg::Fp(vbuf), BPF_ANY, span)
    }

    /// A stack buffer holding `v` laid out as a map value of type `vt`.
    fn value_buf(&mut self, vt: ValueType, v: Val, span: Span) -> R<i16> {
        match (vt, v) {
            (ValueType::Any(size), Val::Any { off, size: s }) if s == size => Ok(off),
            (ValueType::Any(size), v) => {
                let off = self.alloc(size, span)?;
                self.write_any((off, size), v);
                Ok(off)
            }
            (ValueType::UStack, v) => self.str_buf(v, 16, span),
            (ValueType::Str(size), _) => self.str_buf(v, size, span),
            (_, v) => {
                let off = self.alloc(8, span)?;
                self.store_val(Base::Fp, off, ValueType::Int, v);
                Ok(off)
            }
        }
    }

    /// A key buffer for table map `map` holding the value of `key`.
    fn key(&mut self, map: u32, key: &Expr) -> R<i16> {
        let v = self.expr(key)?;
        let kt = self.g.maps[map as usize].key;
        self.value_buf(kt, v, key.span)
    }

    fn add_assign(&mut self, target: &Expr, amount: Opnd) -> R<()> {
        self.span = target.span;
        match &target.kind {
            ExprKind::Name(_) => match self.g.typed.bindings.get(&target.id) {
                Some(Binding::Local(vid)) => {
                    let l = match self.locals.get(vid) {
                        Some(l) => *l,
                        None => {
                            let r = self.f.new_reg();
                            self.push(Inst::Mov {
                                dst: r,
                                src: Opnd::Imm(0),
                            });
                            let l = Local::Reg(r);
                            self.locals.insert(*vid, l);
                            l
                        }
                    };
                    if let Local::Reg(r) = l {
                        self.push(Inst::Alu {
                            op: BPF_ADD,
                            dst: r,
                            src: amount,
                            w32: false,
                        });
                    }
                    Ok(())
                }
                Some(Binding::Global(gi)) => {
                    let (gp, off, _, _) = self.global_slot(*gi);
                    let a = self.reg(amount);
                    self.add_in_place(gp, off, a);
                    Ok(())
                }
                _ => Err(self.err(target.span, "cannot add to this name")),
            },
            ExprKind::Index { obj, key } => {
                let Val::Table(t) = self.expr(obj)? else {
                    return Err(self.err(obj.span, "only tables can be indexed"));
                };
                let map = self.g.table_map[t as usize];
                let kbuf = self.key(map, key)?;
                if self.mode == Mode::Kernel
                    && self.g.maps[map as usize].kind == MapKind::PercpuHash
                {
                    return self.add_per_cpu(t, map, kbuf, amount, target.span);
                }
                let amount = self.reg(amount);
                // Hit: add in place, atomically. Miss: insert a zero (if another CPU inserted
                // the key meanwhile, that fails harmlessly with EEXIST), look the entry up
                // again and add to it: one path, exact under concurrency.
                let (hit, done) = (self.f.new_label(), self.f.new_label());
                let p = self.lookup(map, kbuf);
                self.push(Inst::Jmp {
                    op: BPF_JNE,
                    a: p,
                    b: Opnd::Imm(0),
                    target: hit,
                });
                let vbuf = self.alloc(8, target.span)?;
                self.push(Inst::Store {
                    size: BPF_DW,
                    base: Base::Fp,
                    off: vbuf,
                    src: Opnd::Imm(0),
                });
                self.update_counted(t, map, kbuf, Arg::Fp(vbuf), BPF_NOEXIST, target.span)?;
                self.lookup_into(p, map, kbuf);
                self.push(Inst::Jmp {
                    op: BPF_JEQ,
                    a: p,
                    b: Opnd::Imm(0),
                    target: done,
                });
                self.push(Inst::Label(hit));
                self.add_in_place(p, 0, amount);
                self.push(Inst::Label(done));
                Ok(())
            }
            _ => Err(self.err(target.span, "cannot add to this expression")),
        }
    }

    /// `t[k] += amount` into a per-CPU table (see `per_cpu_tables`). Hit: this CPU's slot,
    /// which no other CPU writes, takes a plain load, add and store. Miss: the amount is
    /// inserted as this CPU's value; if another CPU inserted the key meanwhile, `BPF_ANY`
    /// still sets only this CPU's slot, which was 0, so nothing is lost either way.
    fn add_per_cpu(&mut self, t: u32, map: u32, kbuf: i16, amount: Opnd, span: Span) -> R<()> {
        let (hit, done) = (self.f.new_label(), self.f.new_label());
        let p = self.lookup(map, kbuf);
        self.push(Inst::Jmp {
            op: BPF_JNE,
            a: p,
            b: Opnd::Imm(0),
            target: hit,
        });
        let vbuf = self.alloc(8, span)?;
        self.push(Inst::Store {
            size: BPF_DW,
            base: Base::Fp,
            off: vbuf,
            src: amount,
        });
        self.update_counted(t, map, kbuf, Arg::Fp(vbuf), BPF_ANY, span)?;
        self.push(Inst::Ja { target: done });
        self.push(Inst::Label(hit));
        self.load_add_store(p, 0, amount);
        self.push(Inst::Label(done));
        Ok(())
    }

    /// `*(u64 *)(base + off) += src` as a plain load, add and store.
    fn load_add_store(&mut self, base: VReg, off: i16, src: Opnd) {
        let t = self.f.new_reg();
        self.push(Inst::Load {
            size: BPF_DW,
            dst: t,
            base: Base::V(base),
            off,
        });
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst: t,
            src,
            w32: false,
        });
        self.push(Inst::Store {
            size: BPF_DW,
            base: Base::V(base),
            off,
            src: Opnd::V(t),
        });
    }

    /// `*(u64 *)(base + off) += src`: atomic where the target's kernel can run it. The 32-bit ARM
    /// JIT of 6.1 kernels has no atomic instructions at all (loading fails with ENOTSUPP), so
    /// there it is a plain load, add and store: exact on one CPU, and on several CPUs an update
    /// racing another on the same entry can be lost (aggregations, per CPU, stay exact).
    fn add_in_place(&mut self, base: VReg, off: i16, src: VReg) {
        if self.g.target.arch != ktap_bpf::Arch::Arm {
            self.push(Inst::AtomicAdd { base, off, src });
            return;
        }
        self.load_add_store(base, off, Opnd::V(src));
    }

    /// Jumps to `target` when the event filter's truth equals `when` (the kernel's filter
    /// language: fields compared with constants, `~` a glob of the form `text` or `prefix*`).
    fn filter_cond(&mut self, f: &FilterExpr, when: bool, target: Label) -> R<()> {
        match f {
            FilterExpr::Not(e) => self.filter_cond(e, !when, target),
            FilterExpr::And(a, b) | FilterExpr::Or(a, b) => {
                let and = matches!(f, FilterExpr::And(..));
                if and != when {
                    // (a && b) false: either false; (a || b) true: either true.
                    self.filter_cond(a, when, target)?;
                    self.filter_cond(b, when, target)
                } else {
                    let skip = self.f.new_label();
                    self.filter_cond(a, !when, skip)?;
                    self.filter_cond(b, when, target)?;
                    self.push(Inst::Label(skip));
                    Ok(())
                }
            }
            FilterExpr::Cmp {
                field,
                op,
                value,
                span,
            } => {
                self.span = *span;
                let cmp = FilterCmp {
                    op: *op,
                    when,
                    target,
                };
                if field.name == "common_pid" {
                    // The record's pid is the thread's id.
                    let r = self.f.new_reg();
                    self.push(Inst::Call {
                        helper: h::GET_CURRENT_PID_TGID,
                        args: vec![],
                        dst: Some(r),
                    });
                    self.push(Inst::Alu {
                        op: BPF_AND,
                        dst: r,
                        src: Opnd::Imm(-1),
                        w32: true,
                    });
                    let FilterValue::Num(n) = value else {
                        return Err(self.err(*span, "internal: filter on common_pid"));
                    };
                    return self.filter_num(Opnd::V(r), *n, true, cmp);
                }
                if let Some(site) = self.site {
                    return self.site_filter(site, &field.name, value, cmp, *span);
                }
                self.g.field_uses.push(FieldUse::Named(field.name.clone()));
                let tp = self
                    .event
                    .and_then(|ev| ev.field(&field.name))
                    .map(|f| self.record_field(f));
                match value {
                    FilterValue::Num(n) => {
                        let v = match self.tp_field(tp.as_ref(), Ty::Num, *span)? {
                            Val::Num(o) => o,
                            _ => Opnd::Imm(0),
                        };
                        self.filter_num(v, *n, true, cmp)
                    }
                    FilterValue::Str(text) => {
                        let cap = round8(self.g.str_cap);
                        let sv = match &tp {
                            Some(f) if f.is_string_pointer() => {
                                let addr = match self.tp_field(Some(f), Ty::Num, *span)? {
                                    Val::Num(o) => o,
                                    _ => Opnd::Imm(0),
                                };
                                let off = self.alloc(cap, *span)?;
                                self.zero_buf(off, cap);
                                let a = self.reg(addr);
                                // Syscall arguments point into the caller's memory.
                                let helper = if self.event.is_some_and(|e| e.category == "syscalls")
                                {
                                    h::PROBE_READ_USER_STR
                                } else {
                                    h::PROBE_READ_KERNEL_STR
                                };
                                self.push(Inst::Call {
                                    helper,
                                    args: vec![Arg::Fp(off), Arg::Imm(cap as i64), Arg::V(a)],
                                    dst: None,
                                });
                                Val::Str { off, size: cap }
                            }
                            Some(f) => self.tp_field(Some(f), Ty::Str(f.size), *span)?,
                            None => {
                                let off = self.alloc(8, *span)?;
                                self.zero_buf(off, 8);
                                Val::Str { off, size: 8 }
                            }
                        };
                        self.filter_str(sv, text, cmp, *span)
                    }
                }
            }
        }
    }

    /// A filter's comparison at a kprobe or uprobe: its field is a fetch-arg or `argN`
    /// ([`site_filter_field`]), read as the block would read it. Unsigned fetch-args (the
    /// kernel's default type among them) compare unsigned, as the kernel's filter would.
    fn site_filter(
        &mut self,
        site: &ProbeSite,
        name: &str,
        value: &FilterValue,
        cmp: FilterCmp,
        span: Span,
    ) -> R<()> {
        let field = site_filter_field(site, name);
        match value {
            FilterValue::Num(n) => {
                let (v, signed) = match field {
                    Some(SiteField::Fetch(f)) => {
                        let signed = f.ty.as_deref().is_some_and(|t| t.starts_with('s'));
                        (self.fetch_value(site, f, Ty::Num, span)?, signed)
                    }
                    Some(SiteField::Arg(i)) => (self.site_arg(site, i, Ty::Num, span)?, true),
                    // Another event of the block has the field, this one not: as at a
                    // tracepoint without it, the value is 0.
                    None => (Val::Num(Opnd::Imm(0)), true),
                };
                let Val::Num(v) = v else {
                    return Err(self.err(span, "internal: a numeric filter field"));
                };
                self.filter_num(v, *n, signed, cmp)
            }
            FilterValue::Str(text) => {
                let sv = match field {
                    Some(SiteField::Fetch(f)) => {
                        let ty = fetch_ty(f, self.g.str_cap);
                        self.fetch_value(site, f, ty, span)?
                    }
                    _ => {
                        let off = self.alloc(8, span)?;
                        self.zero_buf(off, 8);
                        Val::Str { off, size: 8 }
                    }
                };
                self.filter_str(sv, text, cmp, span)
            }
        }
    }

    /// Jumps to `cmp.target` when `v OP n` equals `cmp.when`.
    fn filter_num(&mut self, v: Opnd, n: i64, signed: bool, cmp: FilterCmp) -> R<()> {
        let FilterCmp { op, when, target } = cmp;
        let a = self.reg(v);
        let b = self.konst(n);
        if op == FilterOp::BitAnd {
            let t = self.f.new_reg();
            self.push(Inst::Mov {
                dst: t,
                src: Opnd::V(a),
            });
            self.push(Inst::Alu {
                op: BPF_AND,
                dst: t,
                src: b,
                w32: false,
            });
            self.push(Inst::Jmp {
                op: if when { BPF_JNE } else { BPF_JEQ },
                a: t,
                b: Opnd::Imm(0),
                target,
            });
            return Ok(());
        }
        let mut j = match (op, signed) {
            (FilterOp::Eq, _) => BPF_JEQ,
            (FilterOp::Ne, _) => BPF_JNE,
            (FilterOp::Lt, true) => BPF_JSLT,
            (FilterOp::Le, true) => BPF_JSLE,
            (FilterOp::Gt, true) => BPF_JSGT,
            (_, true) => BPF_JSGE,
            (FilterOp::Lt, false) => BPF_JLT,
            (FilterOp::Le, false) => BPF_JLE,
            (FilterOp::Gt, false) => BPF_JGT,
            (_, false) => BPF_JGE,
        };
        if !when {
            j = negate(j);
        }
        self.push(Inst::Jmp {
            op: j,
            a,
            b,
            target,
        });
        Ok(())
    }

    /// Jumps to `cmp.target` when the string `sv` compared with `text` (`==`, `!=`, or `~`
    /// with `text` or `prefix*`) equals `cmp.when`.
    fn filter_str(&mut self, sv: Val, text: &str, cmp: FilterCmp, span: Span) -> R<()> {
        let FilterCmp { op, when, target } = cmp;
        let Val::Str { off, size } = sv else {
            return Err(self.err(span, "internal: filter string"));
        };
        let bytes = text.as_bytes();
        let (prefix, exact) = match (op, bytes.strip_suffix(b"*")) {
            (FilterOp::Glob, Some(p)) => (p, false),
            _ => (bytes, true),
        };
        // Compare byte by byte: equal means every prefix byte matches and, for an exact
        // match, a NUL follows.
        let want_eq = !matches!(op, FilterOp::Ne);
        let (differ, same) = (self.f.new_label(), self.f.new_label());
        let b = self.f.new_reg();
        let n = prefix.len().min(size as usize - 1);
        let mut check = prefix[..n].to_vec();
        if exact {
            check.push(0);
        }
        for (i, c) in check.iter().enumerate().take(size as usize) {
            self.push(Inst::Load {
                size: BPF_B,
                dst: b,
                base: Base::Fp,
                off: off + i as i16,
            });
            self.push(Inst::Jmp {
                op: BPF_JNE,
                a: b,
                b: Opnd::Imm(i32::from(*c)),
                target: differ,
            });
        }
        if want_eq == when {
            self.push(Inst::Ja { target });
            self.push(Inst::Label(differ));
        } else {
            self.push(Inst::Ja { target: same });
            self.push(Inst::Label(differ));
            self.push(Inst::Ja { target });
        }
        self.push(Inst::Label(same));
        Ok(())
    }

    /// `map_lookup_elem(map, r10 + key)` into a new register: the value's address or 0.
    fn lookup(&mut self, map: u32, key: i16) -> VReg {
        let p = self.f.new_reg();
        self.lookup_into(p, map, key);
        p
    }

    /// [`FnLower::lookup`] into `p`, which other paths also set (one register for the entry's
    /// address wherever it was found).
    fn lookup_into(&mut self, p: VReg, map: u32, key: i16) {
        self.push(Inst::Call {
            helper: h::MAP_LOOKUP_ELEM,
            args: vec![Arg::Map(map), Arg::Fp(key)],
            dst: Some(p),
        });
    }

    /// `s[k] <<< v`: this CPU's entry (created from the zero value when missing) counts the
    /// value, adds it to the sum, moves min and max, and, when the script reads `hist()`, adds
    /// one to its power-of-two bucket.
    fn record(&mut self, target: &Expr, value: &Expr) -> R<()> {
        let ExprKind::Index { obj, key } = &target.kind else {
            return Err(self.err(target.span, "`<<<` records into a table entry"));
        };
        let Val::Table(t) = self.expr(obj)? else {
            return Err(self.err(obj.span, "`<<<` needs a table"));
        };
        let map = self.g.table_map[t as usize];
        let v = self.num(value)?;
        let v = self.reg(v);
        let kbuf = self.key(map, key)?;
        self.span = target.span;
        let (have, done) = (self.f.new_label(), self.f.new_label());
        let p = self.lookup(map, kbuf);
        self.push(Inst::Jmp {
            op: BPF_JNE,
            a: p,
            b: Opnd::Imm(0),
            target: have,
        });
        let zeros = self.g.zeros.unwrap_or_default();
        let zkey = self.zero_word()?;
        let z = self.lookup(zeros, zkey);
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: z,
            b: Opnd::Imm(0),
            target: done,
        });
        self.update_counted(t, map, kbuf, Arg::V(z), BPF_NOEXIST, target.span)?;
        self.lookup_into(p, map, kbuf);
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: p,
            b: Opnd::Imm(0),
            target: done,
        });
        self.push(Inst::Label(have));
        let ld = |s: &mut Self, dst: VReg, off: u32| {
            s.push(Inst::Load {
                size: BPF_DW,
                dst,
                base: Base::V(p),
                off: off as i16,
            })
        };
        let st = |s: &mut Self, off: u32, src: VReg| {
            s.push(Inst::Store {
                size: BPF_DW,
                base: Base::V(p),
                off: off as i16,
                src: Opnd::V(src),
            })
        };
        let (c, x) = (self.f.new_reg(), self.f.new_reg());
        ld(self, c, agg::COUNT);
        let not_first = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JNE,
            a: c,
            b: Opnd::Imm(0),
            target: not_first,
        });
        st(self, agg::MIN, v);
        st(self, agg::MAX, v);
        self.push(Inst::Label(not_first));
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst: c,
            src: Opnd::Imm(1),
            w32: false,
        });
        st(self, agg::COUNT, c);
        ld(self, x, agg::SUM);
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst: x,
            src: Opnd::V(v),
            w32: false,
        });
        st(self, agg::SUM, x);
        for (off, op) in [(agg::MIN, BPF_JSLE), (agg::MAX, BPF_JSGE)] {
            let keep = self.f.new_label();
            ld(self, x, off);
            self.push(Inst::Jmp {
                op,
                a: x,
                b: Opnd::V(v),
                target: keep,
            });
            st(self, off, v);
            self.push(Inst::Label(keep));
        }
        if self.g.maps[map as usize].value_size > agg::HIST {
            // Bucket: 0 for v <= 0, else 1 + floor(log2 v), by a binary search on the bits
            // without branches (a branch per step would make the verifiers walk every path):
            // a step's shift is `sh` when `y >> sh` is not zero, which is the sign bit of
            // `-(y >> sh)` (`y` is positive, so `y >> sh` is below 2^63), moved to `sh`'s bit.
            let (idx, y, t) = (self.f.new_reg(), self.f.new_reg(), self.f.new_reg());
            let put = self.f.new_label();
            self.push(Inst::Mov {
                dst: idx,
                src: Opnd::Imm(0),
            });
            self.push(Inst::Jmp {
                op: BPF_JSLE,
                a: v,
                b: Opnd::Imm(0),
                target: put,
            });
            self.push(Inst::Mov {
                dst: idx,
                src: Opnd::Imm(1),
            });
            self.push(Inst::Mov {
                dst: y,
                src: Opnd::V(v),
            });
            let alu = |f: &mut Self, op: u8, dst: VReg, src: Opnd| {
                f.push(Inst::Alu {
                    op,
                    dst,
                    src,
                    w32: false,
                })
            };
            for sh in [32i32, 16, 8, 4, 2, 1] {
                self.push(Inst::Mov {
                    dst: t,
                    src: Opnd::V(y),
                });
                alu(self, BPF_RSH, t, Opnd::Imm(sh));
                alu(self, BPF_NEG, t, Opnd::Imm(0));
                alu(self, BPF_RSH, t, Opnd::Imm(63));
                if sh > 1 {
                    alu(self, BPF_LSH, t, Opnd::Imm(sh.trailing_zeros() as i32));
                }
                alu(self, BPF_RSH, y, Opnd::V(t));
                alu(self, BPF_ADD, idx, Opnd::V(t));
            }
            self.push(Inst::Label(put));
            // The clamp lets the kernel's verifier bound the bucket's address.
            let fine = self.f.new_label();
            self.push(Inst::Jmp {
                op: BPF_JLE,
                a: idx,
                b: Opnd::Imm(agg::BUCKETS as i32 - 1),
                target: fine,
            });
            self.push(Inst::Mov {
                dst: idx,
                src: Opnd::Imm(agg::BUCKETS as i32 - 1),
            });
            self.push(Inst::Label(fine));
            self.push(Inst::Alu {
                op: BPF_LSH,
                dst: idx,
                src: Opnd::Imm(3),
                w32: false,
            });
            self.push(Inst::Alu {
                op: BPF_ADD,
                dst: idx,
                src: Opnd::V(p),
                w32: false,
            });
            self.push(Inst::Load {
                size: BPF_DW,
                dst: x,
                base: Base::V(idx),
                off: agg::HIST as i16,
            });
            self.push(Inst::Alu {
                op: BPF_ADD,
                dst: x,
                src: Opnd::Imm(1),
                w32: false,
            });
            self.push(Inst::Store {
                size: BPF_DW,
                base: Base::V(idx),
                off: agg::HIST as i16,
                src: Opnd::V(x),
            });
        }
        self.push(Inst::Label(done));
        Ok(())
    }

    /// `count(s[k])` and friends (userspace): the merged entry's field, 0 when absent.
    fn agg_read(&mut self, name: &str, arg: &Expr) -> R<Val> {
        let ExprKind::Index { obj, key } = &arg.kind else {
            return Err(self.err(arg.span, "an aggregation entry is needed here"));
        };
        let Val::Table(t) = self.expr(obj)? else {
            return Err(self.err(obj.span, "not a table"));
        };
        let map = self.g.table_map[t as usize];
        let kbuf = self.key(map, key)?;
        if name == "hist" {
            let kt = self.g.maps[map as usize].key;
            let fields = vec![Field {
                offset: RECORD_HEADER,
                ty: kt,
            }];
            let size = RECORD_HEADER + kt.size();
            let id = self.g.format(Action::Hist { map }, fields, size, arg.span);
            let rec = self.alloc(size, arg.span)?;
            self.push(Inst::Store {
                size: BPF_DW,
                base: Base::Fp,
                off: rec,
                src: Opnd::Imm(id as i32),
            });
            self.copy_str(
                (rec + 8, kt.size()),
                Val::Str {
                    off: kbuf,
                    size: kt.size(),
                },
            );
            self.emit_output(rec, size);
            return Ok(Val::Nil);
        }
        let p = self.lookup(map, kbuf);
        let (c, x) = (self.f.new_reg(), self.f.new_reg());
        self.push(Inst::Mov {
            dst: x,
            src: Opnd::Imm(0),
        });
        let miss = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: p,
            b: Opnd::Imm(0),
            target: miss,
        });
        let off = match name {
            "count" => agg::COUNT,
            "min" => agg::MIN,
            "max" => agg::MAX,
            _ => agg::SUM,
        };
        self.push(Inst::Load {
            size: BPF_DW,
            dst: x,
            base: Base::V(p),
            off: off as i16,
        });
        if name == "avg" {
            self.push(Inst::Load {
                size: BPF_DW,
                dst: c,
                base: Base::V(p),
                off: agg::COUNT as i16,
            });
            let Val::Num(q) = self.signed_divmod(x, Opnd::V(c), false)? else {
                return Err(self.err(arg.span, "internal: avg"));
            };
            self.push(Inst::Mov { dst: x, src: q });
        }
        self.push(Inst::Label(miss));
        Ok(Val::Num(Opnd::V(x)))
    }

    /// `map_update_elem(map, key, value, flags)` into table `table`'s map, counting the update
    /// as dropped when the table is full.
    fn update_counted(
        &mut self,
        table: u32,
        map: u32,
        key: i16,
        value: Arg,
        flags: i64,
        span: Span,
    ) -> R<()> {
        let r = self.f.new_reg();
        self.push(Inst::Call {
            helper: h::MAP_UPDATE_ELEM,
            args: vec![Arg::Map(map), Arg::Fp(key), value, Arg::Imm(flags)],
            dst: Some(r),
        });
        self.count_drop(table, r, span)
    }

    /// After a table update that returned `ret`: when the table was full (`-E2BIG`), counts
    /// the dropped update in the per-CPU drop counters, which ktap reports at exit.
    fn count_drop(&mut self, table: u32, ret: VReg, span: Span) -> R<()> {
        let Some(drops) = self.g.drops else {
            return Ok(());
        };
        let skip = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JNE,
            a: ret,
            b: Opnd::Imm(-E2BIG),
            target: skip,
        });
        let key = self.alloc(8, span)?;
        self.push(Inst::Store {
            size: BPF_W,
            base: Base::Fp,
            off: key,
            src: Opnd::Imm(table as i32),
        });
        let p = self.lookup(drops, key);
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: p,
            b: Opnd::Imm(0),
            target: skip,
        });
        // The counter is this CPU's own, so a plain add is exact.
        let n = self.f.new_reg();
        self.push(Inst::Load {
            size: BPF_DW,
            dst: n,
            base: Base::V(p),
            off: 0,
        });
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst: n,
            src: Opnd::Imm(1),
            w32: false,
        });
        self.push(Inst::Store {
            size: BPF_DW,
            base: Base::V(p),
            off: 0,
            src: Opnd::V(n),
        });
        self.push(Inst::Label(skip));
        Ok(())
    }

    fn for_pairs(&mut self, t: u32, key: &Ident, value: Option<&Ident>, body: &Block) -> R<()> {
        let map = self.g.table_map[t as usize];
        let (kt, vt) = (
            self.g.maps[map as usize].key,
            self.g.maps[map as usize].value,
        );
        let ksize = kt.size();
        let cur = self.alloc(ksize, key.span)?;
        let next = self.alloc(ksize, key.span)?;
        let (top, cont, done) = (self.f.new_label(), self.f.new_label(), self.f.new_label());
        let r = self.f.new_reg();
        self.push(Inst::Call {
            helper: h::USER_MAP_NEXT_KEY,
            args: vec![Arg::Map(map), Arg::Imm(0), Arg::Fp(next)],
            dst: Some(r),
        });
        self.push(Inst::Jmp {
            op: BPF_JNE,
            a: r,
            b: Opnd::Imm(0),
            target: done,
        });
        self.push(Inst::Label(top));
        self.copy_str(
            (cur, ksize),
            Val::Str {
                off: next,
                size: ksize,
            },
        );
        let mark = self.sp;
        let kvid = self.g.typed.decls.get(&key.span.lo).copied();
        if let Some(kvid) = kvid {
            let l = match kt {
                ValueType::Str(size) => {
                    let off = self.alloc(size, key.span)?;
                    self.copy_str((off, size), Val::Str { off: cur, size });
                    Local::Buf { off, size }
                }
                ValueType::Any(size) => {
                    let off = self.alloc(size, key.span)?;
                    self.copy_str((off, size), Val::Any { off: cur, size });
                    Local::Any { off, size }
                }
                // Its id and its task: both words, or it prints as no stack at all.
                ValueType::UStack => {
                    let off = self.alloc(16, key.span)?;
                    self.copy_str((off, 16), Val::Str { off: cur, size: 16 });
                    Local::Buf { off, size: 16 }
                }
                _ => {
                    let v = self.f.new_reg();
                    self.push(Inst::Load {
                        size: BPF_DW,
                        dst: v,
                        base: Base::Fp,
                        off: cur,
                    });
                    Local::Reg(v)
                }
            };
            self.locals.insert(kvid, l);
        }
        if let Some(value) = value {
            if let Some(vvid) = self.g.typed.decls.get(&value.span.lo).copied() {
                let p = self.lookup(map, cur);
                let l = match vt {
                    ValueType::Str(size) => {
                        let off = self.alloc(size, value.span)?;
                        Local::Buf { off, size }
                    }
                    ValueType::Any(size) => {
                        let off = self.alloc(size, value.span)?;
                        Local::Any { off, size }
                    }
                    _ => Local::Reg(self.f.new_reg()),
                };
                self.assign_local(l, Val::Nil);
                let miss = self.f.new_label();
                self.push(Inst::Jmp {
                    op: BPF_JEQ,
                    a: p,
                    b: Opnd::Imm(0),
                    target: miss,
                });
                let v = self.load_val(p, 0, vt, value.span)?;
                self.assign_local(l, v);
                self.push(Inst::Label(miss));
                self.locals.insert(vvid, l);
            }
        }
        self.breaks.push(done);
        self.block(body)?;
        self.breaks.pop();
        self.sp = mark;
        self.push(Inst::Label(cont));
        let r2 = self.f.new_reg();
        self.push(Inst::Call {
            helper: h::USER_MAP_NEXT_KEY,
            args: vec![Arg::Map(map), Arg::Fp(cur), Arg::Fp(next)],
            dst: Some(r2),
        });
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: r2,
            b: Opnd::Imm(0),
            target: top,
        });
        self.push(Inst::Label(done));
        Ok(())
    }

    // ---- conditions ----

    /// Jumps to `target` when `e`'s truth equals `when`; falls through otherwise.
    fn cond(&mut self, e: &Expr, when: bool, target: Label) -> R<()> {
        match &e.kind {
            ExprKind::Unary {
                op: UnOp::Not,
                expr,
            } => self.cond(expr, !when, target),
            ExprKind::Binary {
                op: BinOp::And,
                lhs,
                rhs,
            } => {
                if when {
                    let skip = self.f.new_label();
                    self.cond(lhs, false, skip)?;
                    self.cond(rhs, true, target)?;
                    self.push(Inst::Label(skip));
                } else {
                    self.cond(lhs, false, target)?;
                    self.cond(rhs, false, target)?;
                }
                Ok(())
            }
            ExprKind::Binary {
                op: BinOp::Or,
                lhs,
                rhs,
            } => {
                if when {
                    self.cond(lhs, true, target)?;
                    self.cond(rhs, true, target)?;
                } else {
                    let skip = self.f.new_label();
                    self.cond(lhs, true, skip)?;
                    self.cond(rhs, false, target)?;
                    self.push(Inst::Label(skip));
                }
                Ok(())
            }
            ExprKind::Binary { op, lhs, rhs }
                if matches!(
                    op,
                    BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
                ) =>
            {
                let eq = matches!(op, BinOp::Eq);
                // `x == nil` / `x != nil`: presence of a table entry.
                let nil_side = match (&lhs.kind, &rhs.kind) {
                    (_, ExprKind::Nil) => Some(lhs),
                    (ExprKind::Nil, _) => Some(rhs),
                    _ => None,
                };
                if let (Some(other), true) = (nil_side, matches!(op, BinOp::Eq | BinOp::Ne)) {
                    let present = self.presence(other)?;
                    // Jump when (present != eq) == when.
                    let jump_if_present = eq != when;
                    match present {
                        Opnd::Imm(p) => {
                            if (p != 0) == jump_if_present {
                                self.push(Inst::Ja { target });
                            }
                        }
                        Opnd::V(v) => self.push(Inst::Jmp {
                            op: if jump_if_present { BPF_JNE } else { BPF_JEQ },
                            a: v,
                            b: Opnd::Imm(0),
                            target,
                        }),
                    }
                    return Ok(());
                }
                let (a, b) = (self.expr(lhs)?, self.expr(rhs)?);
                self.span = e.span;
                let (a, b) = self.comparable(*op, a, b, e.span)?;
                match (a, b) {
                    (Val::Num(x), Val::Num(y)) => {
                        let mut bop = match op {
                            BinOp::Eq => BPF_JEQ,
                            BinOp::Ne => BPF_JNE,
                            BinOp::Lt => BPF_JSLT,
                            BinOp::Le => BPF_JSLE,
                            BinOp::Gt => BPF_JSGT,
                            _ => BPF_JSGE,
                        };
                        if !when {
                            bop = negate(bop);
                        }
                        let xa = self.reg(x);
                        self.push(Inst::Jmp {
                            op: bop,
                            a: xa,
                            b: y,
                            target,
                        });
                        Ok(())
                    }
                    (Val::Str { off: ao, size: asz }, Val::Str { off: bo, size: bsz }) => {
                        // Equal when every word matches; the shorter buffer is NUL beyond its end.
                        let eq_jump = (op == &BinOp::Eq) == when;
                        let differ = self.f.new_label();
                        let same = self.f.new_label();
                        let (ta, tb) = (self.f.new_reg(), self.f.new_reg());
                        for w in 0..asz.max(bsz) / 8 {
                            let o = (w * 8) as i16;
                            let la = if w * 8 < asz {
                                self.push(Inst::Load {
                                    size: BPF_DW,
                                    dst: ta,
                                    base: Base::Fp,
                                    off: ao + o,
                                });
                                Some(ta)
                            } else {
                                None
                            };
                            let rb = if w * 8 < bsz {
                                self.push(Inst::Load {
                                    size: BPF_DW,
                                    dst: tb,
                                    base: Base::Fp,
                                    off: bo + o,
                                });
                                Opnd::V(tb)
                            } else {
                                Opnd::Imm(0)
                            };
                            let a = match la {
                                Some(a) => a,
                                None => {
                                    self.push(Inst::Mov {
                                        dst: ta,
                                        src: Opnd::Imm(0),
                                    });
                                    ta
                                }
                            };
                            self.push(Inst::Jmp {
                                op: BPF_JNE,
                                a,
                                b: rb,
                                target: differ,
                            });
                        }
                        if eq_jump {
                            self.push(Inst::Ja { target });
                            self.push(Inst::Label(differ));
                        } else {
                            self.push(Inst::Ja { target: same });
                            self.push(Inst::Label(differ));
                            self.push(Inst::Ja { target });
                        }
                        self.push(Inst::Label(same));
                        Ok(())
                    }
                    (Val::Num(_), Val::Str { .. } | Val::Nil)
                    | (Val::Str { .. } | Val::Nil, Val::Num(_))
                    | (Val::Str { .. }, Val::Nil)
                    | (Val::Nil, Val::Str { .. }) => {
                        // Values of different types are never equal (ktap's rule).
                        if (op == &BinOp::Ne) == when {
                            self.push(Inst::Ja { target });
                        }
                        Ok(())
                    }
                    (Val::Nil, Val::Nil) => {
                        if (op == &BinOp::Eq) == when {
                            self.push(Inst::Ja { target });
                        }
                        Ok(())
                    }
                    _ => Err(self.err(e.span, "these values cannot be compared")),
                }
            }
            ExprKind::Index { .. } if self.mode_allows_presence(e) => {
                // `if (t[k])`: true when present (tables hold no false values).
                let p = self.presence(e)?;
                let v = self.reg(p);
                self.push(Inst::Jmp {
                    op: if when { BPF_JNE } else { BPF_JEQ },
                    a: v,
                    b: Opnd::Imm(0),
                    target,
                });
                Ok(())
            }
            _ => {
                let ty = self.ty(e);
                let v = self.expr(e)?;
                match (ty, v) {
                    (Ty::Bool, Val::Num(o)) => {
                        let r = self.reg(o);
                        self.push(Inst::Jmp {
                            op: if when { BPF_JNE } else { BPF_JEQ },
                            a: r,
                            b: Opnd::Imm(0),
                            target,
                        });
                    }
                    (_, Val::Nil) => {
                        if !when {
                            self.push(Inst::Ja { target });
                        }
                    }
                    (_, Val::Any { off, .. }) => {
                        // False for nil and for a tagged false; true for everything else.
                        let (tag, v) = (self.f.new_reg(), self.f.new_reg());
                        let (truthy, falsy) = (self.f.new_label(), self.f.new_label());
                        self.push(Inst::Load {
                            size: BPF_DW,
                            dst: tag,
                            base: Base::Fp,
                            off,
                        });
                        self.push(Inst::Load {
                            size: BPF_DW,
                            dst: v,
                            base: Base::Fp,
                            off: off + 8,
                        });
                        self.push(Inst::Jmp {
                            op: BPF_JEQ,
                            a: tag,
                            b: Opnd::Imm(TAG_NIL as i32),
                            target: falsy,
                        });
                        self.push(Inst::Jmp {
                            op: BPF_JNE,
                            a: tag,
                            b: Opnd::Imm(TAG_BOOL as i32),
                            target: truthy,
                        });
                        self.push(Inst::Jmp {
                            op: BPF_JEQ,
                            a: v,
                            b: Opnd::Imm(0),
                            target: falsy,
                        });
                        let out = self.f.new_label();
                        self.push(Inst::Label(truthy));
                        self.push(Inst::Ja {
                            target: if when { target } else { out },
                        });
                        self.push(Inst::Label(falsy));
                        if !when {
                            self.push(Inst::Ja { target });
                        }
                        self.push(Inst::Label(out));
                    }
                    // Numbers (0 included), strings and tables are true, as in Lua.
                    _ => {
                        if when {
                            self.push(Inst::Ja { target });
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Brings two operands of a comparison to one representation: tagged values compare with
    /// anything by tag and payload (as equal-sized tagged buffers, word by word, like
    /// strings); `<` and friends take their numbers.
    fn comparable(&mut self, op: BinOp, a: Val, b: Val, span: Span) -> R<(Val, Val)> {
        if !matches!(a, Val::Any { .. }) && !matches!(b, Val::Any { .. }) {
            return Ok((a, b));
        }
        if !matches!(op, BinOp::Eq | BinOp::Ne) {
            let x = match a {
                Val::Any { off, .. } => self.any_num(off),
                Val::Num(o) => o,
                _ => Opnd::Imm(0),
            };
            let y = match b {
                Val::Any { off, .. } => self.any_num(off),
                Val::Num(o) => o,
                _ => Opnd::Imm(0),
            };
            return Ok((Val::Num(x), Val::Num(y)));
        }
        let size = [a, b]
            .iter()
            .map(|v| match v {
                Val::Any { size, .. } => *size,
                Val::Str { size, .. } => size + 8,
                _ => 16,
            })
            .max()
            .unwrap_or(16);
        let mut out = Vec::new();
        for v in [a, b] {
            let off = match v {
                Val::Any { off, size: s } if s == size => off,
                v => {
                    let off = self.alloc(size, span)?;
                    self.write_any((off, size), v);
                    off
                }
            };
            out.push(Val::Str { off, size });
        }
        Ok((out[0], out[1]))
    }

    /// Whether `if (t[k])` may test only that the entry exists: not when the table can hold
    /// `false`.
    fn mode_allows_presence(&self, e: &Expr) -> bool {
        !matches!(self.ty(e), Ty::Bool | Ty::Any(_))
    }

    /// 1 when the value exists: a table entry is present, a variable is not nil.
    fn presence(&mut self, e: &Expr) -> R<Opnd> {
        if let ExprKind::Index { obj, key } = &e.kind {
            if let Ok(Val::Table(t)) = self.peek_table(obj) {
                let map = self.g.table_map[t as usize];
                let kbuf = self.key(map, key)?;
                let p = self.lookup(map, kbuf);
                return Ok(Opnd::V(p));
            }
        }
        match self.expr(e)? {
            // A tagged value is nil when its tag is.
            Val::Any { off, .. } => {
                let tag = self.f.new_reg();
                self.push(Inst::Load {
                    size: BPF_DW,
                    dst: tag,
                    base: Base::Fp,
                    off,
                });
                Ok(Opnd::V(tag))
            }
            v => Ok(Opnd::Imm(i32::from(!matches!(v, Val::Nil)))),
        }
    }

    fn peek_table(&mut self, obj: &Expr) -> R<Val> {
        match self.ty(obj) {
            Ty::Table(t) => Ok(Val::Table(t)),
            _ => Err(self.err(obj.span, "not a table")),
        }
    }

    // ---- expressions ----

    fn num(&mut self, e: &Expr) -> R<Opnd> {
        match self.expr(e)? {
            Val::Num(o) => Ok(o),
            Val::Any { off, .. } => Ok(self.any_num(off)),
            Val::Nil => Ok(Opnd::Imm(0)),
            _ => Err(self.err(e.span, "a number is needed here")),
        }
    }

    fn expr(&mut self, e: &Expr) -> R<Val> {
        let saved = self.span;
        self.span = e.span;
        let v = self.expr_inner(e);
        self.span = saved;
        v
    }

    fn expr_inner(&mut self, e: &Expr) -> R<Val> {
        // `{}` and `table.new()` create their map at load time: no code.
        if let (Ty::Table(t), ExprKind::Table(_) | ExprKind::Call { .. }) = (self.ty(e), &e.kind) {
            if let ExprKind::Table(items) = &e.kind {
                // The constructor's entries are stored when the top-level code runs.
                let mut next = 1;
                for item in items {
                    let mark = self.sp;
                    let (k, v) = match item {
                        TableItem::Positional(v) => {
                            next += 1;
                            (Val::Num(self.konst(next - 1)), v)
                        }
                        TableItem::Named(n, v) => {
                            let size = match self.g.maps[self.g.table_map[t as usize] as usize].key
                            {
                                ValueType::Str(size) => size,
                                _ => round8(n.name.len() as u32 + 1),
                            };
                            let off = self.alloc(size, n.span)?;
                            self.const_str(off, size, n.name.as_bytes());
                            (Val::Str { off, size }, v)
                        }
                        TableItem::Keyed(k, v) => (self.expr(k)?, v),
                    };
                    let val = self.expr(v)?;
                    self.table_store(t, k, val, v.span)?;
                    self.sp = mark;
                }
            }
            return Ok(Val::Table(t));
        }
        if let Some(n) = const_int(e) {
            return Ok(Val::Num(self.konst(n)));
        }
        match &e.kind {
            ExprKind::Nil => Ok(Val::Nil),
            ExprKind::Bool(b) => Ok(Val::Num(Opnd::Imm(i32::from(*b)))),
            ExprKind::Number(n) => Ok(Val::Num(self.konst(*n))),
            ExprKind::Str(s) => {
                let size = match self.ty(e) {
                    Ty::Str(n) => round8(n),
                    _ => round8(s.len() as u32 + 1),
                };
                let off = self.alloc(size, e.span)?;
                self.const_str(off, size, s);
                Ok(Val::Str { off, size })
            }
            ExprKind::Name(_) => self.name(e),
            ExprKind::Index { obj, key } => {
                if let Some(Binding::ScriptArgs) = self.g.typed.bindings.get(&obj.id) {
                    return self.script_arg(e, key);
                }
                let Val::Table(t) = self.expr(obj)? else {
                    return Err(self.err(obj.span, "only tables can be indexed"));
                };
                let map = self.g.table_map[t as usize];
                let kbuf = self.key(map, key)?;
                let vt = self.g.maps[map as usize].value;
                let p = self.lookup(map, kbuf);
                let miss = self.f.new_label();
                match vt {
                    ValueType::Str(_) | ValueType::Any(_) | ValueType::UStack => {
                        let size = vt.size();
                        let off = self.alloc(size, e.span)?;
                        self.zero_buf(off, size);
                        self.push(Inst::Jmp {
                            op: BPF_JEQ,
                            a: p,
                            b: Opnd::Imm(0),
                            target: miss,
                        });
                        let t = self.f.new_reg();
                        for w in 0..size / 8 {
                            let o = (w * 8) as i16;
                            self.push(Inst::Load {
                                size: BPF_DW,
                                dst: t,
                                base: Base::V(p),
                                off: o,
                            });
                            self.push(Inst::Store {
                                size: BPF_DW,
                                base: Base::Fp,
                                off: off + o,
                                src: Opnd::V(t),
                            });
                        }
                        self.push(Inst::Label(miss));
                        Ok(buf_val(vt, off, size))
                    }
                    _ => {
                        let v = self.f.new_reg();
                        self.push(Inst::Mov {
                            dst: v,
                            src: Opnd::Imm(0),
                        });
                        self.push(Inst::Jmp {
                            op: BPF_JEQ,
                            a: p,
                            b: Opnd::Imm(0),
                            target: miss,
                        });
                        self.push(Inst::Load {
                            size: BPF_DW,
                            dst: v,
                            base: Base::V(p),
                            off: 0,
                        });
                        self.push(Inst::Label(miss));
                        Ok(Val::Num(Opnd::V(v)))
                    }
                }
            }
            ExprKind::Field { obj, name } => {
                if let Some(Binding::Args) = self.g.typed.bindings.get(&obj.id) {
                    if let Some(site) = self.site {
                        let ty = self.ty(e);
                        let Some(f) = site.fetch().iter().find(|f| f.name == name.name) else {
                            return Ok(Val::Num(Opnd::Imm(0)));
                        };
                        return self.fetch_value(site, f, ty, e.span);
                    }
                    let ty = self.ty(e);
                    self.g.field_uses.push(FieldUse::Named(name.name.clone()));
                    let field = self
                        .event
                        .and_then(|ev| ev.field(&name.name))
                        .map(|f| self.record_field(f));
                    return self.tp_field(field.as_ref(), ty, e.span);
                }
                Err(self.err(e.span, "`table.field` is not supported yet"))
            }
            ExprKind::Call { callee, args } => self.call(e, callee, args),
            ExprKind::Binary { op, lhs, rhs } => self.binary(e, *op, lhs, rhs),
            ExprKind::Unary { op, expr } => match op {
                UnOp::Not => self.bool_of(e),
                UnOp::Neg | UnOp::BitNot => {
                    let a = self.num(expr)?;
                    let r = self.f.new_reg();
                    self.push(Inst::Mov { dst: r, src: a });
                    if *op == UnOp::Neg {
                        self.push(Inst::Alu {
                            op: BPF_NEG,
                            dst: r,
                            src: Opnd::Imm(0),
                            w32: false,
                        });
                    } else {
                        self.push(Inst::Alu {
                            op: BPF_XOR,
                            dst: r,
                            src: Opnd::Imm(-1),
                            w32: false,
                        });
                    }
                    Ok(Val::Num(Opnd::V(r)))
                }
            },
            ExprKind::Table(_) => match self.ty(e) {
                Ty::Table(t) => Ok(Val::Table(t)),
                _ => Err(self.err(
                    e.span,
                    "a table constructor can only initialise a top-level variable",
                )),
            },
        }
    }

    /// A condition's value as 0 or 1.
    fn bool_of(&mut self, e: &Expr) -> R<Val> {
        let r = self.f.new_reg();
        let done = self.f.new_label();
        self.push(Inst::Mov {
            dst: r,
            src: Opnd::Imm(1),
        });
        self.cond(e, true, done)?;
        self.push(Inst::Mov {
            dst: r,
            src: Opnd::Imm(0),
        });
        self.push(Inst::Label(done));
        Ok(Val::Num(Opnd::V(r)))
    }

    fn script_arg(&mut self, e: &Expr, key: &Expr) -> R<Val> {
        let i = const_int(key).unwrap_or(-1);
        let arg = usize::try_from(i)
            .ok()
            .and_then(|i| self.g.typed_script_arg(i));
        match arg {
            None => Ok(Val::Nil),
            Some(a) => match a.parse::<i64>() {
                Ok(n) => Ok(Val::Num(self.konst(n))),
                Err(_) => {
                    let size = match self.ty(e) {
                        Ty::Str(n) => round8(n),
                        _ => round8(a.len() as u32 + 1),
                    };
                    let off = self.alloc(size, e.span)?;
                    self.const_str(off, size, a.as_bytes());
                    Ok(Val::Str { off, size })
                }
            },
        }
    }

    fn name(&mut self, e: &Expr) -> R<Val> {
        match self.g.typed.bindings.get(&e.id).copied() {
            Some(Binding::Local(vid)) => match self.locals.get(&vid) {
                Some(l) => Ok(self.local_val(*l)),
                None => match self.g.typed.var_ty[vid as usize].ty {
                    Ty::Str(n) => {
                        let size = round8(n);
                        let off = self.alloc(size, e.span)?;
                        self.zero_buf(off, size);
                        Ok(Val::Str { off, size })
                    }
                    Ty::Nil | Ty::Unknown => Ok(Val::Nil),
                    _ => Ok(Val::Num(Opnd::Imm(0))),
                },
            },
            Some(Binding::Global(gi)) => {
                let (gp, off, vt, ty) = self.global_slot(gi);
                match ty {
                    Ty::Table(t) => Ok(Val::Table(t)),
                    Ty::Nil | Ty::Unknown => Ok(Val::Nil),
                    _ => self.load_val(gp, off, vt, e.span),
                }
            }
            Some(Binding::Var(v)) => self.builtin_var(v, e),
            _ => Err(self.err(e.span, "this name has no value here")),
        }
    }

    fn builtin_var(&mut self, v: BuiltinVar, e: &Expr) -> R<Val> {
        let call = |s: &mut Self, helper: i32| {
            let r = s.f.new_reg();
            s.push(Inst::Call {
                helper,
                args: vec![],
                dst: Some(r),
            });
            r
        };
        match v {
            BuiltinVar::Execname => {
                let off = self.alloc(16, e.span)?;
                // Kernels 6.0 to 6.3 (6.1 among them) copy the name with strscpy and leave the
                // bytes after its NUL as they were: uncleared, they make keys and comparisons
                // differ from call to call (seen on 6.1 boards with the JIT on, whose stack is
                // not reused the way the interpreter's is). The others pad with zeroes.
                if !self.g.typed.comm_padded {
                    self.zero_buf(off, 16);
                }
                self.push(Inst::Call {
                    helper: h::GET_CURRENT_COMM,
                    args: vec![Arg::Fp(off), Arg::Imm(16)],
                    dst: None,
                });
                Ok(Val::Str { off, size: 16 })
            }
            BuiltinVar::Pid => {
                let r = call(self, h::GET_CURRENT_PID_TGID);
                self.push(Inst::Alu {
                    op: BPF_RSH,
                    dst: r,
                    src: Opnd::Imm(32),
                    w32: false,
                });
                Ok(Val::Num(Opnd::V(r)))
            }
            BuiltinVar::Tid => {
                let r = call(self, h::GET_CURRENT_PID_TGID);
                self.push(Inst::Alu {
                    op: BPF_AND,
                    dst: r,
                    src: Opnd::Imm(-1),
                    w32: true,
                });
                Ok(Val::Num(Opnd::V(r)))
            }
            BuiltinVar::Uid => {
                let r = call(self, h::GET_CURRENT_UID_GID);
                self.push(Inst::Alu {
                    op: BPF_AND,
                    dst: r,
                    src: Opnd::Imm(-1),
                    w32: true,
                });
                Ok(Val::Num(Opnd::V(r)))
            }
            BuiltinVar::Cpu => Ok(Val::Num(Opnd::V(call(self, h::GET_SMP_PROCESSOR_ID)))),
            BuiltinVar::Probename => {
                if let (Some(p), Some((names, _))) = (self.call_name, self.syscalls) {
                    // The call's name, copied out of the names map's entry.
                    let size = self.g.maps[names as usize].value_size;
                    let off = self.alloc(size, e.span)?;
                    let t = self.f.new_reg();
                    for w in 0..size / 8 {
                        self.push(Inst::Load {
                            size: BPF_DW,
                            dst: t,
                            base: Base::V(p),
                            off: (w * 8) as i16,
                        });
                        self.push(Inst::Store {
                            size: BPF_DW,
                            base: Base::Fp,
                            off: off + (w * 8) as i16,
                            src: Opnd::V(t),
                        });
                    }
                    return Ok(Val::Str { off, size });
                }
                let name = match (self.event, self.site) {
                    (Some(ev), _) => ev.name.clone(),
                    (None, Some(site)) => site.symbol().to_string(),
                    (None, None) => "profile".to_string(),
                };
                let size = match self.ty(e) {
                    Ty::Str(n) => round8(n),
                    _ => round8(name.len() as u32 + 1),
                };
                let off = self.alloc(size, e.span)?;
                self.const_str(off, size, name.as_bytes());
                Ok(Val::Str { off, size })
            }
            BuiltinVar::Argstr => {
                self.g.field_uses.push(FieldUse::Argstr);
                Ok(Val::Argstr)
            }
            BuiltinVar::Arg(i) => {
                if let Some(site) = self.site {
                    let ty = self.ty(e);
                    return self.site_arg(site, u32::from(i), ty, e.span);
                }
                let ty = self.ty(e);
                self.g.field_uses.push(FieldUse::Arg(u32::from(i)));
                let field = self
                    .event
                    .and_then(|ev| ev.args().nth(i as usize))
                    .map(|f| self.record_field(f));
                self.tp_field(field.as_ref(), ty, e.span)
            }
        }
    }

    /// `argN` of a kprobe or uprobe: 0 is the probed address; then the fetch-args if the
    /// event has them, else the function's arguments by the target's calling convention (the
    /// return value as `arg1` of a return probe).
    fn site_arg(&mut self, site: &ProbeSite, i: u32, ty: Ty, span: Span) -> R<Val> {
        let regs = arch::regs(self.g.target);
        if i == 0 {
            return Ok(Val::Num(self.ctx_slot(regs.ip())));
        }
        if !site.fetch().is_empty() && !(site.is_ret() && i == 1) {
            return match site.fetch_for_arg(i) {
                Some(f) => self.fetch_value(site, f, ty, span),
                None => Ok(Val::Num(Opnd::Imm(0))),
            };
        }
        if site.is_ret() {
            return Ok(Val::Num(if i == 1 {
                self.ctx_slot(regs.ret())
            } else {
                Opnd::Imm(0)
            }));
        }
        let kind = match site {
            ProbeSite::Kprobe { symbol, .. } => regs.call_kind(symbol),
            ProbeSite::Uprobe { .. } => CallKind::Function,
        };
        match regs.arg(i, kind) {
            Some(loc) => self.arg_loc(site, loc, span),
            None => Ok(Val::Num(Opnd::Imm(0))),
        }
    }

    /// A register saved in the probe's `struct pt_regs` context.
    fn ctx_slot(&mut self, slot: RegSlot) -> Opnd {
        let r = self.f.new_reg();
        let size = match slot.size {
            1 => BPF_B,
            2 => BPF_H,
            4 => BPF_W,
            _ => BPF_DW,
        };
        self.push(Inst::Load {
            size,
            dst: r,
            base: Base::V(self.ctx),
            off: slot.offset as i16,
        });
        Opnd::V(r)
    }

    /// Reads `size` bytes at `addr` (checked: a bad address reads as 0) from the probed task's
    /// memory (uprobes) or the kernel's (kprobes, and `kernel` reads).
    fn probe_read_word(&mut self, user: bool, addr: Opnd, size: u8, span: Span) -> R<Opnd> {
        let tmp = self.alloc(8, span)?;
        self.push(Inst::Store {
            size: BPF_DW,
            base: Base::Fp,
            off: tmp,
            src: Opnd::Imm(0),
        });
        let helper = if user {
            h::PROBE_READ_USER
        } else {
            h::PROBE_READ_KERNEL
        };
        let size = match size {
            1 | 2 | 4 => size,
            _ => 8,
        };
        let a = self.reg(addr);
        self.push(Inst::Call {
            helper,
            args: vec![Arg::Fp(tmp), Arg::Imm(i64::from(size)), Arg::V(a)],
            dst: None,
        });
        let r = self.f.new_reg();
        // The bytes read are the value's own, at the start of the buffer in either byte order.
        let sz = match size {
            1 => BPF_B,
            2 => BPF_H,
            4 => BPF_W,
            _ => BPF_DW,
        };
        self.push(Inst::Load {
            size: sz,
            dst: r,
            base: Base::Fp,
            off: tmp,
        });
        Ok(Opnd::V(r))
    }

    fn arg_loc(&mut self, site: &ProbeSite, loc: ArgLoc, span: Span) -> R<Val> {
        let regs = arch::regs(self.g.target);
        let user = matches!(site, ProbeSite::Uprobe { .. });
        Ok(Val::Num(match loc {
            ArgLoc::Reg(slot) => self.ctx_slot(slot),
            ArgLoc::Stack { offset, size } => {
                let sp = self.ctx_slot(regs.sp());
                let a = self.reg(sp);
                self.push(Inst::Alu {
                    op: BPF_ADD,
                    dst: a,
                    src: Opnd::Imm(offset as i32),
                    w32: false,
                });
                self.probe_read_word(user, Opnd::V(a), size, span)?
            }
            ArgLoc::Indirect { ptr, field } => {
                // The user's registers saved on the kernel stack: always a kernel read.
                let p = self.ctx_slot(ptr);
                let a = self.reg(p);
                self.push(Inst::Alu {
                    op: BPF_ADD,
                    dst: a,
                    src: Opnd::Imm(field.offset as i32),
                    w32: false,
                });
                self.probe_read_word(false, Opnd::V(a), field.size, span)?
            }
        }))
    }

    /// One fetch-arg (`%reg`, `+OFF(%reg)`, `$retval`, `$stackN`, with an optional type).
    fn fetch_value(&mut self, site: &ProbeSite, f: &FetchArg, ty: Ty, span: Span) -> R<Val> {
        let regs = arch::regs(self.g.target);
        let user = matches!(site, ProbeSite::Uprobe { .. });
        let word = self.g.target.word_size;
        let (size, signed) = match f.ty.as_deref() {
            Some("u8") => (1, false),
            Some("s8") => (1, true),
            Some("u16") => (2, false),
            Some("s16") => (2, true),
            Some("u32") => (4, false),
            Some("s32") => (4, true),
            Some("u64") => (8, false),
            Some("s64") => (8, true),
            _ => (word, false),
        };
        let arch_name = format!("{:?}", self.g.target.arch);
        let reg = |name: &str| {
            let name = name.trim_start_matches('%');
            regs.reg(name).ok_or_else(|| {
                Diagnostic::error(
                    f.span,
                    format!(
                        "`%{}` is not a register of {} (its registers: {})",
                        name,
                        arch_name,
                        regs.names().join(" ")
                    ),
                )
            })
        };
        let addr = match &f.spec {
            FetchSpec::Reg(name) => {
                // The whole register is loaded (some program types allow context reads of
                // the full word only), then cut to the type's size.
                let slot = reg(name)?;
                let v = self.ctx_slot(slot);
                let v = if signed {
                    self.sign(v, size, true)
                } else if size < slot.size {
                    let r = self.reg(v);
                    let mask = match size {
                        1 => 0xff,
                        2 => 0xffff,
                        _ => -1,
                    };
                    self.push(Inst::Alu {
                        op: BPF_AND,
                        dst: r,
                        src: Opnd::Imm(mask),
                        w32: size == 4,
                    });
                    Opnd::V(r)
                } else {
                    v
                };
                return Ok(Val::Num(v));
            }
            FetchSpec::Retval => return Ok(Val::Num(self.ctx_slot(regs.ret()))),
            FetchSpec::Const(c) => return Ok(Val::Num(self.konst(*c))),
            FetchSpec::Deref { offset, reg: r } => {
                let slot = reg(r)?;
                let base = self.ctx_slot(slot);
                let a = self.reg(base);
                let off = i32::try_from(*offset)
                    .map_err(|_| self.err(f.span, "this offset does not fit in 32 bits"))?;
                if off != 0 {
                    self.push(Inst::Alu {
                        op: BPF_ADD,
                        dst: a,
                        src: Opnd::Imm(off),
                        w32: false,
                    });
                }
                Opnd::V(a)
            }
            FetchSpec::Stack(n) => {
                let sp = self.ctx_slot(regs.sp());
                let a = self.reg(sp);
                let off = regs.stack_entry(*n).unwrap_or(0);
                self.push(Inst::Alu {
                    op: BPF_ADD,
                    dst: a,
                    src: Opnd::Imm(off as i32),
                    w32: false,
                });
                Opnd::V(a)
            }
        };
        if let Ty::Str(cap) = fetch_ty(f, self.g.str_cap).max_str(ty) {
            let size = round8(cap);
            let off = self.alloc(size, span)?;
            self.zero_buf(off, size);
            let helper = if user {
                h::PROBE_READ_USER_STR
            } else {
                h::PROBE_READ_KERNEL_STR
            };
            let a = self.reg(addr);
            self.push(Inst::Call {
                helper,
                args: vec![Arg::Fp(off), Arg::Imm(size as i64), Arg::V(a)],
                dst: None,
            });
            return Ok(Val::Str { off, size });
        }
        let v = self.probe_read_word(user, addr, size, span)?;
        Ok(Val::Num(self.sign(v, size, signed)))
    }

    /// Sign-extends the low `size` bytes of `v` when `signed`.
    fn sign(&mut self, v: Opnd, size: u8, signed: bool) -> Opnd {
        if !signed || size >= 8 {
            return v;
        }
        let r = self.reg(v);
        let sh = 64 - 8 * i32::from(size);
        self.push(Inst::Alu {
            op: BPF_LSH,
            dst: r,
            src: Opnd::Imm(sh),
            w32: false,
        });
        self.push(Inst::Alu {
            op: BPF_ARSH,
            dst: r,
            src: Opnd::Imm(sh),
            w32: false,
        });
        Opnd::V(r)
    }

    /// Turns preempt count `r` into 1 when it holds a hardirq, softirq or NMI count, else 0.
    fn irq_count_set(&mut self, r: VReg) -> VReg {
        self.push(Inst::Alu {
            op: BPF_AND,
            dst: r,
            src: Opnd::Imm(crate::types::IRQ_COUNT_MASK),
            w32: false,
        });
        let zero = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: r,
            b: Opnd::Imm(0),
            target: zero,
        });
        self.push(Inst::Mov {
            dst: r,
            src: Opnd::Imm(1),
        });
        self.push(Inst::Label(zero));
        r
    }

    /// Where field `f` of the event is in the record the program gets. On `raw_syscalls` the
    /// call's number is a `long`, so on a 64-bit big-endian target the `int` `__syscall_nr`
    /// is its second half.
    fn record_field(&self, f: &ktap_bpf::kernel::TpField) -> ktap_bpf::kernel::TpField {
        let t = self.g.target;
        let mut f = f.clone();
        if self.syscalls.is_some()
            && (f.offset, f.size, t.word_size, t.endian) == (8, 4, 8, Endian::Big)
        {
            f.offset = 12;
        }
        f
    }

    /// Reads a tracepoint field from the context (0 or "" when this event lacks it).
    fn tp_field(&mut self, f: Option<&ktap_bpf::kernel::TpField>, ty: Ty, span: Span) -> R<Val> {
        let Some(f) = f else {
            return match ty {
                Ty::Str(n) => {
                    let size = round8(n);
                    let off = self.alloc(size, span)?;
                    self.zero_buf(off, size);
                    Ok(Val::Str { off, size })
                }
                _ => Ok(Val::Num(Opnd::Imm(0))),
            };
        };
        if let Ty::Str(n) = ty {
            // A char array inside the record: copy it with aligned loads, then terminate.
            let size = round8(n);
            let off = self.alloc(size, span)?;
            self.zero_buf(off, size);
            let t = self.f.new_reg();
            let mut pos = 0u32;
            let len = f.size.min(size);
            while pos < len {
                let at = f.offset + pos;
                let w = [8u32, 4, 2, 1]
                    .into_iter()
                    .find(|w| at.is_multiple_of(*w) && pos + w <= len)
                    .unwrap_or(1);
                let sz = match w {
                    8 => BPF_DW,
                    4 => BPF_W,
                    2 => BPF_H,
                    _ => BPF_B,
                };
                self.push(Inst::Load {
                    size: sz,
                    dst: t,
                    base: Base::V(self.ctx),
                    off: at as i16,
                });
                self.push(Inst::Store {
                    size: sz,
                    base: Base::Fp,
                    off: off + pos as i16,
                    src: Opnd::V(t),
                });
                pos += w;
            }
            self.push(Inst::Store {
                size: BPF_B,
                base: Base::Fp,
                off: off + size as i16 - 1,
                src: Opnd::Imm(0),
            });
            return Ok(Val::Str { off, size });
        }
        let (sz, bits) = match f.size {
            1 => (BPF_B, 8),
            2 => (BPF_H, 16),
            4 => (BPF_W, 32),
            _ => (BPF_DW, 64),
        };
        let r = self.f.new_reg();
        self.push(Inst::Load {
            size: sz,
            dst: r,
            base: Base::V(self.ctx),
            off: f.offset as i16,
        });
        if f.signed && bits < 64 {
            let sh = 64 - bits;
            self.push(Inst::Alu {
                op: BPF_LSH,
                dst: r,
                src: Opnd::Imm(sh),
                w32: false,
            });
            self.push(Inst::Alu {
                op: BPF_ARSH,
                dst: r,
                src: Opnd::Imm(sh),
                w32: false,
            });
        }
        Ok(Val::Num(Opnd::V(r)))
    }

    fn binary(&mut self, e: &Expr, op: BinOp, lhs: &Expr, rhs: &Expr) -> R<Val> {
        use BinOp::*;
        match op {
            Or | And | Eq | Ne | Lt | Le | Gt | Ge => self.bool_of(e),
            Concat => match concat_const(e) {
                Some(bytes) => {
                    let size = match self.ty(e) {
                        Ty::Str(n) => round8(n),
                        _ => round8(bytes.len() as u32 + 1),
                    };
                    let off = self.alloc(size, e.span)?;
                    self.const_str(off, size, &bytes);
                    Ok(Val::Str { off, size })
                }
                None => self.concat(e),
            },
            _ => {
                let a = self.num(lhs)?;
                let b = self.num(rhs)?;
                self.span = e.span;
                let r = self.f.new_reg();
                self.push(Inst::Mov { dst: r, src: a });
                let bop = match op {
                    Add => BPF_ADD,
                    Sub => BPF_SUB,
                    Mul => BPF_MUL,
                    BitOr => BPF_OR,
                    BitAnd => BPF_AND,
                    BitXor => BPF_XOR,
                    Shl => BPF_LSH,
                    Shr => BPF_RSH,
                    Div | Mod => return self.signed_divmod(r, b, op == Mod),
                    _ => unreachable_op(),
                };
                self.push(Inst::Alu {
                    op: bop,
                    dst: r,
                    src: b,
                    w32: false,
                });
                Ok(Val::Num(Opnd::V(r)))
            }
        }
    }

    /// `a .. b .. c` at run time. The result is assembled in the per-CPU scratch map value,
    /// whose pointer may take a bounded variable offset on every kernel (a stack pointer may
    /// not, before 5.11), one piece at a time with `probe_read_kernel_str`, which copies up to
    /// a NUL and says how much it copied; numbers are first written out in decimal there too.
    /// Then the result is copied onto the stack like any string.
    fn concat(&mut self, e: &Expr) -> R<Val> {
        let size = match self.ty(e) {
            Ty::Str(n) => round8(n),
            _ => round8(self.g.str_cap),
        };
        let mut pieces = Vec::new();
        flatten_concat(e, &mut pieces);
        let mut vals = Vec::new();
        for p in &pieces {
            vals.push(self.expr(p)?);
        }
        self.span = e.span;
        self.concat_vals(vals, size, e.span)
    }

    /// The string of `vals` joined (numbers in decimal), in a buffer of `size` bytes.
    fn concat_vals(&mut self, vals: Vec<Val>, size: u32, span: Span) -> R<Val> {
        let scratch = self.scratch_map();
        let key = self.zero_word()?;
        let out = self.alloc(size, span)?;
        self.zero_buf(out, size);
        let p = self.lookup(scratch, key);
        let done = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: p,
            b: Opnd::Imm(0),
            target: done,
        });
        for w in 0..size / 8 {
            self.push(Inst::Store {
                size: BPF_DW,
                base: Base::V(p),
                off: (w * 8) as i16,
                src: Opnd::Imm(0),
            });
        }
        let pos = self.f.new_reg();
        self.push(Inst::Mov {
            dst: pos,
            src: Opnd::Imm(0),
        });
        let finish = self.f.new_label();
        for v in vals {
            let src = match v {
                Val::Str { off, .. } => {
                    let r = self.f.new_reg();
                    self.push(Inst::FpAddr { dst: r, off });
                    r
                }
                Val::Num(n) => self.decimal(p, n),
                Val::Any { off, .. } => {
                    // A number is written out; anything else is its string payload.
                    let (tag, src) = (self.f.new_reg(), self.f.new_reg());
                    let (num, join) = (self.f.new_label(), self.f.new_label());
                    self.push(Inst::Load {
                        size: BPF_DW,
                        dst: tag,
                        base: Base::Fp,
                        off,
                    });
                    self.push(Inst::Jmp {
                        op: BPF_JEQ,
                        a: tag,
                        b: Opnd::Imm(TAG_NUM as i32),
                        target: num,
                    });
                    self.push(Inst::FpAddr {
                        dst: src,
                        off: off + 8,
                    });
                    self.push(Inst::Ja { target: join });
                    self.push(Inst::Label(num));
                    let n = self.f.new_reg();
                    self.push(Inst::Load {
                        size: BPF_DW,
                        dst: n,
                        base: Base::Fp,
                        off: off + 8,
                    });
                    let d = self.decimal(p, Opnd::V(n));
                    self.push(Inst::Mov {
                        dst: src,
                        src: Opnd::V(d),
                    });
                    self.push(Inst::Label(join));
                    src
                }
                _ => continue,
            };
            // Room left: pos < size - 1, so every read gets at least one byte and its NUL.
            // The test and both uses read one short-lived copy: `pos` lives across calls and
            // may be spilled, and a verifier need not carry a test of one fill over to the
            // next fill of the same slot.
            let at = self.f.new_reg();
            self.push(Inst::Mov {
                dst: at,
                src: Opnd::V(pos),
            });
            self.push(Inst::Jmp {
                op: BPF_JGE,
                a: at,
                b: Opnd::Imm(size as i32 - 1),
                target: finish,
            });
            let dst = self.f.new_reg();
            self.push(Inst::Mov {
                dst,
                src: Opnd::V(p),
            });
            self.push(Inst::Alu {
                op: BPF_ADD,
                dst,
                src: Opnd::V(at),
                w32: false,
            });
            let room = self.f.new_reg();
            self.push(Inst::Mov {
                dst: room,
                src: Opnd::Imm(size as i32),
            });
            self.push(Inst::Alu {
                op: BPF_SUB,
                dst: room,
                src: Opnd::V(at),
                w32: false,
            });
            let n = self.f.new_reg();
            self.push(Inst::Call {
                helper: h::PROBE_READ_KERNEL_STR,
                args: vec![Arg::V(dst), Arg::V(room), Arg::V(src)],
                dst: Some(n),
            });
            // A failed read adds nothing; otherwise advance past the piece, not its NUL. The
            // clamp keeps `pos` provably inside the buffer whatever the helper returned.
            let skip = self.f.new_label();
            self.push(Inst::Jmp {
                op: BPF_JSLE,
                a: n,
                b: Opnd::Imm(0),
                target: skip,
            });
            self.push(Inst::Alu {
                op: BPF_ADD,
                dst: pos,
                src: Opnd::V(n),
                w32: false,
            });
            self.push(Inst::Alu {
                op: BPF_SUB,
                dst: pos,
                src: Opnd::Imm(1),
                w32: false,
            });
            self.push(Inst::Label(skip));
            self.clamp_max(pos, size as i32 - 1);
        }
        self.push(Inst::Label(finish));
        let t = self.f.new_reg();
        for w in 0..size / 8 {
            let o = (w * 8) as i16;
            self.push(Inst::Load {
                size: BPF_DW,
                dst: t,
                base: Base::V(p),
                off: o,
            });
            self.push(Inst::Store {
                size: BPF_DW,
                base: Base::Fp,
                off: out + o,
                src: Opnd::V(t),
            });
        }
        self.push(Inst::Store {
            size: BPF_B,
            base: Base::Fp,
            off: out + size as i16 - 1,
            src: Opnd::Imm(0),
        });
        self.push(Inst::Label(done));
        Ok(Val::Str { off: out, size })
    }

    /// Writes `n` in decimal into the scratch value at `p + DIGITS` (right-aligned, NUL after)
    /// and returns a pointer to its first character.
    fn decimal(&mut self, p: VReg, n: Opnd) -> VReg {
        const DIGITS: i16 = SCRATCH_STR as i16;
        const END: i16 = DIGITS + 23;
        let v = self.f.new_reg();
        self.push(Inst::Mov { dst: v, src: n });
        let neg = self.f.new_reg();
        self.push(Inst::Mov {
            dst: neg,
            src: Opnd::Imm(0),
        });
        let positive = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JSGE,
            a: v,
            b: Opnd::Imm(0),
            target: positive,
        });
        // The magnitude of i64::MIN is itself read as unsigned, which is what the divisions use.
        self.push(Inst::Alu {
            op: BPF_NEG,
            dst: v,
            src: Opnd::Imm(0),
            w32: false,
        });
        self.push(Inst::Mov {
            dst: neg,
            src: Opnd::Imm(1),
        });
        self.push(Inst::Label(positive));
        self.push(Inst::Store {
            size: BPF_B,
            base: Base::V(p),
            off: END,
            src: Opnd::Imm(0),
        });
        let start = self.f.new_reg();
        let (q, d) = (self.f.new_reg(), self.f.new_reg());
        let digits_done = self.f.new_label();
        for i in 0..20i16 {
            self.push(Inst::Mov {
                dst: q,
                src: Opnd::V(v),
            });
            self.udiv10(q);
            self.push(Inst::Mov {
                dst: d,
                src: Opnd::V(q),
            });
            self.push(Inst::Alu {
                op: BPF_MUL,
                dst: d,
                src: Opnd::Imm(10),
                w32: false,
            });
            self.push(Inst::Alu {
                op: BPF_SUB,
                dst: d,
                src: Opnd::V(v),
                w32: false,
            });
            // d = q*10 - v = -(last digit): negate back and make it a character.
            self.push(Inst::Alu {
                op: BPF_NEG,
                dst: d,
                src: Opnd::Imm(0),
                w32: false,
            });
            self.push(Inst::Alu {
                op: BPF_ADD,
                dst: d,
                src: Opnd::Imm(b'0' as i32),
                w32: false,
            });
            self.push(Inst::Store {
                size: BPF_B,
                base: Base::V(p),
                off: END - 1 - i,
                src: Opnd::V(d),
            });
            self.push(Inst::Mov {
                dst: start,
                src: Opnd::Imm(i32::from(END - 1 - i)),
            });
            self.push(Inst::Mov {
                dst: v,
                src: Opnd::V(q),
            });
            self.push(Inst::Jmp {
                op: BPF_JEQ,
                a: v,
                b: Opnd::Imm(0),
                target: digits_done,
            });
        }
        self.push(Inst::Label(digits_done));
        let src = self.f.new_reg();
        let no_sign = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: neg,
            b: Opnd::Imm(0),
            target: no_sign,
        });
        self.push(Inst::Alu {
            op: BPF_SUB,
            dst: start,
            src: Opnd::Imm(1),
            w32: false,
        });
        self.push(Inst::Mov {
            dst: src,
            src: Opnd::V(p),
        });
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst: src,
            src: Opnd::V(start),
            w32: false,
        });
        self.push(Inst::Store {
            size: BPF_B,
            base: Base::V(src),
            off: 0,
            src: Opnd::Imm(b'-' as i32),
        });
        self.push(Inst::Label(no_sign));
        self.push(Inst::Mov {
            dst: src,
            src: Opnd::V(p),
        });
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst: src,
            src: Opnd::V(start),
            w32: false,
        });
        src
    }

    /// The stack-trace map (created on first use), deep enough for every stack the script
    /// asks for.
    fn stack_map(&mut self) -> u32 {
        if let Some(m) = self.g.maps.iter().position(|m| m.role == MapRole::Stacks) {
            return m as u32;
        }
        let depth = self.g.typed.stack_depth.max(1);
        self.g.maps.push(MapDef {
            name: "ktap_stacks".into(),
            kind: MapKind::StackTrace,
            role: MapRole::Stacks,
            key: ValueType::Int,
            value: ValueType::Nil,
            key_size: 4,
            value_size: 8 * depth,
            max_entries: STACK_ENTRIES,
            span: Span::default(),
            init: Vec::new(),
        });
        self.g.maps.len() as u32 - 1
    }

    /// The per-CPU scratch map (created on first use).
    fn scratch_map(&mut self) -> u32 {
        if let Some(m) = self.g.scratch {
            return m;
        }
        self.g.maps.push(MapDef {
            name: "ktap_scratch".into(),
            kind: MapKind::PercpuArray,
            role: MapRole::Scratch,
            key: ValueType::Int,
            value: ValueType::Nil,
            key_size: 4,
            value_size: SCRATCH_SIZE,
            max_entries: 1,
            span: Span::default(),
            init: Vec::new(),
        });
        let m = self.g.maps.len() as u32 - 1;
        self.g.scratch = Some(m);
        m
    }

    /// Signed 64-bit division or remainder from eBPF's unsigned ones (older kernels have no
    /// signed forms): divide magnitudes, then fix the sign. Division by zero gives 0 (the
    /// kernel's rule), and the remainder takes the dividend's sign, as C's does.
    fn signed_divmod(&mut self, a: VReg, b: Opnd, rem: bool) -> R<Val> {
        let b = self.reg(b);
        let (sa, sb, ua, ub) = (
            self.f.new_reg(),
            self.f.new_reg(),
            self.f.new_reg(),
            self.f.new_reg(),
        );
        for (s, u, x) in [(sa, ua, a), (sb, ub, b)] {
            self.push(Inst::Mov {
                dst: s,
                src: Opnd::V(x),
            });
            self.push(Inst::Alu {
                op: BPF_ARSH,
                dst: s,
                src: Opnd::Imm(63),
                w32: false,
            });
            self.push(Inst::Mov {
                dst: u,
                src: Opnd::V(x),
            });
            self.push(Inst::Alu {
                op: BPF_XOR,
                dst: u,
                src: Opnd::V(s),
                w32: false,
            });
            self.push(Inst::Alu {
                op: BPF_SUB,
                dst: u,
                src: Opnd::V(s),
                w32: false,
            });
        }
        let zero = self.f.new_label();
        let done = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: ub,
            b: Opnd::Imm(0),
            target: zero,
        });
        self.push(Inst::Alu {
            op: if rem { BPF_MOD } else { BPF_DIV },
            dst: ua,
            src: Opnd::V(ub),
            w32: false,
        });
        if !rem {
            self.push(Inst::Alu {
                op: BPF_XOR,
                dst: sa,
                src: Opnd::V(sb),
                w32: false,
            });
        }
        self.push(Inst::Alu {
            op: BPF_XOR,
            dst: ua,
            src: Opnd::V(sa),
            w32: false,
        });
        self.push(Inst::Alu {
            op: BPF_SUB,
            dst: ua,
            src: Opnd::V(sa),
            w32: false,
        });
        self.push(Inst::Ja { target: done });
        self.push(Inst::Label(zero));
        if rem {
            // x % 0 leaves x, as the kernel's BPF_MOD does.
            self.push(Inst::Mov {
                dst: ua,
                src: Opnd::V(a),
            });
        } else {
            self.push(Inst::Mov {
                dst: ua,
                src: Opnd::Imm(0),
            });
        }
        self.push(Inst::Label(done));
        Ok(Val::Num(Opnd::V(ua)))
    }

    /// Whether 64-bit division must be built from other instructions: the 32-bit ARM JIT of
    /// 6.1 kernels refuses BPF_ALU64 DIV and MOD (loading fails with ENOTSUPP). Userspace
    /// blocks run in ktap's VM, which has them. Numbers turned into text divide by 10 without
    /// it; a script's own `/` and `%` in a probe still need the JIT off there (the target
    /// table in the README says so): a general division loop costs more verifier states than
    /// either verifier allows.
    fn no_div64(&self) -> bool {
        self.mode == Mode::Kernel && self.g.target.arch == ktap_bpf::Arch::Arm
    }

    /// `dst = dst / 10^digits`, unsigned: one division, or `digits` divisions by 10 where the
    /// target has no 64-bit divide.
    fn udiv_pow10(&mut self, dst: VReg, digits: u32) {
        if digits == 0 {
            return;
        }
        if !self.no_div64() {
            self.push(Inst::Alu {
                op: BPF_DIV,
                dst,
                src: Opnd::Imm(10i32.pow(digits)),
                w32: false,
            });
            return;
        }
        for _ in 0..digits {
            self.udiv10(dst);
        }
    }

    /// `r = min(r, max)`, unsigned: a bound both verifiers can see.
    fn clamp_max(&mut self, r: VReg, max: i32) {
        let fine = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JLE,
            a: r,
            b: Opnd::Imm(max),
            target: fine,
        });
        self.push(Inst::Mov {
            dst: r,
            src: Opnd::Imm(max),
        });
        self.push(Inst::Label(fine));
    }

    /// `dst = dst / 10`, unsigned. Without a 64-bit divide it is the shift-and-add quotient of
    /// Hacker's Delight (10-11), corrected by one where the estimate is short.
    fn udiv10(&mut self, dst: VReg) {
        if !self.no_div64() {
            self.push(Inst::Alu {
                op: BPF_DIV,
                dst,
                src: Opnd::Imm(10),
                w32: false,
            });
            return;
        }
        let (q, t) = (self.f.new_reg(), self.f.new_reg());
        let alu = |s: &mut Self, op, dst, src| {
            s.push(Inst::Alu {
                op,
                dst,
                src,
                w32: false,
            })
        };
        let mov = |s: &mut Self, dst, src| s.push(Inst::Mov { dst, src });
        // q = (n >> 1) + (n >> 2), then q += q >> k for k = 4, 8, 16, 32, then q >>= 3.
        mov(self, q, Opnd::V(dst));
        alu(self, BPF_RSH, q, Opnd::Imm(1));
        mov(self, t, Opnd::V(dst));
        alu(self, BPF_RSH, t, Opnd::Imm(2));
        alu(self, BPF_ADD, q, Opnd::V(t));
        for k in [4, 8, 16, 32] {
            mov(self, t, Opnd::V(q));
            alu(self, BPF_RSH, t, Opnd::Imm(k));
            alu(self, BPF_ADD, q, Opnd::V(t));
        }
        alu(self, BPF_RSH, q, Opnd::Imm(3));
        // The remainder of the estimate, n - 10q, is 0..19: add one when it is over 9.
        mov(self, t, Opnd::V(q));
        alu(self, BPF_MUL, t, Opnd::Imm(10));
        alu(self, BPF_SUB, dst, Opnd::V(t));
        let exact = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JLE,
            a: dst,
            b: Opnd::Imm(9),
            target: exact,
        });
        alu(self, BPF_ADD, q, Opnd::Imm(1));
        self.push(Inst::Label(exact));
        mov(self, dst, Opnd::V(q));
    }

    /// The top-level code's first act: the values probes take from userspace, stored after
    /// the script's globals (the wall clock's offset from `ktime_get_ns()`, the online CPUs,
    /// the kernel's release).
    fn record_runtime(&mut self) {
        let Some(gp) = self.gp else { return };
        let rt = self.g.runtime;
        if let Some(off) = rt.clock {
            let (wall, mono) = (self.f.new_reg(), self.f.new_reg());
            self.push(Inst::Call {
                helper: h::USER_WALL_CLOCK_NS,
                args: vec![],
                dst: Some(wall),
            });
            self.push(Inst::Call {
                helper: h::KTIME_GET_NS,
                args: vec![],
                dst: Some(mono),
            });
            self.push(Inst::Alu {
                op: BPF_SUB,
                dst: wall,
                src: Opnd::V(mono),
                w32: false,
            });
            self.push(Inst::Store {
                size: BPF_DW,
                base: Base::V(gp),
                off: off as i16,
                src: Opnd::V(wall),
            });
        }
        if let Some(off) = rt.cpus {
            let n = self.f.new_reg();
            self.push(Inst::Call {
                helper: h::USER_NUM_CPUS,
                args: vec![],
                dst: Some(n),
            });
            self.push(Inst::Store {
                size: BPF_DW,
                base: Base::V(gp),
                off: off as i16,
                src: Opnd::V(n),
            });
        }
        if let Some((off, size)) = rt.release {
            let p = self.f.new_reg();
            self.push(Inst::Mov {
                dst: p,
                src: Opnd::V(gp),
            });
            self.push(Inst::Alu {
                op: BPF_ADD,
                dst: p,
                src: Opnd::Imm(off as i32),
                w32: false,
            });
            self.push(Inst::Call {
                helper: h::USER_KERNEL_RELEASE,
                args: vec![Arg::V(p), Arg::Imm(i64::from(size))],
                dst: None,
            });
        }
    }

    /// A number userspace recorded at start (see [`FnLower::record_runtime`]) at `off` in the
    /// globals' entry.
    fn runtime_word(&mut self, off: Option<u32>, span: Span) -> R<VReg> {
        let (Some(off), Some(gp)) = (off, self.gp) else {
            return Err(self.err(span, "internal: the runtime values are not mapped here"));
        };
        let r = self.f.new_reg();
        self.push(Inst::Load {
            size: BPF_DW,
            dst: r,
            base: Base::V(gp),
            off: off as i16,
        });
        Ok(r)
    }

    fn call(&mut self, e: &Expr, callee: &Expr, args: &[Expr]) -> R<Val> {
        match self.g.typed.bindings.get(&callee.id).copied() {
            Some(Binding::Func(fid)) => self.inline(e, fid, args),
            Some(Binding::Builtin(name)) => self.builtin(e, name, args),
            _ => Err(self.err(callee.span, "not a function")),
        }
    }

    fn inline(&mut self, e: &Expr, fid: u32, args: &[Expr]) -> R<Val> {
        let info = &self.g.typed.funcs[fid as usize];
        let (params, decl, ret_ty) = (info.params.clone(), info.decl.clone(), info.ret.ty);
        let mut vals = Vec::new();
        for a in args {
            vals.push(self.expr(a)?);
        }
        let result = match ret_ty {
            Ty::Nil | Ty::Unknown => None,
            t => Some(self.new_local(t, e.span)?),
        };
        if let Some(r) = result {
            self.assign_local(r, Val::Nil);
        }
        let saved_locals = self.locals.clone();
        for (p, v) in params.iter().zip(vals) {
            let ty = self.g.typed.var_ty[*p as usize].ty;
            let l = self.new_local(ty, e.span)?;
            self.assign_local(l, v);
            self.locals.insert(*p, l);
        }
        let ret_label = self.f.new_label();
        self.inlines.push(Inline { ret_label, result });
        let saved_breaks = std::mem::take(&mut self.breaks);
        self.block(&decl.body)?;
        self.breaks = saved_breaks;
        self.inlines.pop();
        self.push(Inst::Label(ret_label));
        self.locals = saved_locals;
        Ok(result.map_or(Val::Nil, |r| self.local_val(r)))
    }

    /// Emits an output record: the format id then each value, and hands it to userspace.
    fn output(&mut self, action: Action, vals: &[(Val, Ty)], span: Span) -> R<()> {
        let vals: Vec<(Val, ValueType)> = vals.iter().map(|(v, t)| (*v, vtype(*t))).collect();
        self.output_vt(action, &vals, span)
    }

    /// `print`/`printf`: an output record, stamped with the event's time in probes under
    /// `ktap -T`.
    fn output_line(&mut self, action: Action, vals: &[(Val, Ty)], span: Span) -> R<()> {
        let mut all = Vec::new();
        if self.mode == Mode::Kernel && self.g.timestamps {
            let t = self.f.new_reg();
            self.push(Inst::Call {
                helper: h::KTIME_GET_NS,
                args: vec![],
                dst: Some(t),
            });
            all.push((Val::Num(Opnd::V(t)), ValueType::Time));
        }
        all.extend(vals.iter().map(|(v, t)| (*v, vtype(*t))));
        self.output_vt(action, &all, span)
    }

    /// [`FnLower::output`] of values already laid out as record fields.
    fn output_vt(&mut self, action: Action, vals: &[(Val, ValueType)], span: Span) -> R<()> {
        let mut fields = Vec::new();
        let mut size = RECORD_HEADER;
        for (_, vt) in vals {
            fields.push(Field {
                offset: size,
                ty: *vt,
            });
            size += vt.size();
        }
        let id = self.g.format(action, fields.clone(), size, span);
        if fields.iter().any(|f| f.ty == ValueType::Argstr) {
            return self.output_argstr(id, vals, &fields, size, span);
        }
        let rec = self.alloc(size, span)?;
        self.push(Inst::Store {
            size: BPF_DW,
            base: Base::Fp,
            off: rec,
            src: Opnd::Imm(id as i32),
        });
        for ((v, _), f) in vals.iter().zip(&fields) {
            self.store_val(Base::Fp, rec + f.offset as i16, f.ty, *v);
        }
        self.emit_output(rec, size);
        Ok(())
    }

    /// An output record that carries the raw tracepoint record after its fields (`argstr`):
    /// built in a per-CPU map value, since it can be longer than the stack. The first 8 bytes
    /// of a BPF tracepoint context hold the kernel's `pt_regs` pointer, not the common
    /// fields: they are sent as zeros.
    fn output_argstr(
        &mut self,
        id: u32,
        vals: &[(Val, ValueType)],
        fields: &[Field],
        size: u32,
        span: Span,
    ) -> R<()> {
        if let Some(site) = self.site {
            return self.output_site_argstr(site, id, vals, fields, size, span);
        }
        let Some(event) = self.event else {
            return Err(self.err(span, "`argstr` is the text of a tracepoint event"));
        };
        let index = self.g.event_index(event);
        let (p, done) = self.argstr_value(size + ARGSTR_RAW)?;
        // The bytes to copy after the first 8: the fixed part, or up to the end of the
        // furthest `__data_loc` string, at most ARGSTR_RAW in all.
        let fixed = event.size().clamp(8, ARGSTR_RAW);
        let n = self.f.new_reg();
        self.push(Inst::Mov {
            dst: n,
            src: Opnd::Imm(fixed as i32),
        });
        let dynamic: Vec<_> = event
            .fields
            .iter()
            .filter(|f| f.size == 4 && (f.is_data_loc() || f.c_type.contains("__rel_loc")))
            .cloned()
            .collect();
        if !dynamic.is_empty() {
            let (w, end) = (self.f.new_reg(), self.f.new_reg());
            for f in &dynamic {
                self.push(Inst::Load {
                    size: BPF_W,
                    dst: w,
                    base: Base::V(self.ctx),
                    off: f.offset as i16,
                });
                // `__data_loc`: the length in the high 16 bits, the offset in the low ones
                // (from the record's start; from the field's end for `__rel_loc`).
                self.push(Inst::Mov {
                    dst: end,
                    src: Opnd::V(w),
                });
                self.push(Inst::Alu {
                    op: BPF_RSH,
                    dst: end,
                    src: Opnd::Imm(16),
                    w32: false,
                });
                self.push(Inst::Alu {
                    op: BPF_AND,
                    dst: w,
                    src: Opnd::Imm(0xffff),
                    w32: false,
                });
                self.push(Inst::Alu {
                    op: BPF_ADD,
                    dst: end,
                    src: Opnd::V(w),
                    w32: false,
                });
                if !f.is_data_loc() {
                    self.push(Inst::Alu {
                        op: BPF_ADD,
                        dst: end,
                        src: Opnd::Imm(f.offset as i32 + 4),
                        w32: false,
                    });
                }
                let shorter = self.f.new_label();
                self.push(Inst::Jmp {
                    op: BPF_JLE,
                    a: end,
                    b: Opnd::V(n),
                    target: shorter,
                });
                self.push(Inst::Mov {
                    dst: n,
                    src: Opnd::V(end),
                });
                self.push(Inst::Label(shorter));
            }
        }
        self.push(Inst::Alu {
            op: BPF_SUB,
            dst: n,
            src: Opnd::Imm(8),
            w32: false,
        });
        if !dynamic.is_empty() {
            // Unsigned, so a length below 8 (no record has one) could not pass either.
            self.clamp_max(n, ARGSTR_RAW as i32 - 8);
        }
        // index << 32 | the raw record's length (n + 8).
        let word = self.f.new_reg();
        self.push(Inst::Mov {
            dst: word,
            src: Opnd::V(n),
        });
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst: word,
            src: Opnd::Imm(8),
            w32: false,
        });
        if index > 0 {
            let hi = self.konst(i64::from(index) << 32);
            self.push(Inst::Alu {
                op: BPF_OR,
                dst: word,
                src: hi,
                w32: false,
            });
        }
        self.store_argstr_fields(p, id, vals, fields, size, Opnd::V(word));
        let (dst, src) = (self.f.new_reg(), self.f.new_reg());
        self.push(Inst::Mov {
            dst,
            src: Opnd::V(p),
        });
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst,
            src: Opnd::Imm(size as i32 + 8),
            w32: false,
        });
        self.push(Inst::Mov {
            dst: src,
            src: Opnd::V(self.ctx),
        });
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst: src,
            src: Opnd::Imm(8),
            w32: false,
        });
        self.push(Inst::Call {
            helper: h::PROBE_READ_KERNEL,
            args: vec![Arg::V(dst), Arg::V(n), Arg::V(src)],
            dst: None,
        });
        let total = self.f.new_reg();
        self.push(Inst::Mov {
            dst: total,
            src: Opnd::V(n),
        });
        self.push(Inst::Alu {
            op: BPF_ADD,
            dst: total,
            src: Opnd::Imm(size as i32 + 8),
            w32: false,
        });
        self.emit_argstr_record(p, Arg::V(total), done);
        Ok(())
    }

    /// The per-CPU map value an `argstr` record of up to `len` bytes is built in, and the
    /// label after the record, taken when there is none.
    fn argstr_value(&mut self, len: u32) -> R<(VReg, Label)> {
        let map = self.g.argstr_map(len);
        let key = self.zero_word()?;
        let p = self.lookup(map, key);
        let done = self.f.new_label();
        self.push(Inst::Jmp {
            op: BPF_JEQ,
            a: p,
            b: Opnd::Imm(0),
            target: done,
        });
        Ok((p, done))
    }

    /// Writes an `argstr` record's format id and fields into the value at `p`, the `argstr`
    /// field as `word` (`index << 32 | length`), and zeros for the 8 bytes after them that
    /// stand for the event's common fields.
    fn store_argstr_fields(
        &mut self,
        p: VReg,
        id: u32,
        vals: &[(Val, ValueType)],
        fields: &[Field],
        size: u32,
        word: Opnd,
    ) {
        self.push(Inst::Store {
            size: BPF_DW,
            base: Base::V(p),
            off: 0,
            src: Opnd::Imm(id as i32),
        });
        for ((v, vt), f) in vals.iter().zip(fields) {
            if *vt == ValueType::Argstr {
                let w = self.reg(word);
                self.push(Inst::Store {
                    size: BPF_DW,
                    base: Base::V(p),
                    off: f.offset as i16,
                    src: Opnd::V(w),
                });
            } else {
                self.store_val(Base::V(p), f.offset as i16, *vt, *v);
            }
        }
        self.push(Inst::Store {
            size: BPF_DW,
            base: Base::V(p),
            off: size as i16,
            src: Opnd::Imm(0),
        });
    }

    /// Sends the `len` bytes of the `argstr` record at `p` to userspace, then places `done`.
    fn emit_argstr_record(&mut self, p: VReg, len: Arg, done: Label) {
        let out = self.g.output;
        self.push(Inst::Call {
            helper: h::PERF_EVENT_OUTPUT,
            args: vec![
                Arg::V(self.ctx),
                Arg::Map(out),
                Arg::Imm(CURRENT_CPU),
                Arg::V(p),
                len,
            ],
            dst: None,
        });
        self.push(Inst::Label(done));
    }

    /// `argstr` of a kprobe or uprobe: the kernel's own events for them (those made through
    /// `kprobe_events` and `uprobe_events`) print `NAME: (vfs_read+0x0) fd=0x3`,
    /// `NAME: (ksys_read+0x6c <- vfs_read) ...`, `NAME: (0x7f01c2d3a0b0) ...` and
    /// `NAME: (0x55d0c4e1a2f4 <- malloc) ...`. The probe sends what only the event knows (the
    /// address of a uprobe, the return address of a return probe, the fetch-args) as a record
    /// laid out like those events' own, and ktap renders it from a `print fmt` made here.
    fn output_site_argstr(
        &mut self,
        site: &ProbeSite,
        id: u32,
        vals: &[(Val, ValueType)],
        fields: &[Field],
        size: u32,
        span: Span,
    ) -> R<()> {
        let (format, values) = self.site_record(site, span)?;
        let raw = format.size();
        let index = self.g.event_index(&format);
        let (p, done) = self.argstr_value(size + raw)?;
        let word = self.konst(i64::from(index) << 32 | i64::from(raw));
        self.store_argstr_fields(p, id, vals, fields, size, word);
        for (f, (v, vt)) in format.fields.iter().skip(1).zip(values) {
            self.store_val(Base::V(p), (size + f.offset) as i16, vt, v);
        }
        self.emit_argstr_record(p, Arg::Imm(i64::from(size + raw)), done);
        Ok(())
    }

    /// The layout and `print fmt` of a probe's `argstr` record, and the values of its fields
    /// after the 8 bytes that stand for the common ones.
    fn site_record(
        &mut self,
        site: &ProbeSite,
        span: Span,
    ) -> R<(TpFormat, Vec<(Val, ValueType)>)> {
        let regs = arch::regs(self.g.target);
        let (kprobe, ret) = (matches!(site, ProbeSite::Kprobe { .. }), site.is_ret());
        let mut fields = vec![TpField {
            name: "common_type".into(),
            c_type: "unsigned long".into(),
            offset: 0,
            size: 8,
            signed: false,
            array_len: None,
        }];
        let mut values = Vec::new();
        let add = |fields: &mut Vec<TpField>, name: &str, size: u32, signed: bool, chars| {
            let offset = fields.last().map_or(0, |f| f.offset + f.size);
            fields.push(TpField {
                name: name.into(),
                c_type: if chars { "char".into() } else { "u64".into() },
                offset,
                size,
                signed,
                array_len: chars.then_some(size),
            });
        };
        // A kprobe's place is known when it is compiled; the others' are in the registers
        // (at a return probe, the instruction pointer is the return address).
        let (head, ip) = match (site, ret) {
            (ProbeSite::Kprobe { symbol, offset, .. }, false) => {
                (format!("({symbol}+0x{offset:x})"), None)
            }
            (ProbeSite::Kprobe { symbol, .. }, true) => {
                (format!("(%pS <- {symbol})"), Some("__probe_ret_ip"))
            }
            (ProbeSite::Uprobe { .. }, false) => ("(0x%lx)".to_string(), Some("__probe_ip")),
            (ProbeSite::Uprobe { symbol, .. }, true) => {
                (format!("(0x%lx <- {symbol})"), Some("__probe_ret_ip"))
            }
        };
        if let Some(name) = ip {
            add(&mut fields, name, 8, false, false);
            values.push((Val::Num(self.ctx_slot(regs.ip())), ValueType::Int));
        }
        let mut text = head;
        for f in site.fetch() {
            let ty = fetch_ty(f, self.g.str_cap);
            let v = self.fetch_value(site, f, ty, span)?;
            // The kernel's fetch types print as: unsigned in decimal, signed in decimal, the
            // default (the word, `x64` or `x32`) in hex, strings quoted.
            let (conv, signed) = match f.ty.as_deref() {
                // Escaped: this goes inside the C string of the `print fmt` line.
                Some("string") => ("\\\"%s\\\"", false),
                Some(t) if t.starts_with('u') => ("%llu", false),
                Some(t) if t.starts_with('s') => ("%lld", true),
                _ => ("0x%llx", false),
            };
            text.push_str(&format!(" {}={conv}", f.name));
            match ty {
                Ty::Str(cap) => {
                    let cap = round8(cap);
                    add(&mut fields, &f.name, cap, false, true);
                    values.push((v, ValueType::Str(cap)));
                }
                _ => {
                    add(&mut fields, &f.name, 8, signed, false);
                    values.push((v, ValueType::Int));
                }
            }
        }
        // Every field after the common one, in order, is one argument of the format.
        let mut print_fmt = format!("\"{text}\"");
        for f in &fields[1..] {
            print_fmt.push_str(&format!(", REC->{}", f.name));
        }
        let format = TpFormat {
            category: if kprobe { "kprobes" } else { "uprobes" }.into(),
            name: site.symbol().to_string(),
            id: 0,
            fields: fields.into(),
            print_fmt,
        };
        Ok((format, values))
    }

    /// Hands the record at `r10 + rec` to userspace through the output buffer.
    fn emit_output(&mut self, rec: i16, size: u32) {
        let out = self.g.output;
        self.push(Inst::Call {
            helper: h::PERF_EVENT_OUTPUT,
            args: vec![
                Arg::V(self.ctx),
                Arg::Map(out),
                Arg::Imm(CURRENT_CPU),
                Arg::Fp(rec),
                Arg::Imm(size as i64),
            ],
            dst: None,
        });
    }

    fn builtin(&mut self, e: &Expr, name: &str, args: &[Expr]) -> R<Val> {
        match name {
            "print" => {
                let mut vals = Vec::new();
                for a in args {
                    let v = self.expr(a)?;
                    vals.push((v, self.ty(a)));
                }
                self.output_line(Action::Print, &vals, e.span)?;
                Ok(Val::Nil)
            }
            "printf" => {
                let ExprKind::Str(fmt) = &args[0].kind else {
                    return Err(self.err(
                        args[0].span,
                        "the format of `printf` must be a string literal",
                    ));
                };
                let fmt = String::from_utf8_lossy(fmt).into_owned();
                let pieces = ktap_fmt::printf::parse(&fmt).map_err(|pe| {
                    let at = args[0].span.lo + 1 + pe.offset as u32;
                    self.err(
                        Span::new(at, at + 1),
                        format!("bad printf format: {}", pe.message),
                    )
                })?;
                let convs: Vec<_> = pieces
                    .iter()
                    .filter_map(|p| match p {
                        ktap_fmt::Piece::Conversion(s) => Some(*s),
                        _ => None,
                    })
                    .collect();
                if convs.len() != args.len() - 1 {
                    return Err(self.err(
                        e.span,
                        format!(
                            "the format has {} conversions but {} values follow it",
                            convs.len(),
                            args.len() - 1
                        ),
                    ));
                }
                let mut vals = Vec::new();
                for (a, c) in args[1..].iter().zip(&convs) {
                    let ty = self.ty(a);
                    if c.conv.wants_number() && matches!(ty, Ty::Str(_) | Ty::Argstr) {
                        let at = args[0].span.lo + 1 + c.offset as u32;
                        return Err(self
                            .err(
                                a.span,
                                "this string is printed with a number conversion; use %s",
                            )
                            .with_note(Span::new(at, at + 2), "the conversion"));
                    }
                    let v = self.expr(a)?;
                    vals.push((v, ty));
                }
                self.output_line(Action::Printf(fmt), &vals, e.span)?;
                Ok(Val::Nil)
            }
            "print_hist" => {
                let Val::Table(t) = self.expr(&args[0])? else {
                    return Err(self.err(args[0].span, "`print_hist` needs a table"));
                };
                let map = self.g.table_map[t as usize];
                let mut vals = Vec::new();
                if let Some(n) = args.get(1) {
                    vals.push((self.expr(n)?, Ty::Num));
                }
                self.output(Action::PrintHist { map }, &vals, e.span)?;
                Ok(Val::Nil)
            }
            "delete" => {
                let Val::Table(t) = self.expr(&args[0])? else {
                    return Err(self.err(args[0].span, "`delete` needs a table"));
                };
                let map = self.g.table_map[t as usize];
                if self.mode == Mode::User {
                    self.push(Inst::Call {
                        helper: h::USER_MAP_CLEAR,
                        args: vec![Arg::Map(map)],
                        dst: None,
                    });
                } else {
                    self.output(Action::Clear { map }, &[], e.span)?;
                }
                Ok(Val::Nil)
            }
            "exit" => {
                let mut vals = Vec::new();
                if let Some(c) = args.first() {
                    vals.push((self.expr(c)?, Ty::Num));
                }
                self.output(Action::Exit, &vals, e.span)?;
                self.push(Inst::Exit { code: Opnd::Imm(0) });
                Ok(Val::Nil)
            }
            "len" => match self.expr(&args[0])? {
                Val::Table(t) => {
                    let map = self.g.table_map[t as usize];
                    let r = self.f.new_reg();
                    self.push(Inst::Call {
                        helper: h::USER_MAP_COUNT,
                        args: vec![Arg::Map(map)],
                        dst: Some(r),
                    });
                    Ok(Val::Num(Opnd::V(r)))
                }
                Val::Str { off, size } => {
                    // Count bytes up to the first NUL, unrolled: no loop for the kernel to bound.
                    let (n, b, done) = (self.f.new_reg(), self.f.new_reg(), self.f.new_label());
                    for i in 0..size {
                        self.push(Inst::Mov {
                            dst: n,
                            src: Opnd::Imm(i as i32),
                        });
                        self.push(Inst::Load {
                            size: BPF_B,
                            dst: b,
                            base: Base::Fp,
                            off: off + i as i16,
                        });
                        self.push(Inst::Jmp {
                            op: BPF_JEQ,
                            a: b,
                            b: Opnd::Imm(0),
                            target: done,
                        });
                    }
                    self.push(Inst::Mov {
                        dst: n,
                        src: Opnd::Imm(size as i32),
                    });
                    self.push(Inst::Label(done));
                    Ok(Val::Num(Opnd::V(n)))
                }
                _ => Err(self.err(args[0].span, "`len` needs a table or a string")),
            },
            "user_string" | "kernel_string" => {
                // A tagged value: the string, or nil when the helper cannot read the address
                // (it then leaves the buffer zeroed).
                let addr = self.num(&args[0])?;
                let size = match self.ty(e) {
                    Ty::Any(n) | Ty::Str(n) => round8(n),
                    _ => round8(self.g.str_cap),
                };
                let off = self.alloc(8 + size, e.span)?;
                self.zero_buf(off + 8, size);
                let helper = if name == "user_string" {
                    h::PROBE_READ_USER_STR
                } else {
                    h::PROBE_READ_KERNEL_STR
                };
                let a = self.reg(addr);
                let (ret, tag) = (self.f.new_reg(), self.f.new_reg());
                self.push(Inst::Call {
                    helper,
                    args: vec![Arg::Fp(off + 8), Arg::Imm(size as i64), Arg::V(a)],
                    dst: Some(ret),
                });
                self.push(Inst::Mov {
                    dst: tag,
                    src: Opnd::Imm(TAG_STR as i32),
                });
                let read = self.f.new_label();
                self.push(Inst::Jmp {
                    op: BPF_JSGE,
                    a: ret,
                    b: Opnd::Imm(0),
                    target: read,
                });
                self.push(Inst::Mov {
                    dst: tag,
                    src: Opnd::Imm(TAG_NIL as i32),
                });
                self.push(Inst::Label(read));
                self.push(Inst::Store {
                    size: BPF_DW,
                    base: Base::Fp,
                    off,
                    src: Opnd::V(tag),
                });
                Ok(Val::Any {
                    off,
                    size: 8 + size,
                })
            }
            "gettimeofday_ns" | "gettimeofday_us" | "gettimeofday_ms" | "gettimeofday_s" => {
                let r = self.f.new_reg();
                if self.mode == Mode::Kernel {
                    // The kernel's monotonic clock plus the wall clock's offset from it, which
                    // the top-level code recorded.
                    let off = self.runtime_word(self.g.runtime.clock, e.span)?;
                    self.push(Inst::Call {
                        helper: h::KTIME_GET_NS,
                        args: vec![],
                        dst: Some(r),
                    });
                    self.push(Inst::Alu {
                        op: BPF_ADD,
                        dst: r,
                        src: Opnd::V(off),
                        w32: false,
                    });
                } else {
                    self.push(Inst::Call {
                        helper: h::USER_WALL_CLOCK_NS,
                        args: vec![],
                        dst: Some(r),
                    });
                }
                let digits = match name {
                    "gettimeofday_us" => 3,
                    "gettimeofday_ms" => 6,
                    "gettimeofday_s" => 9,
                    _ => 0,
                };
                self.udiv_pow10(r, digits);
                Ok(Val::Num(Opnd::V(r)))
            }
            "ansi.clear_screen" | "ansi.reset_color" | "ansi.new_line" | "ansi.set_color"
            | "ansi.set_color2" | "ansi.set_color3" => {
                // ktap's terminal control: escape sequences printed like printf's text.
                let fmt = match name {
                    "ansi.clear_screen" => "\x1b[1;1H\x1b[2J",
                    "ansi.reset_color" => "\x1b[0m",
                    "ansi.new_line" => "\n",
                    "ansi.set_color" => "\x1b[%dm",
                    "ansi.set_color2" => "\x1b[%d;%dm",
                    _ => "\x1b[%d;%d;%dm",
                };
                let mut vals = Vec::new();
                for a in args {
                    vals.push((self.expr(a)?, Ty::Num));
                }
                self.output(Action::Printf(fmt.to_string()), &vals, e.span)?;
                Ok(Val::Nil)
            }
            "stringof" => match self.expr(&args[0])? {
                v @ Val::Str { .. } => Ok(v),
                _ => self.concat(&args[0]),
            },
            "arch" => {
                let name = match self.g.target.arch {
                    ktap_bpf::Arch::X86_64 => "x86_64",
                    ktap_bpf::Arch::Aarch64 => "aarch64",
                    ktap_bpf::Arch::Arm => "arm",
                    ktap_bpf::Arch::Mips => "mips",
                    ktap_bpf::Arch::Mips64 => "mips64",
                    ktap_bpf::Arch::Powerpc => "ppc",
                    ktap_bpf::Arch::Powerpc64 => "ppc64",
                };
                let off = self.alloc(16, e.span)?;
                self.const_str(off, 16, name.as_bytes());
                Ok(Val::Str { off, size: 16 })
            }
            "num_cpus" => {
                if self.mode == Mode::Kernel {
                    let r = self.runtime_word(self.g.runtime.cpus, e.span)?;
                    return Ok(Val::Num(Opnd::V(r)));
                }
                let r = self.f.new_reg();
                self.push(Inst::Call {
                    helper: h::USER_NUM_CPUS,
                    args: vec![],
                    dst: Some(r),
                });
                Ok(Val::Num(Opnd::V(r)))
            }
            "kernel_v" => {
                let size = match self.ty(e) {
                    Ty::Str(n) => round8(n),
                    _ => 64,
                };
                if self.mode == Mode::Kernel {
                    let (Some((off, stored)), Some(gp)) = (self.g.runtime.release, self.gp) else {
                        return Err(
                            self.err(e.span, "internal: the kernel release is not mapped here")
                        );
                    };
                    return self.load_val(gp, off as i16, ValueType::Str(stored.min(size)), e.span);
                }
                let off = self.alloc(size, e.span)?;
                self.push(Inst::Call {
                    helper: h::USER_KERNEL_RELEASE,
                    args: vec![Arg::Fp(off), Arg::Imm(i64::from(size))],
                    dst: None,
                });
                Ok(Val::Str { off, size })
            }
            "print_trace_clock" => {
                // The clock of `-T` and of `bpf_ktime_get_ns()`: CLOCK_MONOTONIC, as
                // seconds.microseconds.
                let t = self.f.new_reg();
                self.push(Inst::Call {
                    helper: h::KTIME_GET_NS,
                    args: vec![],
                    dst: Some(t),
                });
                let (secs, us) = (self.f.new_reg(), self.f.new_reg());
                self.push(Inst::Mov {
                    dst: secs,
                    src: Opnd::V(t),
                });
                self.udiv_pow10(secs, 9);
                // The nanoseconds left over, then their microseconds.
                self.push(Inst::Mov {
                    dst: us,
                    src: Opnd::V(secs),
                });
                self.push(Inst::Alu {
                    op: BPF_MUL,
                    dst: us,
                    src: Opnd::Imm(1_000_000_000),
                    w32: false,
                });
                self.push(Inst::Alu {
                    op: BPF_SUB,
                    dst: t,
                    src: Opnd::V(us),
                    w32: false,
                });
                self.push(Inst::Mov {
                    dst: us,
                    src: Opnd::V(t),
                });
                self.udiv_pow10(us, 3);
                let vals = [
                    (Val::Num(Opnd::V(secs)), Ty::Num),
                    (Val::Num(Opnd::V(us)), Ty::Num),
                ];
                self.output(Action::Printf("%d.%06d\n".into()), &vals, e.span)?;
                Ok(Val::Nil)
            }
            "ipof" => Ok(Val::Num(self.num(&args[0])?)),
            "in_iowait" | "in_interrupt" => {
                // The current task_struct, at the offset the kernel's BTF gave: 1 or 0.
                let Some(read) = self.g.typed.task_reads.get(name).copied() else {
                    return Err(self.err(e.span, format!("internal: no task field for `{name}`")));
                };
                if let TaskRead::PerCpuPreemptCount { var, offset } = read {
                    // This CPU's copy of the variable, read directly: the helper's result is
                    // readable kernel memory.
                    let p = self.f.new_reg();
                    self.push(Inst::Call {
                        helper: h::THIS_CPU_PTR,
                        args: vec![Arg::Ksym(var)],
                        dst: Some(p),
                    });
                    let r = self.f.new_reg();
                    self.push(Inst::Load {
                        size: BPF_W,
                        dst: r,
                        base: Base::V(p),
                        off: offset as i16,
                    });
                    return Ok(Val::Num(Opnd::V(self.irq_count_set(r))));
                }
                let task = self.f.new_reg();
                self.push(Inst::Call {
                    helper: h::GET_CURRENT_TASK,
                    args: vec![],
                    dst: Some(task),
                });
                let (offset, size) = match read {
                    TaskRead::Bit { offset, .. } => (offset, 1),
                    TaskRead::PreemptCount { offset }
                    | TaskRead::PerCpuPreemptCount { offset, .. } => (offset, 4),
                };
                self.push(Inst::Alu {
                    op: BPF_ADD,
                    dst: task,
                    src: Opnd::Imm(offset as i32),
                    w32: false,
                });
                let v = self.probe_read_word(false, Opnd::V(task), size, e.span)?;
                let r = self.reg(v);
                match read {
                    TaskRead::Bit { bit, .. } => {
                        if bit > 0 {
                            self.push(Inst::Alu {
                                op: BPF_RSH,
                                dst: r,
                                src: Opnd::Imm(i32::from(bit)),
                                w32: false,
                            });
                        }
                        self.push(Inst::Alu {
                            op: BPF_AND,
                            dst: r,
                            src: Opnd::Imm(1),
                            w32: false,
                        });
                    }
                    TaskRead::PreemptCount { .. } | TaskRead::PerCpuPreemptCount { .. } => {
                        self.irq_count_set(r);
                    }
                }
                Ok(Val::Num(Opnd::V(r)))
            }
            "curr_taskinfo" | "net.ip_sock_saddr" | "net.ip_sock_daddr" => {
                // A checked kernel read: of the current task_struct at an offset (4 bytes
                // unless told 8, as ktap), or of a socket's IPv4 address, which `struct
                // sock_common` starts with (`skc_daddr`, then `skc_rcv_saddr`).
                let (base, off, size) = match name {
                    "curr_taskinfo" => {
                        let task = self.f.new_reg();
                        self.push(Inst::Call {
                            helper: h::GET_CURRENT_TASK,
                            args: vec![],
                            dst: Some(task),
                        });
                        let size = args.get(1).and_then(const_int).unwrap_or(4) as u8;
                        (Opnd::V(task), self.num(&args[0])?, size)
                    }
                    "net.ip_sock_saddr" => (self.num(&args[0])?, Opnd::Imm(4), 4),
                    _ => (self.num(&args[0])?, Opnd::Imm(0), 4),
                };
                let a = self.f.new_reg();
                self.push(Inst::Mov { dst: a, src: base });
                self.push(Inst::Alu {
                    op: BPF_ADD,
                    dst: a,
                    src: off,
                    w32: false,
                });
                let v = self.probe_read_word(false, Opnd::V(a), size, e.span)?;
                Ok(Val::Num(v))
            }
            "net.format_ip_addr" => {
                // The four bytes of the address as they lie in memory (network order), in
                // decimal between dots.
                let n = self.num(&args[0])?;
                let mut vals = Vec::new();
                for i in 0..4 {
                    let shift = match self.g.target.endian {
                        Endian::Little => 8 * i,
                        Endian::Big => 24 - 8 * i,
                    };
                    let o = self.f.new_reg();
                    self.push(Inst::Mov { dst: o, src: n });
                    if shift > 0 {
                        self.push(Inst::Alu {
                            op: BPF_RSH,
                            dst: o,
                            src: Opnd::Imm(shift),
                            w32: false,
                        });
                    }
                    self.push(Inst::Alu {
                        op: BPF_AND,
                        dst: o,
                        src: Opnd::Imm(0xff),
                        w32: false,
                    });
                    if i > 0 {
                        let dot = self.alloc(8, e.span)?;
                        self.const_str(dot, 8, b".");
                        vals.push(Val::Str { off: dot, size: 8 });
                    }
                    vals.push(Val::Num(Opnd::V(o)));
                }
                let size = match self.ty(e) {
                    Ty::Str(n) => round8(n),
                    _ => 16,
                };
                self.concat_vals(vals, size, e.span)
            }
            "count" | "sum" | "avg" | "min" | "max" | "hist" => self.agg_read(name, &args[0]),
            "stack" | "ustack" => {
                let skip = args.get(1).and_then(const_int).unwrap_or(0).clamp(0, 255);
                let user = name == "ustack";
                let flags = skip | if user { h::BPF_F_USER_STACK as i64 } else { 0 };
                let map = self.stack_map();
                let id = self.f.new_reg();
                self.push(Inst::Call {
                    helper: h::GET_STACKID,
                    args: vec![Arg::V(self.ctx), Arg::Map(map), Arg::Imm(flags)],
                    dst: Some(id),
                });
                if !user {
                    return Ok(Val::Num(Opnd::V(id)));
                }
                // A user stack also names its task, whose memory map symbolizes it.
                let off = self.alloc(16, e.span)?;
                self.push(Inst::Store {
                    size: BPF_DW,
                    base: Base::Fp,
                    off,
                    src: Opnd::V(id),
                });
                let task = self.f.new_reg();
                self.push(Inst::Call {
                    helper: h::GET_CURRENT_PID_TGID,
                    args: vec![],
                    dst: Some(task),
                });
                self.push(Inst::Store {
                    size: BPF_DW,
                    base: Base::Fp,
                    off: off + 8,
                    src: Opnd::V(task),
                });
                Ok(Val::Str { off, size: 16 })
            }
            other => Err(self.err(e.span, format!("`{}` is not supported yet", other))),
        }
    }
}

impl Shared<'_> {
    fn typed_script_arg(&self, i: usize) -> Option<String> {
        self.script_args.get(i).cloned()
    }

    /// The index of `event`'s layout among those `argstr` records name.
    fn event_index(&mut self, event: &TpFormat) -> u32 {
        let key = (
            event.category.clone(),
            event.name.clone(),
            event.print_fmt.clone(),
        );
        let next = self.events.len() as u32;
        let id = *self.event_ids.entry(key).or_insert(next);
        if id == next {
            self.events.push(event.clone());
        }
        id
    }

    /// The per-CPU map `argstr` records are built in, with values of at least `size` bytes.
    fn argstr_map(&mut self, size: u32) -> u32 {
        if let Some(m) = self.argstr_map {
            let def = &mut self.maps[m as usize];
            def.value_size = def.value_size.max(round8(size));
            return m;
        }
        self.maps.push(MapDef {
            name: "ktap_argstr".into(),
            kind: MapKind::PercpuArray,
            role: MapRole::Scratch,
            key: ValueType::Int,
            value: ValueType::Nil,
            key_size: 4,
            value_size: round8(size),
            max_entries: 1,
            span: Span::default(),
            init: Vec::new(),
        });
        let m = self.maps.len() as u32 - 1;
        self.argstr_map = Some(m);
        m
    }
}

fn unreachable_op() -> u8 {
    BPF_ADD
}

/// The bytes of a `..` whose operands are all constants.
fn concat_const(e: &Expr) -> Option<Vec<u8>> {
    match &e.kind {
        ExprKind::Str(s) => Some(s.clone()),
        ExprKind::Number(n) => Some(n.to_string().into_bytes()),
        ExprKind::Binary {
            op: BinOp::Concat,
            lhs,
            rhs,
        } => {
            let mut a = concat_const(lhs)?;
            a.extend(concat_const(rhs)?);
            Some(a)
        }
        _ => const_int(e).map(|n| n.to_string().into_bytes()),
    }
}

/// Removes instructions no path reaches (after an `exit()` or a jump, up to a label some
/// live jump targets): the kernel's verifier rejects a program with unreachable code.
fn drop_unreachable(f: &mut IrFunc) {
    loop {
        let targets: std::collections::HashSet<Label> = f
            .insts
            .iter()
            .filter_map(|(i, _)| match i {
                Inst::Jmp { target, .. } | Inst::Ja { target } => Some(*target),
                _ => None,
            })
            .collect();
        let before = f.insts.len();
        let mut live = true;
        f.insts.retain(|(i, _)| {
            if let Inst::Label(l) = i {
                live = live || targets.contains(l);
            }
            let keep = live;
            if matches!(i, Inst::Exit { .. } | Inst::Ja { .. }) {
                live = false;
            }
            keep
        });
        // Labels nothing jumps to any more are dropped too, so the next round sees fewer.
        f.insts
            .retain(|(i, _)| !matches!(i, Inst::Label(l) if !targets.contains(l)));
        if f.insts.len() == before {
            break;
        }
    }
}

/// The operands of a chain of `..`, left to right (`..` is right-associative).
fn flatten_concat<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary {
            op: BinOp::Concat,
            lhs,
            rhs,
        } => {
            flatten_concat(lhs, out);
            flatten_concat(rhs, out);
        }
        _ => out.push(e),
    }
}

/// The jump condition that is true exactly when `op` is false.
fn negate(op: u8) -> u8 {
    match op {
        BPF_JEQ => BPF_JNE,
        BPF_JNE => BPF_JEQ,
        BPF_JSLT => BPF_JSGE,
        BPF_JSGE => BPF_JSLT,
        BPF_JSGT => BPF_JSLE,
        BPF_JSLE => BPF_JSGT,
        BPF_JLT => BPF_JGE,
        BPF_JGE => BPF_JLT,
        BPF_JGT => BPF_JLE,
        _ => BPF_JGT,
    }
}

/// For each table, whether it is a per-CPU map: probes add numbers to its entries
/// (`t[k] += n`) and do nothing else with it. Each CPU then adds to its own slot with a plain
/// load, add and store, and a miss inserts the amount itself: no atomic instruction (the arm32
/// JIT has none, so there the shared map's adds could race) and no second lookup. Readers (the
/// userspace blocks, the printer) see the slots summed. Any other use in a probe, or in a
/// function (whose body may be inlined into one), keeps the table one shared map, since a
/// probe reading it must see every CPU's count.
fn per_cpu_tables(script: &Script, typed: &Typed) -> Vec<bool> {
    #[derive(Default)]
    struct Uses {
        added: Vec<bool>,
        other: Vec<bool>,
    }
    fn table(typed: &Typed, e: &Expr) -> Option<usize> {
        match typed.expr_ty.get(&e.id) {
            Some(Ty::Table(t)) => Some(*t as usize),
            _ => None,
        }
    }
    fn expr(typed: &Typed, e: &Expr, u: &mut Uses) {
        if let Some(t) = table(typed, e) {
            if let Some(o) = u.other.get_mut(t) {
                *o = true;
            }
        }
        match &e.kind {
            ExprKind::Index { obj, key } => {
                expr(typed, obj, u);
                expr(typed, key, u);
            }
            ExprKind::Field { obj, .. } => expr(typed, obj, u),
            ExprKind::Call { callee, args } => {
                expr(typed, callee, u);
                args.iter().for_each(|a| expr(typed, a, u));
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                expr(typed, lhs, u);
                expr(typed, rhs, u);
            }
            ExprKind::Unary { expr: x, .. } => expr(typed, x, u),
            ExprKind::Table(items) => {
                for item in items {
                    match item {
                        TableItem::Positional(v) | TableItem::Named(_, v) => expr(typed, v, u),
                        TableItem::Keyed(k, v) => {
                            expr(typed, k, u);
                            expr(typed, v, u);
                        }
                    }
                }
            }
            ExprKind::Nil
            | ExprKind::Bool(_)
            | ExprKind::Number(_)
            | ExprKind::Str(_)
            | ExprKind::Name(_) => {}
        }
    }
    fn block(typed: &Typed, b: &Block, u: &mut Uses) {
        b.stmts.iter().for_each(|s| stmt(typed, s, u));
    }
    fn stmt(typed: &Typed, s: &Stmt, u: &mut Uses) {
        match &s.kind {
            StmtKind::AddAssign { target, value } => {
                if let ExprKind::Index { obj, key } = &target.kind {
                    let t = table(typed, obj).filter(|_| matches!(obj.kind, ExprKind::Name(_)));
                    if let Some(added) = t.and_then(|t| u.added.get_mut(t)) {
                        *added = true;
                        expr(typed, key, u);
                        expr(typed, value, u);
                        return;
                    }
                }
                expr(typed, target, u);
                expr(typed, value, u);
            }
            StmtKind::Var { values, .. } => values.iter().for_each(|v| expr(typed, v, u)),
            StmtKind::Assign { targets, values } => {
                targets.iter().chain(values).for_each(|e| expr(typed, e, u));
            }
            StmtKind::Aggregate { target, value } => {
                expr(typed, target, u);
                expr(typed, value, u);
            }
            StmtKind::Expr(e) => expr(typed, e, u),
            StmtKind::If { arms, otherwise } => {
                for (c, b) in arms {
                    expr(typed, c, u);
                    block(typed, b, u);
                }
                if let Some(b) = otherwise {
                    block(typed, b, u);
                }
            }
            StmtKind::While { cond, body } | StmtKind::Repeat { body, cond } => {
                expr(typed, cond, u);
                block(typed, body, u);
            }
            StmtKind::ForNum {
                start,
                end,
                step,
                body,
                ..
            } => {
                expr(typed, start, u);
                expr(typed, end, u);
                if let Some(st) = step {
                    expr(typed, st, u);
                }
                block(typed, body, u);
            }
            StmtKind::ForIn { iter, body, .. } => {
                expr(typed, iter, u);
                block(typed, body, u);
            }
            StmtKind::Return(e) => {
                if let Some(e) = e {
                    expr(typed, e, u);
                }
            }
            StmtKind::Function(f) => block(typed, &f.body, u),
            StmtKind::Break => {}
        }
    }
    let n = typed.tables.len();
    let mut u = Uses {
        added: vec![false; n],
        other: vec![false; n],
    };
    for item in &script.items {
        match item {
            Item::Trace(tr) => block(typed, &tr.body, &mut u),
            Item::Profile { body, .. } => block(typed, body, &mut u),
            Item::Stmt(
                s @ Stmt {
                    kind: StmtKind::Function(_),
                    ..
                },
            ) => stmt(typed, s, &mut u),
            Item::Stmt(_) | Item::TraceEnd { .. } | Item::Tick { .. } => {}
        }
    }
    (0..n)
        .map(|t| {
            let numbers = matches!(typed.tables[t].value.ty, Ty::Num | Ty::Unknown | Ty::Nil);
            u.added[t] && !u.other[t] && numbers && typed.tables[t].agg.is_none()
        })
        .collect()
}

/// One comparison of an event filter: its operator, and where to jump when its truth equals
/// `when`.
#[derive(Clone, Copy, Debug)]
struct FilterCmp {
    op: FilterOp,
    when: bool,
    target: Label,
}
