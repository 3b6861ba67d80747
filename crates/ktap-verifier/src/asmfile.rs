//! Assembly files: a program in the kernel's verifier-log syntax (see [`ktap_bpf::asm`]), one
//! instruction per line, with what the instructions cannot say in comment directives:
//!
//! ```text
//! ; type: tracepoint              (or perf_event, socket_filter)
//! ; map 0: hash key=8 value=16 entries=1024
//! ; map 1: perf_event_array
//! r1 = map[0] ll
//! ```
//!
//! Map kinds are `hash`, `array`, `percpu_hash`, `percpu_array` and `perf_event_array`;
//! `entries` defaults to 1024, and a perf event array's key and value are 4 bytes. Maps are
//! numbered from 0 in order. Tests add `; expect: accept` or `; error: TEXT`, which are kept
//! with the other directives this module does not interpret.

use crate::ProgType;
use ktap_bpf::asm;
use ktap_bpf::insn::Insn;
use ktap_bpf::{MapDef, MapKind, MapRole, Span, Target, ValueType};
use std::fmt;

/// An assembled file.
#[derive(Clone, Debug)]
pub struct AsmProgram {
    /// From `; type:`, if the file says.
    pub prog_type: Option<ProgType>,
    pub maps: Vec<MapDef>,
    pub insns: Vec<Insn>,
    /// The 1-based line each instruction slot came from.
    pub lines: Vec<usize>,
    /// Every other `; key: value` directive, in order.
    pub directives: Vec<(String, String)>,
}

/// Where and why a file could not be read; `line` and `col` count from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsmFileError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for AsmFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// Reads an assembly file; a perf-event program's context is that of `target`.
pub fn parse(text: &str, target: &Target) -> Result<AsmProgram, AsmFileError> {
    let mut p = AsmProgram {
        prog_type: None,
        maps: Vec::new(),
        insns: Vec::new(),
        lines: Vec::new(),
        directives: Vec::new(),
    };
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some((col, key, value)) = directive(line) {
            let err = |message: String| AsmFileError {
                line: number,
                col,
                message,
            };
            if key == "type" {
                if p.prog_type.is_some() {
                    return Err(err("a second `; type:` directive".into()));
                }
                let t = ProgType::by_name(value, target).ok_or_else(|| {
                    err(format!(
                        "unknown program type `{value}`; expected one of {}",
                        ProgType::NAMES.join(", ")
                    ))
                })?;
                p.prog_type = Some(t);
            } else if let Some(index) = key.strip_prefix("map ") {
                let expected = p.maps.len();
                if index.trim().parse::<usize>().ok() != Some(expected) {
                    return Err(err(format!(
                        "maps are numbered in order from 0: expected `; map {expected}:`"
                    )));
                }
                p.maps.push(map_def(expected, value).map_err(err)?);
            } else {
                p.directives.push((key.to_string(), value.to_string()));
            }
            continue;
        }
        let insns = asm::assemble(line).map_err(|e| AsmFileError {
            line: number,
            col: e.col,
            message: e.message,
        })?;
        p.lines.extend(std::iter::repeat_n(number, insns.len()));
        p.insns.extend(insns);
    }
    Ok(p)
}

/// `; key: value` where key is one word or `map N`; the column is the key's.
fn directive(line: &str) -> Option<(usize, &str, &str)> {
    let rest = line.trim_start().strip_prefix(';')?;
    let (key, value) = rest.split_once(':')?;
    let key_trim = key.trim();
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let is_key = word(key_trim)
        || key_trim
            .strip_prefix("map ")
            .is_some_and(|n| n.trim().chars().all(|c| c.is_ascii_digit()));
    if !is_key || key_trim.contains("  ") {
        return None;
    }
    let col = line.len() - line.trim_start().len() + 2 + (key.len() - key.trim_start().len());
    Some((col, key_trim, value.trim()))
}

fn map_def(index: usize, spec: &str) -> Result<MapDef, String> {
    let mut words = spec.split_whitespace();
    let kind_name = words.next().unwrap_or("");
    let kind = match kind_name {
        "hash" => MapKind::Hash,
        "array" => MapKind::Array,
        "percpu_hash" => MapKind::PercpuHash,
        "percpu_array" => MapKind::PercpuArray,
        "perf_event_array" => MapKind::PerfEventArray,
        other => {
            return Err(format!(
                "unknown map kind `{other}`; expected hash, array, percpu_hash, percpu_array or perf_event_array"
            ))
        }
    };
    let perf = kind == MapKind::PerfEventArray;
    let (mut key, mut value, mut entries) =
        (if perf { 4 } else { 8 }, if perf { 4 } else { 8 }, 1024);
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("expected key=N, value=N or entries=N, found `{w}`"))?;
        let n: u32 = v
            .parse()
            .ok()
            .filter(|&n| n > 0 && n <= 1 << 20)
            .ok_or_else(|| format!("`{w}`: expected a number from 1 to 1048576"))?;
        match k {
            "key" => key = n,
            "value" => value = n,
            "entries" => entries = n,
            _ => {
                return Err(format!(
                    "unknown map property `{k}`; expected key, value or entries"
                ))
            }
        }
    }
    let ty = |n: u32| {
        if n == 8 {
            ValueType::Int
        } else {
            ValueType::Str(n)
        }
    };
    Ok(MapDef {
        name: format!("map{index}"),
        kind,
        role: if perf {
            MapRole::Output
        } else {
            MapRole::Table
        },
        key: ty(key),
        value: ty(value),
        key_size: key,
        value_size: value,
        max_entries: entries,
        span: Span::default(),
        init: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_maps_and_lines() {
        let text = "; type: perf_event\n; map 0: array key=4 value=16\n\n; a comment: not a directive really\nr1 = map[0] ll\nr0 = 0 ; zero\nexit\n; expect: accept\n";
        let p = parse(text, &Target::host()).unwrap();
        assert!(matches!(p.prog_type, Some(ProgType::PerfEvent { .. })));
        assert_eq!(p.maps[0].value_size, 16);
        assert_eq!(p.lines, vec![5, 5, 6, 7]);
        assert_eq!(
            p.directives,
            vec![("expect".to_string(), "accept".to_string())]
        );
    }

    #[test]
    fn errors_are_located() {
        let e = parse("; type: xdp\n", &Target::host()).unwrap_err();
        assert_eq!((e.line, e.col), (1, 3));
        let e = parse("; map 1: hash\n", &Target::host()).unwrap_err();
        assert!(e.message.contains("expected `; map 0:`"));
        let e = parse("r0 = 0\nr0 +== 1\n", &Target::host()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("; map 0: hash key=0\n", &Target::host()).unwrap_err();
        assert!(e.message.contains("from 1"));
    }
}
