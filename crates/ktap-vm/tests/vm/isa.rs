//! Instruction semantics: ALU and ALU32, END, jumps, loads and stores in both byte orders,
//! `ld_imm64` and atomics.

use super::*;

/// `r1 = a; r2 = b; r1 op= r2` (64 or 32 bit, with `off`), returning r1.
fn binop(class: u8, op: u8, off: i16, a: u64, b: u64) -> Result<u64, Fault> {
    exec(&asm(&[
        &ld64(R1, a),
        &ld64(R2, b),
        &[Insn::new(class | op | BPF_X, R1, R2, off, 0)],
        &RET_R1,
    ]))
}

/// `r1 = a; r1 op= imm`, returning r1.
fn immop(class: u8, op: u8, off: i16, a: u64, imm: i32) -> Result<u64, Fault> {
    exec(&asm(&[
        &ld64(R1, a),
        &[Insn::new(class | op | BPF_K, R1, 0, off, imm)],
        &RET_R1,
    ]))
}

#[test]
fn alu64_operations() {
    let cases: &[(u8, u64, u64, u64)] = &[
        (BPF_ADD, u64::MAX, 2, 1),
        (BPF_SUB, 1, 2, u64::MAX),
        (BPF_MUL, 1 << 40, 1 << 30, 0),
        (BPF_MUL, 7, 6, 42),
        (BPF_DIV, 100, 7, 14),
        (BPF_DIV, u64::MAX, 2, u64::MAX / 2),
        (BPF_MOD, 100, 7, 2),
        (BPF_OR, 0xf0, 0x0f, 0xff),
        (BPF_AND, 0xf0f, 0x0ff, 0x00f),
        (BPF_XOR, 0xff, 0x0f, 0xf0),
        (BPF_LSH, 1, 63, 1 << 63),
        (BPF_RSH, 1 << 63, 63, 1),
        (BPF_ARSH, 1 << 63, 63, u64::MAX),
        (BPF_MOV, 5, 9, 9),
    ];
    for &(op, a, b, want) in cases {
        assert_eq!(binop(BPF_ALU64, op, 0, a, b), Ok(want), "op {op:#x} reg");
        if b <= i32::MAX as u64 {
            assert_eq!(
                immop(BPF_ALU64, op, 0, a, b as i32),
                Ok(want),
                "op {op:#x} imm"
            );
        }
    }
    // Immediates are sign-extended to 64 bits, also for the unsigned operations.
    assert_eq!(immop(BPF_ALU64, BPF_ADD, 0, 5, -1), Ok(4));
    assert_eq!(immop(BPF_ALU64, BPF_MOV, 0, 5, -1), Ok(u64::MAX));
    assert_eq!(immop(BPF_ALU64, BPF_DIV, 0, u64::MAX, -1), Ok(1));
    assert_eq!(immop(BPF_ALU64, BPF_AND, 0, u64::MAX, -2), Ok(u64::MAX - 1));
    assert_eq!(immop(BPF_ALU64, BPF_NEG, 0, 5, 0), Ok(5u64.wrapping_neg()));
}

#[test]
fn alu32_operations_zero_extend() {
    let high = 0xdead_beef_0000_0000u64;
    let cases: &[(u8, u64, u64, u64)] = &[
        (BPF_ADD, high | 0xffff_ffff, 2, 1),
        (BPF_SUB, high | 1, 2, 0xffff_ffff),
        (BPF_MUL, high | 0x1_0001, 0x1_0001, 0x0002_0001),
        (BPF_DIV, high | 100, high | 7, 14),
        (BPF_MOD, high | 100, 7, 2),
        (BPF_OR, high, 0x0f, 0x0f),
        (BPF_AND, high | 0xff, u64::MAX, 0xff),
        (BPF_XOR, high | 0xff, 0x0f, 0xf0),
        (BPF_LSH, high | 1, 31, 1 << 31),
        (BPF_RSH, high | 0x8000_0000, 31, 1),
        (BPF_ARSH, high | 0x8000_0000, 31, 0xffff_ffff),
        (BPF_MOV, 5, high | 9, 9),
    ];
    for &(op, a, b, want) in cases {
        assert_eq!(binop(BPF_ALU, op, 0, a, b), Ok(want), "op {op:#x} reg");
        assert_eq!(
            immop(BPF_ALU, op, 0, a, b as u32 as i32),
            Ok(want),
            "op {op:#x} imm"
        );
    }
    assert_eq!(immop(BPF_ALU, BPF_NEG, 0, high | 1, 0), Ok(0xffff_ffff));
    assert_eq!(immop(BPF_ALU, BPF_MOV, 0, 0, -1), Ok(0xffff_ffff));
}

