//! `printf` format strings: parsing them into pieces, and formatting values with C's semantics.
//!
//! The compiler parses a script's format string once, to check it and to type its arguments;
//! userspace formats each record with the same pieces. Numbers are always 64-bit, so length
//! modifiers are accepted for C habits and change nothing.

use std::fmt;

use crate::{Symbolizer, Value};

/// The largest width or precision accepted. C has no limit, but a huge width would make one
/// record allocate gigabytes, so a format asking for more is an error the compiler reports.
pub const MAX_WIDTH: usize = 9999;

/// One part of a parsed format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as it is (`%%` already turned into `%`).
    Literal(String),
    /// A conversion, which consumes one argument.
    Conversion(Spec),
}

/// The conversion character of a conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    /// `%c`: the number's low byte.
    Char,
    /// `%d` and `%i`: signed decimal.
    Signed,
    /// `%o`: unsigned octal.
    Octal,
    /// `%u`: unsigned decimal.
    Unsigned,
    /// `%x`: unsigned hexadecimal, lower case.
    Hex,
    /// `%X`: unsigned hexadecimal, upper case.
    HexUpper,
    /// `%p`: a kernel address, as `symbol+0xoff`.
    Pointer,
    /// `%s`: any value's text.
    Str,
}

impl Conv {
    /// Whether the conversion takes a number. The compiler rejects a string argument for these;
    /// `%s` takes anything.
    pub const fn wants_number(self) -> bool {
        !matches!(self, Conv::Str)
    }
}

/// The flags of a conversion, as C defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flags {
    /// `-`: pad on the right instead of the left.
    pub left: bool,
    /// `+`: always print a sign for signed conversions.
    pub plus: bool,
    /// ` `: a space where a `+` would go.
    pub space: bool,
    /// `#`: `0x` before non-zero hexadecimal, a leading `0` in octal.
    pub alt: bool,
    /// `0`: pad numbers with zeros (ignored with `-` or a precision).
    pub zero: bool,
}

/// One conversion: `%` flags width `.precision` conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub flags: Flags,
    /// The minimum width in bytes; 0 when none is given.
    pub width: usize,
    /// The precision: minimum digits for numbers, maximum bytes for `%s`.
    pub precision: Option<usize>,
    pub conv: Conv,
    /// Byte offset of the `%` in the format string, so the compiler can point at the conversion
    /// whose argument has the wrong type.
    pub offset: usize,
}

/// A format string that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrintfError {
    /// Byte offset into the format string of the character at fault.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for PrintfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PrintfError {}

fn error(offset: usize, message: impl Into<String>) -> PrintfError {
    PrintfError {
        offset,
        message: message.into(),
    }
}

/// Parses a format string into literal text and conversions.
pub fn parse(fmt: &str) -> Result<Vec<Piece>, PrintfError> {
    let b = fmt.as_bytes();
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < b.len() {
        let next = fmt[i..].find('%').map_or(b.len(), |p| i + p);
        lit.push_str(&fmt[i..next]);
        if next >= b.len() {
            break;
        }
        let start = next;
        i = next + 1;
        if b.get(i) == Some(&b'%') {
            lit.push('%');
            i += 1;
            continue;
        }
        let spec = conversion(fmt, start, &mut i)?;
        if !lit.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Conversion(spec));
    }
    if !lit.is_empty() {
        pieces.push(Piece::Literal(lit));
    }
    Ok(pieces)
}

/// Parses the conversion whose `%` is at `start`; `i` points just after the `%` and is left just
/// after the conversion character. Every byte consumed is ASCII, so `i` stays a char boundary.
fn conversion(fmt: &str, start: usize, i: &mut usize) -> Result<Spec, PrintfError> {
    let b = fmt.as_bytes();
    let mut flags = Flags::default();
    while let Some(&c) = b.get(*i) {
        match c {
            b'-' => flags.left = true,
            b'+' => flags.plus = true,
            b' ' => flags.space = true,
            b'#' => flags.alt = true,
            b'0' => flags.zero = true,
            _ => break,
        }
        *i += 1;
    }
    let width = number(b, i, "width")?.unwrap_or(0);
    let precision = if b.get(*i) == Some(&b'.') {
        *i += 1;
        Some(number(b, i, "precision")?.unwrap_or(0))
    } else {
        None
    };
    // Length modifiers only matter to C's varargs; every ktap number is 64-bit.
    match b.get(*i) {
        Some(&m @ (b'l' | b'h')) => {
            *i += 1;
            if b.get(*i) == Some(&m) {
                *i += 1;
            }
        }
        Some(b'z') => *i += 1,
        _ => {}
    }
    let Some(&c) = b.get(*i) else {
        return Err(error(
            start,
            "incomplete conversion at the end of the format (write `%%` for a percent sign)",
        ));
    };
    let conv = match c {
        b'c' => Conv::Char,
        b'd' | b'i' => Conv::Signed,
        b'o' => Conv::Octal,
        b'u' => Conv::Unsigned,
        b'x' => Conv::Hex,
        b'X' => Conv::HexUpper,
        b'p' => Conv::Pointer,
        b's' => Conv::Str,
        _ => return Err(unknown_conversion(fmt, *i)),
    };
    *i += 1;
    Ok(Spec {
        flags,
        width,
        precision,
        conv,
        offset: start,
    })
}

