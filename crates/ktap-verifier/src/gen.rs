//! Random programs for differential testing against the kernel's verifier and for fuzzing:
//! well-formed in shape (an entry, a few snippets, an exit, maybe a bpf-to-bpf callee) but
//! built near the edges the verifiers decide on: stack offsets around -512 and 0, context
//! offsets around the first readable byte and the end of the register set, map value offsets
//! around the value size, missing and misplaced null tests, bounded and unbounded loops,
//! helper sizes, pointer arithmetic, spills, bad jumps. The same seed gives the same program.

use crate::ProgType;
use ktap_bpf::helpers as h;
use ktap_bpf::insn::*;
use ktap_bpf::{MapDef, MapKind, MapRole, Span, Target, ValueType};

/// One generated program and the snippets it is made of.
#[derive(Clone, Debug)]
pub struct Case {
    pub prog_type: ProgType,
    pub maps: Vec<MapDef>,
    pub insns: Vec<Insn>,
    /// The snippet names, in order, to tell what a disagreement is about.
    pub what: Vec<&'static str>,
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True `pct` times in a hundred.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A helper whose result is a number nothing is known about (ktap's table has no
/// `get_prandom_u32`; the time serves).
const UNKNOWN_NUMBER: i32 = h::KTIME_GET_NS;

/// Map indices every generated program has.
const HASH: u32 = 0;
const ARRAY: u32 = 1;
const PERF: u32 = 2;

struct Gen<'a> {
    rng: &'a mut Rng,
    out: Vec<Insn>,
    prog: ProgType,
    maps: Vec<MapDef>,
    what: Vec<&'static str>,
    /// Bytes below the frame pointer some snippet has written (the stack is written downward
    /// from -8 in whole slots by [`Gen::init_stack`]).
    inited: i32,
    /// A bpf-to-bpf callee to append after the main program, with the call sites to patch.
    callee: Option<Vec<Insn>>,
    calls: Vec<usize>,
}

fn map(name: &str, kind: MapKind, key: u32, value: u32) -> MapDef {
    let ty = |n: u32| {
        if n == 8 {
            ValueType::Int
        } else {
            ValueType::Str(n)
        }
    };
    MapDef {
        name: name.into(),
        kind,
        role: if kind == MapKind::PerfEventArray {
            MapRole::Output
        } else {
            MapRole::Table
        },
        key: ty(key),
        value: ty(value),
        key_size: key,
        value_size: value,
        max_entries: 64,
        span: Span::default(),
        init: Vec::new(),
    }
}

/// The program for `seed`; perf-event programs get `target`'s context.
pub fn generate(seed: u64, target: &Target) -> Case {
    let mut rng = Rng::new(seed);
    let prog = match rng.below(10) {
        0..=4 => ProgType::Tracepoint,
        5 | 6 => ProgType::perf_event(target),
        7 | 8 => ProgType::kprobe(target),
        _ => ProgType::SocketFilter,
    };
    let key = rng.pick(&[4u32, 8, 8, 16, 40]);
    let value = rng.pick(&[8u32, 8, 16, 24, 40, 64]);
    let avalue = rng.pick(&[8u32, 16, 48]);
    let maps = vec![
        map("hash", MapKind::Hash, key, value),
        map("array", MapKind::Array, 4, avalue),
        map("out", MapKind::PerfEventArray, 4, 4),
    ];
    let mut g = Gen {
        rng: &mut rng,
        out: Vec::new(),
        prog,
        maps,
        what: Vec::new(),
        inited: 0,
        callee: None,
        calls: Vec::new(),
    };
    g.emit(Insn::mov64_reg(R6, R1));
    let snippets = 1 + g.rng.below(3);
    for _ in 0..snippets {
        g.snippet();
    }
    g.finish();
    Case {
        prog_type: g.prog,
        maps: g.maps,
        insns: g.out,
        what: g.what,
    }
}

impl Gen<'_> {
    fn emit(&mut self, i: Insn) {
        self.out.push(i);
    }

    fn emit_all(&mut self, is: &[Insn]) {
        self.out.extend_from_slice(is);
    }

