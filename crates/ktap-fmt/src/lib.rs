//! Output records to text: `print`, `printf` and `print_hist`, formatted as ktap formats them,
//! or to JSON lines (`-f json`).
//!
//! Probes send output records through a perf buffer and userspace blocks hand the same records
//! over directly; [`Printer::handle`] turns one record into text by its [`ktap_bpf::Format`].
//! Nothing here performs I/O except writing to the `Write` it is given, and nothing assumes the
//! host's byte order: records and map bytes are read in the program's target order.

pub mod argstr;
pub mod hist;
pub mod json;
pub mod printer;
pub mod printf;

use std::fmt;

use ktap_bpf::{Endian, ValueType};

pub use hist::{render_hist, DEFAULT_TOP};
pub use printer::{FmtError, MapSource, Mode, Outcome, Printer};
pub use printf::{Piece, PrintfError};

/// A value read from an output record or a map.
///
/// The derived order (numbers, then strings, then booleans, then nil) is only used to break
/// ties between histogram rows, so it needs to be total, not meaningful.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Int(i64),
    /// The string's bytes; only those before the first NUL are part of its text.
    Str(Vec<u8>),
    Bool(bool),
    Nil,
}

impl Value {
    /// ktap's text form, as `print` shows it: numbers in decimal, strings up to the first NUL,
    /// `true`/`false`, `nil`. Bytes, because strings from the kernel need not be UTF-8.
    pub fn text(&self) -> Vec<u8> {
        match self {
            Value::Int(n) => n.to_string().into_bytes(),
            Value::Str(s) => s.split(|&c| c == 0).next().unwrap_or_default().to_vec(),
            Value::Bool(true) => b"true".to_vec(),
            Value::Bool(false) => b"false".to_vec(),
            Value::Nil => b"nil".to_vec(),
        }
    }
}

/// The text form, with replacement characters for bytes that are not UTF-8.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.text()))
    }
}

/// Reads a value of type `ty` from the start of `bytes`, written in byte order `endian`.
///
/// Strings stop at the first NUL or after the type's size. Bytes past the end of a short slice
/// read as zero, so this never fails; callers that must notice truncation check the length
/// first, as [`Printer::handle`] does.
pub fn decode(bytes: &[u8], ty: ValueType, endian: Endian) -> Value {
    match ty {
        // An address, a timestamp and an `argstr` word are numbers here; the printer turns
        // them into their text.
        ValueType::Int | ValueType::Addr | ValueType::Time | ValueType::Argstr => {
            Value::Int(word(bytes, endian) as i64)
        }
        ValueType::Bool => Value::Bool(word(bytes, endian) != 0),
        ValueType::Nil => Value::Nil,
        // A stack's id; the printer turns it into the symbolized frames.
        ValueType::Stack | ValueType::UStack => Value::Int(word(bytes, endian) as i64),
        ValueType::Any(n) => {
            let payload = bytes.get(8..).unwrap_or_default();
            match word(bytes, endian) {
                ktap_bpf::TAG_NUM => Value::Int(word(payload, endian) as i64),
                ktap_bpf::TAG_BOOL => Value::Bool(word(payload, endian) != 0),
                ktap_bpf::TAG_STR => decode(payload, ValueType::Str(n.saturating_sub(8)), endian),
                _ => Value::Nil,
            }
        }
        ValueType::Str(n) => {
            let buf = bytes.get(..n as usize).unwrap_or(bytes);
            Value::Str(buf.split(|&c| c == 0).next().unwrap_or_default().to_vec())
        }
    }
}

/// The first 8 bytes as a u64, zero-extended when fewer are given.
pub(crate) fn word(bytes: &[u8], endian: Endian) -> u64 {
    let mut b = [0u8; 8];
    for (dst, src) in b.iter_mut().zip(bytes) {
        *dst = *src;
    }
    match endian {
        Endian::Little => u64::from_le_bytes(b),
        Endian::Big => u64::from_be_bytes(b),
    }
}

