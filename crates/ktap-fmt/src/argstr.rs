//! `argstr`: a tracepoint record rendered as the kernel's `trace` file shows the event, from
//! the event's `format` (its fields and its `print fmt:` line) and the record's bytes.
//!
//! The kernel renders an event with C code compiled from `print fmt`; userspace only has that
//! line's text. So the line is parsed here as the C it is (a format string, then argument
//! expressions over `REC->field`) and evaluated over the record. The common cases are covered:
//! integer conversions with flags, width and length, `%s %c %p`, casts, C's operators and
//! ternaries, `__get_str()`, `__print_flags()`, `__print_symbolic()` and kernel symbols (`%pS`,
//! `%ps`). Anything else (`%pI4`, `__print_hex()`, a dynamic array, an identifier the line does
//! not define) makes the whole line fall back to `field=value` for every non-common field, so
//! the text is always faithful to the record even where it is not the kernel's. Syscall events
//! are not rendered from `print fmt` by the kernel either: they get its `sys_NAME(arg: value,
//! ...)` and `sys_NAME -> 0xRET` forms.
//!
//! `long` is taken to be 64 bits wide, as on every 64-bit target; on a 32-bit target only
//! `%lx`/`%lu` of a negative `long` print differently (with 16 hex digits, not 8).

use ktap_bpf::kernel::{TpField, TpFormat};
use ktap_bpf::Endian;

use crate::printf::{self, Piece};
use crate::{NoSymbols, Symbolizer, Value};

/// Renders `record` (a whole tracepoint record, common fields first) of the event `format`
/// describes, as one line without a newline: `NAME: TEXT`, as after the timestamp in the
/// kernel's `trace` file. For many records of one event, [`Renderer`] parses `print fmt` once.
pub fn render(format: &TpFormat, record: &[u8], endian: Endian) -> String {
    Renderer::new(format).render(record, endian)
}

/// The kernel's conversions that print a kernel text address by name (after the `%`), and
/// whether each adds the offset into the function (`%pS`: `ksys_read+0x6c`) or not (`%ps`).
const SYMBOL_CONVERSIONS: [(&str, bool); 5] = [
    ("pS", true),
    ("pF", true),
    ("pB", true),
    ("ps", false),
    ("pf", false),
];

/// Whether rendering an event with this `print fmt` names kernel functions, and so needs
/// kallsyms.
pub fn names_kernel_functions(print_fmt: &str) -> bool {
    SYMBOL_CONVERSIONS
        .iter()
        .any(|(c, _)| print_fmt.contains(&format!("%{c}")))
}

/// One event's rendering, prepared once: `print fmt` parsed, or the reason it is not used.
#[derive(Clone, Debug)]
pub struct Renderer {
    name: String,
    fields: Vec<TpField>,
    style: Style,
}

#[derive(Clone, Debug)]
enum Style {
    /// `sys_enter_*`: the syscall's arguments, as `print_syscall_enter` prints them.
    SyscallEnter(String),
    /// `sys_exit_*`: the return value, as `print_syscall_exit` prints it.
    SyscallExit(String),
    /// `print fmt` parsed.
    Format(Vec<Part>),
    /// `print fmt` uses something this module does not evaluate.
    Fields,
}

impl Renderer {
    /// Prepares the rendering of `format`'s event.
    pub fn new(format: &TpFormat) -> Renderer {
        let syscall = |prefix: &str| {
            (format.category == "syscalls" && format.field("__syscall_nr").is_some())
                .then(|| format.name.strip_prefix(prefix))
                .flatten()
                .map(|n| format!("sys_{n}"))
        };
        let style = if let Some(n) = syscall("sys_enter_") {
            Style::SyscallEnter(n)
        } else if let Some(n) = syscall("sys_exit_") {
            Style::SyscallExit(n)
        } else {
            parse_print_fmt(&format.print_fmt, &format.fields).map_or(Style::Fields, Style::Format)
        };
        Renderer {
            name: format.name.clone(),
            fields: format.fields.to_vec(),
            style,
        }
    }

    /// Whether `print fmt` is interpreted (otherwise records show as `field=value` pairs).
    /// Syscall events count as interpreted: they have a fixed form.
    pub fn interprets_print_fmt(&self) -> bool {
        !matches!(self.style, Style::Fields)
    }

    /// Renders one record, written in byte order `endian`. Never fails: a record too short for
    /// a field shows that field as `?` in the `field=value` form. Addresses (`%pS`) show as
    /// numbers; [`Renderer::render_symbols`] names them.
    pub fn render(&self, record: &[u8], endian: Endian) -> String {
        self.render_symbols(record, endian, &NoSymbols)
    }

    /// [`Renderer::render`], with `%pS` and `%ps` kernel addresses named by `sym`.
    pub fn render_symbols(&self, record: &[u8], endian: Endian, sym: &dyn Symbolizer) -> String {
        let rec = Record {
            bytes: record,
            endian,
            fields: &self.fields,
        };
        let args = || self.fields.iter().filter(|f| !f.is_common());
        let text = match &self.style {
            Style::SyscallEnter(name) => {
                let args: Vec<String> = args()
                    .filter(|f| f.name != "__syscall_nr")
                    .map(|f| match rec.raw(f) {
                        // print_syscall_enter: values below 10 in decimal, others in hex.
                        Some(v) if v < 10 => format!("{}: {v}", f.name),
                        Some(v) => format!("{}: 0x{v:x}", f.name),
                        None => format!("{}: ?", f.name),
                    })
                    .collect();
                return format!("{name}({})", args.join(", "));
            }
            Style::SyscallExit(name) => {
                let ret = args()
                    .find(|f| f.name == "ret")
                    .and_then(|f| rec.raw(f))
                    .map_or("?".to_string(), |v| format!("0x{v:x}"));
                return format!("{name} -> {ret}");
            }
            Style::Format(parts) => {
                let mut out = Vec::new();
                match parts.iter().try_for_each(|p| p.write(&rec, sym, &mut out)) {
                    Some(()) => out,
                    None => fields_text(&rec, &self.fields),
                }
            }
            Style::Fields => fields_text(&rec, &self.fields),
        };
        format!("{}: {}", self.name, String::from_utf8_lossy(&text))
    }
}

