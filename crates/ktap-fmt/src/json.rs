//! `-f json`: the JSON encoding of values and of one object per output record.
//!
//! The encoder is written here rather than taken from a crate because the output is a handful
//! of fixed shapes of numbers, strings, booleans and null: what needs care is only string
//! escaping, and that has to decide what to do with kernel bytes that are not UTF-8, which no
//! general-purpose encoder decides for us. The schema is documented in `docs/json.md`.

use crate::Value;

/// Appends `s` as a JSON string. Bytes that are not UTF-8 become U+FFFD, one per maximal
/// invalid sequence (as `String::from_utf8_lossy` does), so every line is valid JSON. Control
/// characters, C0 and C1 alike, and DEL are escaped, though JSON requires it only below
/// U+0020: a line then never holds a raw newline, and never a terminal control sequence.
pub fn write_str(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                c if c.is_control() => {
                    out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes())
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

/// Appends `v`: numbers as JSON numbers, strings (up to their first NUL, as `print` shows them)
/// as strings, booleans as booleans, nil as null.
pub fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Str(_) => write_str(&v.text(), out),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Nil => out.extend_from_slice(b"null"),
    }
}

/// `,"time":S.UUUUUU` for a record stamped `t` nanoseconds after tracing started (`ktap -T`).
fn time(t: Option<i64>, out: &mut Vec<u8>) {
    if let Some(t) = t {
        out.extend_from_slice(format!(",\"time\":{}", crate::printer::seconds(t)).as_bytes());
    }
}

/// `{"type":"print","values":[...]}` and a newline.
pub(crate) fn print(values: &[Value], stamp: Option<i64>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"type\":\"print\"");
    time(stamp, out);
    out.extend_from_slice(b",\"values\":[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(v, out);
    }
    out.extend_from_slice(b"]}\n");
}

/// `{"type":"printf","text":"..."}` and a newline: the text exactly as text mode prints it.
pub(crate) fn printf(text: &[u8], stamp: Option<i64>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"type\":\"printf\"");
    time(stamp, out);
    out.extend_from_slice(b",\"text\":");
    write_str(text, out);
    out.extend_from_slice(b"}\n");
}

/// `print_hist`: the rows text mode shows (already sorted and cut to the top `n`), and how many
/// were left out, where text mode prints `...`.
pub(crate) fn hist(table: &str, rows: &[&(Value, i64)], omitted: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"type\":\"hist\",\"table\":");
    write_str(table.as_bytes(), out);
    out.extend_from_slice(b",\"rows\":[");
    for (i, (key, count)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        write_value(key, out);
        out.extend_from_slice(format!(",\"count\":{count}}}").as_bytes());
    }
    out.extend_from_slice(format!("],\"omitted\":{omitted}}}\n").as_bytes());
}

/// `hist()`: the power-of-two buckets text mode shows (from the lowest to the highest that
/// counted anything), each with its bounds. Bucket 0 (values ≤ 0) has no lower bound, so its
/// `low` is null; bucket `i` holds `[2^(i-1), 2^i - 1]`.
pub(crate) fn pow2(table: &str, key: &Value, buckets: &[i64], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"type\":\"pow2\",\"table\":");
    write_str(table.as_bytes(), out);
    out.extend_from_slice(b",\"key\":");
    write_value(key, out);
    out.extend_from_slice(b",\"buckets\":[");
    let first = buckets.iter().position(|&c| c != 0);
    let last = buckets.iter().rposition(|&c| c != 0);
    if let (Some(first), Some(last)) = (first, last) {
        for (i, &count) in buckets.iter().enumerate().take(last + 1).skip(first) {
            if i > first {
                out.push(b',');
            }
            let (low, high) = bounds(i);
            out.extend_from_slice(
                format!("{{\"low\":{low},\"high\":{high},\"count\":{count}}}").as_bytes(),
            );
        }
    }
    out.extend_from_slice(b"]}\n");
}

