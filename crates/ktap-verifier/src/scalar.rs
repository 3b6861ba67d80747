//! Scalars: what is known about a number, as the kernel tracks it: a tnum for the bits and
//! signed and unsigned bounds for the whole 64 bits and for the low 32.
//!
//! Every operation here is sound (the result holds every value the operation can produce) and
//! deliberately no more precise than the kernels ktap targets: an operation Linux 6.1 does not
//! track gives an unknown result here too. The reason is the verifier's promise. Where this
//! verifier knew more than the kernel, it could decide that a branch is never taken, skip it,
//! and accept a program the kernel rejects in that branch; knowing less only ever rejects more.

use crate::tnum::Tnum;
use ktap_bpf::insn::*;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scalar {
    pub var: Tnum,
    pub umin: u64,
    pub umax: u64,
    pub smin: i64,
    pub smax: i64,
    pub u32min: u32,
    pub u32max: u32,
    pub s32min: i32,
    pub s32max: i32,
}

const LOW32: u64 = 0xffff_ffff;

impl Scalar {
    pub const UNKNOWN: Scalar = Scalar {
        var: Tnum::UNKNOWN,
        umin: 0,
        umax: u64::MAX,
        smin: i64::MIN,
        smax: i64::MAX,
        u32min: 0,
        u32max: u32::MAX,
        s32min: i32::MIN,
        s32max: i32::MAX,
    };

    pub fn known(v: u64) -> Scalar {
        Scalar {
            var: Tnum::known(v),
            umin: v,
            umax: v,
            smin: v as i64,
            smax: v as i64,
            u32min: v as u32,
            u32max: v as u32,
            s32min: v as u32 as i32,
            s32max: v as u32 as i32,
        }
    }

    /// The constant value, when every bit is known.
    pub fn value(&self) -> Option<u64> {
        self.var.is_const().then_some(self.var.value)
    }

    /// The constant low 32 bits, when they are known.
    pub fn value32(&self) -> Option<u32> {
        (self.var.mask as u32 == 0).then_some(self.var.value as u32)
    }

    /// Anything that fits in `bytes` bytes, zero-extended: what a narrow load gives.
    pub fn unknown_bytes(bytes: u32) -> Scalar {
        Scalar::UNKNOWN.truncate(bytes)
    }

    /// Anything a sign-extending load of `bytes` bytes gives.
    pub fn unknown_signed(bytes: u32) -> Scalar {
        let bits = bytes * 8;
        let half = 1i64 << (bits - 1);
        Scalar {
            smin: -half,
            smax: half - 1,
            ..Scalar::UNKNOWN
        }
        .synced()
    }

    /// The low `bytes` bytes of the value, zero-extended.
    pub fn truncate(self, bytes: u32) -> Scalar {
        if bytes >= 8 {
            return self;
        }
        let limit = (1u64 << (bytes * 8)) - 1;
        let var = self.var.truncate(bytes);
        let (umin, umax) = if self.umax <= limit {
            (self.umin, self.umax)
        } else if bytes == 4 {
            (u64::from(self.u32min), u64::from(self.u32max))
        } else {
            (0, limit)
        };
        Scalar {
            var,
            umin,
            umax,
            ..Scalar::UNKNOWN
        }
        .synced()
    }

    /// The low 32 bits as a 64-bit value: what a 32-bit operation reads of its operand.
    pub fn low32(self) -> Scalar {
        Scalar {
            var: self.var.low32(),
            umin: u64::from(self.u32min),
            umax: u64::from(self.u32max),
            ..Scalar::UNKNOWN
        }
        .synced()
    }

    /// The low 32 bits, sign-extended (for the 32-bit arithmetic shift).
    fn sext32(self) -> Scalar {
        let ext = |x: u64| x as u32 as i32 as i64 as u64;
        Scalar {
            var: Tnum {
                value: ext(self.var.value) & !ext(self.var.mask),
                mask: ext(self.var.mask),
            },
            smin: i64::from(self.s32min),
            smax: i64::from(self.s32max),
            ..Scalar::UNKNOWN
        }
        .synced()
    }

