//! The ELF relocatable object aya loads: a compiled [`Program`] written as the sections, symbols
//! and relocations a C compiler would have produced. Pure: no I/O.
//!
//! aya has no API that takes raw instructions, so the loader hands it an in-memory object:
//! a `license` section; a legacy `maps` section of 28-byte `bpf_map_def` records, one global
//! `STT_OBJECT` symbol per map; one text section per program, named by program type
//! (`tracepoint/CATEGORY/NAME`, `perf_event`), with one global `STT_FUNC` symbol covering it;
//! and an `R_BPF_64_64` relocation on every `ld_imm64` that loads a map. There is no `.BTF`:
//! old kernels fail on objects that carry BTF they cannot parse, and ktap needs none.

use ktap_bpf::insn::{encode_all, Endian, Insn, BPF_PSEUDO_MAP_FD};
use ktap_bpf::{Event, MapKind, MapRole, Probe, Program};
use object::write::{Object, Relocation, Symbol, SymbolSection};
use object::{
    elf, Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};
use std::collections::HashMap;

/// Bytes in one legacy `struct bpf_map_def` record:
/// `{type, key_size, value_size, max_entries, map_flags, id, pinning}`, seven `u32`s.
pub const MAP_DEF_SIZE: usize = 28;

/// One program in the object and the probes it serves.
///
/// Probes whose code and program type are identical (a glob over many tracepoints usually
/// compiles to one body) share a single program: the kernel verifies it once and the loader
/// attaches it to every event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectProgram {
    /// The function symbol; aya names the program after it and the kernel keeps its first
    /// 15 bytes.
    pub symbol: String,
    /// The text section's name, which tells aya the program type.
    pub section: String,
    /// Indexes into [`Program::probes`], first one first.
    pub probes: Vec<usize>,
}

/// Something in a [`Program`] that no kernel could load, found before any syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidProgram {
    /// The probe (`Program::probes` index) at fault, if the problem is inside one.
    pub probe: Option<usize>,
    pub message: String,
}

/// The programs of the object in the order they are written: one per distinct
/// (program type, instructions) pair, in order of each one's first probe.
pub fn layout(prog: &Program) -> Vec<ObjectProgram> {
    let mut out: Vec<ObjectProgram> = Vec::new();
    // By program type and instructions: a glob over thousands of functions gives as many
    // probes, most of them different (each one's `probename`), so no list search per probe.
    let mut index: HashMap<(u8, &[Insn]), usize> = HashMap::new();
    for (i, probe) in prog.probes.iter().enumerate() {
        let key = (prog_kind(&probe.event), probe.func.insns.as_slice());
        match index.get(&key) {
            Some(&o) => out[o].probes.push(i),
            None => {
                index.insert(key, out.len());
                out.push(ObjectProgram {
                    symbol: format!("ktap{}_{}", out.len(), sanitize(&probe.name)),
                    section: section_name(probe),
                    probes: vec![i],
                });
            }
        }
    }
    out
}

/// The symbol (and so aya's and the kernel's name) of map `index`.
pub fn map_symbol(prog: &Program, index: usize) -> String {
    let name = prog.maps.get(index).map_or("", |m| m.name.as_str());
    format!("m{index}_{}", sanitize(name))
}

