//! The record printer: one output record in, its text (or, with `-f json`, its JSON object)
//! written out, and what the caller must do next (go on, stop, or empty a table).

use std::fmt;
use std::io::{self, Write};

use ktap_bpf::{agg, Action, Endian, Format, Program, ValueType, RECORD_HEADER};

use crate::argstr::Renderer;
use crate::hist::{sorted, write_hist, write_pow2, DEFAULT_TOP};
use crate::json;
use crate::printf::{self, Conv, Piece, PrintfError};
use crate::{decode, word, Symbolizer, Value};

/// What the caller does after a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more: the record's text, if any, has been written.
    Continue,
    /// `exit(code)`: stop tracing, run `trace_end`, exit with this code.
    Exit(i64),
    /// `delete(t)` from a probe: empty map number `.0` of the program.
    Clear(u32),
}

/// How records are written out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// ktap's text, byte for byte.
    #[default]
    Text,
    /// One JSON object per line for every record that prints something, and for `exit()`
    /// (the schema is in `docs/json.md`).
    Json,
}

/// Read access to the program's tables, for `print_hist`.
pub trait MapSource {
    /// Every entry of map `map` (an index into [`Program::maps`]) as key and value bytes, in the
    /// target's byte order. For a per-CPU map, one value per key, already combined over CPUs.
    fn entries(&mut self, map: u32) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// The value under `key` (a stack trace by its id, say).
    fn lookup(&mut self, map: u32, key: &[u8]) -> Option<Vec<u8>> {
        self.entries(map)
            .into_iter()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, v)| v)
    }
}

/// A record that cannot be printed. Apart from `Io`, each comes from a bug in whatever produced
/// the record or the program, not from the script, so the message says what is wrong with the
/// record rather than pointing at a script line.
#[derive(Debug)]
pub enum FmtError {
    /// Shorter than the format id that starts every record.
    NoHeader { len: usize },
    /// Shorter than its format's fields need.
    Truncated { format: u64, len: usize, need: u64 },
    /// The format id is not one of the program's formats.
    UnknownFormat { format: u64, formats: usize },
    /// The format names a map the program does not have.
    UnknownMap { format: u64, map: u32, maps: usize },
    /// `print_hist` of a table whose values are not numbers.
    NotNumbers { format: u64, map: String },
    /// The printf format string does not parse (the compiler checks it, so the program is bad).
    Printf { format: u64, error: PrintfError },
    /// Writing the text failed.
    Io(io::Error),
}

impl fmt::Display for FmtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FmtError::NoHeader { len } => write!(
                f,
                "output record of {len} bytes is shorter than its {RECORD_HEADER}-byte format id"
            ),
            FmtError::Truncated { format, len, need } => write!(
                f,
                "output record of format {format} is truncated: {len} bytes, {need} needed"
            ),
            FmtError::UnknownFormat { format, formats } => write!(
                f,
                "output record names format {format}, but the program has {formats} formats"
            ),
            FmtError::UnknownMap { format, map, maps } => write!(
                f,
                "output format {format} names map {map}, but the program has {maps} maps"
            ),
            FmtError::NotNumbers { format, map } => write!(
                f,
                "output format {format}: print_hist({map}) needs a table whose values are numbers"
            ),
            FmtError::Printf { format, error } => write!(
                f,
                "output format {format}: bad printf format at byte {}: {}",
                error.offset, error.message
            ),
            FmtError::Io(e) => write!(f, "writing output: {e}"),
        }
    }
}

impl std::error::Error for FmtError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FmtError::Printf { error, .. } => Some(error),
            FmtError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for FmtError {
    fn from(e: io::Error) -> FmtError {
        FmtError::Io(e)
    }
}

/// Turns output records into text. It keeps each printf format parsed, so a busy probe costs one
/// parse per format, not one per record.
pub struct Printer<S> {
    sym: S,
    /// `parsed[i]` is format `i`'s printf string with its pieces. The string is kept so that a
    /// record of another program with the same index is parsed afresh, not misprinted.
    parsed: Vec<Option<(String, Vec<Piece>)>>,
    mode: Mode,
    /// `argstr` renderers by event index, with the event's `category:name` they were made for.
    renderers: Vec<Option<(String, Renderer)>>,
    /// `ktap -T`: the monotonic time tracing started at, which stamps are relative to.
    origin_ns: u64,
    /// The text written so far ends a line (or nothing was written), so the next stamped text
    /// starts with its stamp.
    at_line_start: bool,
}

impl<S: Symbolizer> Printer<S> {
    /// A printer of text that names `%p` addresses with `sym`.
    /// The symbolizer it names addresses with.
    pub fn symbolizer(&self) -> &S {
        &self.sym
    }