/// Every non-common field as `name=value`, separated by spaces.
fn fields_text(rec: &Record, fields: &[TpField]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in fields.iter().filter(|f| !f.is_common()).enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.name.as_bytes());
        out.push(b'=');
        match rec.field_text(f) {
            Some(t) => out.extend_from_slice(&t),
            None => out.push(b'?'),
        }
    }
    out
}

/// A record and how to read its fields.
struct Record<'a> {
    bytes: &'a [u8],
    endian: Endian,
    fields: &'a [TpField],
}

impl Record<'_> {
    /// `n` bytes at `offset` as an unsigned number, if the record holds them.
    fn uint(&self, offset: usize, n: usize) -> Option<u64> {
        let b = self.bytes.get(offset..offset.checked_add(n)?)?;
        let mut w = [0u8; 8];
        match self.endian {
            Endian::Little => w.get_mut(..n)?.copy_from_slice(b),
            Endian::Big => w.get_mut(8 - n..)?.copy_from_slice(b),
        }
        Some(match self.endian {
            Endian::Little => u64::from_le_bytes(w),
            Endian::Big => u64::from_be_bytes(w),
        })
    }

    /// An integer field's bits, zero-extended (a field of 1, 2, 4 or 8 bytes).
    fn raw(&self, f: &TpField) -> Option<u64> {
        matches!(f.size, 1 | 2 | 4 | 8)
            .then(|| self.uint(f.offset as usize, f.size as usize))
            .flatten()
    }

    /// An integer field's value, sign-extended when the field is signed.
    fn int(&self, f: &TpField) -> Option<Num> {
        let v = self.raw(f)?;
        let shift = 64 - 8 * f.size;
        Some(if f.signed {
            Num::signed(((v << shift) as i64) >> shift)
        } else {
            Num::unsigned(v)
        })
    }

    /// The string a `__data_loc` (or `__rel_loc`) field points at, up to the first NUL.
    fn dynamic(&self, f: &TpField) -> Option<&[u8]> {
        self.dynamic_bytes(f).map(until_nul)
    }

    /// A field's value in the `field=value` form: strings as text, pointers in hex, arrays
    /// as `{a,b,...}`, other numbers in decimal.
    fn field_text(&self, f: &TpField) -> Option<Vec<u8>> {
        let string = f.c_type.contains("char");
        if f.is_data_loc() {
            if string {
                return self.dynamic(f).map(<[u8]>::to_vec);
            }
            let base = f
                .c_type
                .replace("__data_loc", "")
                .replace("__rel_loc", "")
                .replace("[]", "");
            let size = ctype(base.trim()).map_or(1, |t| t.bytes);
            return Some(self.elements(self.dynamic_bytes(f)?, size, false));
        }
        if let Some(n) = f.array_len {
            let all = self
                .bytes
                .get(f.offset as usize..(f.offset + f.size) as usize)?;
            if string {
                return Some(until_nul(all).to_vec());
            }
            let size = f.size.checked_div(n).filter(|s| matches!(s, 1 | 2 | 4 | 8));
            return Some(self.elements(all, size.unwrap_or(1) as usize, f.signed));
        }
        let n = self.int(f)?;
        Some(if f.c_type.contains('*') {
            format!("0x{:x}", n.v as u64).into_bytes()
        } else {
            n.to_string().into_bytes()
        })
    }

    /// The whole of a dynamic array: its location word holds the offset in the low 16 bits
    /// (from the record's start, or for `__rel_loc` from the field's end) and the length in
    /// the high 16. A length past the record's end is cut there.
    fn dynamic_bytes(&self, f: &TpField) -> Option<&[u8]> {
        let loc = self.uint(f.offset as usize, 4)?;
        let (mut start, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
        if f.c_type.contains("__rel_loc") {
            start += (f.offset + f.size) as usize;
        }
        self.bytes
            .get(start..start.saturating_add(len).min(self.bytes.len()))
    }

    /// `{a,b,...}`: `bytes` as numbers of `size` bytes each, in decimal.
    fn elements(&self, bytes: &[u8], size: usize, signed: bool) -> Vec<u8> {
        let sub = Record {
            bytes,
            endian: self.endian,
            fields: &[],
        };
        let items: Vec<String> = (0..bytes.len() / size.max(1))
            .filter_map(|i| {
                let v = sub.uint(i * size, size)?;
                let shift = 64 - 8 * size as u32;
                Some(if signed {
                    (((v << shift) as i64) >> shift).to_string()
                } else {
                    v.to_string()
                })
            })
            .collect();
        format!("{{{}}}", items.join(",")).into_bytes()
    }
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.split(|&c| c == 0).next().unwrap_or_default()
}

/// A C integer: its 64 bits and whether C treats it as unsigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Num {
    v: i64,
    unsigned: bool,
}

impl Num {
    fn signed(v: i64) -> Num {
        Num { v, unsigned: false }
    }
    fn unsigned(v: u64) -> Num {
        Num {
            v: v as i64,
            unsigned: true,
        }
    }
    fn truthy(self) -> bool {
        self.v != 0
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.unsigned {
            write!(f, "{}", self.v as u64)
        } else {
            write!(f, "{}", self.v)
        }
    }
}

/// What an expression evaluates to.
#[derive(Clone, Debug)]
enum Val {
    Num(Num),
    Str(Vec<u8>),
}

impl Val {
    fn num(self) -> Option<Num> {
        match self {
            Val::Num(n) => Some(n),
            Val::Str(_) => None,
        }
    }
}

/// A piece of the format string.
#[derive(Clone, Debug)]
enum Part {
    Literal(Vec<u8>),
    Conv(Conv),
    /// The kernel's `%pS`/`%pF` (`symbol+0xoff`) or `%ps`/`%pf` (`symbol`): a kernel text
    /// address by name, or in hex where no symbol holds it.
    Symbol {
        arg: Expr,
        offset: bool,
    },
}