/// Bucket `i`'s bounds as JSON text. Bucket 63 ends at `i64::MAX`, the largest value there is.
fn bounds(i: usize) -> (String, String) {
    match i {
        0 => ("null".to_string(), "0".to_string()),
        _ => {
            let low = 1u64.checked_shl(i as u32 - 1).unwrap_or(0);
            let high = low.saturating_mul(2).saturating_sub(1).min(i64::MAX as u64);
            (low.to_string(), high.to_string())
        }
    }
}

/// `{"type":"exit","code":N}` and a newline.
pub(crate) fn exit(code: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{{\"type\":\"exit\",\"code\":{code}}}\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        write_str(bytes, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_and_quoted() {
        assert_eq!(s(b""), r#""""#);
        assert_eq!(s(b"bash"), r#""bash""#);
        assert_eq!(s(br#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(s(b"/etc/*"), r#""/etc/*""#);
    }

    #[test]
    fn control_characters() {
        assert_eq!(s(b"a\nb\tc\rd"), r#""a\nb\tc\rd""#);
        assert_eq!(s(b"\x08\x0c"), r#""\b\f""#);
        assert_eq!(
            s(b"\x00\x01\x1b[0m\x1f\x7f"),
            r#""\u0000\u0001\u001b[0m\u001f\u007f""#
        );
        // Every byte below 0x20 is escaped one way or the other.
        for b in 0u8..0x20 {
            let out = s(&[b]);
            assert!(out.starts_with("\"\\"), "{b:#x}: {out}");
            assert!(out.bytes().all(|c| c >= 0x20), "{b:#x}: {out}");
        }
    }

    #[test]
    fn unicode_passes_through() {
        assert_eq!(s("µs ≤ 2 😀".as_bytes()), "\"µs ≤ 2 😀\"");
        // U+2028 is valid in JSON strings and kept as it is.
        assert_eq!(s("\u{2028}".as_bytes()), "\"\u{2028}\"");
        // C1 controls (U+009B is a one-character CSI to some terminals) are escaped.
        assert_eq!(s("\u{9b}2J\u{85}".as_bytes()), r#""\u009b2J\u0085""#);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(s(b"a\xffb"), "\"a\u{fffd}b\"");
        assert_eq!(s(b"\xfe\xff"), "\"\u{fffd}\u{fffd}\"");
        // A truncated sequence (the first two bytes of a 3-byte one) is one replacement.
        assert_eq!(s(b"x\xe2\x82"), "\"x\u{fffd}\"");
        // A surrogate encoded in UTF-8 is not UTF-8.
        assert_eq!(s(b"\xed\xa0\x80"), "\"\u{fffd}\u{fffd}\u{fffd}\"");
        assert_eq!(s(b"\xc0\x80"), "\"\u{fffd}\u{fffd}\"");
    }

    #[test]
    fn values() {
        let v = |v: Value| {
            let mut out = Vec::new();
            write_value(&v, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(v(Value::Int(-42)), "-42");
        assert_eq!(v(Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(v(Value::Str(b"cat\0junk".to_vec())), r#""cat""#);
        assert_eq!(v(Value::Bool(true)), "true");
        assert_eq!(v(Value::Bool(false)), "false");
        assert_eq!(v(Value::Nil), "null");
    }

    #[test]
    fn bucket_bounds() {
        assert_eq!(bounds(0), ("null".into(), "0".into()));
        assert_eq!(bounds(1), ("1".into(), "1".into()));
        assert_eq!(bounds(2), ("2".into(), "3".into()));
        assert_eq!(bounds(11), ("1024".into(), "2047".into()));
        assert_eq!(
            bounds(63),
            ("4611686018427387904".into(), "9223372036854775807".into())
        );
        // Past the last bucket nothing overflows.
        assert_eq!(bounds(64).1, "9223372036854775807");
    }

    #[test]
    fn empty_pow2() {
        let mut out = Vec::new();
        pow2("t", &Value::Nil, &[0; 64], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"pow2\",\"table\":\"t\",\"key\":null,\"buckets\":[]}\n"
        );
    }
}
