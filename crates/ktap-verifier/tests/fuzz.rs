//! Bad input never panics the verifier: random and truncated instruction streams, mutated
//! programs and garbage assembly each end in an error that names a place (or are accepted).

use ktap_bpf::insn::{decode_all, Endian, Insn};
use ktap_bpf::Target;
use ktap_verifier::gen::{self, Rng};
use ktap_verifier::{asmfile, verify, Limits, ProgType};

fn limits() -> Limits {
    // A small budget keeps runaway loops in random code cheap; old and new kernels both.
    Limits {
        max_processed: 20_000,
        ..Limits::for_kernel(6, 6)
    }
}

fn check(t: ProgType, insns: &[Insn], maps: &[ktap_bpf::MapDef], limits: &Limits) {
    if let Err(e) = verify(t, insns, maps, limits) {
        assert!(
            e.insn < insns.len().max(1),
            "error at insn {} of {}: {e}",
            e.insn,
            insns.len()
        );
        assert!(!e.message.is_empty());
    }
}

#[test]
fn random_instruction_streams() {
    let mut rng = Rng::new(1);
    let target = Target::host();
    let case = gen::generate(0, &target);
    for round in 0..20_000 {
        let n = 1 + rng.below(40) as usize;
        let bytes: Vec<u8> = (0..n * 8).map(|_| rng.next_u64() as u8).collect();
        let mut insns = decode_all(&bytes, Endian::Little).unwrap();
        // Half the time, plausible opcodes and small registers, so the walk is reached.
        if round % 2 == 0 {
            for i in insns.iter_mut() {
                i.dst %= 11;
                i.src %= 11;
                i.off %= 16;
            }
            if let Some(last) = insns.last_mut() {
                *last = Insn::exit();
            }
        }
        let t = [
            ProgType::Tracepoint,
            ProgType::SocketFilter,
            ProgType::perf_event(&target),
        ][round % 3];
        check(t, &insns, &case.maps, &limits());
        check(t, &insns, &case.maps, &Limits::for_kernel(4, 19));
    }
}

#[test]
fn mutated_and_truncated_programs() {
    let mut rng = Rng::new(2);
    let target = Target::host();
    for seed in 0..3_000 {
        let case = gen::generate(seed, &target);
        let mut insns = case.insns.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(insns.len() as u64) as usize;
            let v = rng.next_u64();
            let i = &mut insns[at];
            match rng.below(5) {
                0 => i.code = v as u8,
                1 => i.dst = (v % 16) as u8,
                2 => i.src = (v % 16) as u8,
                3 => i.off = v as i16,
                _ => i.imm = v as i32,
            }
        }
        check(case.prog_type, &insns, &case.maps, &limits());
        let cut = rng.below(case.insns.len() as u64) as usize;
        check(case.prog_type, &case.insns[..cut], &case.maps, &limits());
        // A program that refers to maps it does not have.
        check(case.prog_type, &case.insns, &[], &limits());
    }
}

#[test]
fn garbage_assembly_is_located() {
    let mut rng = Rng::new(3);
    let pieces = [
        "r1",
        "w2",
        "=",
        "+=",
        "*(u64 *)",
        "(r10 -8)",
        "if",
        "goto",
        "pc+",
        "-1",
        "call",
        "exit",
        "map[",
        "]",
        "ll",
        "0x",
        "; type:",
        "; map 0:",
        "hash",
        "key=",
        "lock",
        "#",
        "\t",
        "ñ",
        "r11",
        "99999999999999999999",
        "(",
        ")",
        "s>>=",
        "be16",
        "raw code=0x",
        "bpf_",
    ];
    let target = Target::host();
    for _ in 0..20_000 {
        let lines = 1 + rng.below(6);
        let mut text = String::new();
        for _ in 0..lines {
            for _ in 0..rng.below(8) {
                text.push_str(rng.pick(&pieces));
                if rng.chance(50) {
                    text.push(' ');
                }
            }
            text.push('\n');
        }
        match asmfile::parse(&text, &target) {
            Ok(p) => check(
                p.prog_type.unwrap_or(ProgType::Tracepoint),
                &p.insns,
                &p.maps,
                &limits(),
            ),
            Err(e) => {
                assert!(e.line >= 1 && e.line <= lines as usize, "{e} in {text:?}");
                assert!(e.col >= 1, "{e}");
            }
        }
    }
}