    pub fn new(sym: S) -> Printer<S> {
        Printer {
            sym,
            parsed: Vec::new(),
            mode: Mode::Text,
            renderers: Vec::new(),
            origin_ns: 0,
            at_line_start: true,
        }
    }

    /// Writes the records that follow in `mode`.
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// Timestamps (`ktap -T`) are shown relative to `ns`, the `CLOCK_MONOTONIC` time tracing
    /// started at.
    pub fn set_time_origin(&mut self, ns: u64) {
        self.origin_ns = ns;
    }

    /// Prints one record of `prog` to `out`. The text of a record is written with one call, so
    /// records from several sources never interleave mid-line.
    pub fn handle(
        &mut self,
        record: &[u8],
        prog: &Program,
        maps: &mut dyn MapSource,
        out: &mut dyn Write,
    ) -> Result<Outcome, FmtError> {
        let endian = prog.target.endian;
        let header = record
            .get(..RECORD_HEADER as usize)
            .ok_or(FmtError::NoHeader { len: record.len() })?;
        let id = word(header, endian);
        let index = usize::try_from(id).map_err(|_| unknown_format(id, prog))?;
        let format = prog
            .formats
            .get(index)
            .ok_or_else(|| unknown_format(id, prog))?;
        let mut args = fields(record, format, id, endian)?;
        let mut kinds: Vec<ValueType> = format.fields.iter().map(|f| f.ty).collect();
        for (v, f) in args.iter_mut().zip(&format.fields) {
            match f.ty {
                ValueType::Stack | ValueType::UStack => {
                    let bytes = record.get(f.offset as usize..).unwrap_or_default();
                    *v = stack_text(prog, maps, &self.sym, bytes, f.ty);
                }
                ValueType::Argstr => {
                    if let Value::Int(w) = *v {
                        *v = Value::Str(self.argstr(prog, record, format, w as u64).into_bytes());
                    }
                }
                _ => {}
            }
        }
        // `ktap -T`: the event's time is no value of the line but its stamp.
        let mut stamp = None;
        if let Some(i) = kinds.iter().position(|t| *t == ValueType::Time) {
            if let Value::Int(t) = args.remove(i) {
                stamp = Some((t as u64).wrapping_sub(self.origin_ns) as i64);
            }
            kinds.remove(i);
        }
        let mut text = Vec::new();
        let json = self.mode == Mode::Json;
        let outcome = match &format.action {
            Action::Print if json => {
                symbolize_all(&mut args, &kinds, &self.sym);
                json::print(&args, stamp, &mut text);
                Outcome::Continue
            }
            Action::Print => {
                symbolize_all(&mut args, &kinds, &self.sym);
                for (i, v) in args.iter().enumerate() {
                    if i > 0 {
                        text.push(b'\t');
                    }
                    text.extend_from_slice(&v.text());
                }
                text.push(b'\n');
                Outcome::Continue
            }
            Action::Printf(fmt) => {
                let pieces = parsed(&mut self.parsed, index, fmt)
                    .map_err(|error| FmtError::Printf { format: id, error })?;
                // An address shows as its symbol where text is asked for (`%s`, `%p`), and
                // stays a number for the number conversions.
                let convs = pieces.iter().filter_map(|p| match p {
                    Piece::Conversion(spec) => Some(spec.conv),
                    Piece::Literal(_) => None,
                });
                for ((v, kind), conv) in args.iter_mut().zip(&kinds).zip(convs) {
                    if *kind == ValueType::Addr && matches!(conv, Conv::Str) {
                        symbolize(v, &self.sym);
                    }
                }
                if json {
                    let mut line = Vec::new();
                    printf::format_into(pieces, &args, &self.sym, &mut line);
                    json::printf(&line, stamp, &mut text);
                } else {
                    printf::format_into(pieces, &args, &self.sym, &mut text);
                }
                Outcome::Continue
            }
            Action::PrintHist { map } => {
                let def = map_def(prog, id, *map)?;
                if def.value != ValueType::Int {
                    return Err(FmtError::NotNumbers {
                        format: id,
                        map: def.name.clone(),
                    });
                }
                let entries: Vec<(Value, i64)> = maps
                    .entries(*map)
                    .iter()
                    .map(|(k, v)| {
                        let key = match def.key {
                            ValueType::Stack | ValueType::UStack => {
                                stack_text(prog, maps, &self.sym, k, def.key)
                            }
                            ValueType::Addr => {
                                let mut v = decode(k, ValueType::Addr, endian);
                                symbolize(&mut v, &self.sym);
                                v
                            }
                            kt => decode(k, kt, endian),
                        };
                        (key, word(v, endian) as i64)
                    })
                    .collect();
                let n = match args.first() {
                    // A negative count shows no rows, as a count of zero does.
                    Some(Value::Int(n)) => usize::try_from(*n).unwrap_or(0),
                    _ => DEFAULT_TOP,
                };
                if json {
                    let rows = sorted(&entries);
                    let shown = rows.get(..n).unwrap_or(&rows);
                    json::hist(&def.name, shown, rows.len() - shown.len(), &mut text);
                } else {
                    write_hist(&entries, n, &mut text);
                }
                Outcome::Continue
            }
            Action::Clear { map } => {
                map_def(prog, id, *map)?;
                Outcome::Clear(*map)
            }
            Action::Hist { map } => {
                let def = map_def(prog, id, *map)?;
                // The record carries the key in the map's own layout, so it is compared as bytes.
                let key = format
                    .fields
                    .first()
                    .and_then(|f| record.get(f.offset as usize..(f.offset + f.ty.size()) as usize))
                    .unwrap_or_default();
                let value = maps
                    .entries(*map)
                    .into_iter()
                    .find(|(k, _)| k.as_slice() == key)
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let buckets: Vec<i64> = (0..agg::BUCKETS)
                    .map(|i| {
                        word(
                            value
                                .get((agg::HIST + 8 * i) as usize..)
                                .unwrap_or_default(),
                            endian,
                        ) as i64
                    })
                    .collect();
                if def.role != ktap_bpf::MapRole::Aggregation {
                    return Err(FmtError::NotNumbers {
                        format: id,
                        map: def.name.clone(),
                    });
                }
                if json {
                    // The key as decoded above, so a stack key shows as its frames.
                    let key = args.first().unwrap_or(&Value::Nil);
                    json::pow2(&def.name, key, &buckets, &mut text);
                } else {
                    write_pow2(&buckets, &mut text);
                }
                Outcome::Continue
            }
            Action::Exit => {
                let code = match args.first() {
                    Some(Value::Int(code)) => *code,
                    _ => 0,
                };
                if json {
                    json::exit(code, &mut text);
                }
                Outcome::Exit(code)
            }
        };
        if let (Some(t), false) = (stamp, json) {
            text = stamped(&text, t, self.at_line_start);
        }
        if !text.is_empty() {
            self.at_line_start = text.ends_with(b"\n");
            out.write_all(&text)?;
        }
        Ok(outcome)
    }