/// Names kernel addresses for `%p`. The loader implements it over `/proc/kallsyms`.
pub trait Symbolizer {
    /// The symbol containing `addr` and `addr`'s offset from the symbol's start, if known.
    fn symbol(&self, addr: u64) -> Option<(String, u64)>;
    /// The same for `addr` in the user memory of process `pid`.
    fn user_symbol(&self, pid: u32, addr: u64) -> Option<(String, u64)> {
        let _ = (pid, addr);
        None
    }
}

impl<T: Symbolizer + ?Sized> Symbolizer for &T {
    fn symbol(&self, addr: u64) -> Option<(String, u64)> {
        (**self).symbol(addr)
    }
    fn user_symbol(&self, pid: u32, addr: u64) -> Option<(String, u64)> {
        (**self).user_symbol(pid, addr)
    }
}

/// A symbolizer that knows no symbols, so `%p` prints plain hexadecimal (for dry runs and
/// machines without kallsyms).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSymbols;

impl Symbolizer for NoSymbols {
    fn symbol(&self, _addr: u64) -> Option<(String, u64)> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_each_type() {
        assert_eq!(Value::Int(-42).to_string(), "-42");
        assert_eq!(Value::Int(i64::MIN).to_string(), "-9223372036854775808");
        assert_eq!(Value::Str(b"bash\0\0junk".to_vec()).to_string(), "bash");
        assert_eq!(Value::Str(Vec::new()).to_string(), "");
        assert_eq!(Value::Bool(true).to_string(), "true");
        assert_eq!(Value::Bool(false).to_string(), "false");
        assert_eq!(Value::Nil.to_string(), "nil");
        assert_eq!(Value::Str(vec![b'a', 0xfe]).text(), vec![b'a', 0xfe]);
    }

    #[test]
    fn decode_both_byte_orders() {
        let le = (-2i64).to_le_bytes();
        let be = (-2i64).to_be_bytes();
        assert_eq!(decode(&le, ValueType::Int, Endian::Little), Value::Int(-2));
        assert_eq!(decode(&be, ValueType::Int, Endian::Big), Value::Int(-2));
        let x = 0x0102_0304_0506_0708u64.to_be_bytes();
        assert_eq!(
            decode(&x, ValueType::Int, Endian::Big),
            Value::Int(0x0102_0304_0506_0708)
        );
        assert_eq!(
            decode(&x, ValueType::Int, Endian::Little),
            Value::Int(0x0807_0605_0403_0201)
        );
        assert_eq!(
            decode(&1u64.to_be_bytes(), ValueType::Bool, Endian::Big),
            Value::Bool(true)
        );
        assert_eq!(
            decode(&1u64.to_be_bytes(), ValueType::Bool, Endian::Little),
            Value::Bool(true)
        );
        assert_eq!(
            decode(&[0; 8], ValueType::Bool, Endian::Little),
            Value::Bool(false)
        );
        assert_eq!(decode(&[9; 8], ValueType::Nil, Endian::Big), Value::Nil);
    }

    #[test]
    fn decode_strings() {
        let buf = b"sshd\0\0\0\0xyz";
        for e in [Endian::Little, Endian::Big] {
            assert_eq!(
                decode(buf, ValueType::Str(8), e),
                Value::Str(b"sshd".to_vec())
            );
        }
        // A buffer with no NUL ends at its size.
        assert_eq!(
            decode(b"abcdefgh", ValueType::Str(4), Endian::Little),
            Value::Str(b"abcd".to_vec())
        );
    }

    #[test]
    fn decode_short_input_reads_zeros() {
        assert_eq!(decode(&[], ValueType::Int, Endian::Big), Value::Int(0));
        assert_eq!(decode(&[1], ValueType::Int, Endian::Little), Value::Int(1));
        assert_eq!(
            decode(&[1], ValueType::Int, Endian::Big),
            Value::Int(1 << 56)
        );
        assert_eq!(
            decode(b"ab", ValueType::Str(16), Endian::Little),
            Value::Str(b"ab".to_vec())
        );
    }

    #[test]
    fn symbolizer_through_a_reference() {
        let s = &NoSymbols;
        assert_eq!(Symbolizer::symbol(&s, 1), None);
    }
}
