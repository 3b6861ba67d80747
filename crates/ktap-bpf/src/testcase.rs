//! The conformance test-case format that the VM's and the verifier's tests share: one program in
//! the kernel's verifier-log syntax, the bytes of its context, and what running it must give.
//!
//! A file is a description (any lines before the first section) followed by sections, each
//! opened by a line `-- NAME`:
//!
//! ```text
//! Signed division rounds towards zero.
//! -- asm
//! r0 = -7
//! r0 s/= 2
//! exit
//! -- mem
//! 01 02 03 04
//! -- result
//! 0xfffffffffffffffd
//! ```
//!
//! - `-- asm` (required): the program, assembled with [`crate::asm::assemble`].
//! - `-- mem` (optional): the context `r1` points at, as two-digit hex bytes separated by
//!   whitespace; `#` starts a comment to the end of the line. Without it the context is empty.
//! - `-- result`: the `r0` the program exits with, decimal (a leading `-` means two's
//!   complement) or `0x` hex; or `-- error`: a substring of the message the program is refused
//!   or stopped with. Exactly one of the two.
//!
//! Everything here is pure; the runners read the files.

use std::fmt;

use crate::asm::assemble;
use crate::insn::Insn;

/// What the program must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exit with this `r0`.
    Result(u64),
    /// Be refused or stopped with a message containing this text.
    Error(String),
}

/// One parsed test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
    /// The lines before the first section, trimmed.
    pub description: String,
    /// The text of the `-- asm` section.
    pub asm: String,
    /// The 1-based line of the file where the asm text starts, so assembly errors point into it.
    pub asm_line: usize,
    /// The context bytes.
    pub mem: Vec<u8>,
    pub expect: Expect,
}

/// A malformed test case: the 1-based line of the file and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for CaseError {}

impl TestCase {
    /// The program, assembled; an error names the line of the file.
    pub fn insns(&self) -> Result<Vec<Insn>, CaseError> {
        assemble(&self.asm).map_err(|e| CaseError {
            line: self.asm_line + e.line - 1,
            message: format!("column {}: {}", e.col, e.message),
        })
    }
}

fn err(line: usize, message: impl Into<String>) -> CaseError {
    CaseError {
        line,
        message: message.into(),
    }
}

/// Parses the text of one test-case file.
pub fn parse(text: &str) -> Result<TestCase, CaseError> {
    // (name, line of the header, body lines)
    let mut sections: Vec<(&str, usize, Vec<&str>)> = Vec::new();
    let mut description = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if let Some(name) = line.strip_prefix("--") {
            let name = name.trim();
            if !matches!(name, "asm" | "mem" | "result" | "error") {
                return Err(err(
                    number,
                    format!("unknown section `-- {name}`; expected asm, mem, result or error"),
                ));
            }
            if sections.iter().any(|s| s.0 == name) {
                return Err(err(number, format!("a second `-- {name}` section")));
            }
            sections.push((name, number, Vec::new()));
        } else if let Some(last) = sections.last_mut() {
            last.2.push(line);
        } else {
            description.push(line);
        }
    }
    let find = |name: &str| sections.iter().find(|s| s.0 == name);
    let (_, asm_header, asm_lines) = find("asm").ok_or_else(|| err(1, "no `-- asm` section"))?;
    let mem = match find("mem") {
        Some((_, header, lines)) => parse_mem(*header, lines)?,
        None => Vec::new(),
    };
    let expect = match (find("result"), find("error")) {
        (Some(_), Some((_, header, _))) => {
            return Err(err(
                *header,
                "both `-- result` and `-- error`; a case expects one of them",
            ))
        }
        (Some((_, header, lines)), None) => Expect::Result(parse_result(*header, lines)?),
        (None, Some((_, header, lines))) => {
            let text = lines
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            if text.is_empty() {
                return Err(err(*header, "the `-- error` section is empty"));
            }
            Expect::Error(text)
        }
        (None, None) => {
            return Err(err(
                text.lines().count().max(1),
                "no `-- result` or `-- error` section",
            ))
        }
    };
    let mut asm = asm_lines.join("\n");
    asm.push('\n');
    Ok(TestCase {
        description: description.join("\n").trim().to_string(),
        asm,
        asm_line: asm_header + 1,
        mem,
        expect,
    })
}

