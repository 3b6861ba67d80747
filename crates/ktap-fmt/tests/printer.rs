//! `Printer::handle` on whole records: each action, both byte orders, and bad records.

use std::collections::HashMap;

use ktap_bpf::{
    Action, Endian, Field, Format, MapDef, MapKind, MapRole, Program, Source, Span, Target,
    ValueType, RECORD_HEADER,
};
use ktap_fmt::{FmtError, MapSource, NoSymbols, Outcome, Printer, Symbolizer};

/// One map's entries: key and value bytes.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Maps held in memory, as the VM keeps them.
#[derive(Default)]
struct Maps(HashMap<u32, Entries>);

impl MapSource for Maps {
    fn entries(&mut self, map: u32) -> Entries {
        self.0.get(&map).cloned().unwrap_or_default()
    }
}

struct OneSymbol;

impl Symbolizer for OneSymbol {
    fn symbol(&self, addr: u64) -> Option<(String, u64)> {
        (0x1000..0x2000)
            .contains(&addr)
            .then(|| ("do_sys_openat2".to_string(), addr - 0x1000))
    }
}

fn target(endian: Endian) -> Target {
    Target {
        endian,
        ..Target::by_name("x86_64").unwrap()
    }
}

fn table(name: &str, key: ValueType, value: ValueType) -> MapDef {
    MapDef {
        name: name.into(),
        kind: MapKind::Hash,
        role: MapRole::Table,
        key,
        value,
        key_size: key.size(),
        value_size: value.size(),
        max_entries: 2048,
        span: Span::default(),
        init: Vec::new(),
    }
}

/// A format whose fields are laid out one after another after the header.
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
        target: target(endian),
        source: Source::default(),
        maps: vec![
            table("counts", ValueType::Str(16), ValueType::Int),
            table("names", ValueType::Int, ValueType::Str(16)),
        ],
        formats,
        probes: Vec::new(),
        user: Vec::new(),
        events: Vec::new(),
    }
}

fn u64_bytes(n: u64, endian: Endian) -> [u8; 8] {
    match endian {
        Endian::Little => n.to_le_bytes(),
        Endian::Big => n.to_be_bytes(),
    }
}

/// Builds a record: the format id, then each part's bytes.
fn record(endian: Endian, id: u64, parts: &[&[u8]]) -> Vec<u8> {
    let mut r = u64_bytes(id, endian).to_vec();
    for p in parts {
        r.extend_from_slice(p);
    }
    r
}

fn str16(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.resize(16, 0);
    b
}

fn run(prog: &Program, rec: &[u8], maps: &mut Maps) -> (Result<Outcome, FmtError>, String) {
    let mut out = Vec::new();
    let r = Printer::new(OneSymbol).handle(rec, prog, maps, &mut out);
    (r, String::from_utf8(out).unwrap())
}

const BOTH: [Endian; 2] = [Endian::Little, Endian::Big];

#[test]
fn print_of_each_type() {
    for e in BOTH {
        let types = [
            ValueType::Int,
            ValueType::Str(16),
            ValueType::Bool,
            ValueType::Bool,
            ValueType::Nil,
        ];
        let prog = program(e, vec![format(Action::Print, &types)]);
        let rec = record(
            e,
            0,
            &[
                &u64_bytes(-5i64 as u64, e),
                &str16("bash"),
                &u64_bytes(1, e),
                &u64_bytes(0, e),
                &u64_bytes(77, e),
            ],
        );
        let (r, text) = run(&prog, &rec, &mut Maps::default());
        assert_eq!(r.unwrap(), Outcome::Continue);
        assert_eq!(text, "-5\tbash\ttrue\tfalse\tnil\n");
    }
}

#[test]
fn print_without_values_is_an_empty_line() {
    let prog = program(Endian::Little, vec![format(Action::Print, &[])]);
    let (r, text) = run(&prog, &record(Endian::Little, 0, &[]), &mut Maps::default());
    assert_eq!(r.unwrap(), Outcome::Continue);
    assert_eq!(text, "\n");
}