#[test]
fn division_and_modulo_by_zero() {
    let big = 0x1234_5678_9abc_def0;
    for off in [0, 1] {
        assert_eq!(binop(BPF_ALU64, BPF_DIV, off, big, 0), Ok(0));
        assert_eq!(binop(BPF_ALU64, BPF_MOD, off, big, 0), Ok(big));
        assert_eq!(immop(BPF_ALU64, BPF_DIV, off, big, 0), Ok(0));
        assert_eq!(immop(BPF_ALU64, BPF_MOD, off, big, 0), Ok(big));
        // 32 bits: the quotient is 0; the remainder keeps the low half and zeroes the rest.
        assert_eq!(binop(BPF_ALU, BPF_DIV, off, big, 0), Ok(0));
        assert_eq!(binop(BPF_ALU, BPF_MOD, off, big, 0), Ok(0x9abc_def0));
        // Only the low 32 bits of the divisor count: 1 << 32 is a zero divisor for ALU32.
        assert_eq!(binop(BPF_ALU, BPF_MOD, off, big, 1 << 32), Ok(0x9abc_def0));
    }
}

#[test]
fn signed_division_and_modulo() {
    let m7 = (-7i64) as u64;
    assert_eq!(binop(BPF_ALU64, BPF_DIV, 1, m7, 2), Ok((-3i64) as u64));
    assert_eq!(binop(BPF_ALU64, BPF_MOD, 1, m7, 2), Ok((-1i64) as u64));
    assert_eq!(binop(BPF_ALU64, BPF_MOD, 1, 7, (-2i64) as u64), Ok(1));
    assert_eq!(immop(BPF_ALU64, BPF_DIV, 1, m7, -2), Ok(3));
    // Unsigned division of the same bits gives a very different answer.
    assert_eq!(binop(BPF_ALU64, BPF_DIV, 0, m7, 2), Ok(m7 / 2));
    let min = i64::MIN as u64;
    assert_eq!(binop(BPF_ALU64, BPF_DIV, 1, min, u64::MAX), Ok(min));
    assert_eq!(binop(BPF_ALU64, BPF_MOD, 1, min, u64::MAX), Ok(0));

    let m7w = 0xffff_fff9u64;
    assert_eq!(binop(BPF_ALU, BPF_DIV, 1, m7w, 2), Ok(0xffff_fffd));
    assert_eq!(binop(BPF_ALU, BPF_MOD, 1, m7w, 2), Ok(0xffff_ffff));
    assert_eq!(
        immop(BPF_ALU, BPF_DIV, 1, 1 << 63 | 0x8000_0000, -1),
        Ok(0x8000_0000)
    );
    assert_eq!(immop(BPF_ALU, BPF_MOD, 1, 0x8000_0000, -1), Ok(0));
    // Offsets other than 0 and 1 select nothing.
    assert!(binop(BPF_ALU64, BPF_DIV, 2, 1, 1).is_err());
}

#[test]
fn shift_amounts_are_masked() {
    assert_eq!(immop(BPF_ALU64, BPF_LSH, 0, 1, 65), Ok(2));
    assert_eq!(binop(BPF_ALU64, BPF_RSH, 0, 4, 64 + 2), Ok(1));
    assert_eq!(
        binop(BPF_ALU64, BPF_ARSH, 0, (-8i64) as u64, 128 + 1),
        Ok((-4i64) as u64)
    );
    assert_eq!(immop(BPF_ALU, BPF_LSH, 0, 1, 33), Ok(2));
    assert_eq!(binop(BPF_ALU, BPF_RSH, 0, 4, 32 + 2), Ok(1));
    assert_eq!(
        binop(BPF_ALU, BPF_ARSH, 0, 0xffff_fff8, 32 + 1),
        Ok(0xffff_fffc)
    );
}

