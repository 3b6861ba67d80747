//! Map helpers through the VM: lookups, updates, deletes, iteration, and map values changed
//! through the pointer a lookup returns reaching the map.

use super::*;
use ktap_bpf::helpers::*;

const KEY: i16 = -8;
const VALUE: i16 = -16;

/// `*(u64 *)(r10 - 8) = key; r2 = r10 - 8`.
fn key_arg(key: i32) -> [Insn; 3] {
    [
        Insn::st(BPF_DW, R10, KEY, key),
        Insn::mov64_reg(R2, R10),
        Insn::alu64_imm(BPF_ADD, R2, KEY as i32),
    ]
}

/// `r0 = map_lookup_elem(map, &key)`.
fn lookup(map: u32, key: i32) -> Vec<Insn> {
    asm(&[
        &key_arg(key),
        &Insn::ld_map(R1, map),
        &[Insn::call(MAP_LOOKUP_ELEM)],
    ])
}

/// `r0 = map_update_elem(map, &key, &value, flags)`.
fn update(map: u32, key: i32, value: i32, flags: u64) -> Vec<Insn> {
    asm(&[
        &key_arg(key),
        &[
            Insn::st(BPF_DW, R10, VALUE, value),
            Insn::mov64_reg(R3, R10),
            Insn::alu64_imm(BPF_ADD, R3, VALUE as i32),
            Insn::mov64_imm(R4, flags as i32),
        ],
        &Insn::ld_map(R1, map),
        &[Insn::call(MAP_UPDATE_ELEM)],
    ])
}

/// `r0 = map_delete_elem(map, &key)`.
fn delete(map: u32, key: i32) -> Vec<Insn> {
    asm(&[
        &key_arg(key),
        &Insn::ld_map(R1, map),
        &[Insn::call(MAP_DELETE_ELEM)],
    ])
}

fn k(key: u64) -> [u8; 8] {
    key.to_le_bytes()
}

fn hash_maps() -> Vec<MapDef> {
    vec![map(MapKind::Hash, 8, 8, 16), map(MapKind::Array, 4, 8, 4)]
}

/// A MemHost over `maps` with `key -> value` entries in map 0.
fn host_with(maps: &[MapDef], entries: &[(u64, u64)]) -> MemHost {
    let mut host = MemHost::new(maps, Endian::Little);
    for &(key, value) in entries {
        assert_eq!(host.map_update(0, &k(key), &k(value), BPF_ANY), 0);
    }
    host
}

#[test]
fn update_then_lookup() {
    let maps = hash_maps();
    let mut host = MemHost::new(&maps, Endian::Little);
    let prog = asm(&[
        &update(0, 1, 42, BPF_ANY),
        &lookup(0, 1),
        &[
            Insn::jmp_imm(BPF_JEQ, R0, 0, 1),
            Insn::ldx(BPF_DW, R0, R0, 0),
            Insn::exit(),
        ],
    ]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(42));
    assert_eq!(host.get(0, &k(1)), Some(k(42).to_vec()));
}

#[test]
fn a_missing_key_gives_null_and_dereferencing_it_faults() {
    let maps = hash_maps();
    let mut host = MemHost::new(&maps, Endian::Little);
    let prog = asm(&[&lookup(0, 7), &[Insn::exit()]]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(0));
    let prog = asm(&[&lookup(0, 7), &[Insn::ldx(BPF_DW, R0, R0, 0), Insn::exit()]]);
    let f = fault(exec_maps(&prog, &maps, &mut host, &mut []));
    assert_eq!(f.message, "R0 invalid mem access 'null'");
    assert_eq!(f.pc, prog.len() - 2);
}

#[test]
fn an_atomic_add_through_a_looked_up_value_changes_the_map() {
    let maps = hash_maps();
    let mut host = host_with(&maps, &[(1, 40)]);
    let prog = asm(&[
        &lookup(0, 1),
        &[
            Insn::jmp_imm(BPF_JEQ, R0, 0, 2),
            Insn::mov64_imm(R1, 2),
            Insn::atomic_add(BPF_DW, R0, 0, R1),
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ],
    ]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(0));
    assert_eq!(host.get(0, &k(1)), Some(k(42).to_vec()));
}

#[test]
fn changed_values_are_written_back_before_the_next_map_helper() {
    let maps = hash_maps();
    let mut host = Recorder::new(&maps);
    host.inner.map_update(0, &k(1), &k(0), BPF_ANY);
    let prog = asm(&[
        &lookup(0, 1),
        &[Insn::st(BPF_DW, R0, 0, 7)],
        &lookup(0, 2),
        &[Insn::exit()],
    ]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(0));
    let key1 = format!("{:?}", k(1));
    assert_eq!(
        host.log,
        [
            format!("lookup 0 {key1}"),
            format!("update 0 {key1} {:?} {BPF_EXIST}", k(7)),
            format!("lookup 0 {:?}", k(2)),
        ]
    );
}

