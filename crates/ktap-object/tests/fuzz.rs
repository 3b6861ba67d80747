//! The decoders on damaged input: every truncation, random byte flips, and random changes to
//! the payload behind a valid checksum (so postcard and the consistency checks see them).
//! Each must end in an error or a consistent value, never a panic.

mod common;

use ktap_bpf::Target;
use ktap_object::{KernelDesc, Object};

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn sample_object(t: Target) -> Vec<u8> {
    let (name, text) = common::samples()
        .into_iter()
        .find(|(n, _)| n.ends_with("opensnoop.kp"))
        .unwrap();
    common::compile(&name, &text, t).encode()
}

/// The container with `raw` as its postcard payload, lengths and checksum made valid.
fn repack(header: &[u8], raw: &[u8]) -> Vec<u8> {
    let z = miniz_oxide::deflate::compress_to_vec_zlib(raw, 1);
    let mut out = header[..16].to_vec();
    out.extend_from_slice(&(z.len() as u32).to_le_bytes());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&z);
    out
}

#[test]
fn truncations_are_errors() {
    let t = Target::by_name("mipsel").unwrap();
    let bytes = sample_object(t);
    for n in 0..bytes.len() {
        let e = Object::decode(&bytes[..n], t).expect_err("a truncated object decoded");
        assert!(!e.to_string().is_empty());
    }
    let d = common::fixture_kernel(t).encode();
    for n in 0..d.len() {
        assert!(KernelDesc::decode(&d[..n]).is_err());
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let t = Target::by_name("powerpc64").unwrap();
    let bytes = sample_object(t);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        let _ = Object::decode(&b, t);
    }
}

#[test]
fn damaged_payloads_never_panic() {
    let t = Target::by_name("x86_64").unwrap();
    let bytes = sample_object(t);
    let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&bytes[24..]).unwrap();
    assert_eq!(Object::decode(&repack(&bytes, &raw), t).map(|_| ()), Ok(()));
    let desc = common::fixture_kernel(t).encode();
    let draw = miniz_oxide::inflate::decompress_to_vec_zlib(&desc[24..]).unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut rejected = 0;
    for round in 0..3000 {
        let (base, header) = if round % 4 == 3 {
            (&draw, &desc)
        } else {
            (&raw, &bytes)
        };
        let mut r = base.clone();
        match rng.below(4) {
            0 => {
                let i = rng.below(r.len());
                r[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(r.len());
                r[i] = 0xff;
            }
            2 => {
                let i = rng.below(r.len());
                r.truncate(i.max(1));
            }
            _ => {
                let i = rng.below(r.len());
                let j = rng.below(r.len());
                r.swap(i, j);
            }
        }
        let packed = repack(header, &r);
        let failed = if round % 4 == 3 {
            KernelDesc::decode(&packed).is_err()
        } else {
            Object::decode(&packed, t).is_err()
        };
        rejected += usize::from(failed);
    }
    // Most damage must be noticed (the rest changes a value into another valid one).
    assert!(
        rejected > 1000,
        "only {rejected} of 3000 damaged payloads were refused"
    );
}