    /// True when every value `other` allows, this one allows too (used to prune a path whose
    /// state is covered by one already proven safe).
    pub fn contains(&self, other: &Scalar) -> bool {
        self.umin <= other.umin
            && other.umax <= self.umax
            && self.smin <= other.smin
            && other.smax <= self.smax
            && self.u32min <= other.u32min
            && other.u32max <= self.u32max
            && self.s32min <= other.s32min
            && other.s32max <= self.s32max
            && self.var.contains(other.var)
    }

    /// The description with every bound tightened by the others; `None` when they contradict
    /// each other (no value fits).
    pub fn sync(mut self) -> Option<Scalar> {
        for _ in 0..2 {
            self.bounds_from_tnum();
            self.deduce();
            self.cross_widths();
            self.tnum_from_bounds();
        }
        let ok = self.umin <= self.umax
            && self.smin <= self.smax
            && self.u32min <= self.u32max
            && self.s32min <= self.s32max
            && self.var.value & self.var.mask == 0
            && self.var.min() <= self.umax
            && self.var.max() >= self.umin;
        ok.then_some(self)
    }

    /// [`Scalar::sync`] for descriptions of real values, which cannot contradict themselves; a
    /// contradiction could only come from a bug, and then nothing is assumed.
    fn synced(self) -> Scalar {
        self.sync().unwrap_or(Scalar::UNKNOWN)
    }

    fn bounds_from_tnum(&mut self) {
        const SIGN: u64 = 1 << 63;
        let t = self.var;
        self.umin = self.umin.max(t.min());
        self.umax = self.umax.min(t.max());
        self.smin = self.smin.max((t.value | (t.mask & SIGN)) as i64);
        self.smax = self.smax.min((t.value | (t.mask & !SIGN)) as i64);
        const SIGN32: u32 = 1 << 31;
        let (v, m) = (t.value as u32, t.mask as u32);
        self.u32min = self.u32min.max(v);
        self.u32max = self.u32max.min(v | m);
        self.s32min = self.s32min.max((v | (m & SIGN32)) as i32);
        self.s32max = self.s32max.min((v | (m & !SIGN32)) as i32);
    }

    /// Signed and unsigned bounds of the same width agree wherever a range does not cross the
    /// sign boundary.
    fn deduce(&mut self) {
        if (self.s32min as u32) <= (self.s32max as u32) {
            self.u32min = self.u32min.max(self.s32min as u32);
            self.u32max = self.u32max.min(self.s32max as u32);
        }
        if (self.u32min as i32) <= (self.u32max as i32) {
            self.s32min = self.s32min.max(self.u32min as i32);
            self.s32max = self.s32max.min(self.u32max as i32);
        }
        if (self.smin as u64) <= (self.smax as u64) {
            self.umin = self.umin.max(self.smin as u64);
            self.umax = self.umax.min(self.smax as u64);
        }
        if (self.umin as i64) <= (self.umax as i64) {
            self.smin = self.smin.max(self.umin as i64);
            self.smax = self.smax.min(self.umax as i64);
        }
    }