#[test]
fn changed_values_are_written_back_when_the_run_faults() {
    let maps = hash_maps();
    let mut host = host_with(&maps, &[(1, 0)]);
    let prog = asm(&[
        &lookup(0, 1),
        &[
            Insn::st(BPF_DW, R0, 0, 5),
            Insn::ldx(BPF_DW, R0, R0, 8),
            Insn::exit(),
        ],
    ]);
    let f = fault(exec_maps(&prog, &maps, &mut host, &mut []));
    assert_eq!(
        f.message,
        "invalid access to map value, value_size=8 off=8 size=8"
    );
    assert_eq!(host.get(0, &k(1)), Some(k(5).to_vec()));
}

#[test]
fn lookups_of_one_key_share_their_memory_and_see_updates() {
    let maps = hash_maps();
    let mut host = host_with(&maps, &[(1, 3)]);
    // r6 = lookup(1); r7 = lookup(1); return r6 == r7
    let prog = asm(&[
        &lookup(0, 1),
        &[Insn::mov64_reg(R6, R0)],
        &lookup(0, 1),
        &[
            Insn::mov64_reg(R7, R0),
            Insn::mov64_imm(R0, 1),
            Insn::jmp_reg(BPF_JEQ, R6, R7, 1),
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ],
    ]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(1));

    // r6 = lookup(1); update(1, 9); return *r6
    let prog = asm(&[
        &lookup(0, 1),
        &[Insn::mov64_reg(R6, R0)],
        &update(0, 1, 9, BPF_ANY),
        &[Insn::ldx(BPF_DW, R0, R6, 0), Insn::exit()],
    ]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(9));
}

#[test]
fn a_store_after_delete_is_lost_as_in_the_kernel() {
    let maps = hash_maps();
    let mut host = host_with(&maps, &[(1, 3)]);
    let prog = asm(&[
        &lookup(0, 1),
        &[Insn::mov64_reg(R6, R0)],
        &delete(0, 1),
        &[Insn::st(BPF_DW, R6, 0, 5), Insn::exit()],
    ]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(0));
    assert_eq!(host.get(0, &k(1)), None);
}

#[test]
fn update_and_delete_return_errnos() {
    let maps = hash_maps();
    let mut host = host_with(&maps, &[(1, 3)]);
    let ret = |prog: Vec<Insn>, host: &mut MemHost| {
        exec_maps(&asm(&[&prog, &[Insn::exit()]]), &maps, host, &mut []).unwrap() as i64
    };
    assert_eq!(
        ret(update(0, 1, 4, BPF_NOEXIST), &mut host),
        -ktap_vm::EEXIST
    );
    assert_eq!(ret(update(0, 2, 4, BPF_EXIST), &mut host), -ktap_vm::ENOENT);
    assert_eq!(ret(update(0, 2, 4, BPF_NOEXIST), &mut host), 0);
    assert_eq!(ret(delete(0, 2), &mut host), 0);
    assert_eq!(ret(delete(0, 2), &mut host), -ktap_vm::ENOENT);
    assert_eq!(host.get(0, &k(1)), Some(k(3).to_vec()));
}

#[test]
fn array_values_start_zeroed_and_are_indexed_by_u32() {
    let maps = hash_maps();
    for endian in [Endian::Little, Endian::Big] {
        let mut host = MemHost::new(&maps, endian);
        // *(u32 *)(r10 - 4) = 3; r0 = lookup(array, r10 - 4); *r0 += 5
        let prog = asm(&[
            &[
                Insn::st(BPF_W, R10, -4, 3),
                Insn::mov64_reg(R2, R10),
                Insn::alu64_imm(BPF_ADD, R2, -4),
            ],
            &Insn::ld_map(R1, 1),
            &[
                Insn::call(MAP_LOOKUP_ELEM),
                Insn::jmp_imm(BPF_JEQ, R0, 0, 3),
                Insn::ldx(BPF_DW, R1, R0, 0),
                Insn::alu64_imm(BPF_ADD, R1, 5),
                Insn::stx(BPF_DW, R0, 0, R1),
                Insn::exit(),
            ],
        ]);
        let env = RunEnv::new(&maps, endian);
        let r = run(&func(&prog), &mut [], &env, &mut host).unwrap();
        assert_ne!(r, 0, "{endian:?}");
        let (key, value) = match endian {
            Endian::Little => (3u32.to_le_bytes(), 5u64.to_le_bytes()),
            Endian::Big => (3u32.to_be_bytes(), 5u64.to_be_bytes()),
        };
        assert_eq!(host.get(1, &key), Some(value.to_vec()), "{endian:?}");
        // Index 4 is past the end of a four-entry array.
        let mut prog = prog;
        prog[0] = Insn::st(BPF_W, R10, -4, 4);
        assert_eq!(run(&func(&prog), &mut [], &env, &mut host), Ok(0));
    }
}