/// Checks what [`write_object`] relies on: every probe has code, every map reference names a
/// map of the program, and the output map is a perf event array. A program without probes is
/// valid: its maps serve the userspace blocks. The kernel would reject the rest with a worse message, or,
/// for a map index that happens to be an open descriptor, load the wrong map.
pub fn validate(prog: &Program) -> Result<(), InvalidProgram> {
    for map in &prog.maps {
        if map.role == MapRole::Output && map.kind != MapKind::PerfEventArray {
            return Err(InvalidProgram {
                probe: None,
                message: format!(
                    "map `{}` carries the output but is a {:?} map, not a perf event array",
                    map.name, map.kind
                ),
            });
        }
    }
    for (i, probe) in prog.probes.iter().enumerate() {
        let err = |message: String| InvalidProgram {
            probe: Some(i),
            message,
        };
        let insns = &probe.func.insns;
        if insns.is_empty() {
            return Err(err("the probe has no instructions".into()));
        }
        if let Event::Profile { period_ns: 0, .. } = probe.event {
            return Err(err("a profile period of 0 ns".into()));
        }
        for (pc, insn) in insns.iter().enumerate() {
            if insn.is_ld_imm64() {
                if pc + 1 >= insns.len() {
                    return Err(err(format!(
                        "ld_imm64 at instruction {pc} has no second half"
                    )));
                }
                if insn.src == BPF_PSEUDO_MAP_FD && map_ref(prog, insn).is_none() {
                    return Err(err(format!(
                        "instruction {pc} loads map {} but the program has {} maps",
                        insn.imm as u32,
                        prog.maps.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The object for `prog`. Instructions and map definitions are written in the target's byte
/// order, which is the host's whenever the object is loaded (aya reads both in host order),
/// and stays right for the board when a host writes it for another machine.
///
/// Call [`validate`] first: an out-of-range map reference is written unrelocated.
pub fn write_object(prog: &Program) -> Vec<u8> {
    let order = prog.target.endian;
    let endian = match order {
        Endian::Little => Endianness::Little,
        Endian::Big => Endianness::Big,
    };
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, endian);

    let license = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.set_section_data(license, b"GPL\0".to_vec(), 1);

    let mut map_symbols = Vec::with_capacity(prog.maps.len());
    if !prog.maps.is_empty() {
        let maps = obj.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
        let mut defs = Vec::with_capacity(prog.maps.len() * MAP_DEF_SIZE);
        for map in &prog.maps {
            // A perf event array holds one slot per CPU of a u32 index and a u32 descriptor;
            // max_entries 0 lets aya size it to the machine it runs on.
            let (key, value, entries) = match map.kind {
                MapKind::PerfEventArray => (4, 4, 0),
                _ => (map.key_size, map.value_size, map.max_entries),
            };
            for word in [map.kind as u32, key, value, entries, 0, 0, 0] {
                defs.extend_from_slice(&match order {
                    Endian::Little => word.to_le_bytes(),
                    Endian::Big => word.to_be_bytes(),
                });
            }
        }
        obj.set_section_data(maps, defs, 4);
        for index in 0..prog.maps.len() {
            map_symbols.push(obj.add_symbol(Symbol {
                name: map_symbol(prog, index).into_bytes(),
                value: (index * MAP_DEF_SIZE) as u64,
                size: MAP_DEF_SIZE as u64,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Section(maps),
                flags: SymbolFlags::None,
            }));
        }
    }

    for unit in layout(prog) {
        let probe = &prog.probes[unit.probes[0]];
        // The kernel's relocation target is chosen by the symbol; like clang, leave the
        // instruction's own source register and immediate zero.
        let insns: Vec<Insn> = probe
            .func
            .insns
            .iter()
            .map(|i| {
                if i.is_ld_imm64() && i.src == BPF_PSEUDO_MAP_FD && map_ref(prog, i).is_some() {
                    Insn {
                        src: 0,
                        imm: 0,
                        ..*i
                    }
                } else {
                    *i
                }
            })
            .collect();
        let code = encode_all(&insns, order);
        let size = code.len() as u64;
        let text = obj.add_section(
            Vec::new(),
            unit.section.clone().into_bytes(),
            SectionKind::Text,
        );
        obj.set_section_data(text, code, 8);
        obj.add_symbol(Symbol {
            name: unit.symbol.into_bytes(),
            value: 0,
            size,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        });
        for (pc, insn) in probe.func.insns.iter().enumerate() {
            if !(insn.is_ld_imm64() && insn.src == BPF_PSEUDO_MAP_FD) {
                continue;
            }
            let Some(map) = map_ref(prog, insn) else {
                continue;
            };
            let relocation = Relocation {
                offset: (pc * 8) as u64,
                symbol: map_symbols[map],
                addend: 0,
                flags: RelocationFlags::Elf {
                    r_type: elf::R_BPF_64_64,
                },
            };
            // Only relocation kinds the ELF writer does not know for BPF fail here, and
            // R_BPF_64_64 is the one it maps every 64-bit absolute relocation to.
            if obj.add_relocation(text, relocation).is_err() {
                log::warn!("the ELF writer refused a map relocation at instruction {pc}");
            }
        }
    }
    // The writer fails only for formats or relocations this object never uses; an empty
    // object then makes aya's parser report the failure instead of a panic here.
    obj.write().unwrap_or_default()
}

/// The map index an `ld_imm64` names, if it is one of the program's maps.
/// Whether some probe's instructions load map `index`.
pub(crate) fn probes_load_map(prog: &Program, index: usize) -> bool {
    prog.probes.iter().any(|p| {
        p.func.insns.iter().any(|i| {
            i.is_ld_imm64() && i.src == BPF_PSEUDO_MAP_FD && map_ref(prog, i) == Some(index)
        })
    })
}

fn map_ref(prog: &Program, insn: &Insn) -> Option<usize> {
    let index = insn.imm as u32 as usize;
    (index < prog.maps.len()).then_some(index)
}

/// Which kind of program the kernel loads for `event`: probes of one kind with the same
/// instructions can share one program.
fn prog_kind(event: &Event) -> u8 {
    match event {
        Event::Tracepoint { .. } => 0,
        Event::Profile { .. } => 1,
        Event::Kprobe { ret: false, .. } => 2,
        Event::Kprobe { ret: true, .. } => 3,
        Event::Uprobe { ret: false, .. } => 4,
        Event::Uprobe { ret: true, .. } => 5,
    }
}

fn section_name(probe: &Probe) -> String {
    match &probe.event {
        Event::Tracepoint { category, name } => format!("tracepoint/{category}/{name}"),
        Event::Profile { .. } => "perf_event".into(),
        // aya takes the program type (and kretprobe/uretprobe) from the section's prefix; the
        // function or file is named again at attach time.
        Event::Kprobe { ret: false, .. } => "kprobe".into(),
        Event::Kprobe { ret: true, .. } => "kretprobe".into(),
        Event::Uprobe { ret: false, .. } => "uprobe".into(),
        Event::Uprobe { ret: true, .. } => "uretprobe".into(),
    }
}

/// The kernel accepts only letters, digits, `_` and `.` in program and map names.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktap_bpf::insn::*;
    use ktap_bpf::{Function, MapDef, Source, Span, Target, ValueType};
    use object::read::{Object as _, ObjectSection as _, ObjectSymbol as _};
    use object::RelocationTarget;

    fn map(name: &str, kind: MapKind, role: MapRole) -> MapDef {
        MapDef {
            name: name.into(),
            kind,
            role,
            key: ValueType::Int,
            value: ValueType::Int,
            key_size: 8,
            value_size: 8,
            max_entries: 1024,
            span: Span::default(),
            init: Vec::new(),
        }
    }

    fn probe(name: &str, event: Event, insns: Vec<Insn>) -> Probe {
        let spans = vec![Span::default(); insns.len()];
        Probe {
            name: name.into(),
            event,
            func: Function { insns, spans },
            span: Span::default(),
            optional: false,
        }
    }

    fn tp(name: &str) -> Event {
        Event::Tracepoint {
            category: "syscalls".into(),
            name: name.into(),
        }
    }

    fn program(endian: Endian) -> Program {
        let [m0, m0b] = Insn::ld_map(R1, 1);
        let body = vec![
            Insn::st(BPF_DW, R10, -8, 7),
            m0,
            m0b,
            Insn::mov64_reg(R2, R10),
            Insn::alu64_imm(BPF_ADD, R2, -8),
            Insn::call(ktap_bpf::helpers::MAP_LOOKUP_ELEM),
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ];
        Program {
            target: Target {
                endian,
                ..Target::host()
            },
            source: Source::default(),
            maps: vec![
                map("out", MapKind::PerfEventArray, MapRole::Output),
                map("counts/x", MapKind::Hash, MapRole::Table),
            ],
            formats: Vec::new(),
            probes: vec![
                probe("sys_enter_getppid", tp("sys_enter_getppid"), body.clone()),
                probe("sys_enter_getpid", tp("sys_enter_getpid"), body),
                probe(
                    "profile",
                    Event::Profile {
                        period_ns: 1000,
                        cpu: None,
                    },
                    vec![Insn::mov64_imm(R0, 0), Insn::exit()],
                ),
            ],
            user: Vec::new(),
            events: Vec::new(),
        }
    }

    #[test]
    fn layout_shares_identical_bodies() {
        let l = layout(&program(Endian::Little));
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].probes, [0, 1]);
        assert_eq!(l[0].symbol, "ktap0_sys_enter_getppid");
        assert_eq!(l[0].section, "tracepoint/syscalls/sys_enter_getppid");
        assert_eq!(l[1].probes, [2]);
        assert_eq!(l[1].section, "perf_event");
    }

    #[test]
    fn parses_back_with_sections_symbols_and_relocations() {
        for endian in [Endian::Little, Endian::Big] {
            let prog = program(endian);
            let bytes = write_object(&prog);
            let file = object::File::parse(&*bytes).unwrap();
            assert_eq!(file.architecture(), Architecture::Bpf);
            assert_eq!(file.is_little_endian(), endian == Endian::Little);

            let license = file.section_by_name("license").unwrap();
            assert_eq!(license.data().unwrap(), b"GPL\0");

            let maps = file.section_by_name("maps").unwrap();
            let defs = maps.data().unwrap();
            assert_eq!(defs.len(), 2 * MAP_DEF_SIZE);
            let word = |i: usize| {
                let b: [u8; 4] = defs[i * 4..i * 4 + 4].try_into().unwrap();
                match endian {
                    Endian::Little => u32::from_le_bytes(b),
                    Endian::Big => u32::from_be_bytes(b),
                }
            };
            // The perf event array: type 4, u32 key and value, sized by the loader.
            assert_eq!([word(0), word(1), word(2), word(3)], [4, 4, 4, 0]);
            // The hash: type 1, the program's sizes.
            assert_eq!([word(7), word(8), word(9), word(10)], [1, 8, 8, 1024]);

            let sym = |name: &str| file.symbols().find(|s| s.name() == Ok(name)).unwrap();
            let m1 = sym("m1_counts_x");
            assert_eq!(m1.kind(), object::SymbolKind::Data);
            assert!(m1.is_global());
            assert_eq!((m1.address(), m1.size()), (28, 28));
            assert_eq!(m1.section_index(), Some(maps.index()));
            // Only the maps' own symbols live in the maps section: aya takes each as a map.
            let in_maps = file
                .symbols()
                .filter(|s| s.section_index() == Some(maps.index()))
                .count();
            assert_eq!(in_maps, 2);

            let text = file
                .section_by_name("tracepoint/syscalls/sys_enter_getppid")
                .unwrap();
            assert_eq!(text.kind(), object::SectionKind::Text);
            let f = sym("ktap0_sys_enter_getppid");
            assert_eq!(f.kind(), object::SymbolKind::Text);
            assert!(f.is_global());
            assert_eq!((f.address(), f.size()), (0, 8 * 8));
            assert_eq!(f.section_index(), Some(text.index()));
            assert!(file.section_by_name("perf_event").is_some());
            assert_eq!(sym("ktap1_profile").size(), 16);
            assert_eq!(
                file.symbols()
                    .filter(|s| s.kind() == object::SymbolKind::Text)
                    .count(),
                2
            );

            let relocs: Vec<_> = text.relocations().collect();
            assert_eq!(relocs.len(), 1);
            let (offset, rel) = &relocs[0];
            assert_eq!(*offset, 8);
            assert_eq!(
                rel.flags(),
                RelocationFlags::Elf {
                    r_type: elf::R_BPF_64_64
                }
            );
            let RelocationTarget::Symbol(target) = rel.target() else {
                panic!("relocation against {:?}", rel.target());
            };
            assert_eq!(target, m1.index());

            let code = decode_all(text.data().unwrap(), endian).unwrap();
            assert_eq!(code.len(), 8);
            assert!(code[1].is_ld_imm64());
            assert_eq!((code[1].dst, code[1].src, code[1].imm), (R1, 0, 0));
            assert_eq!(code[0], Insn::st(BPF_DW, R10, -8, 7));
        }
    }

    #[test]
    fn validation_catches_what_the_writer_relies_on() {
        let mut prog = program(Endian::Little);
        assert_eq!(validate(&prog), Ok(()));
        prog.probes[0].func.insns[1].imm = 9;
        let e = validate(&prog).unwrap_err();
        assert_eq!(e.probe, Some(0));
        assert!(e.message.contains("loads map 9"), "{}", e.message);
        prog.probes[0].func.insns.clear();
        assert!(validate(&prog).is_err());
        // A script whose code all runs in userspace still needs its maps.
        prog.probes.clear();
        assert_eq!(validate(&prog), Ok(()));
        let mut prog = program(Endian::Little);
        prog.probes[2].event = Event::Profile {
            period_ns: 0,
            cpu: None,
        };
        assert_eq!(validate(&prog).unwrap_err().probe, Some(2));
        let mut prog = program(Endian::Little);
        prog.probes[2].func.insns = vec![Insn::ld_imm64(R0, 0, 1)[0]];
        assert!(validate(&prog).is_err());
        let mut prog = program(Endian::Little);
        prog.maps[0].kind = MapKind::Hash;
        let e = validate(&prog).unwrap_err();
        assert!(
            e.message.contains("map `out` carries the output"),
            "{}",
            e.message
        );
    }

    #[test]
    fn names_are_what_the_kernel_accepts() {
        assert_eq!(sanitize("a:b-c.d_e9"), "a_b_c.d_e9");
        assert_eq!(map_symbol(&program(Endian::Little), 7), "m7_");
    }
}