#[test]
fn printf_records() {
    for e in BOTH {
        let prog = program(
            e,
            vec![
                format(Action::Print, &[]),
                format(
                    Action::Printf("%s opened %-6d|%#x at %p\n".into()),
                    &[
                        ValueType::Str(16),
                        ValueType::Int,
                        ValueType::Int,
                        ValueType::Int,
                    ],
                ),
            ],
        );
        let rec = record(
            e,
            1,
            &[
                &str16("cat"),
                &u64_bytes(42, e),
                &u64_bytes(255, e),
                &u64_bytes(0x1010, e),
            ],
        );
        let mut printer = Printer::new(OneSymbol);
        let mut out = Vec::new();
        for _ in 0..2 {
            let r = printer.handle(&rec, &prog, &mut Maps::default(), &mut out);
            assert_eq!(r.unwrap(), Outcome::Continue);
        }
        let line = "cat opened 42    |0xff at do_sys_openat2+0x10\n";
        assert_eq!(String::from_utf8(out).unwrap(), line.repeat(2));
    }
}

#[test]
fn a_printer_follows_a_changed_program() {
    let e = Endian::Little;
    let mut printer = Printer::new(NoSymbols);
    let mut out = Vec::new();
    for fmt in ["a=%d\n", "b=%x\n"] {
        let prog = program(
            e,
            vec![format(Action::Printf(fmt.into()), &[ValueType::Int])],
        );
        let rec = record(e, 0, &[&u64_bytes(26, e)]);
        printer
            .handle(&rec, &prog, &mut Maps::default(), &mut out)
            .unwrap();
    }
    assert_eq!(String::from_utf8(out).unwrap(), "a=26\nb=1a\n");
}

#[test]
fn print_hist_reads_the_table() {
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
                (str16("read"), u64_bytes(30, e).to_vec()),
                (str16("write"), u64_bytes(10, e).to_vec()),
                (str16("openat"), u64_bytes(20, e).to_vec()),
            ],
        );
        let header =
            "                         value ------------- Distribution ------------- count\n";
        let rows = [
            "                           read |@@@@@@@@@@@@@@@@@@@                   30     \n",
            "                         openat |@@@@@@@@@@@@                          20     \n",
            "                          write |@@@@@@                                10     \n",
        ];
        let (r, text) = run(&prog, &record(e, 0, &[]), &mut maps);
        assert_eq!(r.unwrap(), Outcome::Continue);
        assert_eq!(text, format!("{header}{}", rows.concat()));

        let rec = record(e, 1, &[&u64_bytes(2, e)]);
        let (r, text) = run(&prog, &rec, &mut maps);
        assert_eq!(r.unwrap(), Outcome::Continue);
        let dots = "                            ... |\n";
        assert_eq!(text, format!("{header}{}{}{dots}", rows[0], rows[1]));
    }
}

#[test]
fn print_hist_of_an_empty_table_is_its_header() {
    let prog = program(Endian::Big, vec![format(Action::PrintHist { map: 0 }, &[])]);
    let (r, text) = run(&prog, &record(Endian::Big, 0, &[]), &mut Maps::default());
    assert_eq!(r.unwrap(), Outcome::Continue);
    assert_eq!(
        text,
        "                         value ------------- Distribution ------------- count\n"
    );
}