    /// The 64-bit bounds pin the low 32 bits when the whole range lies in one 2^32 block, and
    /// the low 32 bits' bounds then narrow the 64-bit ones inside that block.
    fn cross_widths(&mut self) {
        // A value within the signed 32-bit range is the sign extension of its low 32 bits, so
        // the two signed ranges are one.
        if self.smin >= i64::from(i32::MIN) && self.smax <= i64::from(i32::MAX) {
            self.s32min = self.s32min.max(self.smin as i32);
            self.s32max = self.s32max.min(self.smax as i32);
            self.smin = self.smin.max(i64::from(self.s32min));
            self.smax = self.smax.min(i64::from(self.s32max));
        }
        if self.umin >> 32 == self.umax >> 32 {
            let (lo, hi) = (self.umin as u32, self.umax as u32);
            self.u32min = self.u32min.max(lo);
            self.u32max = self.u32max.min(hi);
            if (lo as i32) <= (hi as i32) {
                self.s32min = self.s32min.max(lo as i32);
                self.s32max = self.s32max.min(hi as i32);
            }
            let block = self.umin & !LOW32;
            self.umin = self.umin.max(block | u64::from(self.u32min));
            self.umax = self.umax.min(block | u64::from(self.u32max));
        }
        if self.smin >> 32 == self.smax >> 32 {
            let (lo, hi) = (self.smin as u32, self.smax as u32);
            self.u32min = self.u32min.max(lo);
            self.u32max = self.u32max.min(hi);
            if (lo as i32) <= (hi as i32) {
                self.s32min = self.s32min.max(lo as i32);
                self.s32max = self.s32max.min(hi as i32);
            }
            let block = (self.smin as u64) & !LOW32;
            self.smin = self.smin.max((block | u64::from(self.u32min)) as i64);
            self.smax = self.smax.min((block | u64::from(self.u32max)) as i64);
        }
    }

    fn tnum_from_bounds(&mut self) {
        if self.umin <= self.umax {
            self.var = self.var.intersect(Tnum::range(self.umin, self.umax));
        }
        if self.u32min <= self.u32max {
            let low = Tnum::range(u64::from(self.u32min), u64::from(self.u32max));
            self.var = self.var.intersect(Tnum {
                value: low.value,
                mask: low.mask | !LOW32,
            });
        }
    }

    /// `self op= src` for an ALU operation (not `BPF_NEG` or `BPF_END`), 64-bit or 32-bit.
    pub fn alu(self, op: u8, src: Scalar, wide: bool) -> Scalar {
        if wide {
            return op64(self, src, op, src.value().is_some(), 64).unwrap_or(Scalar::UNKNOWN);
        }
        let dst = if op == BPF_ARSH {
            self.sext32()
        } else {
            self.low32()
        };
        // What the kernel does not track is unknown in all 64 bits, even for a 32-bit
        // operation, whose result is in fact zero-extended: Linux 6.18 does not extend it.
        // Linux 6.1 multiplies 32-bit ranges only below 2^16, and keeps only the bits above.
        let src32 = src.low32();
        let narrow_mul = op == BPF_MUL && dst.umax <= 0xffff && src32.umax <= 0xffff;
        match op64(dst, src32, op, src.value32().is_some(), 32) {
            // Where the 32-bit operation may wrap around, the kernel keeps only the bits.
            Some(r) if r.umax > u64::from(u32::MAX) || (op == BPF_MUL && !narrow_mul) => Scalar {
                var: r.var.low32(),
                umin: 0,
                umax: u64::from(u32::MAX),
                ..Scalar::UNKNOWN
            }
            .synced(),
            Some(r) => r,
            None => Scalar::UNKNOWN,
        }
    }

    /// Whether `self op c` holds for every value (`Some(true)`), for none (`Some(false)`), or
    /// depends on the value. `c` is the 64-bit constant, or for `jmp32` its low 32 bits.
    pub fn branch(&self, op: u8, c: u64, jmp32: bool) -> Option<bool> {
        if jmp32 {
            let c = c as u32;
            let sc = c as i32;
            let (umin, umax, smin, smax) = (self.u32min, self.u32max, self.s32min, self.s32max);
            let value = self.value32();
            let var = self.var.low32();
            return decide(
                op,
                value.map(u64::from),
                u64::from(c),
                i64::from(sc),
                var,
                (u64::from(umin), u64::from(umax)),
                (i64::from(smin), i64::from(smax)),
            );
        }
        decide(
            op,
            self.value(),
            c,
            c as i64,
            self.var,
            (self.umin, self.umax),
            (self.smin, self.smax),
        )
    }