    /// A conditional jump over `body` (which is emitted after it).
    fn skip_over(&mut self, cond: Insn, body: &[Insn]) {
        let mut c = cond;
        c.off = body.len() as i16;
        self.emit(c);
        self.emit_all(body);
    }

    /// Writes whole slots so that `bytes` bytes below the frame pointer are initialised.
    fn init_stack(&mut self, bytes: i32) {
        while self.inited < bytes.min(512) {
            self.inited += 8;
            let zero = self.rng.chance(50);
            let at = -self.inited as i16;
            if zero {
                self.emit(Insn::st(BPF_DW, R10, at, 0));
            } else {
                let v = self.rng.next_u64() as i32;
                self.emit(Insn::mov64_imm(R7, v));
                self.emit(Insn::stx(BPF_DW, R10, at, R7));
            }
        }
    }

    /// An offset near the interesting values, usually a multiple of `size`.
    fn near(&mut self, points: &[i64], size: u32) -> i64 {
        let base = self.rng.pick(points);
        let n = i64::from(size);
        let delta = self.rng.pick(&[0i64, 0, 0, 0, 0, 0, -1, 1, -8, 8, -n, n]);
        let mut v = base + delta;
        if self.rng.chance(85) {
            v -= v.rem_euclid(i64::from(size));
        }
        v
    }

    fn size(&mut self) -> (u8, u32) {
        self.rng
            .pick(&[(BPF_B, 1), (BPF_H, 2), (BPF_W, 4), (BPF_DW, 8), (BPF_DW, 8)])
    }

    /// One snippet; the ones that are mostly mistakes come up less often, so that about as
    /// many programs pass as fail.
    fn snippet(&mut self) {
        match self.rng.below(32) {
            0..=2 => self.stack_rw(),
            3 | 4 => self.ctx_read(),
            5..=8 => self.lookup(HASH),
            9 | 10 => self.lookup(ARRAY),
            11..=13 => self.variable_index(),
            14..=16 => self.loops(),
            17 | 18 => self.helper_sizes(),
            19 => self.ptr_arith(),
            20..=22 => self.alu_and_branch(),
            23 | 24 => self.spill(),
            25 | 26 => self.output(),
            27 => self.uninit(),
            28 => self.bad_control(),
            29 | 30 => self.call_sub(),
            _ => self.atomics(),
        }
    }

    fn finish(&mut self) {
        if self.rng.chance(95) {
            self.emit(Insn::mov64_imm(R0, 0));
        } else {
            self.what.push("exit-without-r0");
        }
        self.emit(Insn::exit());
        if let Some(body) = self.callee.take() {
            let start = self.out.len();
            for &c in &self.calls {
                self.out[c].imm = (start - c - 1) as i32;
            }
            // A callee calling itself is recursion.
            let rec: Vec<usize> = body
                .iter()
                .enumerate()
                .filter(|(_, i)| i.code == BPF_JMP | BPF_CALL && i.src == BPF_PSEUDO_CALL)
                .map(|(k, _)| k)
                .collect();
            self.out.extend_from_slice(&body);
            for k in rec {
                let at = start + k;
                self.out[at].imm = start as i32 - at as i32 - 1;
            }
        }
    }

    fn stack_rw(&mut self) {
        self.what.push("stack");
        let (sz, n) = self.size();
        let off = self.near(&[-512, -8, -16, -256, 0, -504], n);
        let off = off.clamp(-600, 40) as i16;
        if self.rng.chance(50) {
            let v = self.rng.below(100) as i32;
            self.emit(Insn::st(sz, R10, off, v));
        } else {
            self.emit(Insn::mov64_imm(R7, -1));
            self.emit(Insn::stx(sz, R10, off, R7));
        }
        if self.rng.chance(70) {
            let (sz2, n2) = self.size();
            let back = if self.rng.chance(60) {
                off
            } else {
                self.near(&[i64::from(off)], n2).clamp(-600, 40) as i16
            };
            self.emit(Insn::ldx(sz2, R8, R10, back));
        }
    }