/// One conversion of the format string and the argument it prints.
#[derive(Clone, Debug)]
struct Conv {
    /// Flags, width and precision, in ktap's printf terms.
    spec: printf::Spec,
    /// The bits of the C type the length modifier names (`hh` 8, `h` 16, none 32, else 64).
    bits: u32,
    arg: Expr,
}

impl Part {
    /// Appends this piece's text; `None` when the argument cannot be shown by the conversion.
    fn write(&self, rec: &Record, sym: &dyn Symbolizer, out: &mut Vec<u8>) -> Option<()> {
        let c = match self {
            Part::Literal(b) => {
                out.extend_from_slice(b);
                return Some(());
            }
            Part::Symbol { arg, offset } => {
                let Val::Num(n) = arg.eval(rec, 0)? else {
                    return None;
                };
                let addr = n.v as u64;
                let text = match sym.symbol(addr) {
                    Some((name, off)) if *offset => format!("{name}+0x{off:x}"),
                    Some((name, _)) => name,
                    None => format!("0x{addr:x}"),
                };
                out.extend_from_slice(text.as_bytes());
                return Some(());
            }
            Part::Conv(c) => c,
        };
        let v = c.arg.eval(rec, 0)?;
        let value = match (c.spec.conv, v) {
            (printf::Conv::Str, Val::Str(s)) => Value::Str(s),
            (printf::Conv::Str, Val::Num(_)) => return None,
            (_, Val::Str(_)) => return None,
            (printf::Conv::Signed, Val::Num(n)) => Value::Int(sign_extend(n.v, c.bits)),
            (printf::Conv::Pointer, Val::Num(n)) => Value::Int(n.v),
            (_, Val::Num(n)) => Value::Int(zero_extend(n.v, c.bits)),
        };
        printf::format_into(&[Piece::Conversion(c.spec)], &[value], &NoSymbols, out);
        Some(())
    }
}

fn sign_extend(v: i64, bits: u32) -> i64 {
    match bits {
        8 => v as i8 as i64,
        16 => v as i16 as i64,
        32 => v as i32 as i64,
        _ => v,
    }
}

fn zero_extend(v: i64, bits: u32) -> i64 {
    match bits {
        8 => v as u8 as i64,
        16 => v as u16 as i64,
        32 => v as u32 as i64,
        _ => v,
    }
}

/// Limits that keep a hostile `print fmt` from exhausting the stack, far above what kernel
/// formats need (sched_switch, among the deepest, nests 6 parentheses in 150 nodes): the
/// parser's recursion (two levels per parenthesis), the expression's size (so dropping it
/// recurses boundedly), and evaluation's recursion, which follows the expression's depth.
const MAX_DEPTH: usize = 128;
const MAX_NODES: usize = 4096;
const MAX_EVAL_DEPTH: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Mul,
    Div,
    Rem,
    Add,
    Sub,
    Shl,
    Shr,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    And,
    Xor,
    Or,
    LogAnd,
    LogOr,
}

/// A C type that a cast names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CType {
    bytes: usize,
    unsigned: bool,
    /// `bool`/`_Bool`: any non-zero value becomes 1.
    boolean: bool,
}

