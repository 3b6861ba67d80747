//! bpf-to-bpf calls: fresh stacks, r6-r9 preserved, pointers into the caller's stack, the depth
//! limit.

use super::*;

/// `call pc+1+imm` to a function of the same program.
fn local_call(imm: i32) -> Insn {
    Insn::new(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, imm)
}

#[test]
fn a_call_preserves_r6_to_r9_and_the_callers_stack() {
    let prog = [
        // main
        Insn::mov64_imm(R6, 6),
        Insn::mov64_imm(R7, 7),
        Insn::mov64_imm(R8, 8),
        Insn::mov64_imm(R9, 9),
        Insn::st(BPF_DW, R10, -8, 100),
        Insn::mov64_imm(R1, 20),
        Insn::mov64_imm(R2, 22),
        local_call(7), // to insn 15
        // r0 = ret + r6 + r7 + r8 + r9 + *(r10 - 8)
        Insn::alu64_reg(BPF_ADD, R0, R6),
        Insn::alu64_reg(BPF_ADD, R0, R7),
        Insn::alu64_reg(BPF_ADD, R0, R8),
        Insn::alu64_reg(BPF_ADD, R0, R9),
        Insn::ldx(BPF_DW, R1, R10, -8),
        Insn::alu64_reg(BPF_ADD, R0, R1),
        Insn::exit(),
        // callee(r1, r2): clobbers r6-r9 and its own stack slot at r10-8
        Insn::mov64_imm(R6, 1000),
        Insn::mov64_imm(R7, 1000),
        Insn::mov64_imm(R8, 1000),
        Insn::mov64_imm(R9, 1000),
        Insn::st(BPF_DW, R10, -8, 5000),
        Insn::mov64_reg(R0, R1),
        Insn::alu64_reg(BPF_ADD, R0, R2),
        Insn::exit(),
    ];
    assert_eq!(exec(&prog), Ok(42 + 6 + 7 + 8 + 9 + 100));
}

#[test]
fn a_callee_has_a_fresh_stack_and_may_write_into_the_callers() {
    let prog = [
        Insn::st(BPF_DW, R10, -8, 1),
        Insn::mov64_reg(R1, R10),
        Insn::alu64_imm(BPF_ADD, R1, -8),
        local_call(2),
        Insn::ldx(BPF_DW, R0, R10, -8),
        Insn::exit(),
        // callee: its own r10-8 starts zeroed; *(r1) = 40 + that + 2
        Insn::ldx(BPF_DW, R2, R10, -8),
        Insn::alu64_imm(BPF_ADD, R2, 42),
        Insn::stx(BPF_DW, R1, 0, R2),
        Insn::exit(),
    ];
    assert_eq!(exec(&prog), Ok(42));
}

#[test]
fn a_pointer_into_a_returned_frame_faults() {
    let prog = [
        local_call(3),
        Insn::ldx(BPF_DW, R0, R0, 0),
        Insn::exit(),
        Insn::exit(),
        // callee returns r10 - 8
        Insn::mov64_reg(R0, R10),
        Insn::alu64_imm(BPF_ADD, R0, -8),
        Insn::exit(),
    ];
    let f = fault(exec(&prog));
    assert_eq!(f.pc, 1);
    assert!(f.message.contains("has returned"), "{}", f.message);
}

#[test]
fn the_call_stack_is_at_most_eight_frames() {
    // f(n): if n == 0 return 0; return f(n - 1) + 1
    let rec = |n: i32| {
        [
            Insn::mov64_imm(R1, n),
            local_call(1),
            Insn::exit(),
            Insn::mov64_imm(R0, 0),
            Insn::jmp_imm(BPF_JEQ, R1, 0, 4),
            Insn::alu64_imm(BPF_SUB, R1, 1),
            local_call(-4),
            Insn::alu64_imm(BPF_ADD, R0, 1),
            Insn::exit(),
            Insn::exit(),
        ]
    };
    // main plus seven nested calls fit; the eighth does not.
    assert_eq!(exec(&rec(6)), Ok(6));
    let f = fault(exec(&rec(7)));
    assert_eq!(f.pc, 6);
    assert_eq!(f.message, "the call stack of 9 frames is too deep");
}

#[test]
fn calls_outside_the_function_fault() {
    let f = fault(exec(&[local_call(5), Insn::exit()]));
    assert_eq!(f.message, "call to invalid destination");
    let f = fault(exec(&[
        Insn::new(BPF_JMP | BPF_CALL, 0, 2, 0, 1),
        Insn::exit(),
    ]));
    assert!(f.message.contains("kernel functions"), "{}", f.message);
}