fn parse_mem(header: usize, lines: &[&str]) -> Result<Vec<u8>, CaseError> {
    let mut bytes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for word in line.split_whitespace() {
            let ok = word.len() == 2 && word.chars().all(|c| c.is_ascii_hexdigit());
            match u8::from_str_radix(word, 16) {
                Ok(b) if ok => bytes.push(b),
                _ => {
                    return Err(err(
                        header + 1 + i,
                        format!("`{word}` is not a byte; write two hex digits such as `0a`"),
                    ))
                }
            }
        }
    }
    Ok(bytes)
}

fn parse_result(header: usize, lines: &[&str]) -> Result<u64, CaseError> {
    let mut words = lines
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.split_whitespace().map(move |w| (header + 1 + i, w)));
    let Some((line, word)) = words.next() else {
        return Err(err(header, "the `-- result` section is empty"));
    };
    if let Some((extra_line, extra)) = words.next() {
        return Err(err(
            extra_line,
            format!("unexpected `{extra}` after the result"),
        ));
    }
    parse_u64(word).ok_or_else(|| {
        err(
            line,
            format!("`{word}` is not a 64-bit number (decimal, -decimal or 0x hex)"),
        )
    })
}

/// Decimal, negative decimal (two's complement) or `0x` hex.
fn parse_u64(word: &str) -> Option<u64> {
    if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    if let Some(neg) = word.strip_prefix('-') {
        let v: u64 = neg.parse().ok()?;
        return (v <= 1 << 63).then(|| v.wrapping_neg());
    }
    word.parse().ok()
}

/// The text of a case in the format [`parse`] reads (for tools that write new cases).
pub fn render(case: &TestCase) -> String {
    let mut s = String::new();
    if !case.description.is_empty() {
        s.push_str(&case.description);
        s.push('\n');
    }
    s.push_str("-- asm\n");
    s.push_str(&case.asm);
    if !case.asm.ends_with('\n') {
        s.push('\n');
    }
    if !case.mem.is_empty() {
        s.push_str("-- mem\n");
        for row in case.mem.chunks(16) {
            let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
            s.push_str(&hex.join(" "));
            s.push('\n');
        }
    }
    match &case.expect {
        Expect::Result(v) => s.push_str(&format!("-- result\n{v:#x}\n")),
        Expect::Error(e) => s.push_str(&format!("-- error\n{e}\n")),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{Insn, R0};

    #[test]
    fn parses_every_section() {
        let c =
            parse("Adds.\n-- asm\nr0 = 1\nr0 += 2\nexit\n-- mem\n01 ff # two\n0A\n-- result\n3\n")
                .unwrap();
        assert_eq!(c.description, "Adds.");
        assert_eq!(c.asm_line, 3);
        assert_eq!(c.mem, [1, 0xff, 0x0a]);
        assert_eq!(c.expect, Expect::Result(3));
        assert_eq!(c.insns().unwrap()[0], Insn::mov64_imm(R0, 1));
        assert_eq!(parse(&render(&c)).unwrap(), c);
    }

    #[test]
    fn results_in_every_notation() {
        let r = |t: &str| parse(&format!("-- asm\nexit\n-- result\n{t}\n")).map(|c| c.expect);
        assert_eq!(r("-1"), Ok(Expect::Result(u64::MAX)));
        assert_eq!(r("0xFF"), Ok(Expect::Result(255)));
        assert_eq!(r("-9223372036854775808"), Ok(Expect::Result(1 << 63)));
        assert!(r("-9223372036854775809").is_err());
        assert!(r("1 2").is_err());
        assert!(r("").is_err());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("-- asm\nr0 = 1\nbogus\nexit\n-- error\nx\n").unwrap();
        assert_eq!(e.expect, Expect::Error("x".into()));
        assert_eq!(e.insns().unwrap_err().line, 3);
        assert_eq!(
            parse("-- asm\nexit\n-- mem\n1\n-- result\n0")
                .unwrap_err()
                .line,
            4
        );
        assert_eq!(parse("-- asm\nexit\n-- wat\n").unwrap_err().line, 3);
        assert!(parse("-- asm\nexit\n").is_err());
        assert!(parse("-- result\n1\n").is_err());
        assert!(parse("-- asm\nexit\n-- result\n1\n-- error\nx\n").is_err());
        assert!(parse("-- asm\nexit\n-- asm\nexit\n-- result\n1\n").is_err());
        assert!(parse("-- asm\nexit\n-- error\n\n").is_err());
    }
}