#[test]
fn sign_extending_moves() {
    let v = 0x1234_5678_9abc_de80u64;
    assert_eq!(
        binop(BPF_ALU64, BPF_MOV, 8, 0, v),
        Ok(0xffff_ffff_ffff_ff80)
    );
    assert_eq!(
        binop(BPF_ALU64, BPF_MOV, 16, 0, v),
        Ok(0xffff_ffff_ffff_de80)
    );
    assert_eq!(
        binop(BPF_ALU64, BPF_MOV, 32, 0, v),
        Ok(0xffff_ffff_9abc_de80)
    );
    assert_eq!(binop(BPF_ALU64, BPF_MOV, 8, 0, 0x7f), Ok(0x7f));
    assert_eq!(binop(BPF_ALU, BPF_MOV, 8, 0, v), Ok(0xffff_ff80));
    assert_eq!(binop(BPF_ALU, BPF_MOV, 16, 0, v), Ok(0xffff_de80));
    for bad in [
        binop(BPF_ALU, BPF_MOV, 32, 0, v),
        binop(BPF_ALU64, BPF_MOV, 4, 0, v),
        immop(BPF_ALU64, BPF_MOV, 8, 0, 1),
    ] {
        assert!(fault(bad).message.starts_with("unknown opcode"));
    }
}

/// `r1 = v; r1 = op r1` with the END instruction `code` and width `bits`.
fn end(endian: Endian, code: u8, bits: i32, v: u64) -> u64 {
    exec_in(
        endian,
        &asm(&[&ld64(R1, v), &[Insn::new(code, R1, 0, 0, bits)], &RET_R1]),
    )
    .unwrap()
}

#[test]
fn byte_swaps_follow_the_target() {
    let v = 0x0102_0304_0506_0708u64;
    let le = BPF_ALU | BPF_END | BPF_TO_LE;
    let be = BPF_ALU | BPF_END | BPF_TO_BE;
    // On a little-endian target, to_le truncates and to_be swaps; on big-endian the reverse.
    assert_eq!(end(Endian::Little, le, 16, v), 0x0708);
    assert_eq!(end(Endian::Little, le, 32, v), 0x0506_0708);
    assert_eq!(end(Endian::Little, le, 64, v), v);
    assert_eq!(end(Endian::Little, be, 16, v), 0x0807);
    assert_eq!(end(Endian::Little, be, 32, v), 0x0807_0605);
    assert_eq!(end(Endian::Little, be, 64, v), 0x0807_0605_0403_0201);
    assert_eq!(end(Endian::Big, be, 16, v), 0x0708);
    assert_eq!(end(Endian::Big, be, 32, v), 0x0506_0708);
    assert_eq!(end(Endian::Big, be, 64, v), v);
    assert_eq!(end(Endian::Big, le, 16, v), 0x0807);
    assert_eq!(end(Endian::Big, le, 64, v), 0x0807_0605_0403_0201);
    // ALU64 bswap swaps whatever the byte order.
    let bswap = BPF_ALU64 | BPF_END | BPF_TO_LE;
    for endian in [Endian::Little, Endian::Big] {
        assert_eq!(end(endian, bswap, 16, v), 0x0807);
        assert_eq!(end(endian, bswap, 32, v), 0x0807_0605);
        assert_eq!(end(endian, bswap, 64, v), 0x0807_0605_0403_0201);
    }
    let bad = exec(&[Insn::new(le, R1, 0, 0, 8), Insn::exit()]);
    assert!(fault(bad).message.starts_with("unknown opcode"));
}

/// Whether `if r1 op r2` (or `op imm`) jumps, in class `class`.
fn jumps(class: u8, op: u8, a: u64, b: Result<u64, i32>) -> bool {
    let cmp = match b {
        Ok(_) => Insn::new(class | op | BPF_X, R1, R2, 2, 0),
        Err(imm) => Insn::new(class | op | BPF_K, R1, 0, 2, imm),
    };
    let r = exec(&asm(&[
        &ld64(R1, a),
        &ld64(R2, b.unwrap_or(0)),
        &[
            cmp,
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
            Insn::mov64_imm(R0, 1),
            Insn::exit(),
        ],
    ]));
    r.unwrap() == 1
}

