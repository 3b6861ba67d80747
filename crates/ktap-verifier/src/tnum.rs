//! Tristate numbers: what is known about each bit of a 64-bit value (known 0, known 1, or
//! unknown), the bit-level half of the scalar domain next to the range bounds.
//!
//! `value` holds the known bits, `mask` the unknown ones; a bit is never set in both.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tnum {
    pub value: u64,
    pub mask: u64,
}

impl Tnum {
    /// Nothing known.
    pub const UNKNOWN: Tnum = Tnum {
        value: 0,
        mask: u64::MAX,
    };

    /// Every bit known: the constant `v`.
    pub const fn known(v: u64) -> Tnum {
        Tnum { value: v, mask: 0 }
    }

    /// The smallest tnum holding every value from `min` to `max` (unsigned): the bits above the
    /// highest bit where the two differ are shared by the whole range.
    pub fn range(min: u64, max: u64) -> Tnum {
        let differ = min ^ max;
        let bits = 64 - differ.leading_zeros();
        if bits >= 64 {
            return Tnum::UNKNOWN;
        }
        let low = (1u64 << bits) - 1;
        Tnum {
            value: min & !low,
            mask: low,
        }
    }

    pub const fn is_const(self) -> bool {
        self.mask == 0
    }

    /// The smallest value the tnum allows and the largest.
    pub const fn min(self) -> u64 {
        self.value
    }
    pub const fn max(self) -> u64 {
        self.value | self.mask
    }

    /// True when every value `other` allows, this one allows too.
    pub const fn contains(self, other: Tnum) -> bool {
        other.mask & !self.mask == 0 && other.value & !self.mask == self.value
    }

    /// The values both allow; callers only intersect descriptions of the same value, so the
    /// result is never empty.
    pub const fn intersect(self, other: Tnum) -> Tnum {
        let value = self.value | other.value;
        let mask = self.mask & other.mask;
        Tnum {
            value: value & !mask,
            mask,
        }
    }

    /// Addition: the unknown bits of either side, and every bit a carry from them may reach.
    pub const fn add(self, other: Tnum) -> Tnum {
        let masks = self.mask.wrapping_add(other.mask);
        let values = self.value.wrapping_add(other.value);
        let carries = masks.wrapping_add(values) ^ values;
        let mask = carries | self.mask | other.mask;
        Tnum {
            value: values & !mask,
            mask,
        }
    }

    /// Subtraction: as addition, with borrows.
    pub const fn sub(self, other: Tnum) -> Tnum {
        let diff = self.value.wrapping_sub(other.value);
        let high = diff.wrapping_add(self.mask);
        let low = diff.wrapping_sub(other.mask);
        let mask = (high ^ low) | self.mask | other.mask;
        Tnum {
            value: diff & !mask,
            mask,
        }
    }

    pub const fn and(self, other: Tnum) -> Tnum {
        let maybe_a = self.value | self.mask;
        let maybe_b = other.value | other.mask;
        let value = self.value & other.value;
        Tnum {
            value,
            mask: maybe_a & maybe_b & !value,
        }
    }

    pub const fn or(self, other: Tnum) -> Tnum {
        let value = self.value | other.value;
        let mask = self.mask | other.mask;
        Tnum {
            value,
            mask: mask & !value,
        }
    }

    pub const fn xor(self, other: Tnum) -> Tnum {
        let mask = self.mask | other.mask;
        Tnum {
            value: (self.value ^ other.value) & !mask,
            mask,
        }
    }