fn unknown_conversion(fmt: &str, at: usize) -> PrintfError {
    let c = fmt[at..].chars().next().unwrap_or('?');
    let message = match c {
        '*' => "a `*` width or precision is not supported: write the number into the format"
            .to_string(),
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'a' | 'A' => {
            format!("`%{c}` is not supported: ktap numbers are integers")
        }
        'n' => "`%n` is not supported".to_string(),
        'L' | 'j' | 't' | 'q' => {
            format!("length modifier `{c}` is not supported (use `l` or none)")
        }
        _ => format!("unknown conversion `%{c}` (expected one of c d i o u x X p s, or %%)"),
    };
    error(at, message)
}

/// Reads decimal digits at `i`, if there are any.
fn number(b: &[u8], i: &mut usize, what: &str) -> Result<Option<usize>, PrintfError> {
    let begin = *i;
    let mut n: usize = 0;
    while let Some(&c) = b.get(*i) {
        if !c.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add(usize::from(c - b'0'));
        *i += 1;
    }
    if *i == begin {
        return Ok(None);
    }
    if n > MAX_WIDTH {
        return Err(error(
            begin,
            format!("{what} {n} is too large (at most {MAX_WIDTH})"),
        ));
    }
    Ok(Some(n))
}

/// Formats `args` by `pieces` as C's `printf` would, into text. Strings that are not UTF-8 are
/// shown with replacement characters; [`format_into`] keeps their bytes.
pub fn format(pieces: &[Piece], args: &[Value], sym: &dyn Symbolizer) -> String {
    let mut out = Vec::new();
    format_into(pieces, args, sym, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Formats `args` by `pieces`, appending the bytes to `out`. A conversion without an argument
/// prints as `nil` (the compiler rejects such calls; this keeps a bad record harmless), and
/// arguments beyond the conversions are ignored, as in C.
pub fn format_into(pieces: &[Piece], args: &[Value], sym: &dyn Symbolizer, out: &mut Vec<u8>) {
    let mut args = args.iter();
    for piece in pieces {
        match piece {
            Piece::Literal(s) => out.extend_from_slice(s.as_bytes()),
            Piece::Conversion(spec) => convert(spec, args.next().unwrap_or(&Value::Nil), sym, out),
        }
    }
}

fn convert(spec: &Spec, arg: &Value, sym: &dyn Symbolizer, out: &mut Vec<u8>) {
    // Casting to u64 and u8 is C's conversion to `unsigned long long` and `unsigned char`.
    match (spec.conv, arg) {
        (Conv::Str, v) => pad(spec, &v.text(), spec.precision, out),
        (Conv::Char, Value::Int(n)) => pad(spec, &[*n as u8], None, out),
        (Conv::Pointer, Value::Int(n)) => pad(spec, pointer(*n as u64, sym).as_bytes(), None, out),
        (Conv::Signed, Value::Int(n)) => integer(spec, *n < 0, n.unsigned_abs().to_string(), out),
        (Conv::Unsigned, Value::Int(n)) => integer(spec, false, (*n as u64).to_string(), out),
        (Conv::Octal, Value::Int(n)) => integer(spec, false, format!("{:o}", *n as u64), out),
        (Conv::Hex, Value::Int(n)) => integer(spec, false, format!("{:x}", *n as u64), out),
        (Conv::HexUpper, Value::Int(n)) => integer(spec, false, format!("{:X}", *n as u64), out),
        // A number conversion of anything else prints the value's text as `%s` would (without
        // the precision, which counts digits there): the compiler rejects these, so this only
        // keeps a hand-made record readable.
        (_, v) => pad(spec, &v.text(), None, out),
    }
}

/// `symbol+0xoff` when the address is inside a known symbol, else the address in hexadecimal.
pub(crate) fn pointer(addr: u64, sym: &dyn Symbolizer) -> String {
    match sym.symbol(addr) {
        Some((name, off)) => format!("{name}+{off:#x}"),
        None => format!("{addr:#x}"),
    }
}

/// Text conversions: at most `precision` bytes, padded with spaces to the width. glibc ignores
/// the `0` flag here, and so do we.
fn pad(spec: &Spec, text: &[u8], precision: Option<usize>, out: &mut Vec<u8>) {
    let text = match precision {
        Some(p) if p < text.len() => text.get(..p).unwrap_or(text),
        _ => text,
    };
    let fill = spec.width.saturating_sub(text.len());
    if spec.flags.left {
        out.extend_from_slice(text);
        out.resize(out.len() + fill, b' ');
    } else {
        out.resize(out.len() + fill, b' ');
        out.extend_from_slice(text);
    }
}

/// Integer conversions. `digits` is the magnitude in the conversion's radix; `negative` only
/// for `%d`.
fn integer(spec: &Spec, negative: bool, digits: String, out: &mut Vec<u8>) {
    let f = spec.flags;
    let zero_value = digits == "0";
    // C prints no digits at all for a zero value with precision 0.
    let mut digits = if spec.precision == Some(0) && zero_value {
        String::new()
    } else {
        digits
    };
    if let Some(p) = spec.precision {
        if digits.len() < p {
            digits.insert_str(0, &"0".repeat(p - digits.len()));
        }
    }
    let prefix = match spec.conv {
        Conv::Signed if negative => "-",
        Conv::Signed if f.plus => "+",
        Conv::Signed if f.space => " ",
        Conv::Hex if f.alt && !zero_value => "0x",
        Conv::HexUpper if f.alt && !zero_value => "0X",
        _ => "",
    };
    // `#` with `%o` raises the precision just enough for the first digit to be a 0.
    if spec.conv == Conv::Octal && f.alt && !digits.starts_with('0') {
        digits.insert(0, '0');
    }
    let fill = spec.width.saturating_sub(prefix.len() + digits.len());
    if f.left {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(digits.as_bytes());
        out.resize(out.len() + fill, b' ');
    } else if f.zero && spec.precision.is_none() {
        out.extend_from_slice(prefix.as_bytes());
        out.resize(out.len() + fill, b'0');
        out.extend_from_slice(digits.as_bytes());
    } else {
        out.resize(out.len() + fill, b' ');
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(digits.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoSymbols;

    struct Kallsyms;

    impl Symbolizer for Kallsyms {
        fn symbol(&self, addr: u64) -> Option<(String, u64)> {
            let base = 0xffff_ffff_8100_0000;
            (base..base + 0x100)
                .contains(&addr)
                .then(|| ("vfs_read".to_string(), addr - base))
        }
    }

    fn fmt(f: &str, args: &[Value]) -> String {
        format(&parse(f).unwrap(), args, &Kallsyms)
    }

    fn err(f: &str) -> PrintfError {
        parse(f).unwrap_err()
    }

    #[test]
    fn parses_literals_and_conversions() {
        let p = parse("a%%b%-08.3lldc").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], Piece::Literal("a%b".into()));
        assert_eq!(
            p[1],
            Piece::Conversion(Spec {
                flags: Flags {
                    left: true,
                    zero: true,
                    ..Flags::default()
                },
                width: 8,
                precision: Some(3),
                conv: Conv::Signed,
                offset: 4,
            })
        );
        assert_eq!(p[2], Piece::Literal("c".into()));
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("%%").unwrap(), vec![Piece::Literal("%".into())]);
    }

    #[test]
    fn length_modifiers_are_ignored() {
        for f in ["%ld", "%lld", "%hd", "%hhd", "%zd"] {
            assert_eq!(fmt(f, &[Value::Int(300)]), "300", "{f}");
        }
    }

    #[test]
    fn errors_carry_the_offset() {
        let e = err("ab%y");
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("unknown conversion `%y`"), "{e}");
        assert_eq!(err("x %5").offset, 2);
        assert!(err("x %5").message.contains("incomplete"));
        assert_eq!(err("%f").offset, 1);
        assert!(err("%f").message.contains("integers"));
        assert_eq!(err("%*d").offset, 1);
        assert_eq!(err("%lld %Lf").offset, 6);
        assert_eq!(err("%1234567d").offset, 1);
        assert_eq!(err("%.99999999999999999999999d").offset, 2);
        assert_eq!(err("é%é").offset, 3);
        assert!(err("é%é").message.contains("`%é`"));
        assert_eq!(err("%lll").offset, 3);
    }

    #[test]
    fn pointers_are_symbolized() {
        let base = 0xffff_ffff_8100_0000u64 as i64;
        assert_eq!(fmt("%p", &[Value::Int(base + 0x1a)]), "vfs_read+0x1a");
        assert_eq!(fmt("%p", &[Value::Int(base)]), "vfs_read+0x0");
        assert_eq!(fmt("%p", &[Value::Int(0x1234)]), "0x1234");
        assert_eq!(fmt("[%-8p]", &[Value::Int(16)]), "[0x10    ]");
        assert_eq!(fmt("[%8p]", &[Value::Int(16)]), "[    0x10]");
        assert_eq!(
            format(&parse("%p").unwrap(), &[Value::Int(base)], &NoSymbols),
            "0xffffffff81000000"
        );
    }

    #[test]
    fn strings_and_other_values() {
        let s = &[Value::Str(b"hello".to_vec())];
        assert_eq!(fmt("[%s]", s), "[hello]");
        assert_eq!(fmt("[%8.3s]", s), "[     hel]");
        assert_eq!(fmt("[%-8s]", s), "[hello   ]");
        assert_eq!(fmt("[%s]", &[Value::Int(-12)]), "[-12]");
        assert_eq!(fmt("[%5s]", &[Value::Int(7)]), "[    7]");
        assert_eq!(fmt("%s %s", &[Value::Bool(true), Value::Nil]), "true nil");
        // The compiler rejects these; at runtime the value prints as it is.
        assert_eq!(fmt("[%7.1d]", s), "[  hello]");
        assert_eq!(fmt("[%.2x]", &[Value::Bool(false)]), "[false]");
        assert_eq!(
            fmt("%c%c", &[Value::Int(0x141), Value::Int(b'b'.into())]),
            "Ab"
        );
    }

    #[test]
    fn missing_and_extra_arguments() {
        assert_eq!(fmt("%d %d", &[Value::Int(1)]), "1 nil");
        assert_eq!(fmt("%d", &[Value::Int(1), Value::Int(2)]), "1");
        assert_eq!(fmt("plain", &[Value::Int(1)]), "plain");
    }

    #[test]
    fn raw_bytes_are_kept() {
        let mut out = Vec::new();
        let p = parse("<%s>").unwrap();
        format_into(&p, &[Value::Str(vec![0xff, b'a'])], &NoSymbols, &mut out);
        assert_eq!(out, b"<\xffa>");
        assert_eq!(
            format(&p, &[Value::Str(vec![0xff])], &NoSymbols),
            "<\u{fffd}>"
        );
    }

    #[test]
    fn extremes() {
        assert_eq!(fmt("%d", &[Value::Int(i64::MIN)]), "-9223372036854775808");
        assert_eq!(fmt("%u", &[Value::Int(-1)]), "18446744073709551615");
        assert_eq!(fmt("%x", &[Value::Int(-1)]), "ffffffffffffffff");
        assert_eq!(fmt("%#o", &[Value::Int(0)]), "0");
        assert_eq!(fmt("%#.0o", &[Value::Int(0)]), "0");
        assert_eq!(fmt("[%.0d]", &[Value::Int(0)]), "[]");
        assert_eq!(fmt("%9999d", &[Value::Int(1)]).len(), 9999);
    }

    #[test]
    fn number_conversions_want_numbers() {
        assert!(Conv::Signed.wants_number());
        assert!(Conv::Pointer.wants_number());
        assert!(!Conv::Str.wants_number());
    }

    #[test]
    fn arbitrary_formats_never_panic() {
        let alphabet: Vec<char> = "%-+ #0123456789.lhzcdiouxXps*qé\n".chars().collect();
        let mut state = 1u64;
        let mut pick = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let args = [
            Value::Int(-1),
            Value::Str(b"x".to_vec()),
            Value::Bool(true),
            Value::Nil,
        ];
        for _ in 0..50_000 {
            let len = pick() % 12;
            let f: String = (0..len)
                .map(|_| alphabet[pick() % alphabet.len()])
                .collect();
            match parse(&f) {
                Ok(pieces) => {
                    let _ = format(&pieces, &args, &NoSymbols);
                }
                Err(e) => assert!(e.offset < f.len(), "{f:?}: {e:?}"),
            }
        }
    }
}