#[test]
fn next_key_walks_every_entry() {
    let maps = hash_maps();
    let mut host = host_with(&maps, &[(3, 30), (1, 10), (5, 50), (2, 20), (4, 40)]);
    let stack_ptr = |reg: u8| {
        [
            Insn::mov64_reg(reg, R10),
            Insn::alu64_imm(BPF_ADD, reg, KEY as i32),
        ]
    };
    // The key buffer at r10 - 8 is both the key and where the next key goes.
    let prog = asm(&[
        &[Insn::mov64_imm(R7, 0)],
        &Insn::ld_map(R1, 0),
        &[Insn::mov64_imm(R2, 0)],
        &stack_ptr(R3),
        &[Insn::call(USER_MAP_NEXT_KEY)],
        // 7: loop
        &[Insn::jmp_imm(BPF_JNE, R0, 0, 16)],
        &stack_ptr(R2),
        &Insn::ld_map(R1, 0),
        &[
            Insn::call(MAP_LOOKUP_ELEM),
            Insn::jmp_imm(BPF_JEQ, R0, 0, 10),
            Insn::ldx(BPF_DW, R1, R0, 0),
            Insn::alu64_reg(BPF_ADD, R7, R1),
        ],
        &Insn::ld_map(R1, 0),
        &stack_ptr(R2),
        &stack_ptr(R3),
        &[Insn::call(USER_MAP_NEXT_KEY), Insn::ja(-17)],
        // 24: done
        &[Insn::mov64_reg(R0, R7), Insn::exit()],
    ]);
    assert_eq!(prog.len(), 26);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(150));
}

#[test]
fn clear_and_count() {
    let maps = hash_maps();
    let mut host = host_with(&maps, &[(1, 1), (2, 2)]);
    let count = |map: u32| asm(&[&Insn::ld_map(R1, map), &[Insn::call(USER_MAP_COUNT)]]);
    let prog = asm(&[&count(0), &[Insn::exit()]]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(2));
    let prog = asm(&[&count(1), &[Insn::exit()]]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(4));
    let prog = asm(&[
        &Insn::ld_map(R1, 0),
        &[Insn::call(USER_MAP_CLEAR)],
        &count(0),
        &[Insn::exit()],
    ]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(0));
}

#[test]
fn map_arguments_are_checked() {
    let maps = [
        map(MapKind::Hash, 8, 8, 4),
        map(MapKind::PerfEventArray, 4, 4, 0),
    ];
    let mut host = MemHost::new(&maps, Endian::Little);
    let mut check = |prog: Vec<Insn>, want: &str| {
        let f = fault(exec_maps(&prog, &maps, &mut host, &mut []));
        assert_eq!(f.message, want);
    };
    let call_with = |r1: Insn| {
        asm(&[
            &key_arg(1),
            &[r1, Insn::call(MAP_LOOKUP_ELEM), Insn::exit()],
        ])
    };
    check(
        call_with(Insn::mov64_imm(R1, 5)),
        "R1 type=scalar expected=map_ptr",
    );
    check(
        call_with(Insn::mov64_reg(R1, R10)),
        "R1 type=fp expected=map_ptr",
    );
    check(
        asm(&[&lookup(1, 1), &[Insn::exit()]]),
        "cannot pass map_type 4 into func map_lookup_elem#1",
    );
    // A key pointer must cover the whole key.
    let mut p = lookup(0, 1);
    p[2] = Insn::alu64_imm(BPF_ADD, R2, -4);
    p.push(Insn::exit());
    check(p, "invalid indirect access to stack R2 off=-4 size=8");
}

