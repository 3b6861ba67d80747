//! `print_hist`: a table's values as a bar chart, in ktap's layout.
//!
//! The layout is ktap's, byte for byte: the header is `"%31s%s%s\n"` of `"value "`, the
//! distribution title and `" count"`; a row is the key right-aligned in 31 columns, ` |`, a bar
//! of 38 columns (`@` for the row's share of the sum of all values, then spaces), and the count
//! left-aligned in 7 columns; a string key longer than 32 bytes (a stack, typically, one frame a
//! line) is printed on its own lines, then the bar, then the count and a blank line; a `...`
//! row follows when rows were left out. Two things differ on purpose: ktap showed `n - 1` rows
//! and raised any `n` below 20 to 20, while this shows exactly `n`; and a long key that does not
//! end in a newline gets one, where ktap ran the bar into it.

use crate::Value;

/// Rows shown when the script does not say.
pub const DEFAULT_TOP: usize = 20;

/// Columns of the key, right-aligned.
const KEY_WIDTH: usize = 31;
/// Columns of the bar.
const BAR_WIDTH: usize = 38;
/// Longer string keys get lines of their own.
const LONG_KEY: usize = 32;

/// The whole `print_hist` output for `entries` (key and value), showing the `n` largest values.
/// Rows are sorted by value, largest first, and by key among equal values so the output does not
/// depend on the table's order. Keys that are not UTF-8 get replacement characters; the printer
/// writes their bytes.
///
/// ```
/// use ktap_fmt::{render_hist, Value};
///
/// let t = [(Value::Str(b"read".to_vec()), 30), (Value::Str(b"write".to_vec()), 10)];
/// assert_eq!(
///     render_hist(&t, 20),
///     concat!(
///         "                         value ------------- Distribution ------------- count\n",
///         "                           read |@@@@@@@@@@@@@@@@@@@@@@@@@@@@          30     \n",
///         "                          write |@@@@@@@@@                             10     \n",
///     )
/// );
/// assert!(render_hist(&t, 1).ends_with("                            ... |\n"));
/// ```
pub fn render_hist(entries: &[(Value, i64)], n: usize) -> String {
    let mut out = Vec::new();
    write_hist(entries, n, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`render_hist`], appending bytes to `out`.
pub(crate) fn write_hist(entries: &[(Value, i64)], n: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(
        format!(
            "{:>KEY_WIDTH$}------------- Distribution ------------- count\n",
            "value "
        )
        .as_bytes(),
    );
    let rows = sorted(entries);
    // Bars are shares of the sum of every value, shown or not, as in ktap. i128 cannot overflow
    // for any number of i64 values a table can hold.
    let sum: i128 = entries.iter().map(|e| i128::from(e.1)).sum();
    for (key, count) in rows.iter().take(n) {
        let bar = bar(*count, sum);
        let text = key.text();
        if matches!(key, Value::Str(_)) && text.len() > LONG_KEY {
            out.extend_from_slice(&text);
            if !text.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(bar.as_bytes());
            out.extend_from_slice(format!("\n{count}\n\n").as_bytes());
        } else {
            out.resize(out.len() + KEY_WIDTH.saturating_sub(text.len()), b' ');
            out.extend_from_slice(&text);
            out.extend_from_slice(format!(" |{bar}{count:<7}\n").as_bytes());
        }
    }
    if entries.len() > n {
        out.extend_from_slice(format!("{:>KEY_WIDTH$} |\n", "...").as_bytes());
    }
}

/// The rows in `print_hist`'s order: by value, largest first, then by key. Text and JSON
/// output both show the first `n` of them.
pub(crate) fn sorted(entries: &[(Value, i64)]) -> Vec<&(Value, i64)> {
    let mut rows: Vec<&(Value, i64)> = entries.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// `count`'s share of `sum` in `@`, truncated as C's integer division does, padded with spaces
/// to the full width. Counts at or below zero, and any count when the sum is not positive, draw
/// no `@`; ktap divided by zero there.
fn bar(count: i64, sum: i128) -> String {
    let at = if sum > 0 {
        (i128::from(count) * BAR_WIDTH as i128 / sum).clamp(0, BAR_WIDTH as i128) as usize
    } else {
        0
    };
    format!("{}{}", "@".repeat(at), " ".repeat(BAR_WIDTH - at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "                         value ------------- Distribution ------------- count\n";

    fn s(k: &str, v: i64) -> (Value, i64) {
        (Value::Str(k.as_bytes().to_vec()), v)
    }

    /// A row built by hand, as ktap's `"%31s |%s%-7d\n"` would print it.
    fn row(key: &str, at: usize, count: i64) -> String {
        format!(
            "{key:>31} |{}{}{count:<7}\n",
            "@".repeat(at),
            " ".repeat(38 - at)
        )
    }

    #[test]
    fn header_matches_ktap() {
        assert_eq!(render_hist(&[], 20), HEADER);
        assert_eq!(HEADER.len(), 78);
        assert_eq!(HEADER.find("value"), Some(25));
    }

    #[test]
    fn ktap_sample_rows() {
        // The first rows of ktap's samples/syscalls/syscalls_count.kp, scaled by our own sum.
        let e = vec![s("sys_enter_rt_sigprocmask", 326), s("sys_enter_read", 287)];
        let out = render_hist(&e, 20);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            "       sys_enter_rt_sigprocmask |@@@@@@@@@@@@@@@@@@@@                  326    "
        );
        assert_eq!(lines[1].len(), 31 + 2 + 38 + 7);
        assert_eq!(
            lines[2],
            row("sys_enter_read", 287 * 38 / 613, 287).trim_end_matches('\n')
        );
    }

    #[test]
    fn one_entry_fills_the_bar() {
        let out = render_hist(&[s("bash", 5)], 20);
        assert_eq!(out, format!("{HEADER}{}", row("bash", 38, 5)));
        assert_eq!(
            out.lines().nth(1).unwrap(),
            "                           bash |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@5      "
        );
    }

    #[test]
    fn zero_counts_and_zero_sum() {
        let out = render_hist(&[s("a", 0), s("b", 0)], 20);
        assert_eq!(out, format!("{HEADER}{}{}", row("a", 0, 0), row("b", 0, 0)));
        let out = render_hist(&[s("a", 3), s("b", 0)], 20);
        assert_eq!(
            out,
            format!("{HEADER}{}{}", row("a", 38, 3), row("b", 0, 0))
        );
        // Negative values draw nothing and never overflow the bar.
        let out = render_hist(&[s("a", 5), s("b", -4)], 20);
        assert_eq!(
            out,
            format!("{HEADER}{}{}", row("a", 38, 5), row("b", 0, -4))
        );
    }

    #[test]
    fn number_keys_and_ties() {
        let e = vec![
            (Value::Int(3), 1),
            (Value::Int(-7), 2),
            (Value::Int(1), 1),
            (Value::Int(2), 1),
        ];
        let out = render_hist(&e, 20);
        let expect = format!(
            "{HEADER}{}{}{}{}",
            row("-7", 15, 2),
            row("1", 7, 1),
            row("2", 7, 1),
            row("3", 7, 1)
        );
        assert_eq!(out, expect);
        assert_eq!(
            render_hist(&[(Value::Bool(true), 1)], 20),
            format!("{HEADER}{}", row("true", 38, 1))
        );
    }

    #[test]
    fn top_n_and_the_ellipsis_row() {
        let e: Vec<(Value, i64)> = (1..=25).map(|i| s(&format!("k{i:02}"), i)).collect();
        let sum = 25 * 26 / 2;
        let dots = format!("{:>31} |\n", "...");
        assert_eq!(dots, "                            ... |\n");
        let mut expect = HEADER.to_string();
        for i in (6..=25).rev() {
            expect += &row(&format!("k{i:02}"), (i * 38 / sum) as usize, i);
        }
        expect += &dots;
        assert_eq!(render_hist(&e, 20), expect);
        assert_eq!(render_hist(&e, DEFAULT_TOP), expect);

        let mut expect = HEADER.to_string();
        for i in (21..=25).rev() {
            expect += &row(&format!("k{i:02}"), (i * 38 / sum) as usize, i);
        }
        expect += &dots;
        assert_eq!(render_hist(&e, 5), expect);

        // Exactly n entries: all shown, no ellipsis.
        assert_eq!(render_hist(&e[..5], 5).lines().count(), 6);
        assert!(!render_hist(&e[..5], 5).contains("..."));
        // n = 0 shows no row, only that some were left out.
        assert_eq!(render_hist(&e, 0), format!("{HEADER}{dots}"));
    }

    #[test]
    fn long_keys() {
        // 32 bytes still fit the row (and push it one column right, as %31s does).
        let k32 = "a".repeat(32);
        assert_eq!(
            render_hist(&[s(&k32, 1)], 20),
            format!("{HEADER}{k32} |{}1      \n", "@".repeat(38))
        );
        // A stack: its own lines, then the bar, the count and a blank line.
        let stack = "vfs_read+0x10/0x190\nksys_read+0x65/0xe0\ndo_syscall_64+0x3b/0x90\n";
        let out = render_hist(&[s(stack, 4), s("short", 4)], 20);
        let bar = "@".repeat(19) + &" ".repeat(19);
        assert_eq!(
            out,
            format!("{HEADER}{}{stack}{bar}\n4\n\n", row("short", 19, 4))
        );
        // A long key without a final newline gets one.
        let k40 = "b".repeat(40);
        assert_eq!(
            render_hist(&[s(&k40, 2)], 20),
            format!("{HEADER}{k40}\n{}\n2\n\n", "@".repeat(38))
        );
    }

    #[test]
    fn key_text_stops_at_nul() {
        let e = vec![(Value::Str(b"cat\0\0\0\0\0".to_vec()), 1)];
        assert_eq!(
            render_hist(&e, 20),
            format!("{HEADER}{}", row("cat", 38, 1))
        );
    }
}

/// A power-of-two histogram (`hist()`): one row per bucket from the lowest to the highest
/// that counted anything, labelled by the bucket's smallest value (bucket 0 holds values ≤ 0),
/// in print_hist's layout.
pub(crate) fn write_pow2(buckets: &[i64], out: &mut Vec<u8>) {
    out.extend_from_slice(
        format!(
            "{:>KEY_WIDTH$}------------- Distribution ------------- count\n",
            "value "
        )
        .as_bytes(),
    );
    let first = buckets.iter().position(|&c| c != 0);
    let last = buckets.iter().rposition(|&c| c != 0);
    let (Some(first), Some(last)) = (first, last) else {
        return;
    };
    let sum: i128 = buckets.iter().map(|&c| i128::from(c)).sum();
    for (i, &count) in buckets.iter().enumerate().take(last + 1).skip(first) {
        let label = if i == 0 {
            "<= 0".to_string()
        } else {
            (1u64 << (i - 1)).to_string()
        };
        out.resize(out.len() + KEY_WIDTH.saturating_sub(label.len()), b' ');
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(format!(" |{}{count:<7}\n", bar(count, sum)).as_bytes());
    }
}

#[cfg(test)]
mod pow2_tests {
    use super::*;

    #[test]
    fn rows_span_the_counted_buckets() {
        let mut b = vec![0i64; 64];
        b[1] = 2; // the value 1
        b[3] = 2; // values 4..7
        let mut out = Vec::new();
        write_pow2(&b, &mut out);
        let text = String::from_utf8(out).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(
            rows[0].trim_start().starts_with("1 |@@@@@@@@@@@@@@@@@@@"),
            "{text}"
        );
        assert!(rows[1].trim_start().starts_with("2 |"), "{text}");
        assert!(rows[2].trim_start().starts_with("4 |@"), "{text}");
    }
}
