//! `-f json`: golden JSON lines for each kind of record, in both byte orders, and text mode
//! left as it was.

use std::collections::HashMap;

use ktap_bpf::{
    agg, Action, Endian, Field, Format, MapDef, MapKind, MapRole, Program, Source, Span, Target,
    ValueType, RECORD_HEADER,
};
use ktap_fmt::{MapSource, Mode, NoSymbols, Outcome, Printer};

/// One map's entries: key and value bytes.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Default)]
struct Maps(HashMap<u32, Entries>);

impl MapSource for Maps {
    fn entries(&mut self, map: u32) -> Entries {
        self.0.get(&map).cloned().unwrap_or_default()
    }
}

fn map(name: &str, role: MapRole, key: ValueType, value: ValueType, value_size: u32) -> MapDef {
    MapDef {
        name: name.into(),
        kind: MapKind::Hash,
        role,
        key,
        value,
        key_size: key.size(),
        value_size,
        max_entries: 2048,
        span: Span::default(),
        init: Vec::new(),
    }
}

fn format(action: Action, types: &[ValueType]) -> Format {
    let mut offset = RECORD_HEADER;
    let fields = types
        .iter()
        .map(|&ty| {
            let f = Field { offset, ty };
            offset += ty.size();
            f
        })
        .collect();
    Format {
        action,
        fields,
        size: offset,
        span: Span::default(),
    }
}

fn program(endian: Endian, formats: Vec<Format>) -> Program {
    Program {
        target: Target {
            endian,
            ..Target::by_name("x86_64").unwrap()
        },
        source: Source::default(),
        maps: vec![
            map(
                "counts",
                MapRole::Table,
                ValueType::Str(16),
                ValueType::Int,
                8,
            ),
            map(
                "lat",
                MapRole::Aggregation,
                ValueType::Str(16),
                ValueType::Int,
                agg::value_size(true),
            ),
        ],
        formats,
        probes: Vec::new(),
        user: Vec::new(),
        events: Vec::new(),
    }
}

fn word(n: i64, endian: Endian) -> [u8; 8] {
    match endian {
        Endian::Little => n.to_le_bytes(),
        Endian::Big => n.to_be_bytes(),
    }
}

fn record(endian: Endian, id: u64, parts: &[&[u8]]) -> Vec<u8> {
    let mut r = word(id as i64, endian).to_vec();
    for p in parts {
        r.extend_from_slice(p);
    }
    r
}

fn str16(s: &[u8]) -> Vec<u8> {
    let mut b = s.to_vec();
    b.resize(16, 0);
    b
}

/// The output of one record in `mode`.
fn run(mode: Mode, prog: &Program, rec: &[u8], maps: &mut Maps) -> (Outcome, String) {
    let mut printer = Printer::new(NoSymbols);
    printer.set_mode(mode);
    let mut out = Vec::new();
    let outcome = printer.handle(rec, prog, maps, &mut out).unwrap();
    (outcome, String::from_utf8(out).unwrap())
}

const BOTH: [Endian; 2] = [Endian::Little, Endian::Big];

#[test]
fn print_values() {
    for e in BOTH {
        let types = [
            ValueType::Int,
            ValueType::Str(16),
            ValueType::Nil,
            ValueType::Bool,
            ValueType::Bool,
        ];
        let prog = program(e, vec![format(Action::Print, &types)]);
        let rec = record(
            e,
            0,
            &[
                &word(-5, e),
                &str16(b"a\"b\n\x01\xff"),
                &word(0, e),
                &word(1, e),
                &word(0, e),
            ],
        );
        let (outcome, line) = run(Mode::Json, &prog, &rec, &mut Maps::default());
        assert_eq!(outcome, Outcome::Continue);
        assert_eq!(
            line,
            "{\"type\":\"print\",\"values\":[-5,\"a\\\"b\\n\\u0001\u{fffd}\",null,true,false]}\n"
        );
        // Text mode is untouched: raw bytes, tabs, `nil`.
        let mut text = Vec::new();
        Printer::new(NoSymbols)
            .handle(&rec, &prog, &mut Maps::default(), &mut text)
            .unwrap();
        assert_eq!(text, b"-5\ta\"b\n\x01\xff\tnil\ttrue\tfalse\n");
    }
}