    /// The description on the path where `self op c` is `taken` (or not). A refinement that
    /// leaves no value (a branch the bounds cannot rule out but the tnum can) keeps the
    /// description as it was, which is sound.
    pub fn refine(&self, op: u8, c: u64, jmp32: bool, taken: bool) -> Scalar {
        let op = if taken { op } else { negate(op) };
        let mut s = *self;
        if jmp32 {
            let c = c as u32;
            let sc = c as i32;
            match op {
                BPF_JEQ => {
                    s.u32min = c;
                    s.u32max = c;
                    s.var = s.var.intersect(Tnum {
                        value: u64::from(c),
                        mask: !LOW32,
                    });
                }
                BPF_JGT if c < u32::MAX => s.u32min = s.u32min.max(c + 1),
                BPF_JGE => s.u32min = s.u32min.max(c),
                BPF_JLT if c > 0 => s.u32max = s.u32max.min(c - 1),
                BPF_JLE => s.u32max = s.u32max.min(c),
                BPF_JSGT if sc < i32::MAX => s.s32min = s.s32min.max(sc + 1),
                BPF_JSGE => s.s32min = s.s32min.max(sc),
                BPF_JSLT if sc > i32::MIN => s.s32max = s.s32max.min(sc - 1),
                BPF_JSLE => s.s32max = s.s32max.min(sc),
                JSET_TAKEN if c.is_power_of_two() => s.var = s.var.or(Tnum::known(u64::from(c))),
                JSET_NOT_TAKEN => s.var = s.var.and(Tnum::known(!u64::from(c))),
                _ => return s,
            }
        } else {
            let sc = c as i64;
            match op {
                BPF_JEQ => s = Scalar::known(c),
                BPF_JGT if c < u64::MAX => s.umin = s.umin.max(c + 1),
                BPF_JGE => s.umin = s.umin.max(c),
                BPF_JLT if c > 0 => s.umax = s.umax.min(c - 1),
                BPF_JLE => s.umax = s.umax.min(c),
                BPF_JSGT if sc < i64::MAX => s.smin = s.smin.max(sc + 1),
                BPF_JSGE => s.smin = s.smin.max(sc),
                BPF_JSLT if sc > i64::MIN => s.smax = s.smax.min(sc - 1),
                BPF_JSLE => s.smax = s.smax.min(sc),
                JSET_TAKEN if c.is_power_of_two() => s.var = s.var.or(Tnum::known(c)),
                JSET_NOT_TAKEN => s.var = s.var.and(Tnum::known(!c)),
                _ => return s,
            }
            if op == BPF_JEQ && !self.contains(&s) {
                return *self;
            }
        }
        if !self.var.contains(s.var) {
            return *self;
        }
        s.sync().unwrap_or(*self)
    }
}

/// `BPF_JSET` stands for the taken branch; the not-taken one needs a code of its own, which
/// no instruction uses.
const JSET_TAKEN: u8 = BPF_JSET;
const JSET_NOT_TAKEN: u8 = 0xf0;

/// The comparison that holds on the other branch.
fn negate(op: u8) -> u8 {
    match op {
        BPF_JEQ => BPF_JNE,
        BPF_JNE => BPF_JEQ,
        BPF_JGT => BPF_JLE,
        BPF_JLE => BPF_JGT,
        BPF_JGE => BPF_JLT,
        BPF_JLT => BPF_JGE,
        BPF_JSGT => BPF_JSLE,
        BPF_JSLE => BPF_JSGT,
        BPF_JSGE => BPF_JSLT,
        BPF_JSLT => BPF_JSGE,
        BPF_JSET => JSET_NOT_TAKEN,
        other => other,
    }
}