#[derive(Clone, Debug)]
enum Expr {
    Num(Num),
    Str(Vec<u8>),
    Field(usize),
    /// `REC->field[i]` of an array of integers.
    Index(usize, Box<Expr>),
    GetStr(usize),
    Cast(CType, Box<Expr>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Compl(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `__print_flags(value, delimiter, { mask, "name" }, ...)`.
    Flags(Box<Expr>, Vec<u8>, Vec<(Expr, Vec<u8>)>),
    /// `__print_symbolic(value, { value, "name" }, ...)`.
    Symbolic(Box<Expr>, Vec<(Expr, Vec<u8>)>),
}

impl Expr {
    fn eval(&self, rec: &Record, depth: usize) -> Option<Val> {
        if depth > MAX_EVAL_DEPTH {
            return None;
        }
        let num = |e: &Expr| e.eval(rec, depth + 1)?.num();
        Some(match self {
            Expr::Num(n) => Val::Num(*n),
            Expr::Str(s) => Val::Str(s.clone()),
            Expr::Field(i) => {
                let f = rec.fields.get(*i)?;
                if f.array_len.is_some() {
                    if !f.is_char_array() {
                        return None;
                    }
                    let b = rec
                        .bytes
                        .get(f.offset as usize..(f.offset + f.size) as usize)?;
                    Val::Str(until_nul(b).to_vec())
                } else {
                    Val::Num(rec.int(f)?)
                }
            }
            Expr::Index(i, index) => {
                let f = rec.fields.get(*i)?;
                let n = u64::from(f.array_len?);
                let size = f.size.checked_div(f.array_len?)?;
                let k = num(index)?.v as u64;
                if k >= n || !matches!(size, 1 | 2 | 4 | 8) {
                    return None;
                }
                let element = TpField {
                    offset: f.offset.checked_add((k as u32).checked_mul(size)?)?,
                    size,
                    array_len: None,
                    ..f.clone()
                };
                Val::Num(rec.int(&element)?)
            }
            Expr::GetStr(i) => Val::Str(rec.dynamic(rec.fields.get(*i)?)?.to_vec()),
            Expr::Cast(t, e) => {
                let n = num(e)?;
                Val::Num(if t.boolean {
                    Num::signed(i64::from(n.truthy()))
                } else if t.unsigned {
                    Num::unsigned(zero_extend(n.v, 8 * t.bytes as u32) as u64)
                } else {
                    Num::signed(sign_extend(n.v, 8 * t.bytes as u32))
                })
            }
            Expr::Neg(e) => {
                let n = num(e)?;
                Val::Num(Num {
                    v: n.v.wrapping_neg(),
                    ..n
                })
            }
            Expr::Not(e) => Val::Num(Num::signed(i64::from(!num(e)?.truthy()))),
            Expr::Compl(e) => {
                let n = num(e)?;
                Val::Num(Num { v: !n.v, ..n })
            }
            Expr::Binary(op, a, b) => Val::Num(binary(*op, num(a)?, num(b)?)?),
            Expr::Cond(c, a, b) => {
                if num(c)?.truthy() {
                    a.eval(rec, depth + 1)?
                } else {
                    b.eval(rec, depth + 1)?
                }
            }
            Expr::Flags(v, delim, names) => {
                // trace_print_flags_seq: names of the masks wholly set, in table order, each
                // clearing its bits; then what no name covered, in hex.
                let mut flags = num(v)?.v as u64;
                let mut out = Vec::new();
                for (mask, name) in names {
                    if flags == 0 {
                        break;
                    }
                    let mask = num(mask)?.v as u64;
                    if flags & mask != mask {
                        continue;
                    }
                    flags &= !mask;
                    if !out.is_empty() {
                        out.extend_from_slice(delim);
                    }
                    out.extend_from_slice(name);
                }
                if flags != 0 {
                    if !out.is_empty() {
                        out.extend_from_slice(delim);
                    }
                    out.extend_from_slice(format!("0x{flags:x}").as_bytes());
                }
                Val::Str(out)
            }
            Expr::Symbolic(v, names) => {
                // trace_print_symbols_seq: the first name whose value matches, else hex.
                let v = num(v)?.v;
                for (value, name) in names {
                    if num(value)?.v == v {
                        return Some(Val::Str(name.clone()));
                    }
                }
                Val::Str(format!("0x{:x}", v as u64).into_bytes())
            }
        })
    }
}

/// C's binary operators after the usual arithmetic conversions (unsigned if either side is);
/// `None` for a division by zero.
fn binary(op: Op, a: Num, b: Num) -> Option<Num> {
    let unsigned = a.unsigned || b.unsigned;
    let (x, y) = (a.v, b.v);
    let (ux, uy) = (x as u64, y as u64);
    let bool_num = |t: bool| Num::signed(i64::from(t));
    let arith = |v: i64| Num { v, unsigned };
    Some(match op {
        Op::Mul => arith(x.wrapping_mul(y)),
        Op::Div if unsigned => arith(ux.checked_div(uy)? as i64),
        Op::Div => arith(
            x.checked_div(y)
                .or_else(|| (y == -1).then(|| x.wrapping_neg()))?,
        ),
        Op::Rem if unsigned => arith(ux.checked_rem(uy)? as i64),
        Op::Rem => arith(x.checked_rem(y).or_else(|| (y == -1).then_some(0))?),
        Op::Add => arith(x.wrapping_add(y)),
        Op::Sub => arith(x.wrapping_sub(y)),
        // Shifts take the left operand's type; a count past the width gives 0 (C says
        // undefined, and 0 is what the kernel's constant folding would not produce anyway).
        Op::Shl => Num {
            v: u32::try_from(uy)
                .ok()
                .and_then(|s| x.checked_shl(s))
                .unwrap_or(0),
            ..a
        },
        Op::Shr if a.unsigned => Num {
            v: u32::try_from(uy)
                .ok()
                .and_then(|s| ux.checked_shr(s))
                .unwrap_or(0) as i64,
            ..a
        },
        Op::Shr => Num {
            v: x >> u32::try_from(uy).unwrap_or(63).min(63),
            ..a
        },
        Op::Lt => bool_num(if unsigned { ux < uy } else { x < y }),
        Op::Gt => bool_num(if unsigned { ux > uy } else { x > y }),
        Op::Le => bool_num(if unsigned { ux <= uy } else { x <= y }),
        Op::Ge => bool_num(if unsigned { ux >= uy } else { x >= y }),
        Op::Eq => bool_num(x == y),
        Op::Ne => bool_num(x != y),
        Op::And => arith(x & y),
        Op::Xor => arith(x ^ y),
        Op::Or => arith(x | y),
        Op::LogAnd => bool_num(x != 0 && y != 0),
        Op::LogOr => bool_num(x != 0 || y != 0),
    })
}

/// The integer types a cast may name, with `long` 64 bits wide.
fn ctype(name: &str) -> Option<CType> {
    let words: Vec<&str> = name
        .split_whitespace()
        .filter(|w| !matches!(*w, "const" | "volatile" | "signed"))
        .collect();
    let unsigned_word = words.contains(&"unsigned");
    let rest: Vec<&str> = words.into_iter().filter(|w| *w != "unsigned").collect();
    let t = |bytes, unsigned| {
        Some(CType {
            bytes,
            unsigned,
            boolean: false,
        })
    };
    match rest.as_slice() {
        [] if unsigned_word => t(4, true),
        ["char"] => t(1, unsigned_word),
        ["short"] | ["short", "int"] => t(2, unsigned_word),
        ["int"] => t(4, unsigned_word),
        ["long"] | ["long", "int"] | ["long", "long"] | ["long", "long", "int"] => {
            t(8, unsigned_word)
        }
        ["bool"] | ["_Bool"] => Some(CType {
            bytes: 1,
            unsigned: true,
            boolean: true,
        }),
        [one] if !unsigned_word => match *one {
            "u8" | "__u8" | "uint8_t" => t(1, true),
            "s8" | "__s8" | "int8_t" => t(1, false),
            "u16" | "__u16" | "uint16_t" | "umode_t" | "__be16" | "__le16" => t(2, true),
            "s16" | "__s16" | "int16_t" => t(2, false),
            "u32" | "__u32" | "uint32_t" | "gfp_t" | "dev_t" | "__be32" | "__le32" => t(4, true),
            "s32" | "__s32" | "int32_t" | "pid_t" => t(4, false),
            "u64" | "__u64" | "uint64_t" | "size_t" | "uintptr_t" | "__be64" | "__le64" => {
                t(8, true)
            }
            "s64" | "__s64" | "int64_t" | "ssize_t" | "loff_t" | "long" => t(8, false),
            _ => None,
        },
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Num(Num),
    Str(Vec<u8>),
    Ident(String),
    Punct(&'static str),
}

/// Splits C source into tokens; `None` on anything outside the subset the kernel writes.
fn tokens(src: &str) -> Option<Vec<Tok>> {
    const PUNCT: [&str; 30] = [
        "->", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "(", ")", "{", "}", ",", "?", ":",
        "+", "-", "*", "/", "%", "<", ">", "&", "|", "^", "!", "~", "[", "]",
    ];
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' || c == b'\'' {
            let (s, next) = literal(b, i + 1, c)?;
            i = next;
            out.push(if c == b'"' {
                Tok::Str(s)
            } else {
                Tok::Num(Num::signed(i64::from(*s.first()? as i8)))
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
                i += 1;
            }
            out.push(Tok::Num(number(src.get(start..i)?)?));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while b
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                i += 1;
            }
            out.push(Tok::Ident(src.get(start..i)?.to_string()));
        } else {
            let p = PUNCT
                .iter()
                .find(|p| b.get(i..i + p.len()) == Some(p.as_bytes()))?;
            i += p.len();
            out.push(Tok::Punct(p));
        }
    }
    Some(out)
}

/// A C string or character literal's bytes, from just after the opening quote; returns the
/// index just after the closing one.
fn literal(b: &[u8], mut i: usize, quote: u8) -> Option<(Vec<u8>, usize)> {
    let mut s = Vec::new();
    loop {
        let c = *b.get(i)?;
        i += 1;
        if c == quote {
            return Some((s, i));
        }
        if c != b'\\' {
            s.push(c);
            continue;
        }
        let e = *b.get(i)?;
        i += 1;
        s.push(match e {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            b'x' => {
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_hexdigit) && i - start < 2 {
                    i += 1;
                }
                u8::from_str_radix(std::str::from_utf8(b.get(start..i)?).ok()?, 16).ok()?
            }
            b'0'..=b'7' => {
                let start = i - 1;
                while b.get(i).is_some_and(|c| (b'0'..=b'7').contains(c)) && i - start < 3 {
                    i += 1;
                }
                let n = u16::from_str_radix(std::str::from_utf8(b.get(start..i)?).ok()?, 8);
                u8::try_from(n.ok()?).ok()?
            }
            other => other,
        });
    }
}

/// A C integer constant: decimal, `0x` hex or `0` octal, with `u`/`l` suffixes. A constant
/// too large for a signed 64-bit number, or with a `u`, is unsigned.
fn number(text: &str) -> Option<Num> {
    let digits = text.trim_end_matches(['u', 'U', 'l', 'L']);
    let suffix_unsigned = text[digits.len()..].contains(['u', 'U']);
    let v = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(h, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if suffix_unsigned || v > i64::MAX as u64 {
        Num::unsigned(v)
    } else {
        Num::signed(v as i64)
    })
}

/// Parses `print fmt`: string literals (concatenated), then one argument per conversion.
fn parse_print_fmt(text: &str, fields: &[TpField]) -> Option<Vec<Part>> {
    let toks = tokens(text)?;
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        fields,
        depth: 0,
        nodes: 0,
    };
    // A line that does not start with the format string is not one this module reads.
    let fmt = p.string()?;
    let mut parts = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    while let Some(&c) = fmt.get(i) {
        i += 1;
        if c != b'%' {
            lit.push(c);
            continue;
        }
        if fmt.get(i) == Some(&b'%') {
            lit.push(b'%');
            i += 1;
            continue;
        }
        let symbol = fmt.get(i..i + 2).and_then(|c| {
            SYMBOL_CONVERSIONS
                .iter()
                .find(|(t, _)| t.as_bytes() == c)
                .map(|&(_, offset)| offset)
        });
        let conv = match symbol {
            Some(_) => {
                i += 2;
                None
            }
            None => {
                let (spec, bits, next) = conversion(&fmt, i)?;
                i = next;
                Some((spec, bits))
            }
        };
        if !p.eat(",") {
            return None;
        }
        let arg = p.expr()?;
        if !lit.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut lit)));
        }
        parts.push(match (conv, symbol) {
            (Some((spec, bits)), _) => Part::Conv(Conv { spec, bits, arg }),
            (None, offset) => Part::Symbol {
                arg,
                offset: offset.unwrap_or(true),
            },
        });
    }
    if !lit.is_empty() {
        parts.push(Part::Literal(lit));
    }
    // Arguments left over mean the line is not what it seemed.
    (p.pos == toks.len()).then_some(parts)
}