    /// Multiplication, by long multiplication over the bits of `self` (the method of
    /// Vishwanathan et al., "Sound, precise, and fast abstract interpretation with tristate
    /// numbers", which the kernel uses too): the known products exactly, and for each bit of
    /// `self` that is 1 or unknown, the bits of `other` it may add.
    pub fn mul(self, other: Tnum) -> Tnum {
        let known = self.value.wrapping_mul(other.value);
        let mut unknown = Tnum::known(0);
        let (mut a, mut b) = (self, other);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 == 1 {
                unknown = unknown.add(Tnum {
                    value: 0,
                    mask: b.mask,
                });
            } else if a.mask & 1 == 1 {
                unknown = unknown.add(Tnum {
                    value: 0,
                    mask: b.value | b.mask,
                });
            }
            a = a.shr(1);
            b = b.shl(1);
        }
        Tnum::known(known).add(unknown)
    }

    /// Shifts by a constant below 64.
    pub const fn shl(self, s: u32) -> Tnum {
        Tnum {
            value: self.value << s,
            mask: self.mask << s,
        }
    }
    pub const fn shr(self, s: u32) -> Tnum {
        Tnum {
            value: self.value >> s,
            mask: self.mask >> s,
        }
    }
    /// Arithmetic shift: an unknown sign bit makes every bit it reaches unknown.
    pub const fn sar(self, s: u32) -> Tnum {
        Tnum {
            value: ((self.value as i64) >> s) as u64,
            mask: ((self.mask as i64) >> s) as u64,
        }
    }

    /// The low 32 bits, zero-extended.
    pub const fn low32(self) -> Tnum {
        Tnum {
            value: self.value as u32 as u64,
            mask: self.mask as u32 as u64,
        }
    }

    /// The low `bytes` bytes, zero-extended (a narrow load or a truncation).
    pub const fn truncate(self, bytes: u32) -> Tnum {
        if bytes >= 8 {
            return self;
        }
        let keep = (1u64 << (bytes * 8)) - 1;
        Tnum {
            value: self.value & keep,
            mask: self.mask & keep,
        }
    }

    /// True when every value the tnum allows is a multiple of `size` (a power of two).
    pub const fn is_aligned(self, size: u64) -> bool {
        (self.value | self.mask) & (size - 1) == 0
    }
}

/// The kernel's rendering, `(0x0; 0xff)`: value, then mask.
impl fmt::Display for Tnum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:#x}; {:#x})", self.value, self.mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation is checked against every pair of members of two small tnums: the result
    /// must hold every concrete result.
    #[test]
    fn operations_hold_every_concrete_result() {
        let samples = [
            Tnum::known(0),
            Tnum::known(5),
            Tnum::known(u64::MAX),
            Tnum::range(0, 7),
            Tnum::range(16, 31),
            Tnum {
                value: 0x10,
                mask: 0x5,
            },
            Tnum {
                value: 1 << 63,
                mask: 0x3,
            },
        ];
        let members = |t: Tnum| -> Vec<u64> {
            // Enumerate the (few) unknown bits of the samples above.
            let bits: Vec<u32> = (0..64).filter(|b| t.mask >> b & 1 == 1).collect();
            (0..1u64 << bits.len())
                .map(|n| {
                    bits.iter()
                        .enumerate()
                        .fold(t.value, |v, (i, b)| v | ((n >> i) & 1) << b)
                })
                .collect()
        };
        for a in samples {
            for b in samples {
                for x in members(a) {
                    for y in members(b) {
                        assert!(a.add(b).contains(Tnum::known(x.wrapping_add(y))));
                        assert!(a.sub(b).contains(Tnum::known(x.wrapping_sub(y))));
                        assert!(a.and(b).contains(Tnum::known(x & y)));
                        assert!(a.or(b).contains(Tnum::known(x | y)));
                        assert!(a.xor(b).contains(Tnum::known(x ^ y)));
                        assert!(a.mul(b).contains(Tnum::known(x.wrapping_mul(y))));
                    }
                    assert!(a.shl(3).contains(Tnum::known(x << 3)));
                    assert!(a.shr(3).contains(Tnum::known(x >> 3)));
                    assert!(a.sar(3).contains(Tnum::known(((x as i64) >> 3) as u64)));
                    assert!(a.low32().contains(Tnum::known(x as u32 as u64)));
                }
            }
        }
    }

    #[test]
    fn ranges_and_containment() {
        assert_eq!(
            Tnum::range(0, 255),
            Tnum {
                value: 0,
                mask: 255
            }
        );
        assert_eq!(Tnum::range(4, 4), Tnum::known(4));
        assert_eq!(Tnum::range(0, u64::MAX), Tnum::UNKNOWN);
        assert!(Tnum::UNKNOWN.contains(Tnum::known(9)));
        assert!(!Tnum::known(9).contains(Tnum::UNKNOWN));
        assert!(Tnum::range(0, 7).is_aligned(1));
        assert!(Tnum::known(16).is_aligned(8));
        assert_eq!(Tnum::range(0, 255).to_string(), "(0x0; 0xff)");
    }
}