fn decide(
    op: u8,
    value: Option<u64>,
    c: u64,
    sc: i64,
    var: Tnum,
    (umin, umax): (u64, u64),
    (smin, smax): (i64, i64),
) -> Option<bool> {
    match op {
        BPF_JEQ | BPF_JNE => {
            let eq = match value {
                Some(v) => Some(v == c),
                None if c < umin || c > umax || sc < smin || sc > smax => Some(false),
                None => None,
            };
            if op == BPF_JEQ {
                eq
            } else {
                eq.map(|e| !e)
            }
        }
        BPF_JSET => {
            if var.value & c != 0 {
                Some(true)
            } else if (var.value | var.mask) & c == 0 {
                Some(false)
            } else {
                None
            }
        }
        BPF_JGT => order(umin > c, umax <= c),
        BPF_JGE => order(umin >= c, umax < c),
        BPF_JLT => order(umax < c, umin >= c),
        BPF_JLE => order(umax <= c, umin > c),
        BPF_JSGT => order(smin > sc, smax <= sc),
        BPF_JSGE => order(smin >= sc, smax < sc),
        BPF_JSLT => order(smax < sc, smin >= sc),
        BPF_JSLE => order(smax <= sc, smin > sc),
        _ => None,
    }
}

fn order(always: bool, never: bool) -> Option<bool> {
    if always {
        Some(true)
    } else if never {
        Some(false)
    } else {
        None
    }
}

/// A 64-bit ALU operation on scalars, or `None` for what the kernel does not track: with an
/// operand that is not a constant only addition, subtraction and `and` are tracked, as in
/// Linux 6.1; division and modulo never are.
///
/// A 32-bit operation comes here with both operands cut to their low 32 bits and `bits` 32:
/// then only shifts below 32 are tracked, because the machine masks larger ones.
fn op64(a: Scalar, b: Scalar, op: u8, b_known: bool, bits: u32) -> Option<Scalar> {
    let shift = || b.value().filter(|&s| s < u64::from(bits)).map(|s| s as u32);
    let r = match op {
        BPF_MOV => return Some(b),
        BPF_ADD => add(a, b),
        BPF_SUB => sub(a, b),
        BPF_AND => and(a, b),
        BPF_MUL | BPF_OR | BPF_XOR if !b_known => return None,
        BPF_MUL => mul(a, b),
        BPF_OR => or(a, b),
        BPF_XOR => xor(a, b),
        BPF_LSH => lsh(a, shift()?),
        BPF_RSH => {
            let s = shift()?;
            Scalar {
                var: a.var.shr(s),
                umin: a.umin >> s,
                umax: a.umax >> s,
                ..Scalar::UNKNOWN
            }
        }
        BPF_ARSH => {
            let s = shift()?;
            Scalar {
                var: a.var.sar(s),
                smin: a.smin >> s,
                smax: a.smax >> s,
                ..Scalar::UNKNOWN
            }
        }
        _ => return None,
    };
    Some(r.synced())
}

fn add(a: Scalar, b: Scalar) -> Scalar {
    let (smin, smax) = match (a.smin.checked_add(b.smin), a.smax.checked_add(b.smax)) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (i64::MIN, i64::MAX),
    };
    let (umin, umax) = match (a.umin.checked_add(b.umin), a.umax.checked_add(b.umax)) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (0, u64::MAX),
    };
    Scalar {
        var: a.var.add(b.var),
        umin,
        umax,
        smin,
        smax,
        ..Scalar::UNKNOWN
    }
}

fn sub(a: Scalar, b: Scalar) -> Scalar {
    let (smin, smax) = match (a.smin.checked_sub(b.smax), a.smax.checked_sub(b.smin)) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (i64::MIN, i64::MAX),
    };
    let (umin, umax) = if a.umin < b.umax {
        (0, u64::MAX)
    } else {
        (a.umin - b.umax, a.umax - b.umin)
    };
    Scalar {
        var: a.var.sub(b.var),
        umin,
        umax,
        smin,
        smax,
        ..Scalar::UNKNOWN
    }
}

fn and(a: Scalar, b: Scalar) -> Scalar {
    let var = a.var.and(b.var);
    let umin = var.min();
    let umax = a.umax.min(b.umax);
    let (smin, smax) = if a.smin < 0 || b.smin < 0 {
        (i64::MIN, i64::MAX)
    } else {
        (umin as i64, umax as i64)
    };
    Scalar {
        var,
        umin,
        umax,
        smin,
        smax,
        ..Scalar::UNKNOWN
    }
}