/// The conversion after the `%` at `i - 1`: its spec, the bits its length modifier names and
/// the index after it. Kernel extensions other than the symbol ones (`%pI4`, ...) and `*`
/// widths are not handled.
fn conversion(fmt: &[u8], start: usize) -> Option<(printf::Spec, u32, usize)> {
    let mut i = start;
    while fmt
        .get(i)
        .is_some_and(|c| b"-+ #0".contains(c) || c.is_ascii_digit() || *c == b'.')
    {
        i += 1;
    }
    let flags_end = i;
    while fmt.get(i).is_some_and(|c| b"hlzL".contains(c)) {
        i += 1;
    }
    let length = fmt.get(flags_end..i)?;
    let bits = match length {
        b"" => 32,
        b"h" => 16,
        b"hh" => 8,
        b"l" | b"ll" | b"z" | b"L" => 64,
        _ => return None,
    };
    let conv = *fmt.get(i)?;
    i += 1;
    if !b"diouxXcsp".contains(&conv) {
        return None;
    }
    if conv == b'p' && fmt.get(i).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut text = b"%".to_vec();
    text.extend_from_slice(fmt.get(start..flags_end)?);
    text.push(conv);
    match printf::parse(std::str::from_utf8(&text).ok()?)
        .ok()?
        .as_slice()
    {
        [Piece::Conversion(spec)] => Some((*spec, bits, i)),
        _ => None,
    }
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    fields: &'a [TpField],
    depth: usize,
    nodes: usize,
}