#[test]
fn conditional_jumps_64() {
    let neg = (-5i64) as u64;
    let cases: &[(u8, u64, u64, bool)] = &[
        (BPF_JEQ, 3, 3, true),
        (BPF_JEQ, 3, 4, false),
        (BPF_JNE, 3, 4, true),
        (BPF_JGT, neg, 3, true),
        (BPF_JGT, 3, 3, false),
        (BPF_JGE, 3, 3, true),
        (BPF_JLT, 3, neg, true),
        (BPF_JLE, 3, 3, true),
        (BPF_JLE, 4, 3, false),
        (BPF_JSET, 0b1010, 0b0100, false),
        (BPF_JSET, 0b1010, 0b0010, true),
        (BPF_JSGT, neg, 3, false),
        (BPF_JSGT, 3, neg, true),
        (BPF_JSGE, neg, neg, true),
        (BPF_JSLT, neg, 3, true),
        (BPF_JSLE, 3, neg, false),
        (BPF_JSLE, neg, neg, true),
    ];
    for &(op, a, b, want) in cases {
        assert_eq!(
            jumps(BPF_JMP, op, a, Ok(b)),
            want,
            "op {op:#x} {a:#x} {b:#x}"
        );
        assert_eq!(
            jumps(BPF_JMP, op, a, Err(b as i32)),
            want,
            "op {op:#x} imm {b:#x}"
        );
    }
}

#[test]
fn conditional_jumps_32_look_at_the_low_half() {
    let a = 0x0000_0001_ffff_fffbu64; // low half is -5
    let b = 0xffff_ffff_0000_0003u64; // low half is 3
    let cases: &[(u8, bool, bool)] = &[
        // (op, 64-bit outcome, 32-bit outcome)
        (BPF_JGT, false, true),
        (BPF_JLT, true, false),
        (BPF_JSGT, true, false),
        (BPF_JSLT, false, true),
        (BPF_JNE, true, true),
        (BPF_JSET, true, true),
    ];
    for &(op, wide, narrow) in cases {
        assert_eq!(jumps(BPF_JMP, op, a, Ok(b)), wide, "jmp {op:#x}");
        assert_eq!(jumps(BPF_JMP32, op, a, Ok(b)), narrow, "jmp32 {op:#x}");
    }
    assert!(jumps(BPF_JMP32, BPF_JEQ, 1 << 32 | 7, Ok(7)));
    assert!(!jumps(BPF_JMP, BPF_JEQ, 1 << 32 | 7, Ok(7)));
    assert!(jumps(BPF_JMP32, BPF_JEQ, 0xdead_0000_ffff_ffff, Err(-1)));
    assert!(jumps(BPF_JMP32, BPF_JSLT, 0xffff_fffe, Err(-1)));
    assert!(jumps(BPF_JMP32, BPF_JGT, 0xffff_fffe, Err(5)));
}

#[test]
fn unconditional_jumps() {
    let prog = [
        Insn::mov64_imm(R0, 1),
        Insn::ja(1),
        Insn::mov64_imm(R0, 2),
        // gotol: JMP32 | JA takes its offset from imm, not off.
        Insn::new(BPF_JMP32 | BPF_JA, 0, 0, 100, 1),
        Insn::mov64_imm(R0, 3),
        Insn::exit(),
    ];
    assert_eq!(exec(&prog), Ok(1));
    // A loop counting down, jumping backwards.
    let prog = [
        Insn::mov64_imm(R1, 10),
        Insn::mov64_imm(R0, 0),
        Insn::alu64_imm(BPF_ADD, R0, 3),
        Insn::alu64_imm(BPF_SUB, R1, 1),
        Insn::jmp_imm(BPF_JNE, R1, 0, -3),
        Insn::exit(),
    ];
    assert_eq!(exec(&prog), Ok(30));
}