#[test]
fn print_of_nothing_and_of_a_tagged_value() {
    let e = Endian::Little;
    let prog = program(
        e,
        vec![
            format(Action::Print, &[]),
            format(Action::Print, &[ValueType::Any(24)]),
        ],
    );
    let (_, line) = run(Mode::Json, &prog, &record(e, 0, &[]), &mut Maps::default());
    assert_eq!(line, "{\"type\":\"print\",\"values\":[]}\n");
    let mut any = word(ktap_bpf::TAG_STR as i64, e).to_vec();
    any.extend_from_slice(&str16(b"sshd"));
    let (_, line) = run(
        Mode::Json,
        &prog,
        &record(e, 1, &[&any]),
        &mut Maps::default(),
    );
    assert_eq!(line, "{\"type\":\"print\",\"values\":[\"sshd\"]}\n");
}

#[test]
fn printf_text() {
    for e in BOTH {
        let prog = program(
            e,
            vec![format(
                Action::Printf("%s\t%5d|%x\n".into()),
                &[ValueType::Str(16), ValueType::Int, ValueType::Int],
            )],
        );
        let rec = record(e, 0, &[&str16(b"cat"), &word(42, e), &word(255, e)]);
        let (_, line) = run(Mode::Json, &prog, &rec, &mut Maps::default());
        assert_eq!(
            line,
            "{\"type\":\"printf\",\"text\":\"cat\\t   42|ff\\n\"}\n"
        );
    }
}

#[test]
fn print_hist_rows() {
    for e in BOTH {
        let prog = program(
            e,
            vec![
                format(Action::PrintHist { map: 0 }, &[]),
                format(Action::PrintHist { map: 0 }, &[ValueType::Int]),
            ],
        );
        let mut maps = Maps::default();
        maps.0.insert(
            0,
            vec![
                (str16(b"read"), word(30, e).to_vec()),
                (str16(b"write"), word(10, e).to_vec()),
                (str16(b"openat"), word(20, e).to_vec()),
            ],
        );
        let (_, line) = run(Mode::Json, &prog, &record(e, 0, &[]), &mut maps);
        assert_eq!(
            line,
            concat!(
                "{\"type\":\"hist\",\"table\":\"counts\",\"rows\":[",
                "{\"key\":\"read\",\"count\":30},",
                "{\"key\":\"openat\",\"count\":20},",
                "{\"key\":\"write\",\"count\":10}",
                "],\"omitted\":0}\n"
            )
        );
        let (_, line) = run(Mode::Json, &prog, &record(e, 1, &[&word(1, e)]), &mut maps);
        assert_eq!(
            line,
            "{\"type\":\"hist\",\"table\":\"counts\",\"rows\":[{\"key\":\"read\",\"count\":30}],\"omitted\":2}\n"
        );
        let (_, line) = run(Mode::Json, &prog, &record(e, 1, &[&word(-1, e)]), &mut maps);
        assert!(line.contains("\"rows\":[],\"omitted\":3"), "{line}");
        let (_, line) = run(Mode::Json, &prog, &record(e, 0, &[]), &mut Maps::default());
        assert_eq!(
            line,
            "{\"type\":\"hist\",\"table\":\"counts\",\"rows\":[],\"omitted\":0}\n"
        );
    }
}

#[test]
fn pow2_buckets() {
    for e in BOTH {
        let prog = program(
            e,
            vec![format(Action::Hist { map: 1 }, &[ValueType::Str(16)])],
        );
        let mut value = vec![0u8; agg::value_size(true) as usize];
        let mut put = |bucket: usize, n: i64| {
            let at = agg::HIST as usize + 8 * bucket;
            value[at..at + 8].copy_from_slice(&word(n, e));
        };
        put(0, 1); // a value <= 0
        put(2, 3); // values 2..3
        put(4, 5); // values 8..15
        let mut maps = Maps::default();
        maps.0.insert(1, vec![(str16(b"vfs_read"), value)]);
        let rec = record(e, 0, &[&str16(b"vfs_read")]);
        let (outcome, line) = run(Mode::Json, &prog, &rec, &mut maps);
        assert_eq!(outcome, Outcome::Continue);
        assert_eq!(
            line,
            concat!(
                "{\"type\":\"pow2\",\"table\":\"lat\",\"key\":\"vfs_read\",\"buckets\":[",
                "{\"low\":null,\"high\":0,\"count\":1},",
                "{\"low\":1,\"high\":1,\"count\":0},",
                "{\"low\":2,\"high\":3,\"count\":3},",
                "{\"low\":4,\"high\":7,\"count\":0},",
                "{\"low\":8,\"high\":15,\"count\":5}",
                "]}\n"
            )
        );
        // The text mode still draws the histogram.
        let (_, text) = run(Mode::Text, &prog, &rec, &mut maps);
        assert!(text.contains("<= 0 |"), "{text}");
    }
}