fn or(a: Scalar, b: Scalar) -> Scalar {
    let var = a.var.or(b.var);
    let umin = a.umin.max(b.umin);
    let umax = var.max();
    let (smin, smax) = if a.smin < 0 || b.smin < 0 || umax > i64::MAX as u64 {
        (i64::MIN, i64::MAX)
    } else {
        (umin as i64, umax as i64)
    };
    Scalar {
        var,
        umin,
        umax,
        smin,
        smax,
        ..Scalar::UNKNOWN
    }
}

fn xor(a: Scalar, b: Scalar) -> Scalar {
    let var = a.var.xor(b.var);
    let (umin, umax) = (var.min(), var.max());
    let (smin, smax) = if a.smin < 0 || b.smin < 0 || umax > i64::MAX as u64 {
        (i64::MIN, i64::MAX)
    } else {
        (umin as i64, umax as i64)
    };
    Scalar {
        var,
        umin,
        umax,
        smin,
        smax,
        ..Scalar::UNKNOWN
    }
}

fn mul(a: Scalar, b: Scalar) -> Scalar {
    if let (Some(x), Some(y)) = (a.value(), b.value()) {
        return Scalar::known(x.wrapping_mul(y));
    }
    // The bounds only without signs or overflow, as the kernel has them; the bits always.
    if a.smin < 0 || b.smin < 0 || a.umax > u64::from(u32::MAX) || b.umax > u64::from(u32::MAX) {
        return Scalar {
            var: a.var.mul(b.var),
            ..Scalar::UNKNOWN
        };
    }
    let (umin, umax) = (a.umin * b.umin, a.umax * b.umax);
    Scalar {
        var: a.var.mul(b.var),
        umin,
        umax,
        smin: umin as i64,
        smax: umax as i64,
        ..Scalar::UNKNOWN
    }
}

fn lsh(a: Scalar, s: u32) -> Scalar {
    let (umin, umax) = if a.umax > (u64::MAX >> s) {
        (0, u64::MAX)
    } else {
        (a.umin << s, a.umax << s)
    };
    Scalar {
        var: a.var.shl(s),
        umin,
        umax,
        ..Scalar::UNKNOWN
    }
}