/// Binary operators by precedence level, loosest first (below `?:`).
const LEVELS: [&[(&str, Op)]; 10] = [
    &[("||", Op::LogOr)],
    &[("&&", Op::LogAnd)],
    &[("|", Op::Or)],
    &[("^", Op::Xor)],
    &[("&", Op::And)],
    &[("==", Op::Eq), ("!=", Op::Ne)],
    &[("<", Op::Lt), (">", Op::Gt), ("<=", Op::Le), (">=", Op::Ge)],
    &[("<<", Op::Shl), (">>", Op::Shr)],
    &[("+", Op::Add), ("-", Op::Sub)],
    &[("*", Op::Mul), ("/", Op::Div), ("%", Op::Rem)],
];

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n)
    }

    fn eat(&mut self, p: &str) -> bool {
        let hit = matches!(self.peek(), Some(Tok::Punct(q)) if *q == p);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn ident(&mut self) -> Option<String> {
        match self.peek()? {
            Tok::Ident(s) => {
                let s = s.clone();
                self.pos += 1;
                Some(s)
            }
            _ => None,
        }
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let mut s = None::<Vec<u8>>;
        while let Some(Tok::Str(b)) = self.peek() {
            s.get_or_insert_with(Vec::new).extend_from_slice(b);
            self.pos += 1;
        }
        s
    }

    /// Counts one more node of the expression, refusing past [`MAX_NODES`].
    fn node(&mut self) -> Option<()> {
        self.nodes += 1;
        (self.nodes <= MAX_NODES).then_some(())
    }

    /// Runs `f` one level deeper, refusing past [`MAX_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// An assignment-free C expression: `?:` and below.
    fn expr(&mut self) -> Option<Expr> {
        self.nested(|p| {
            let c = p.binary(0)?;
            if !p.eat("?") {
                return Some(c);
            }
            let a = p.expr()?;
            if !p.eat(":") {
                return None;
            }
            let b = p.expr()?;
            Some(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)))
        })
    }

    fn binary(&mut self, level: usize) -> Option<Expr> {
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        let mut left = self.binary(level + 1)?;
        'more: loop {
            for (text, op) in ops.iter() {
                if self.eat(text) {
                    self.node()?;
                    let right = self.binary(level + 1)?;
                    left = Expr::Binary(*op, Box::new(left), Box::new(right));
                    continue 'more;
                }
            }
            return Some(left);
        }
    }

    fn unary(&mut self) -> Option<Expr> {
        self.nested(|p| {
            if p.eat("-") {
                return Some(Expr::Neg(Box::new(p.unary()?)));
            }
            if p.eat("+") {
                return p.unary();
            }
            if p.eat("!") {
                return Some(Expr::Not(Box::new(p.unary()?)));
            }
            if p.eat("~") {
                return Some(Expr::Compl(Box::new(p.unary()?)));
            }
            if let Some(t) = p.cast() {
                return Some(Expr::Cast(t, Box::new(p.unary()?)));
            }
            p.primary()
        })
    }

    /// A cast `(type)`, consumed only when the parentheses hold a type. A pointer type is an
    /// unsigned long, as the kernel's pointers are.
    fn cast(&mut self) -> Option<CType> {
        if !matches!(self.peek(), Some(Tok::Punct("("))) {
            return None;
        }
        let mut words = Vec::new();
        let mut pointer = false;
        let mut n = 1;
        loop {
            match self.peek_at(n)? {
                Tok::Ident(w) if !pointer && w != "REC" => words.push(w.as_str()),
                Tok::Punct("*") if !words.is_empty() => pointer = true,
                Tok::Punct(")") => break,
                _ => return None,
            }
            n += 1;
        }
        let words = words.join(" ");
        let t = if pointer {
            ctype("unsigned long")
        } else {
            ctype(&words)
        }?;
        self.pos += n + 1;
        Some(t)
    }

    fn primary(&mut self) -> Option<Expr> {
        self.node()?;
        match self.peek()?.clone() {
            Tok::Num(n) => {
                self.pos += 1;
                Some(Expr::Num(n))
            }
            Tok::Str(_) => self.string().map(Expr::Str),
            Tok::Punct("(") => {
                self.pos += 1;
                let e = self.expr()?;
                self.eat(")").then_some(e)
            }
            Tok::Ident(name) if name == "REC" => {
                self.pos += 1;
                if !self.eat("->") {
                    return None;
                }
                let f = self.ident()?;
                let i = self.field(&f)?;
                if !self.eat("[") {
                    return Some(Expr::Field(i));
                }
                let index = self.expr()?;
                self.eat("]").then(|| Expr::Index(i, Box::new(index)))
            }
            Tok::Ident(name) => {
                self.pos += 1;
                if !self.eat("(") {
                    return None;
                }
                let e = self.call(&name)?;
                self.eat(")").then_some(e)
            }
            Tok::Punct(_) => None,
        }
    }

    fn field(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The helpers `print fmt` lines call that can be evaluated from the record alone.
    fn call(&mut self, name: &str) -> Option<Expr> {
        match name {
            "__get_str" | "__get_rel_str" => {
                let f = self.ident()?;
                let i = self.field(&f)?;
                self.fields.get(i)?.is_data_loc().then_some(Expr::GetStr(i))
            }
            "__print_flags" | "__print_flags_u64" => {
                let v = self.expr()?;
                if !self.eat(",") {
                    return None;
                }
                let delim = self.string()?;
                Some(Expr::Flags(Box::new(v), delim, self.pairs()?))
            }
            // A branch hint: its value is its first argument.
            "__builtin_expect" => {
                let v = self.expr()?;
                self.eat(",").then_some(())?;
                self.expr()?;
                Some(v)
            }
            "__print_symbolic" | "__print_symbolic_u64" => {
                let v = self.expr()?;
                Some(Expr::Symbolic(Box::new(v), self.pairs()?))
            }
            _ => None,
        }
    }

    /// `, { value, "name" }` repeated, up to the closing parenthesis (left unconsumed).
    fn pairs(&mut self) -> Option<Vec<(Expr, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut ended = false;
        while self.eat(",") {
            if !self.eat("{") {
                return None;
            }
            let v = self.expr()?;
            if !self.eat(",") {
                return None;
            }
            // A NULL name (`0`, `((void *)0)`) ends the kernel's table, as its terminating
            // `{ -1, NULL }` entry does.
            let name = match self.string() {
                Some(name) => Some(name),
                None if is_null(&self.expr()?) => None,
                None => return None,
            };
            if !self.eat("}") {
                return None;
            }
            if let Some(name) = name.filter(|_| !ended) {
                out.push((v, name));
            } else {
                ended = true;
            }
        }
        Some(out)
    }
}