#[test]
fn perf_event_output_delivers_the_record() {
    let maps = [
        map(MapKind::Hash, 8, 8, 4),
        map(MapKind::PerfEventArray, 4, 4, 0),
    ];
    let mut host = MemHost::new(&maps, Endian::Little);
    let output = |map: u32| {
        asm(&[
            &[
                Insn::mov64_reg(R6, R1),
                Insn::st(BPF_DW, R10, -16, 7),
                Insn::st(BPF_DW, R10, -8, 0x0102),
            ],
            &Insn::ld_map(R2, map),
            &[
                Insn::mov64_reg(R1, R6),
                Insn::mov64_imm(R3, -1),
                Insn::mov64_reg(R4, R10),
                Insn::alu64_imm(BPF_ADD, R4, -16),
                Insn::mov64_imm(R5, 16),
                Insn::call(PERF_EVENT_OUTPUT),
                Insn::exit(),
            ],
        ])
    };
    assert_eq!(exec_maps(&output(1), &maps, &mut host, &mut []), Ok(0));
    let mut want = 7u64.to_le_bytes().to_vec();
    want.extend_from_slice(&0x0102u64.to_le_bytes());
    assert_eq!(host.outputs, [want]);
    let f = fault(exec_maps(&output(0), &maps, &mut host, &mut []));
    assert_eq!(
        f.message,
        "cannot pass map_type 1 into func perf_event_output#25"
    );
    // The first argument must be the context itself.
    let mut p = output(1);
    p[0] = Insn::mov64_reg(R6, R10);
    let f = fault(exec_maps(&p, &maps, &mut host, &mut []));
    assert_eq!(f.message, "R1 type=fp expected=ctx");
}

/// `r0 = &map[0] + off` by direct value access (`ld_imm64` with `src == BPF_PSEUDO_MAP_VALUE`).
fn direct_value(map: u32, off: u32) -> [Insn; 2] {
    [
        Insn::new(BPF_LD | BPF_DW | BPF_IMM, R0, 2, 0, map as i32),
        Insn::new(0, 0, 0, 0, off as i32),
    ]
}

#[test]
fn direct_value_access_reads_and_writes_element_zero() {
    let maps = [map(MapKind::Array, 4, 16, 1)];
    let mut host = MemHost::new(&maps, Endian::Little);
    let prog = asm(&[
        &direct_value(0, 8),
        &[
            Insn::st(BPF_DW, R0, 0, 42),
            Insn::ldx(BPF_DW, R0, R0, 0),
            Insn::exit(),
        ],
    ]);
    assert_eq!(exec_maps(&prog, &maps, &mut host, &mut []), Ok(42));
    let value = host.get(0, &0u32.to_le_bytes()).unwrap();
    assert_eq!(value[8], 42);
    // Past the value, and on a map that is not an array, the load itself is refused.
    let past = asm(&[&direct_value(0, 16), &[Insn::exit()]]);
    let f = fault(exec_maps(&past, &maps, &mut host, &mut []));
    assert!(f.message.contains("value_size=16 off=16"), "{f}");
    let hash = [map(MapKind::Hash, 4, 16, 1)];
    let mut h = MemHost::new(&hash, Endian::Little);
    let f = fault(exec_maps(
        &asm(&[&direct_value(0, 0), &[Insn::exit()]]),
        &hash,
        &mut h,
        &mut [],
    ));
    assert!(f.message.contains("direct value access"), "{f}");
}

#[test]
fn read_only_maps_are_read_only_data() {
    let maps = [map(MapKind::Array, 4, 8, 1)];
    let mut host = MemHost::new(&maps, Endian::Little);
    host.map_update(0, &0u32.to_le_bytes(), &7u64.to_le_bytes(), BPF_ANY);
    let mut env = RunEnv::new(&maps, Endian::Little);
    env.read_only_maps = &[0];
    let read = asm(&[
        &direct_value(0, 0),
        &[Insn::ldx(BPF_DW, R0, R0, 0), Insn::exit()],
    ]);
    assert_eq!(run(&func(&read), &mut [], &env, &mut host), Ok(7));
    let write = asm(&[
        &direct_value(0, 0),
        &[Insn::st(BPF_B, R0, 1, 1), Insn::exit()],
    ]);
    let f = fault(run(&func(&write), &mut [], &env, &mut host));
    assert_eq!(
        f.message,
        "write into map forbidden, value_size=8 off=1 size=1"
    );
    // A lookup's pointer is read-only too.
    let looked = asm(&[&lookup(0, 0), &[Insn::st(BPF_DW, R0, 0, 1), Insn::exit()]]);
    let f = fault(run(&func(&looked), &mut [], &env, &mut host));
    assert!(f.message.starts_with("write into map forbidden"), "{f}");
    assert_eq!(
        host.get(0, &0u32.to_le_bytes()).unwrap(),
        7u64.to_le_bytes()
    );
}
