//! Programs that cannot run to the end: each stops with the instruction index and a message in
//! the kernel verifier's words.

use super::*;

fn msg(insns: &[Insn]) -> (usize, String) {
    let f = fault(exec(insns));
    (f.pc, f.message)
}

#[test]
fn stack_accesses_outside_the_frame_fault() {
    let (pc, m) = msg(&[
        Insn::mov64_imm(R0, 0),
        Insn::st(BPF_DW, R10, -520, 1),
        Insn::exit(),
    ]);
    assert_eq!(
        (pc, m.as_str()),
        (1, "invalid write to stack R10 off=-520 size=8")
    );
    let (_, m) = msg(&[Insn::ldx(BPF_DW, R0, R10, -4), Insn::exit()]);
    assert_eq!(m, "invalid read from stack R10 off=-4 size=8");
    let (_, m) = msg(&[Insn::ldx(BPF_B, R0, R10, 0), Insn::exit()]);
    assert_eq!(m, "invalid read from stack R10 off=0 size=1");
    // Pointer arithmetic far below the stack is still reported against the stack.
    let (_, m) = msg(&[
        Insn::mov64_reg(R1, R10),
        Insn::alu64_imm(BPF_ADD, R1, -100_000),
        Insn::stx(BPF_W, R1, 0, R0),
        Insn::exit(),
    ]);
    assert_eq!(m, "invalid write to stack R1 off=-100000 size=4");
    // The edges themselves are fine.
    assert_eq!(
        exec(&[
            Insn::st(BPF_B, R10, -1, 1),
            Insn::st(BPF_DW, R10, -512, 2),
            Insn::ldx(BPF_B, R0, R10, -1),
            Insn::ldx(BPF_DW, R1, R10, -512),
            Insn::alu64_reg(BPF_ADD, R0, R1),
            Insn::exit(),
        ]),
        Ok(3)
    );
}

#[test]
fn non_pointers_are_not_dereferenced() {
    let (_, m) = msg(&[
        Insn::mov64_imm(R1, 0),
        Insn::ldx(BPF_W, R0, R1, 0),
        Insn::exit(),
    ]);
    assert_eq!(m, "R1 invalid mem access 'null'");
    let (_, m) = msg(&[
        Insn::mov64_imm(R2, 4096),
        Insn::stx(BPF_W, R2, 8, R0),
        Insn::exit(),
    ]);
    assert_eq!(m, "R2 invalid mem access 'scalar'");
    let maps = [map(MapKind::Hash, 8, 8, 4)];
    let mut host = MemHost::new(&maps, Endian::Little);
    let prog = asm(&[
        &Insn::ld_map(R1, 0),
        &[Insn::ldx(BPF_DW, R0, R1, 0), Insn::exit()],
    ]);
    let f = fault(exec_maps(&prog, &maps, &mut host, &mut []));
    assert_eq!(f.message, "R1 invalid mem access 'map_ptr'");
}

#[test]
fn context_accesses_are_bounded() {
    let mut ctx = [0u8; 16];
    let mut host = MemHost::new(&[], Endian::Little);
    let prog = [Insn::ldx(BPF_DW, R0, R1, 12), Insn::exit()];
    let f = fault(exec_maps(&prog, &[], &mut host, &mut ctx));
    assert_eq!(f.message, "invalid bpf_context access off=12 size=8");
    let prog = [Insn::ldx(BPF_DW, R0, R1, 8), Insn::exit()];
    assert_eq!(exec_maps(&prog, &[], &mut host, &mut ctx), Ok(0));
}

#[test]
fn the_budget_stops_endless_loops() {
    let mut host = MemHost::new(&[], Endian::Little);
    let mut env = RunEnv::new(&[], Endian::Little);
    env.budget = 1000;
    let prog = func(&[Insn::mov64_imm(R0, 0), Insn::ja(-1), Insn::exit()]);
    let f = fault(run(&prog, &mut [], &env, &mut host));
    assert_eq!(f.pc, 1);
    assert!(f.message.contains("budget of 1000"), "{}", f.message);
    // Exactly the budget is enough.
    env.budget = 2;
    let prog = func(&[Insn::mov64_imm(R0, 5), Insn::exit()]);
    assert_eq!(run(&prog, &mut [], &env, &mut host), Ok(5));
}

#[test]
fn malformed_instructions_fault() {
    assert_eq!(msg(&[Insn::new(0xff, 0, 0, 0, 0)]).1, "unknown opcode 0xff");
    // Legacy packet loads are not eBPF ktap emits.
    assert_eq!(
        msg(&[Insn::new(BPF_LD | BPF_W | 0x20, 0, 0, 0, 0)]).1,
        "unknown opcode 0x20"
    );
    assert_eq!(
        msg(&[Insn::mov64_imm(11, 0), Insn::exit()]).1,
        "R11 is invalid"
    );
    assert_eq!(
        msg(&[Insn::mov64_reg(R0, 12), Insn::exit()]).1,
        "R12 is invalid"
    );
    assert_eq!(
        msg(&[Insn::mov64_imm(R10, 0), Insn::exit()]).1,
        "frame pointer is read only"
    );
    assert_eq!(
        msg(&[Insn::ldx(BPF_DW, R10, R10, -8), Insn::exit()]).1,
        "frame pointer is read only"
    );
    assert_eq!(
        msg(&[Insn::mov64_imm(R0, 0)]),
        (0, "last insn is not an exit or jmp".into())
    );
    assert_eq!(msg(&[]), (0, "the program is empty".into()));
    assert_eq!(
        msg(&[Insn::ld_imm64(R0, 0, 1)[0]]).1,
        "invalid bpf_ld_imm64 insn"
    );
    assert_eq!(
        msg(&[
            Insn::ld_imm64(R0, 0, 1)[0],
            Insn::mov64_imm(R0, 1),
            Insn::exit()
        ])
        .1,
        "invalid bpf_ld_imm64 insn"
    );
    assert_eq!(
        msg(&asm(&[&Insn::ld_map(R1, 0), &[Insn::exit()]])).1,
        "fd 0 is not pointing to valid bpf_map"
    );
    assert_eq!(
        msg(&[Insn::ja(5), Insn::exit()]).1,
        "jump out of range from insn 0 to 6"
    );
    assert_eq!(
        msg(&[Insn::jmp_imm(BPF_JEQ, R0, 1, -2), Insn::exit()]).1,
        "jump out of range from insn 0 to -1"
    );
    // Jumping into the second half of an ld_imm64 runs its all-zero opcode.
    let prog = asm(&[&[Insn::ja(1)], &ld64(R0, 1), &[Insn::exit()]]);
    assert_eq!(msg(&prog), (2, "unknown opcode 0x00".into()));
    assert_eq!(
        msg(&[Insn::call(9999), Insn::exit()]).1,
        "invalid func unknown#9999"
    );
}

#[test]
fn a_fault_names_the_instruction() {
    let f = fault(exec(&[
        Insn::mov64_imm(R0, 1),
        Insn::mov64_imm(R1, 2),
        Insn::ldx(BPF_W, R2, R0, 0),
        Insn::exit(),
    ]));
    assert_eq!(f.to_string(), "insn 2: R0 invalid mem access 'scalar'");
}