    /// The text of an `argstr` field holding `word` (`index << 32 | length`): the raw
    /// tracepoint record after the record's fields, rendered as the kernel's `trace` file
    /// shows the event.
    fn argstr(&mut self, prog: &Program, record: &[u8], format: &Format, word: u64) -> String {
        let (index, len) = ((word >> 32) as usize, (word & 0xffff_ffff) as usize);
        let Some(event) = prog.events.get(index) else {
            return format!("[argstr: the program has no event {index}]");
        };
        let start = (format.size as usize).min(record.len());
        let raw = record
            .get(start..start.saturating_add(len).min(record.len()))
            .unwrap_or_default();
        if self.renderers.len() <= index {
            self.renderers.resize(index + 1, None);
        }
        let name = format!("{}:{}", event.category, event.name);
        let slot = &mut self.renderers[index];
        if !matches!(slot, Some((n, _)) if *n == name) {
            *slot = Some((name, Renderer::new(event)));
        }
        slot.as_ref().map_or_else(String::new, |(_, r)| {
            r.render_symbols(raw, prog.target.endian, &self.sym)
        })
    }
}

/// `t` nanoseconds as `ktap -T` shows them before a line: seconds and microseconds, as the
/// kernel's `trace` file shows its timestamps (an event before the origin, while probes
/// were still being attached, is negative).
pub fn stamp_text(t: i64) -> String {
    format!("{:>12}: ", seconds(t))
}

/// `t` nanoseconds as seconds with six decimals.
pub(crate) fn seconds(t: i64) -> String {
    let sign = if t < 0 { "-" } else { "" };
    let t = t.unsigned_abs();
    format!(
        "{sign}{}.{:06}",
        t / 1_000_000_000,
        t % 1_000_000_000 / 1000
    )
}

/// `text` with the stamp of time `t` at the start of each of its lines (the first only when
/// it starts a line: `at_line_start`).
fn stamped(text: &[u8], t: i64, at_line_start: bool) -> Vec<u8> {
    let stamp = stamp_text(t);
    let mut out = Vec::with_capacity(text.len() + stamp.len());
    let mut start = at_line_start;
    for &b in text {
        if start {
            out.extend_from_slice(stamp.as_bytes());
        }
        out.push(b);
        start = b == b'\n';
    }
    out
}

