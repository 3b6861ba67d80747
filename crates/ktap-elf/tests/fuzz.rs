//! Mutation fuzzing: every truncation and thousands of random corruptions of real ELF files
//! (the per-target SDT fixtures, both classes and byte orders) go through every reading API.
//! Errors are fine; a panic, a hang or an allocation the input's size cannot justify is not.

use ktap_elf::Elf;
use std::path::Path;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs every reader over `data`; the results do not matter, only that they come back.
fn exercise(data: &[u8]) {
    let Ok(elf) = Elf::parse(data) else {
        return;
    };
    let _ = elf.symbols();
    if let Ok(funcs) = elf.functions() {
        for f in funcs.iter().take(8) {
            let _ = funcs.at(f.addr.wrapping_add(1));
            let _ = elf.file_offset(f.probe_addr());
            let _ = funcs.find(f.name);
        }
        let _ = funcs.find("work@@V1");
    }
    let _ = elf.find_function("wrok");
    let _ = elf.uprobe_offset("work");
    let _ = elf.sdt_notes();
    let _ = elf.find_sdt("demo:thre");
    for s in &elf.sections {
        let _ = elf.section_data(s);
    }
    let _ = elf.vaddr_of_offset(0x100);
    let _ = elf.is_code(elf.entry);
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "elf"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 9, "{}", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn every_truncation() {
    for data in fixtures() {
        for len in 0..data.len() {
            exercise(&data[..len]);
        }
    }
}

#[test]
fn random_corruptions() {
    let mut rng = Rng(0x6b74_6170_656c_6621);
    for data in fixtures() {
        for _ in 0..1500 {
            let mut d = data.clone();
            for _ in 0..1 + rng.below(8) {
                // Half the hits go to the headers, where one byte changes the most.
                let at = if rng.below(2) == 0 {
                    rng.below(d.len().min(0x40))
                } else {
                    rng.below(d.len())
                };
                d[at] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
            }
            exercise(&d);
        }
    }
}

#[test]
fn random_bytes_behind_a_valid_ident() {
    let mut rng = Rng(42);
    for class in [1u8, 2] {
        for order in [1u8, 2] {
            for _ in 0..2000 {
                let len = 16 + rng.below(600);
                let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                d[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', class, order]);
                exercise(&d);
            }
        }
    }
}