#[test]
fn print_hist_needs_number_values() {
    let prog = program(
        Endian::Little,
        vec![format(Action::PrintHist { map: 1 }, &[])],
    );
    let (r, text) = run(&prog, &record(Endian::Little, 0, &[]), &mut Maps::default());
    let err = r.unwrap_err();
    assert!(matches!(err, FmtError::NotNumbers { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "output format 0: print_hist(names) needs a table whose values are numbers"
    );
    assert_eq!(text, "");
}

#[test]
fn exit_and_clear() {
    for e in BOTH {
        let prog = program(
            e,
            vec![
                format(Action::Exit, &[]),
                format(Action::Exit, &[ValueType::Int]),
                format(Action::Clear { map: 1 }, &[]),
            ],
        );
        let mut maps = Maps::default();
        assert_eq!(
            run(&prog, &record(e, 0, &[]), &mut maps).0.unwrap(),
            Outcome::Exit(0)
        );
        let rec = record(e, 1, &[&u64_bytes(-3i64 as u64, e)]);
        assert_eq!(run(&prog, &rec, &mut maps).0.unwrap(), Outcome::Exit(-3));
        let (r, text) = run(&prog, &record(e, 2, &[]), &mut maps);
        assert_eq!(r.unwrap(), Outcome::Clear(1));
        assert_eq!(text, "");
    }
}

#[test]
fn the_record_is_read_in_the_targets_byte_order() {
    let prog = program(
        Endian::Big,
        vec![
            format(Action::Print, &[]),
            format(Action::Print, &[ValueType::Int]),
        ],
    );
    let rec = record(Endian::Big, 1, &[&u64_bytes(7, Endian::Big)]);
    assert_eq!(run(&prog, &rec, &mut Maps::default()).1, "7\n");
    // Format 1 written little-endian reads as 2^56 on a big-endian target.
    let rec = record(Endian::Little, 1, &[&u64_bytes(7, Endian::Little)]);
    let err = run(&prog, &rec, &mut Maps::default()).0.unwrap_err();
    assert_eq!(
        err.to_string(),
        "output record names format 72057594037927936, but the program has 2 formats"
    );
}

#[test]
fn truncated_records() {
    let e = Endian::Little;
    let prog = program(
        e,
        vec![format(Action::Print, &[ValueType::Int, ValueType::Str(16)])],
    );
    for len in 0..8 {
        let rec = vec![0u8; len];
        let err = run(&prog, &rec, &mut Maps::default()).0.unwrap_err();
        assert!(
            matches!(err, FmtError::NoHeader { len: l } if l == len),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("output record of {len} bytes is shorter than its 8-byte format id")
        );
    }
    let full = record(e, 0, &[&u64_bytes(1, e), &str16("x")]);
    for len in 8..full.len() {
        let (r, text) = run(&prog, &full[..len], &mut Maps::default());
        let err = r.unwrap_err();
        assert!(
            matches!(
                err,
                FmtError::Truncated {
                    format: 0,
                    need: 32,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(text, "");
    }
    let err = run(&prog, &full[..20], &mut Maps::default()).0.unwrap_err();
    assert_eq!(
        err.to_string(),
        "output record of format 0 is truncated: 20 bytes, 32 needed"
    );
    // Padding after the fields, as perf buffers add, is fine.
    let mut padded = full.clone();
    padded.extend_from_slice(&[0; 4]);
    assert_eq!(run(&prog, &padded, &mut Maps::default()).1, "1\tx\n");
}

#[test]
fn a_field_beyond_the_formats_size_is_truncation() {
    let e = Endian::Little;
    let mut f = format(Action::Print, &[ValueType::Int]);
    f.fields[0].offset = u32::MAX;
    let prog = program(e, vec![f]);
    let err = run(&prog, &record(e, 0, &[&[0; 8]]), &mut Maps::default())
        .0
        .unwrap_err();
    assert!(matches!(err, FmtError::Truncated { .. }), "{err:?}");
}

#[test]
fn unknown_formats_and_maps() {
    let e = Endian::Little;
    let prog = program(
        e,
        vec![
            format(Action::Clear { map: 9 }, &[]),
            format(Action::PrintHist { map: 2 }, &[]),
            format(Action::Printf("%d %y".into()), &[ValueType::Int]),
        ],
    );
    let mut maps = Maps::default();
    let err = run(&prog, &record(e, 3, &[]), &mut maps).0.unwrap_err();
    assert!(matches!(
        err,
        FmtError::UnknownFormat {
            format: 3,
            formats: 3
        }
    ));
    let err = run(&prog, &record(e, u64::MAX, &[]), &mut maps)
        .0
        .unwrap_err();
    assert!(matches!(err, FmtError::UnknownFormat { .. }));
    let err = run(&prog, &record(e, 0, &[]), &mut maps).0.unwrap_err();
    assert_eq!(
        err.to_string(),
        "output format 0 names map 9, but the program has 2 maps"
    );
    let err = run(&prog, &record(e, 1, &[]), &mut maps).0.unwrap_err();
    assert!(matches!(err, FmtError::UnknownMap { map: 2, .. }));
    let err = run(&prog, &record(e, 2, &[&[0; 8]]), &mut maps)
        .0
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "output format 2: bad printf format at byte 4: unknown conversion `%y` (expected one of c d i o u x X p s, or %%)"
    );
}

#[test]
fn write_errors_are_returned() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let e = Endian::Little;
    let prog = program(e, vec![format(Action::Print, &[])]);
    let err = Printer::new(NoSymbols)
        .handle(&record(e, 0, &[]), &prog, &mut Maps::default(), &mut Broken)
        .unwrap_err();
    assert!(matches!(&err, FmtError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe));
    assert!(err.to_string().starts_with("writing output: "));
}

/// A small deterministic generator, so the robustness tests need no dependency and never flake.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn arbitrary_records_never_panic() {
    let mut rng = Lcg(7);
    for e in BOTH {
        let mut hist = format(Action::PrintHist { map: 0 }, &[ValueType::Int]);
        hist.fields[0].offset = 3;
        let prog = program(
            e,
            vec![
                format(Action::Print, &[ValueType::Int, ValueType::Str(16)]),
                format(
                    Action::Printf("%s|%-5c|%#o|%p|%.3x\n".into()),
                    &[ValueType::Str(16), ValueType::Int, ValueType::Bool],
                ),
                hist,
                format(Action::Exit, &[ValueType::Str(16)]),
                format(Action::Clear { map: 1 }, &[]),
            ],
        );
        let mut maps = Maps::default();
        maps.0.insert(
            0,
            vec![
                (b"short".to_vec(), vec![1, 2]),
                (Vec::new(), Vec::new()),
                (vec![0xff; 40], vec![0xff; 8]),
            ],
        );
        let mut printer = Printer::new(OneSymbol);
        for _ in 0..20_000 {
            let len = (rng.next() % 48) as usize;
            let mut rec: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Most records name a real format, so the field decoding is exercised too.
            if let Some(id) = rec.get_mut(..8) {
                if !rng.next().is_multiple_of(8) {
                    id.copy_from_slice(&u64_bytes(rng.next() % 5, e));
                }
            }
            let mut out = Vec::new();
            // Any result is fine; reaching the next record is the test.
            let _ = printer.handle(&rec, &prog, &mut maps, &mut out);
        }
    }
}

#[test]
fn addresses_print_as_symbols_where_text_is_asked_for() {
    for e in BOTH {
        let prog = program(
            e,
            vec![
                format(Action::Print, &[ValueType::Addr, ValueType::Addr]),
                format(
                    Action::Printf("%s %p %x %d|%-20s|\n".into()),
                    &[ValueType::Addr; 5],
                ),
            ],
        );
        let rec = record(e, 0, &[&u64_bytes(0x1010, e), &u64_bytes(0x30, e)]);
        let (r, text) = run(&prog, &rec, &mut Maps::default());
        assert!(matches!(r, Ok(Outcome::Continue)));
        assert_eq!(text, "do_sys_openat2+0x10\t0x30\n");
        let a = u64_bytes(0x1001, e);
        let rec = record(e, 1, &[&a, &a, &a, &a, &a]);
        let (_, text) = run(&prog, &rec, &mut Maps::default());
        assert_eq!(
            text,
            "do_sys_openat2+0x1 do_sys_openat2+0x1 1001 4097|do_sys_openat2+0x1  |\n"
        );
    }
}

#[test]
fn address_keys_of_a_chart_are_symbols() {
    let e = Endian::Little;
    let mut prog = program(e, vec![format(Action::PrintHist { map: 2 }, &[])]);
    prog.maps
        .push(table("calls", ValueType::Addr, ValueType::Int));
    let mut maps = Maps::default();
    maps.0.insert(
        2,
        vec![(u64_bytes(0x1004, e).to_vec(), u64_bytes(3, e).to_vec())],
    );
    let (_, text) = run(&prog, &record(e, 0, &[]), &mut maps);
    assert!(text.contains("do_sys_openat2+0x4 |@"), "{text}");
}

#[test]
fn stamped_records_start_every_line_with_the_time() {
    let e = Endian::Little;
    let prog = program(
        e,
        vec![
            format(Action::Printf("a ".into()), &[ValueType::Time]),
            format(
                Action::Printf("b %d\nc\n".into()),
                &[ValueType::Time, ValueType::Int],
            ),
            format(Action::Print, &[ValueType::Time, ValueType::Int]),
            format(Action::Print, &[ValueType::Int]),
        ],
    );
    let mut p = Printer::new(NoSymbols);
    p.set_time_origin(1_000_000_000);
    let mut out = Vec::new();
    let t = 3_500_000_000u64 + 1_234_567;
    for rec in [
        record(e, 0, &[&u64_bytes(t, e)]),
        record(e, 1, &[&u64_bytes(t, e), &u64_bytes(7, e)]),
        record(e, 2, &[&u64_bytes(t + 1000, e), &u64_bytes(8, e)]),
        record(e, 3, &[&u64_bytes(9, e)]),
        // Before the origin (while probes are attached): negative.
        record(e, 2, &[&u64_bytes(5, e), &u64_bytes(10, e)]),
    ] {
        p.handle(&rec, &prog, &mut Maps::default(), &mut out)
            .unwrap();
    }
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "    2.501234: a b 7\n    2.501234: c\n    2.501235: 8\n9\n   -0.999999: 10\n"
    );
}

#[test]
fn stamped_json_records_have_a_time_member() {
    let e = Endian::Big;
    let prog = program(
        e,
        vec![
            format(Action::Print, &[ValueType::Time, ValueType::Int]),
            format(Action::Printf("x\n".into()), &[ValueType::Time]),
        ],
    );
    let mut p = Printer::new(NoSymbols);
    p.set_mode(ktap_fmt::Mode::Json);
    p.set_time_origin(0);
    let mut out = Vec::new();
    let t = u64_bytes(12_000_345_678, e);
    p.handle(
        &record(e, 0, &[&t, &u64_bytes(4, e)]),
        &prog,
        &mut Maps::default(),
        &mut out,
    )
    .unwrap();
    p.handle(&record(e, 1, &[&t]), &prog, &mut Maps::default(), &mut out)
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"type\":\"print\",\"time\":12.000345,\"values\":[4]}\n{\"type\":\"printf\",\"time\":12.000345,\"text\":\"x\\n\"}\n"
    );
}

