//! `printf::format` checked against the C library's `snprintf`, over every combination of flags
//! with a spread of widths, precisions and values.

use std::ffi::CString;

use ktap_fmt::printf::{format, parse};
use ktap_fmt::{NoSymbols, Value};

const FLAGS: [char; 5] = ['-', '+', ' ', '#', '0'];
const WIDTHS: [&str; 6] = ["", "1", "2", "5", "12", "25"];
const PRECISIONS: [&str; 7] = ["", ".", ".0", ".1", ".3", ".10", ".22"];

/// Every subset of the five flags, in a fixed order.
fn flag_sets() -> Vec<String> {
    (0..32u32)
        .map(|m| {
            FLAGS
                .iter()
                .enumerate()
                .filter(|(i, _)| m & (1 << i) != 0)
                .map(|(_, c)| *c)
                .collect()
        })
        .collect()
}

/// Specs (flags, width, precision) to try, without the conversion character.
fn specs(precisions: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for f in flag_sets() {
        for w in WIDTHS {
            for p in precisions {
                out.push(format!("%{f}{w}{p}"));
            }
        }
    }
    out
}

/// What the C library prints for `fmt`, which takes one `long long` argument.
fn c_int(fmt: &str, n: i64) -> String {
    let cfmt = CString::new(fmt).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: the buffer's length is passed, the format is NUL-terminated, and it has exactly
    // one conversion, whose `ll` modifier matches the `c_longlong` passed.
    let len = unsafe {
        libc::snprintf(
            buf.as_mut_ptr().cast(),
            buf.len(),
            cfmt.as_ptr(),
            n as libc::c_longlong,
        )
    };
    buf.truncate(usize::try_from(len).unwrap());
    String::from_utf8(buf).unwrap()
}

/// What the C library prints for `fmt`, which takes one string argument.
fn c_str(fmt: &str, s: &str) -> String {
    let cfmt = CString::new(fmt).unwrap();
    let arg = CString::new(s).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: as in `c_int`, with one `%s` conversion, which takes a C string.
    let len = unsafe {
        libc::snprintf(
            buf.as_mut_ptr().cast(),
            buf.len(),
            cfmt.as_ptr(),
            arg.as_ptr(),
        )
    };
    buf.truncate(usize::try_from(len).unwrap());
    String::from_utf8(buf).unwrap()
}

/// What the C library prints for `fmt`, which takes one `%c` (an `int`).
fn c_char(fmt: &str, c: u8) -> String {
    let cfmt = CString::new(fmt).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: as in `c_int`, with one `%c` conversion, which takes an `int`.
    let len = unsafe {
        libc::snprintf(
            buf.as_mut_ptr().cast(),
            buf.len(),
            cfmt.as_ptr(),
            libc::c_int::from(c),
        )
    };
    buf.truncate(usize::try_from(len).unwrap());
    String::from_utf8(buf).unwrap()
}

fn ours(fmt: &str, v: Value) -> String {
    format(&parse(fmt).unwrap(), &[v], &NoSymbols)
}

const NUMBERS: [i64; 14] = [
    0,
    1,
    -1,
    7,
    -7,
    42,
    255,
    -4096,
    123_456_789,
    1 << 40,
    -(1 << 40),
    i64::MAX,
    i64::MIN,
    i64::MIN + 1,
];

#[test]
fn integers_match_snprintf() {
    let mut checked = 0;
    for spec in specs(&PRECISIONS) {
        for conv in ["d", "i", "o", "u", "x", "X"] {
            let fmt = format!("[{spec}ll{conv}]");
            for n in NUMBERS {
                assert_eq!(ours(&fmt, Value::Int(n)), c_int(&fmt, n), "{fmt} of {n}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 32 * 6 * 7 * 6 * NUMBERS.len());
}

#[test]
fn integers_without_length_modifiers() {
    // Without `ll` the C call would read an `int`; ours ignores modifiers, so compare our
    // modifier-free form with C's `ll` form.
    for spec in specs(&["", ".4"]) {
        for conv in ["d", "u", "x"] {
            for n in [0, -3, 99, i64::MAX] {
                assert_eq!(
                    ours(&format!("{spec}{conv}"), Value::Int(n)),
                    c_int(&format!("{spec}ll{conv}"), n),
                    "{spec}{conv} of {n}"
                );
            }
        }
    }
}

#[test]
fn strings_match_snprintf() {
    // Flags other than `-` mean nothing for `%s` (glibc ignores them, `0` included).
    for spec in specs(&PRECISIONS) {
        let fmt = format!("<{spec}s>");
        for s in [
            "",
            "a",
            "ktap",
            "sys_enter_openat",
            "a string longer than twenty-five",
        ] {
            assert_eq!(
                ours(&fmt, Value::Str(s.as_bytes().to_vec())),
                c_str(&fmt, s),
                "{fmt} of {s:?}"
            );
        }
    }
}

#[test]
fn numbers_as_strings_match_snprintf() {
    // `%s` of a number prints its decimal text, so it must look like C's `%s` of that text.
    for spec in specs(&[".", ".2", ""]) {
        let fmt = format!("{spec}s");
        for n in [0, -15, 31337] {
            assert_eq!(
                ours(&fmt, Value::Int(n)),
                c_str(&fmt, &n.to_string()),
                "{fmt} of {n}"
            );
        }
    }
}

#[test]
fn chars_match_snprintf() {
    for spec in specs(&[""]) {
        let fmt = format!("({spec}c)");
        for c in *b"Az ~" {
            assert_eq!(
                ours(&fmt, Value::Int(c.into())),
                c_char(&fmt, c),
                "{fmt} of {c}"
            );
        }
    }
}

#[test]
fn literals_and_percent_match_snprintf() {
    let fmt = "100%% of %lld calls, %5.2llx%%";
    assert_eq!(
        format(
            &parse(fmt).unwrap(),
            &[Value::Int(3), Value::Int(10)],
            &NoSymbols
        ),
        {
            let cfmt = CString::new(fmt).unwrap();
            let mut buf = vec![0u8; 64];
            // SAFETY: two `ll` conversions, two `c_longlong` arguments, the buffer's length.
            let len = unsafe {
                libc::snprintf(
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    cfmt.as_ptr(),
                    3 as libc::c_longlong,
                    10 as libc::c_longlong,
                )
            };
            buf.truncate(usize::try_from(len).unwrap());
            String::from_utf8(buf).unwrap()
        }
    );
}