#[test]
fn exit_is_a_line_in_json_only() {
    for e in BOTH {
        let prog = program(
            e,
            vec![
                format(Action::Exit, &[]),
                format(Action::Exit, &[ValueType::Int]),
                format(Action::Clear { map: 0 }, &[]),
            ],
        );
        let mut maps = Maps::default();
        let (o, line) = run(Mode::Json, &prog, &record(e, 0, &[]), &mut maps);
        assert_eq!(
            (o, line.as_str()),
            (Outcome::Exit(0), "{\"type\":\"exit\",\"code\":0}\n")
        );
        let rec = record(e, 1, &[&word(-3, e)]);
        let (o, line) = run(Mode::Json, &prog, &rec, &mut maps);
        assert_eq!(
            (o, line.as_str()),
            (Outcome::Exit(-3), "{\"type\":\"exit\",\"code\":-3}\n")
        );
        assert_eq!(run(Mode::Text, &prog, &rec, &mut maps).1, "");
        // delete() prints nothing in either mode.
        let (o, line) = run(Mode::Json, &prog, &record(e, 2, &[]), &mut maps);
        assert_eq!((o, line.as_str()), (Outcome::Clear(0), ""));
    }
}

#[test]
fn a_printer_switches_modes() {
    let e = Endian::Little;
    let prog = program(e, vec![format(Action::Print, &[ValueType::Int])]);
    let rec = record(e, 0, &[&word(7, e)]);
    let mut printer = Printer::new(NoSymbols);
    let mut out = Vec::new();
    printer
        .handle(&rec, &prog, &mut Maps::default(), &mut out)
        .unwrap();
    printer.set_mode(Mode::Json);
    printer
        .handle(&rec, &prog, &mut Maps::default(), &mut out)
        .unwrap();
    printer.set_mode(Mode::Text);
    printer
        .handle(&rec, &prog, &mut Maps::default(), &mut out)
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "7\n{\"type\":\"print\",\"values\":[7]}\n7\n"
    );
}

/// Random records in JSON mode never panic, and whatever they print is one line of UTF-8 per
/// record with no raw control character in it.
#[test]
fn arbitrary_records_print_clean_lines() {
    let mut state = 11u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    for e in BOTH {
        let prog = program(
            e,
            vec![
                format(Action::Print, &[ValueType::Str(16), ValueType::Any(24)]),
                format(
                    Action::Printf("%s|%c|%d\n".into()),
                    &[ValueType::Str(16), ValueType::Int, ValueType::Int],
                ),
                format(Action::PrintHist { map: 0 }, &[ValueType::Int]),
                format(Action::Hist { map: 1 }, &[ValueType::Str(16)]),
                format(Action::Exit, &[ValueType::Int]),
            ],
        );
        let mut maps = Maps::default();
        maps.0
            .insert(0, vec![(vec![0xff, b'\n', 0x1b], vec![3; 8])]);
        maps.0.insert(1, vec![(vec![7; 16], vec![0x41; 544])]);
        let mut printer = Printer::new(NoSymbols);
        printer.set_mode(Mode::Json);
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut rec: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(id) = rec.get_mut(..8) {
                id.copy_from_slice(&word((next() % 5) as i64, e));
            }
            let mut out = Vec::new();
            if printer.handle(&rec, &prog, &mut maps, &mut out).is_err() {
                assert!(out.is_empty());
                continue;
            }
            let text = String::from_utf8(out).unwrap();
            assert!(text.ends_with('\n'), "{text:?}");
            let line = &text[..text.len() - 1];
            assert!(
                line.starts_with("{\"type\":\"") && line.ends_with('}'),
                "{text:?}"
            );
            assert!(!line.chars().any(|c| c.is_control()), "{text:?}");
        }
    }
}