    fn ctx_read(&mut self) {
        self.what.push("ctx");
        let (sz, n) = self.size();
        let points: Vec<i64> = match self.prog {
            ProgType::Tracepoint => vec![0, 4, 8, 12, 16, 24, 8184, 8192],
            ProgType::PerfEvent { regs_size, .. } | ProgType::Kprobe { regs_size } => {
                let r = i64::from(regs_size);
                vec![0, 8, r - 8, r, r + 8, r + 16]
            }
            ProgType::SocketFilter => vec![0, 4, 16, 48, 64, 68, 72, 76],
        };
        let off = self.near(&points, n).clamp(-16, 9000) as i16;
        if self.rng.chance(10) {
            self.emit(Insn::stx(sz, R6, off, R7));
            self.what.push("ctx-write");
            return;
        }
        if self.rng.chance(8) {
            self.emit(Insn::mov64_reg(R1, R6));
            self.emit(Insn::alu64_imm(BPF_ADD, R1, 8));
            self.emit(Insn::ldx(sz, R7, R1, off));
            self.what.push("ctx-modified");
            return;
        }
        self.emit(Insn::ldx(sz, R7, R6, off));
    }

    /// Stores the key for `m` on the stack, points `r2` at it, and calls `map_lookup_elem`.
    fn call_lookup(&mut self, m: u32) -> i16 {
        let key = self.maps[m as usize].key_size as i32;
        let koff = -(key + 7) / 8 * 8;
        if self.rng.chance(92) {
            self.init_stack(-koff);
        } else {
            self.what.push("key-maybe-uninit");
        }
        self.emit_all(&Insn::ld_map(R1, m));
        self.emit(Insn::mov64_reg(R2, R10));
        self.emit(Insn::alu64_imm(BPF_ADD, R2, koff));
        self.emit(Insn::call(h::MAP_LOOKUP_ELEM));
        koff as i16
    }

    fn lookup(&mut self, m: u32) {
        self.what.push("lookup");
        self.call_lookup(m);
        let vs = self.maps[m as usize].value_size as i64;
        let (sz, n) = self.size();
        let off = self.near(&[0, vs - i64::from(n), vs, 8], n).clamp(-16, 200) as i16;
        let access = match self.rng.below(4) {
            0 => vec![Insn::ldx(sz, R7, R0, off)],
            1 => vec![Insn::st(sz, R0, off, 1)],
            2 => vec![
                Insn::mov64_imm(R8, 1),
                Insn::atomic_add(BPF_DW, R0, off, R8),
            ],
            _ => vec![Insn::mov64_imm(R8, 1), Insn::stx(sz, R0, off, R8)],
        };
        match self.rng.below(16) {
            0 => {
                self.what.push("no-null-test");
                self.emit_all(&access);
            }
            1 => {
                self.what.push("null-test-jmp32");
                self.skip_over(Insn::new(BPF_JMP32 | BPF_JEQ | BPF_K, R0, 0, 0, 0), &access);
            }
            2 => {
                self.what.push("null-test-on-copy");
                self.emit(Insn::mov64_reg(R9, R0));
                self.skip_over(Insn::jmp_imm(BPF_JEQ, R9, 0, 0), &access);
            }
            3 => {
                self.what.push("null-test-jne");
                let mut body = vec![Insn::ja(access.len() as i16)];
                body.extend_from_slice(&access);
                self.skip_over(Insn::jmp_imm(BPF_JNE, R0, 0, 0), &[]);
                // `if r0 != 0 goto +1; goto +len; access`
                let at = self.out.len() - 1;
                self.out[at].off = 1;
                self.emit_all(&body);
            }
            4 => {
                self.what.push("null-test-reg");
                self.emit(Insn::mov64_imm(R9, 0));
                self.skip_over(Insn::jmp_reg(BPF_JEQ, R0, R9, 0), &access);
            }
            _ => self.skip_over(Insn::jmp_imm(BPF_JEQ, R0, 0, 0), &access),
        }
    }