#[test]
fn stores_and_loads_of_every_size_in_both_orders() {
    let v = 0x0102_0304_0506_0708u64;
    for endian in [Endian::Little, Endian::Big] {
        // Store 8 bytes, read back each byte and each smaller width from the same address.
        let read = |size: u8, off: i16| {
            exec_in(
                endian,
                &asm(&[
                    &ld64(R1, v),
                    &[
                        Insn::stx(BPF_DW, R10, -8, R1),
                        Insn::ldx(size, R0, R10, off),
                        Insn::exit(),
                    ],
                ]),
            )
            .unwrap()
        };
        let bytes: Vec<u64> = (0..8).map(|i| read(BPF_B, -8 + i)).collect();
        let want: Vec<u64> = match endian {
            Endian::Little => vec![8, 7, 6, 5, 4, 3, 2, 1],
            Endian::Big => vec![1, 2, 3, 4, 5, 6, 7, 8],
        };
        assert_eq!(bytes, want, "{endian:?}");
        let (h, w) = match endian {
            Endian::Little => (0x0708, 0x0506_0708),
            Endian::Big => (0x0102, 0x0102_0304),
        };
        assert_eq!(read(BPF_H, -8), h);
        assert_eq!(read(BPF_W, -8), w);
        assert_eq!(read(BPF_DW, -8), v);

        // Narrow stores write only their bytes, in the target's order.
        let prog = asm(&[
            &ld64(R1, u64::MAX),
            &[
                Insn::stx(BPF_DW, R10, -8, R1),
                Insn::mov64_imm(R2, 0x1122_3344),
                Insn::stx(BPF_H, R10, -8, R2),
                Insn::st(BPF_B, R10, -1, 0x55),
                Insn::ldx(BPF_DW, R0, R10, -8),
                Insn::exit(),
            ],
        ]);
        let want = match endian {
            Endian::Little => 0x55ff_ffff_ffff_3344,
            Endian::Big => 0x3344_ffff_ffff_ff55,
        };
        assert_eq!(exec_in(endian, &prog), Ok(want), "{endian:?}");
    }
    // ST DW stores the sign-extended immediate; ST W its 32 bits.
    let prog = [
        Insn::st(BPF_DW, R10, -8, -2),
        Insn::ldx(BPF_DW, R0, R10, -8),
        Insn::exit(),
    ];
    assert_eq!(exec(&prog), Ok((-2i64) as u64));
    let prog = [
        Insn::st(BPF_DW, R10, -8, -1),
        Insn::st(BPF_W, R10, -8, 0),
        Insn::ldx(BPF_DW, R0, R10, -8),
        Insn::exit(),
    ];
    assert_eq!(exec(&prog), Ok(0xffff_ffff_0000_0000));
}

#[test]
fn sign_extending_loads() {
    let ldsx = |size: u8| Insn::new(BPF_LDX | BPF_MEMSX | size, R0, R10, -8, 0);
    for (size, want) in [
        (BPF_B, 0xffff_ffff_ffff_ff88u64),
        (BPF_H, 0xffff_ffff_ffff_8788),
        (BPF_W, 0xffff_ffff_8586_8788),
    ] {
        let prog = asm(&[
            &ld64(R1, 0x8182_8384_8586_8788),
            &[Insn::stx(BPF_DW, R10, -8, R1), ldsx(size), Insn::exit()],
        ]);
        assert_eq!(exec(&prog), Ok(want));
    }
    let bad = exec(&[ldsx(BPF_DW), Insn::exit()]);
    assert!(fault(bad).message.starts_with("unknown opcode"));
}