/// An address value (`ipof`) as its symbol's text.
fn symbolize(v: &mut Value, sym: &dyn Symbolizer) {
    if let Value::Int(n) = *v {
        *v = Value::Str(printf::pointer(n as u64, sym).into_bytes());
    }
}

/// Every address among `args` (of types `kinds`) as its symbol's text.
fn symbolize_all(args: &mut [Value], kinds: &[ValueType], sym: &dyn Symbolizer) {
    for (v, k) in args.iter_mut().zip(kinds) {
        if *k == ValueType::Addr {
            symbolize(v, sym);
        }
    }
}

/// A stack value's frames, one per line, innermost first: `    symbol+0xoff` (or the bare
/// address when no symbol is known).
fn stack_text(
    prog: &Program,
    maps: &mut dyn MapSource,
    sym: &dyn Symbolizer,
    bytes: &[u8],
    ty: ValueType,
) -> Value {
    let endian = prog.target.endian;
    let id = word(bytes, endian) as i64;
    let pid = (word(bytes.get(8..).unwrap_or_default(), endian) >> 32) as u32;
    let Some(map) = prog.map_with_role(ktap_bpf::MapRole::Stacks) else {
        return Value::Nil;
    };
    let key = match endian {
        Endian::Little => (id as u32).to_le_bytes(),
        Endian::Big => (id as u32).to_be_bytes(),
    };
    let frames = if id < 0 { None } else { maps.lookup(map, &key) };
    let Some(frames) = frames else {
        // get_stackid's error: EFAULT when there is no such stack (a kernel stack sampled in
        // user code); anything else means the stack map could not take it.
        // For a user stack, EFAULT means the kernel recorded no frames at all: MIPS kernels
        // cannot walk user stacks.
        let why: &[u8] = match (id, ty) {
            (-14, ValueType::UStack) => b"    [no user stack: this kernel does not walk them]",
            (-14, _) => b"    [no stack: user code]",
            _ => b"    [stack not recorded]",
        };
        return Value::Str(why.to_vec());
    };
    let mut out = Vec::new();
    for chunk in frames.chunks(8) {
        let ip = word(chunk, endian);
        if ip == 0 {
            break;
        }
        if !out.is_empty() {
            out.push(b'\n');
        }
        let found = match ty {
            ValueType::UStack => sym.user_symbol(pid, ip),
            _ => sym.symbol(ip),
        };
        let text = match found {
            Some((name, 0)) => format!("    {name}"),
            Some((name, off)) => format!("    {name}+0x{off:x}"),
            None => format!("    0x{ip:x}"),
        };
        out.extend_from_slice(text.as_bytes());
    }
    Value::Str(out)
}

/// Format `index`'s parsed pieces, parsing `fmt` the first time it is seen there.
fn parsed<'a>(
    cache: &'a mut Vec<Option<(String, Vec<Piece>)>>,
    index: usize,
    fmt: &str,
) -> Result<&'a [Piece], PrintfError> {
    if cache.len() <= index {
        cache.resize(index + 1, None);
    }
    // In range: the cache was just grown past `index`.
    let slot = &mut cache[index];
    if !matches!(slot, Some((s, _)) if s == fmt) {
        *slot = Some((fmt.to_string(), printf::parse(fmt)?));
    }
    Ok(slot.as_ref().map_or(&[], |(_, p)| p.as_slice()))
}

fn unknown_format(id: u64, prog: &Program) -> FmtError {
    FmtError::UnknownFormat {
        format: id,
        formats: prog.formats.len(),
    }
}

/// The map a format names, checked against the program.
fn map_def(prog: &Program, format: u64, map: u32) -> Result<&ktap_bpf::MapDef, FmtError> {
    prog.maps.get(map as usize).ok_or(FmtError::UnknownMap {
        format,
        map,
        maps: prog.maps.len(),
    })
}

/// The record's field values, after checking that the record holds every one of them.
fn fields(record: &[u8], format: &Format, id: u64, endian: Endian) -> Result<Vec<Value>, FmtError> {
    let need = format
        .fields
        .iter()
        .map(|f| u64::from(f.offset) + u64::from(f.ty.size()))
        .fold(u64::from(format.size), u64::max);
    if (record.len() as u64) < need {
        return Err(FmtError::Truncated {
            format: id,
            len: record.len(),
            need,
        });
    }
    Ok(format
        .fields
        .iter()
        .map(|f| {
            decode(
                record.get(f.offset as usize..).unwrap_or_default(),
                f.ty,
                endian,
            )
        })
        .collect())
}