    fn variable_index(&mut self) {
        self.what.push("variable-index");
        let m = self.rng.pick(&[HASH, ARRAY]);
        self.call_lookup(m);
        let vs = self.maps[m as usize].value_size as i64;
        let (sz, n) = self.size();
        let limit = vs - i64::from(n);
        let mut body = vec![Insn::ldx(BPF_W, R8, R0, 0)];
        let bound = self.rng.pick(&[limit, limit + 1, limit - 1, 0, vs]).max(0);
        if self.rng.chance(50) {
            // A mask: the index is at most the mask.
            body.push(Insn::alu64_imm(BPF_AND, R8, bound as i32));
            body.push(Insn::alu64_reg(BPF_ADD, R0, R8));
            body.push(Insn::ldx(sz, R7, R0, 0));
        } else {
            let jmp32 = self.rng.chance(20);
            let op = self.rng.pick(&[BPF_JGT, BPF_JGE, BPF_JSGT]);
            let class = if jmp32 { BPF_JMP32 } else { BPF_JMP };
            body.push(Insn::new(class | op | BPF_K, R8, 0, 2, bound as i32));
            body.push(Insn::alu64_reg(BPF_ADD, R0, R8));
            body.push(Insn::ldx(sz, R7, R0, 0));
            if self.rng.chance(15) {
                // Sign extension makes the index possibly negative.
                body.insert(1, Insn::alu64_imm(BPF_LSH, R8, 32));
                body.insert(2, Insn::alu64_imm(BPF_ARSH, R8, 32));
                self.what.push("signed-index");
            }
        }
        self.skip_over(Insn::jmp_imm(BPF_JEQ, R0, 0, 0), &body);
    }

    fn loops(&mut self) {
        match self.rng.below(6) {
            0 => {
                self.what.push("goto-self");
                self.emit(Insn::ja(-1));
            }
            _ => {
                self.what.push("bounded-loop");
                let step = self.rng.pick(&[1, 1, 2]);
                // Counting to 600 000 is past the kernel's budget; rarely, since each such
                // program costs the kernel a million instructions.
                let n = if self.rng.below(1000) < 2 {
                    600_000
                } else {
                    self.rng.pick(&[1, 4, 16, 100, 600]) * step
                };
                let op = self.rng.pick(&[BPF_JLT, BPF_JNE, BPF_JSLT, BPF_JLE]);
                self.emit(Insn::mov64_imm(R7, 0));
                self.emit(Insn::alu64_imm(BPF_ADD, R7, step));
                if self.rng.chance(40) {
                    // Something to do in the body: a stack write indexed by nothing.
                    self.init_stack(8);
                    self.emit(Insn::st(BPF_DW, R10, -8, 7));
                    self.emit(Insn::jmp_imm(op, R7, n, -3));
                } else {
                    self.emit(Insn::jmp_imm(op, R7, n, -2));
                }
            }
        }
    }

    fn helper_sizes(&mut self) {
        self.what.push("helper-size");
        let buf = self.rng.pick(&[8i32, 16, 32]);
        let size = self.rng.pick(&[0i32, 1, 8, 16, 16, 32, 33, buf, buf + 1]);
        let off = self.rng.pick(&[-buf, -buf, -8, -512, -520]);
        match self.rng.below(4) {
            0 => {
                self.emit(Insn::mov64_reg(R1, R10));
                self.emit(Insn::alu64_imm(BPF_ADD, R1, off));
                self.emit(Insn::mov64_imm(R2, size));
                self.emit(Insn::call(h::GET_CURRENT_COMM));
            }
            1 => {
                self.emit(Insn::mov64_reg(R1, R10));
                self.emit(Insn::alu64_imm(BPF_ADD, R1, off));
                self.emit(Insn::mov64_imm(R2, size));
                self.emit(Insn::mov64_imm(R3, 0));
                self.emit(Insn::call(h::PROBE_READ_KERNEL));
            }
            2 => {
                // A size known only by its bounds.
                self.emit(Insn::call(UNKNOWN_NUMBER));
                self.emit(Insn::mov64_reg(R2, R0));
                let mask = self.rng.pick(&[7, 15, 31, 63]);
                self.emit(Insn::alu64_imm(BPF_AND, R2, mask));
                if self.rng.chance(50) {
                    self.emit(Insn::alu64_imm(BPF_ADD, R2, 1));
                }
                self.emit(Insn::mov64_reg(R1, R10));
                self.emit(Insn::alu64_imm(BPF_ADD, R1, off));
                self.emit(Insn::mov64_imm(R3, 0));
                self.emit(Insn::call(h::PROBE_READ_KERNEL));
            }
            _ => {
                let id = self.rng.pick(&[
                    h::KTIME_GET_NS,
                    h::GET_SMP_PROCESSOR_ID,
                    h::GET_CURRENT_PID_TGID,
                    h::GET_CURRENT_UID_GID,
                    9999,
                ]);
                self.emit(Insn::call(id));
            }
        }
    }