/// The kernel's rendering of a scalar in a register dump: the constant, or the bounds that
/// say something.
impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = self.value() {
            return write!(f, "{}", v as i64);
        }
        let mut parts = Vec::new();
        if self.smin != i64::MIN {
            parts.push(format!("smin={}", self.smin));
        }
        if self.smax != i64::MAX {
            parts.push(format!("smax={}", self.smax));
        }
        if self.umin != 0 {
            parts.push(format!("umin={}", self.umin));
        }
        if self.umax != u64::MAX {
            parts.push(format!("umax={}", self.umax));
        }
        if self.var != Tnum::UNKNOWN && self.var != Tnum::range(self.umin, self.umax) {
            parts.push(format!("var_off={}", self.var));
        }
        if parts.is_empty() {
            write!(f, "scalar()")
        } else {
            write!(f, "scalar({})", parts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few values of a description, extremes and tnum corners included.
    fn samples(s: &Scalar) -> Vec<u64> {
        let mut v = vec![
            s.umin,
            s.umax,
            s.smin as u64,
            s.smax as u64,
            s.var.min(),
            s.var.max(),
        ];
        v.retain(|x| s.umin <= *x && *x <= s.umax && s.var.contains(Tnum::known(*x)));
        v
    }

    fn member(s: &Scalar, x: u64) -> bool {
        s.contains(&Scalar::known(x))
    }

    #[test]
    fn operations_hold_their_results() {
        let descs = [
            Scalar::known(0),
            Scalar::known(7),
            Scalar::known(u64::MAX),
            Scalar::unknown_bytes(1),
            Scalar::unknown_bytes(4),
            Scalar::unknown_signed(2),
            Scalar::known(0x8000_0000),
            Scalar::UNKNOWN,
        ];
        let ops = [
            BPF_ADD, BPF_SUB, BPF_MUL, BPF_OR, BPF_AND, BPF_XOR, BPF_LSH, BPF_RSH, BPF_ARSH,
            BPF_MOV,
        ];
        for a in &descs {
            for b in &descs {
                for op in ops {
                    for wide in [true, false] {
                        let r = a.alu(op, *b, wide);
                        for x in samples(a) {
                            for y in samples(b) {
                                let bits = if wide { 64 } else { 32 };
                                if matches!(op, BPF_LSH | BPF_RSH | BPF_ARSH) && y >= bits {
                                    continue;
                                }
                                let v = concrete(op, x, y, wide);
                                assert!(
                                    member(&r, v),
                                    "{x:#x} op{op:#x} {y:#x} = {v:#x} not in {r} (wide {wide})"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn concrete(op: u8, x: u64, y: u64, wide: bool) -> u64 {
        if !wide {
            let (x, y) = (x as u32, y as u32);
            let r = match op {
                BPF_ADD => x.wrapping_add(y),
                BPF_SUB => x.wrapping_sub(y),
                BPF_MUL => x.wrapping_mul(y),
                BPF_OR => x | y,
                BPF_AND => x & y,
                BPF_XOR => x ^ y,
                BPF_LSH => x << y,
                BPF_RSH => x >> y,
                BPF_ARSH => ((x as i32) >> y) as u32,
                _ => y,
            };
            return u64::from(r);
        }
        match op {
            BPF_ADD => x.wrapping_add(y),
            BPF_SUB => x.wrapping_sub(y),
            BPF_MUL => x.wrapping_mul(y),
            BPF_OR => x | y,
            BPF_AND => x & y,
            BPF_XOR => x ^ y,
            BPF_LSH => x << y,
            BPF_RSH => x >> y,
            BPF_ARSH => ((x as i64) >> y) as u64,
            _ => y,
        }
    }

    #[test]
    fn branches_decide_and_refine() {
        let byte = Scalar::unknown_bytes(1);
        assert_eq!(byte.branch(BPF_JGT, 255, false), Some(false));
        assert_eq!(byte.branch(BPF_JLE, 255, false), Some(true));
        assert_eq!(byte.branch(BPF_JGT, 10, false), None);
        let small = byte.refine(BPF_JGT, 10, false, false);
        assert_eq!((small.umin, small.umax), (0, 10));
        let big = byte.refine(BPF_JGT, 10, false, true);
        assert_eq!((big.umin, big.umax), (11, 255));
        let neg = Scalar::UNKNOWN.refine(BPF_JSLT, 0, false, true);
        assert!(neg.smax < 0 && neg.umin >= 1 << 63);
        let eq = Scalar::UNKNOWN.refine(BPF_JEQ, 42, true, true);
        assert_eq!(eq.value32(), Some(42));
        assert_eq!(Scalar::known(5).branch(BPF_JSET, 4, false), Some(true));
        assert_eq!(Scalar::known(5).branch(BPF_JSET, 2, false), Some(false));
        let cleared = byte.refine(BPF_JSET, 0x80, false, false);
        assert_eq!(cleared.umax, 0x7f);
        assert_eq!(
            Scalar::unknown_bytes(1).to_string(),
            "scalar(smin=0,smax=255,umax=255)"
        );
        assert_eq!(Scalar::known(u64::MAX).to_string(), "-1");
    }

    #[test]
    fn narrow_values() {
        let w = Scalar::known(0xffff_ffff).alu(BPF_ADD, Scalar::known(1), false);
        assert_eq!(w.value(), Some(0));
        let s = Scalar::unknown_signed(1);
        assert_eq!((s.smin, s.smax), (-128, 127));
        assert_eq!(Scalar::known(0x1_0000_0005).truncate(4).value(), Some(5));
    }
}