/// `sched:sched_process_exec` as this project's fixtures captured it.
const EXEC_FORMAT: &str = "name: sched_process_exec
ID: 313
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;

print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pid
";

#[test]
fn argstr_renders_the_raw_record_after_the_fields() {
    for e in BOTH {
        let ev = ktap_bpf::kernel::parse_tp_format("sched", EXEC_FORMAT).unwrap();
        let mut prog = program(
            e,
            vec![format(
                Action::Printf("[%s] %d\n".into()),
                &[ValueType::Argstr, ValueType::Int],
            )],
        );
        prog.events = vec![ev.clone(), ev];
        let u32b = |n: u32| match e {
            Endian::Little => n.to_le_bytes(),
            Endian::Big => n.to_be_bytes(),
        };
        // The raw record: 8 zeroed bytes (where a BPF context has its pt_regs pointer), the
        // filename's __data_loc (length 8 << 16 | offset 20), pid, old_pid, the string.
        let mut raw = vec![0u8; 8];
        raw.extend_from_slice(&u32b(8 << 16 | 20));
        raw.extend_from_slice(&u32b(42));
        raw.extend_from_slice(&u32b(42));
        raw.extend_from_slice(b"/bin/ls\0");
        let word = 1u64 << 32 | raw.len() as u64;
        let mut rec = record(e, 0, &[&u64_bytes(word, e), &u64_bytes(5, e)]);
        rec.extend_from_slice(&raw);
        // Padding the perf buffer adds after a record is not part of it.
        rec.extend_from_slice(&[0xff; 4]);
        let (r, text) = run(&prog, &rec, &mut Maps::default());
        assert!(matches!(r, Ok(Outcome::Continue)), "{r:?}");
        assert_eq!(
            text,
            "[sched_process_exec: filename=/bin/ls pid=42 old_pid=42] 5\n"
        );
        // A record cut short renders what it has; an unknown event index says so.
        let (_, text) = run(&prog, &rec[..rec.len() - 10], &mut Maps::default());
        assert!(text.starts_with("[sched_process_exec: "), "{text}");
        let bad = record(e, 0, &[&u64_bytes(7 << 32, e), &u64_bytes(5, e)]);
        let (_, text) = run(&prog, &bad, &mut Maps::default());
        assert_eq!(text, "[[argstr: the program has no event 7]] 5\n");
    }
}