    fn ptr_arith(&mut self) {
        self.what.push("ptr-arith");
        self.emit(Insn::mov64_reg(R7, R10));
        match self.rng.below(8) {
            0 => self.emit(Insn::alu64_imm(BPF_SUB, R7, 8)),
            1 => self.emit(Insn::alu64_imm(BPF_AND, R7, -8)),
            2 => self.emit(Insn::alu32_imm(BPF_ADD, R7, -8)),
            3 => {
                self.emit(Insn::call(h::KTIME_GET_NS));
                self.emit(Insn::alu64_reg(BPF_ADD, R7, R0));
            }
            4 => {
                self.emit(Insn::alu64_reg(BPF_SUB, R7, R6));
                self.emit(Insn::mov64_imm(R8, 0));
            }
            _ => {
                let k = self.rng.pick(&[-8, -16, -512, -513, -520, 0, 8, 1 << 30]);
                self.emit(Insn::alu64_imm(BPF_ADD, R7, k));
                self.emit(Insn::mov64_imm(R8, 3));
                self.emit(Insn::stx(BPF_DW, R7, 0, R8));
            }
        }
    }

    fn alu_and_branch(&mut self) {
        self.what.push("alu-branch");
        self.emit(Insn::call(UNKNOWN_NUMBER));
        self.emit(Insn::mov64_reg(R7, R0));
        for _ in 0..1 + self.rng.below(3) {
            let op = self.rng.pick(&[
                BPF_ADD, BPF_SUB, BPF_MUL, BPF_AND, BPF_OR, BPF_XOR, BPF_LSH, BPF_RSH, BPF_ARSH,
                BPF_DIV, BPF_MOD,
            ]);
            let wide = self.rng.chance(70);
            let k = match op {
                BPF_LSH | BPF_RSH | BPF_ARSH => self.rng.pick(&[1, 4, 31, 32, 63, 64]),
                BPF_DIV | BPF_MOD => self.rng.pick(&[0, 1, 3, 16]),
                _ => self.rng.pick(&[0, 1, 7, 255, -1, 0x7fff_ffff, -256]),
            };
            self.emit(if wide {
                Insn::alu64_imm(op, R7, k)
            } else {
                Insn::alu32_imm(op, R7, k)
            });
        }
        // Use the result as an offset into a 16-byte stack buffer on one side of a branch.
        self.init_stack(16);
        let op = self.rng.pick(&[
            BPF_JGT, BPF_JGE, BPF_JLT, BPF_JSGT, BPF_JSLT, BPF_JSET, BPF_JEQ,
        ]);
        let k = self.rng.pick(&[0, 8, 15, 16, -1]);
        let jmp32 = self.rng.chance(25);
        let class = if jmp32 { BPF_JMP32 } else { BPF_JMP };
        // The result is the size of a read into the 16-byte buffer: the branch (and, half the
        // time, a mask) must bound it.
        let body = [
            Insn::alu64_imm(BPF_AND, R7, 15),
            Insn::mov64_reg(R2, R7),
            Insn::mov64_reg(R1, R10),
            Insn::alu64_imm(BPF_ADD, R1, -16),
            Insn::mov64_imm(R3, 0),
            Insn::call(h::PROBE_READ_KERNEL),
        ];
        let take = if self.rng.chance(50) {
            &body[..]
        } else {
            &body[1..]
        };
        self.skip_over(Insn::new(class | op | BPF_K, R7, 0, 0, k), take);
    }

    fn spill(&mut self) {
        self.what.push("spill");
        let off = self.rng.pick(&[-8i16, -16, -24]);
        self.emit(Insn::stx(BPF_DW, R10, off, R6));
        match self.rng.below(4) {
            0 => self.emit(Insn::ldx(BPF_W, R1, R10, off)),
            1 => {
                self.emit(Insn::st(BPF_W, R10, off, 0));
                self.emit(Insn::ldx(BPF_DW, R1, R10, off));
            }
            _ => self.emit(Insn::ldx(BPF_DW, R1, R10, off)),
        }
        let read = match self.prog {
            ProgType::Tracepoint => 8,
            _ => 0,
        };
        self.emit(Insn::ldx(BPF_W, R7, R1, read));
        self.inited = self.inited.max(-i32::from(off));
    }