#[test]
fn context_loads_follow_the_byte_order() {
    let mut ctx = [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    let prog = func(&[Insn::ldx(BPF_W, R0, R1, 4), Insn::exit()]);
    let mut host = MemHost::new(&[], Endian::Little);
    let le = RunEnv::new(&[], Endian::Little);
    let be = RunEnv::new(&[], Endian::Big);
    assert_eq!(run(&prog, &mut ctx, &le, &mut host), Ok(0x8877_6655));
    assert_eq!(run(&prog, &mut ctx, &be, &mut host), Ok(0x5566_7788));
}

#[test]
fn context_is_read_only_unless_the_environment_says_otherwise() {
    let mut ctx = [0u8; 8];
    let prog = func(&[
        Insn::st(BPF_W, R1, 0, 7),
        Insn::ldx(BPF_W, R0, R1, 0),
        Insn::exit(),
    ]);
    let mut host = MemHost::new(&[], Endian::Little);
    let mut env = RunEnv::new(&[], Endian::Little);
    let f = fault(run(&prog, &mut ctx, &env, &mut host));
    assert_eq!(f.pc, 0);
    assert!(f.message.contains("read-only"), "{}", f.message);
    env.ctx_writable = true;
    assert_eq!(run(&prog, &mut ctx, &env, &mut host), Ok(7));
    assert_eq!(ctx[0], 7);
}

#[test]
fn ld_imm64_loads_all_64_bits() {
    let prog = asm(&[&ld64(R0, 0x8000_0001_ffff_fffe), &[Insn::exit()]]);
    assert_eq!(exec(&prog), Ok(0x8000_0001_ffff_fffe));
}

/// Stores `init` at r10-8, runs the atomic `insn` (dst r10, off -8, src r1 = `src`, r0 =
/// `r0`), and returns (memory, r0, r1) afterwards.
fn atomic(size: u8, imm: i32, init: u64, src: u64, r0: u64) -> (u64, u64, u64) {
    let mut host = MemHost::new(&[], Endian::Little);
    let insn = Insn::new(BPF_STX | BPF_ATOMIC | size, R10, R1, -8, imm);
    let mut out = [0u64; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let result = [
            Insn::ldx(BPF_DW, R0, R10, -8),
            Insn::mov64_reg(R0, R0),
            Insn::mov64_reg(R0, R1),
        ][i];
        let prog = asm(&[
            &ld64(R2, init),
            &[Insn::stx(BPF_DW, R10, -8, R2)],
            &ld64(R1, src),
            &ld64(R0, r0),
            &[insn, result, Insn::exit()],
        ]);
        *slot = run(
            &func(&prog),
            &mut [],
            &RunEnv::new(&[], Endian::Little),
            &mut host,
        )
        .unwrap();
    }
    (out[0], out[1], out[2])
}

#[test]
fn atomic_operations() {
    let f = BPF_FETCH;
    let (add, or, and, xor) = (
        BPF_ADD as i32,
        BPF_OR as i32,
        BPF_AND as i32,
        BPF_XOR as i32,
    );
    // 64 bits without fetch: memory changes, src stays.
    assert_eq!(atomic(BPF_DW, add, 40, 2, 0), (42, 0, 2));
    assert_eq!(atomic(BPF_DW, or, 0xf0, 0x0f, 0), (0xff, 0, 0x0f));
    assert_eq!(atomic(BPF_DW, and, 0xf0, 0x3c, 0), (0x30, 0, 0x3c));
    assert_eq!(atomic(BPF_DW, xor, 0xf0, 0xff, 0), (0x0f, 0, 0xff));
    // With fetch, src receives the old value.
    assert_eq!(atomic(BPF_DW, add | f, 40, 2, 0), (42, 0, 40));
    assert_eq!(atomic(BPF_DW, or | f, 0xf0, 0x0f, 0), (0xff, 0, 0xf0));
    assert_eq!(atomic(BPF_DW, and | f, 0xf0, 0x3c, 0), (0x30, 0, 0xf0));
    assert_eq!(atomic(BPF_DW, xor | f, 0xf0, 0xff, 0), (0x0f, 0, 0xf0));
    assert_eq!(atomic(BPF_DW, BPF_XCHG, 1, 2, 0), (2, 0, 1));
    // CMPXCHG compares with r0 and always leaves the old value in r0.
    assert_eq!(atomic(BPF_DW, BPF_CMPXCHG, 5, 9, 5), (9, 5, 9));
    assert_eq!(atomic(BPF_DW, BPF_CMPXCHG, 5, 9, 6), (5, 5, 9));

    // 32 bits touch the low word only (little endian: the first four bytes) and zero-extend
    // what they fetch.
    let hi = 0xaaaa_aaaa_0000_0000u64;
    assert_eq!(atomic(BPF_W, add, hi | 0xffff_ffff, 1, 0), (hi, 0, 1));
    assert_eq!(
        atomic(BPF_W, add | f, hi | 0xffff_ffff, 1, 0),
        (hi, 0, 0xffff_ffff)
    );
    assert_eq!(
        atomic(BPF_W, BPF_XCHG, hi | 7, 0xdead_0000_0000_0008, 0),
        (hi | 8, 0, 7)
    );
    // The comparison looks at r0's low half only.
    assert_eq!(
        atomic(BPF_W, BPF_CMPXCHG, hi | 5, 9, 0xffff_0000_0000_0005),
        (hi | 9, 5, 9)
    );
    assert_eq!(atomic(BPF_W, BPF_CMPXCHG, hi | 5, 9, 6), (hi | 5, 5, 9));
}

#[test]
fn invalid_atomics_fault() {
    for (size, imm) in [(BPF_DW, 0x10), (BPF_DW, 0x141), (BPF_W, 0xe0)] {
        let f = fault(exec(&[
            Insn::new(BPF_STX | BPF_ATOMIC | size, R10, R1, -8, imm),
            Insn::exit(),
        ]));
        assert!(f.message.contains("invalid atomic opcode"), "{}", f.message);
    }
    let f = fault(exec(&[
        Insn::new(BPF_STX | BPF_ATOMIC | BPF_B, R10, R1, -8, 0),
        Insn::exit(),
    ]));
    assert!(f.message.starts_with("unknown opcode"));
}