/// A null pointer constant: `0`, possibly cast.
fn is_null(e: &Expr) -> bool {
    match e {
        Expr::Num(n) => n.v == 0,
        Expr::Cast(_, inner) => is_null(inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, c_type: &str, offset: u32, size: u32, signed: bool) -> TpField {
        TpField {
            name: name.into(),
            c_type: c_type.into(),
            offset,
            size,
            signed,
            array_len: None,
        }
    }

    /// A format with one signed 8-byte field `x` at offset 8 and an unsigned one `u` at 16.
    fn fmt(print_fmt: &str) -> TpFormat {
        TpFormat {
            category: "test".into(),
            name: "ev".into(),
            id: 1,
            fields: vec![
                field("common_pid", "int", 4, 4, true),
                field("x", "long", 8, 8, true),
                field("u", "unsigned int", 16, 4, false),
            ]
            .into(),
            print_fmt: print_fmt.into(),
        }
    }

    fn rec(x: i64, u: u32) -> Vec<u8> {
        let mut r = vec![0u8; 8];
        r.extend_from_slice(&x.to_le_bytes());
        r.extend_from_slice(&u.to_le_bytes());
        r
    }

    fn show(print_fmt: &str, x: i64, u: u32) -> String {
        render(&fmt(print_fmt), &rec(x, u), Endian::Little)
    }

    #[test]
    fn conversions_and_lengths() {
        assert_eq!(
            show(r#""x=%d u=%u", REC->x, REC->u"#, -5, 7),
            "ev: x=-5 u=7"
        );
        // %d of a long is an int: the low 32 bits, signed.
        assert_eq!(show(r#""%d", REC->x"#, 0x1_0000_0005, 0), "ev: 5");
        assert_eq!(
            show(r#""%ld|%lu", REC->x, REC->x"#, -1, 0),
            "ev: -1|18446744073709551615"
        );
        assert_eq!(
            show(r#""%x|%lx", REC->x, REC->x"#, -1, 0),
            "ev: ffffffff|ffffffffffffffff"
        );
        assert_eq!(
            show(r#""%llx %hu %hhu", REC->x, REC->x, REC->x"#, 0x1ffff, 0),
            "ev: 1ffff 65535 255"
        );
        assert_eq!(
            show(r#""0x%08lx %#x %-4d|", REC->x, REC->u, REC->u"#, 255, 16),
            "ev: 0x000000ff 0x10 16  |"
        );
        assert_eq!(show(r#""%c%c", REC->x, 'k'"#, 0x6f, 0), "ev: ok");
        assert_eq!(show(r#""%p", REC->x"#, 0x1234, 0), "ev: 0x1234");
        assert_eq!(show(r#""100%% %s", "done""#, 0, 0), "ev: 100% done");
    }

    #[test]
    fn casts_and_operators() {
        assert_eq!(
            show(r#""%lx", ((unsigned long)(REC->x))"#, -100, 0),
            "ev: ffffffffffffff9c"
        );
        assert_eq!(
            show(r#""%d", (int)(REC->x >> 32)"#, 0x7_0000_0000, 0),
            "ev: 7"
        );
        assert_eq!(show(r#""%u", (u8)REC->u"#, 0, 0x1ff), "ev: 255");
        assert_eq!(show(r#""%d", (bool)REC->u"#, 0, 9), "ev: 1");
        assert_eq!(show(r#""%lx", (void *)REC->x"#, 16, 0), "ev: 10");
        assert_eq!(show(r#""%d", REC->x * 2 + 1 - -3"#, 5, 0), "ev: 14");
        assert_eq!(show(r#""%d", REC->x / 0"#, 5, 0), "ev: x=5 u=0");
        assert_eq!(show(r#""%d %d", REC->x % 3, 1 << 4 | 1"#, 8, 0), "ev: 2 17");
        assert_eq!(
            show(r#""%s", REC->x > 3 && REC->u ? "y" : "n""#, 4, 1),
            "ev: y"
        );
        assert_eq!(
            show(r#""%s", REC->x > 3 && REC->u ? "y" : "n""#, 4, 0),
            "ev: n"
        );
        // Unsigned comparisons: -1 is the largest unsigned long.
        assert_eq!(show(r#""%d", (unsigned long)REC->x > 5"#, -1, 0), "ev: 1");
        assert_eq!(show(r#""%d", REC->x > 5"#, -1, 0), "ev: 0");
        assert_eq!(show(r#""%d", !REC->x + ~0"#, 0, 0), "ev: 0");
        assert_eq!(
            show(r#""%d", __builtin_expect(!!REC->x, 0)"#, 9, 0),
            "ev: 1"
        );
    }

    #[test]
    fn flags_and_symbols() {
        let f = r#""%s", __print_flags(REC->u, "|", { 0x1, "A" }, { 0x2, "B" }, { 0x6, "BC" })"#;
        assert_eq!(show(f, 0, 0), "ev: ");
        assert_eq!(show(f, 0, 1), "ev: A");
        assert_eq!(show(f, 0, 3), "ev: A|B");
        assert_eq!(show(f, 0, 6), "ev: B|0x4");
        assert_eq!(show(f, 0, 0x11), "ev: A|0x10");
        let s = r#""%s", __print_symbolic(REC->x, { 0, "zero" }, { -1, "minus" })"#;
        assert_eq!(show(s, -1, 0), "ev: minus");
        assert_eq!(show(s, 0, 0), "ev: zero");
        assert_eq!(show(s, 42, 0), "ev: 0x2a");
    }

    /// Kernel text addresses: `%pS` with the offset, `%ps` without, hex where no symbol holds
    /// the address (and always without a symbolizer).
    #[test]
    fn symbol_conversions_name_kernel_addresses() {
        struct One;
        impl Symbolizer for One {
            fn symbol(&self, addr: u64) -> Option<(String, u64)> {
                (0x1000..0x1100)
                    .contains(&addr)
                    .then(|| ("ksys_read".to_string(), addr - 0x1000))
            }
        }
        let f = fmt(r#""(%pS <- %ps) %pF", REC->x, REC->x, REC->u"#);
        let r = Renderer::new(&f);
        assert!(r.interprets_print_fmt());
        assert_eq!(
            r.render_symbols(&rec(0x106c, 7), Endian::Little, &One),
            "ev: (ksys_read+0x6c <- ksys_read) 0x7"
        );
        assert_eq!(
            r.render(&rec(0x106c, 7), Endian::Little),
            "ev: (0x106c <- 0x106c) 0x7"
        );
    }

    #[test]
    fn unsupported_falls_back_to_fields() {
        for f in [
            r#""%pI4", REC->x"#,
            r#""%*d", 3, REC->x"#,
            r#""%d", __print_hex(REC->x, 4)"#,
            r#""%d", SOME_ENUM"#,
            r#""%d", REC->nosuch"#,
            r#""%s", REC->x"#,
            r#""%d", "str""#,
            r#""%d %d", REC->x"#,
            r#""%d", REC->x, REC->u"#,
            r#""%f", REC->x"#,
            r#""%d", (struct foo)REC->x"#,
            r#""unterminated"#,
            r#""%d", REC->x ? 1"#,
            "",
        ] {
            assert_eq!(show(f, -2, 3), "ev: x=-2 u=3", "{f}");
        }
        // Which lines are parsed is known before any record is seen.
        assert!(!Renderer::new(&fmt(r#""%pI4", REC->x"#)).interprets_print_fmt());
        assert!(Renderer::new(&fmt(r#""%d", REC->x"#)).interprets_print_fmt());
        // A format without conversions is its text.
        assert_eq!(show(r#""hello""#, 0, 0), "ev: hello");
    }

    #[test]
    fn arrays_and_null_names() {
        let mut f = fmt(r#""NR %ld (%lx, %lx)", REC->x, REC->args[0], REC->args[1]"#);
        let mut fields = f.fields.to_vec();
        fields.push(TpField {
            array_len: Some(2),
            ..field("args", "unsigned long", 24, 16, false)
        });
        f.fields = fields.into();
        let mut r = rec(1, 0);
        r.resize(24, 0);
        r.extend_from_slice(&0xau64.to_le_bytes());
        r.extend_from_slice(&0xffu64.to_le_bytes());
        assert_eq!(render(&f, &r, Endian::Little), "ev: NR 1 (a, ff)");
        f.print_fmt = r#""%lx", REC->args[2]"#.into();
        assert_eq!(render(&f, &r, Endian::Little), "ev: x=1 u=0 args={10,255}");
        let s = r#""%s", __print_symbolic(REC->x, { 0, "A" }, { -1, ((void *)0) }, { 5, "B" })"#;
        assert_eq!(show(s, 0, 0), "ev: A");
        assert_eq!(show(s, 5, 0), "ev: 0x5");
        assert_eq!(
            show(r#""%s", __print_symbolic(REC->x, { 0, 1 })"#, 0, 0),
            "ev: x=0 u=0"
        );
    }

    #[test]
    fn string_escapes_and_literals() {
        assert_eq!(
            show(r#""a\tb\"c\\ \x41\101" "d""#, 0, 0),
            "ev: a\tb\"c\\ AAd"
        );
        assert_eq!(number("0x10"), Some(Num::signed(16)));
        assert_eq!(number("010"), Some(Num::signed(8)));
        assert_eq!(number("10UL"), Some(Num::unsigned(10)));
        assert_eq!(number("0xffffffffffffffff"), Some(Num::unsigned(u64::MAX)));
        assert_eq!(number("0x"), None);
        assert_eq!(number("9z"), None);
    }

    #[test]
    fn short_records_never_panic() {
        let f = fmt(r#""x=%ld u=%u", REC->x, REC->u"#);
        let r = rec(1, 2);
        for n in 0..r.len() {
            let out = render(&f, &r[..n], Endian::Little);
            assert!(out.starts_with("ev: x="), "{out}");
        }
        assert_eq!(render(&f, &r[..16], Endian::Little), "ev: x=1 u=?");
        assert_eq!(render(&f, &r, Endian::Little), "ev: x=1 u=2");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("\"%d\", {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(show(&deep, 1, 2), "ev: x=1 u=2");
        let neg = format!("\"%d\", {}1", "-".repeat(10_000));
        assert_eq!(show(&neg, 1, 2), "ev: x=1 u=2");
        let chain = format!("\"%d\", 1{}", "+1".repeat(100_000));
        assert_eq!(show(&chain, 1, 2), "ev: x=1 u=2");
        let ok = format!("\"%d\", {}7{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(show(&ok, 1, 2), "ev: 7");
        let ok = format!("\"%d\", 1{}", "+1".repeat(200));
        assert_eq!(show(&ok, 1, 2), "ev: 201");
    }

    #[test]
    fn big_endian_records() {
        let mut r = vec![0u8; 8];
        r.extend_from_slice(&(-3i64).to_be_bytes());
        r.extend_from_slice(&9u32.to_be_bytes());
        let f = fmt(r#""%ld %u", REC->x, REC->u"#);
        assert_eq!(render(&f, &r, Endian::Big), "ev: -3 9");
    }
}