    fn output(&mut self) {
        self.what.push("output");
        let len = self.rng.pick(&[0i32, 8, 16, 24]);
        self.init_stack(16);
        self.emit(Insn::mov64_reg(R1, R6));
        let m = self.rng.pick(&[PERF, PERF, PERF, HASH]);
        self.emit_all(&Insn::ld_map(R2, m));
        self.emit_all(&Insn::ld_imm64(R3, 0, 0xffff_ffff));
        self.emit(Insn::mov64_reg(R4, R10));
        self.emit(Insn::alu64_imm(BPF_ADD, R4, -16));
        self.emit(Insn::mov64_imm(R5, len));
        self.emit(Insn::call(h::PERF_EVENT_OUTPUT));
    }

    /// A copy of a register that may never have been written (`r6` always is).
    fn uninit(&mut self) {
        self.what.push("maybe-uninit-reg");
        let r = self.rng.pick(&[R2, R9, R6, R6]);
        self.emit(Insn::mov64_reg(R7, r));
    }

    fn bad_control(&mut self) {
        match self.rng.below(6) {
            0 => {
                self.what.push("jump-out-of-range");
                self.emit(Insn::jmp_imm(BPF_JEQ, R6, 0, 1000));
            }
            1 => {
                self.what.push("jump-into-ldimm64");
                self.emit(Insn::jmp_imm(BPF_JEQ, R6, 0, 1));
                self.emit_all(&Insn::ld_imm64(R7, 0, 1 << 40));
            }
            2 => {
                self.what.push("unreachable");
                self.emit(Insn::ja(1));
                self.emit(Insn::mov64_imm(R7, 0));
            }
            _ => {
                self.what.push("forward-jump");
                self.emit(Insn::jmp_imm(BPF_JEQ, R6, 0, 1));
                self.emit(Insn::mov64_imm(R7, 1));
            }
        }
    }

    fn call_sub(&mut self) {
        self.what.push("bpf-call");
        self.emit(Insn::mov64_reg(R1, R10));
        self.emit(Insn::alu64_imm(BPF_ADD, R1, -8));
        self.init_stack(8);
        self.calls.push(self.out.len());
        self.emit(Insn::new(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, 0));
        if self.callee.is_none() {
            let body = match self.rng.below(8) {
                0 => {
                    self.what.push("recursion");
                    vec![
                        Insn::new(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, 0),
                        Insn::mov64_imm(R0, 0),
                        Insn::exit(),
                    ]
                }
                1 => vec![Insn::mov64_reg(R0, R10), Insn::exit()],
                2 => vec![Insn::ldx(BPF_DW, R0, R1, 0), Insn::exit()],
                3 => vec![
                    Insn::st(BPF_DW, R10, -self.rng.pick(&[8i16, 480, 504]), 1),
                    Insn::mov64_imm(R0, 1),
                    Insn::exit(),
                ],
                4 => vec![Insn::exit()],
                // Writes into the caller's stack through the pointer it passed.
                _ => vec![
                    Insn::st(BPF_DW, R1, 0, 5),
                    Insn::mov64_imm(R0, 2),
                    Insn::exit(),
                ],
            };
            self.callee = Some(body);
        }
    }

    fn atomics(&mut self) {
        self.what.push("atomic");
        self.init_stack(16);
        self.emit(Insn::mov64_imm(R8, 2));
        let (size, off) =
            self.rng
                .pick(&[(BPF_DW, -8i16), (BPF_W, -4), (BPF_W, -6), (BPF_DW, -12)]);
        let imm = self.rng.pick(&[
            BPF_ADD as i32,
            BPF_ADD as i32 | BPF_FETCH,
            BPF_XCHG,
            BPF_CMPXCHG,
        ]);
        if imm == BPF_CMPXCHG {
            self.emit(Insn::mov64_imm(R0, 0));
        }
        self.emit(Insn::new(BPF_STX | BPF_ATOMIC | size, R10, R8, off, imm));
    }
}
