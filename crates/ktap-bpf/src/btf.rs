//! Kernel BTF (`/sys/kernel/btf/vmlinux`), read just far enough to find where a member of a
//! kernel struct lies: the built-ins that read the current task (`in_iowait()`,
//! `in_interrupt()`) need offsets that change with every kernel build. The data's byte order
//! is the kernel's, read from its magic. ktap never needs BTF otherwise.

/// The types, named members, modifiers and sizes this reader looks at (`BTF_KIND_*`).
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Where a struct member lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Bits from the start of the outer struct (BTF counts bits in memory order: from the
    /// least significant bit of the first byte on little-endian machines, from the most
    /// significant on big-endian ones).
    pub bit_offset: u32,
    /// The width of a bitfield; 0 for a member that is no bitfield.
    pub bit_size: u32,
    /// Bytes of the member's type, when BTF says (pointers: `None`).
    pub size: Option<u32>,
}

/// Parsed BTF: the types' places, and the string table.
pub struct Btf<'a> {
    data: &'a [u8],
    little: bool,
    /// Byte offset of each type's `struct btf_type`, by id (id 0 is `void`, not stored).
    types: Vec<usize>,
    strings: (usize, usize),
}

impl<'a> Btf<'a> {
    /// Reads the header and indexes the types; `Err` says what is wrong with the data.
    pub fn parse(data: &'a [u8]) -> Result<Btf<'a>, String> {
        let little = match data.get(..2) {
            Some([0x9f, 0xeb]) => true,
            Some([0xeb, 0x9f]) => false,
            _ => return Err("not BTF data (bad magic)".into()),
        };
        let mut b = Btf {
            data,
            little,
            types: Vec::new(),
            strings: (0, 0),
        };
        let hdr = b.u32(4).ok_or("BTF header cut short")? as usize;
        let field = |at: usize| b.u32(at).map(|v| v as usize).ok_or("BTF header cut short");
        let (type_off, type_len) = (field(8)?, field(12)?);
        let (str_off, str_len) = (field(16)?, field(20)?);
        let types = (hdr + type_off, hdr + type_off + type_len);
        b.strings = (hdr + str_off, hdr + str_off + str_len);
        if types.1 > data.len() || b.strings.1 > data.len() {
            return Err("BTF sections run past the end of the data".into());
        }
        let mut at = types.0;
        while at + 12 <= types.1 {
            b.types.push(at);
            let info = b.u32(at + 4).ok_or("BTF type cut short")?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                _ => 0,
            };
            at += 12 + extra;
        }
        Ok(b)
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.data.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn name(&self, off: u32) -> &'a [u8] {
        let start = self.strings.0 + off as usize;
        let s = self.data.get(start..self.strings.1).unwrap_or_default();
        s.split(|&c| c == 0).next().unwrap_or_default()
    }

    /// (name offset, kind, vlen, kind_flag, size or type, where the kind's data starts).
    fn ty(&self, id: u32) -> Option<(u32, u32, usize, bool, u32, usize)> {
        let at = *self.types.get((id as usize).checked_sub(1)?)?;
        let info = self.u32(at + 4)?;
        Some((
            self.u32(at)?,
            (info >> 24) & 0x1f,
            (info & 0xffff) as usize,
            info >> 31 == 1,
            self.u32(at + 8)?,
            at + 12,
        ))
    }

    /// `id` with typedefs and qualifiers looked through.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some((
                    _,
                    KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG,
                    _,
                    _,
                    next,
                    _,
                )) => id = next,
                _ => break,
            }
        }
        id
    }

    /// Bytes of type `id`, when BTF says.
    fn size(&self, id: u32) -> Option<u32> {
        let id = self.resolve(id);
        let (_, kind, _, _, size, data) = self.ty(id)?;
        match kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => {
                Some(size)
            }
            KIND_ARRAY => {
                let elem = self.u32(data)?;
                let n = self.u32(data + 8)?;
                self.size(elem)?.checked_mul(n)
            }
            KIND_PTR => None,
            _ => None,
        }
    }

    /// The id of the variable called `name` (`BTF_KIND_VAR`: vmlinux lists its per-CPU
    /// variables) and the bytes of its type, when BTF says.
    pub fn find_var(&self, name: &str) -> Option<(u32, Option<u32>)> {
        (1..=self.types.len() as u32).find_map(|id| match self.ty(id) {
            Some((n, KIND_VAR, _, _, ty, _)) if self.name(n) == name.as_bytes() => {
                Some((id, self.size(ty)))
            }
            _ => None,
        })
    }

    /// The id of the struct (or union) called `name` that has members.
    pub fn find_struct(&self, name: &str) -> Option<u32> {
        (1..=self.types.len() as u32).find(|&id| {
            matches!(self.ty(id), Some((n, KIND_STRUCT | KIND_UNION, vlen, ..))
                if vlen > 0 && self.name(n) == name.as_bytes())
        })
    }

    /// Member `name` of struct or union `id`, looking inside anonymous members: where it is
    /// from the start of `id`, and its type's id.
    fn member_of(&self, id: u32, name: &str, depth: u32) -> Option<(Member, u32)> {
        let (_, kind, vlen, flag, _, data) = self.ty(self.resolve(id))?;
        if !matches!(kind, KIND_STRUCT | KIND_UNION) || depth > 8 {
            return None;
        }
        for i in 0..vlen {
            let m = data + 12 * i;
            let (n, ty, off) = (self.u32(m)?, self.u32(m + 4)?, self.u32(m + 8)?);
            let (bit_offset, bit_size) = if flag {
                (off & 0x00ff_ffff, off >> 24)
            } else {
                (off, 0)
            };
            if n == 0 {
                if let Some((inner, t)) = self.member_of(ty, name, depth + 1) {
                    let at = Member {
                        bit_offset: bit_offset + inner.bit_offset,
                        ..inner
                    };
                    return Some((at, t));
                }
            } else if self.name(n) == name.as_bytes() {
                let size = self.size(ty);
                return Some((
                    Member {
                        bit_offset,
                        bit_size,
                        size,
                    },
                    ty,
                ));
            }
        }
        None
    }

    /// Where `path` (`["thread_info", "preempt_count"]`) lies inside struct `strct`.
    pub fn member(&self, strct: &str, path: &[&str]) -> Option<Member> {
        let mut id = self.find_struct(strct)?;
        let mut at: Option<Member> = None;
        for name in path {
            let (m, ty) = self.member_of(id, name, 0)?;
            let base = at.map_or(0, |a| a.bit_offset);
            at = Some(Member {
                bit_offset: base + m.bit_offset,
                ..m
            });
            id = ty;
        }
        at
    }
}

/// A tiny BTF writer, for tests here and elsewhere: structs of named members.
pub mod build {
    /// A member: its name, its type (an id the builder returned, 0 for `void`), its bit
    /// offset, and a bitfield width (0 for none).
    pub type Field<'a> = (&'a str, u32, u32, u32);

    /// Types added one by one; [`Builder::finish`] gives the BTF bytes.
    pub struct Builder {
        little: bool,
        types: Vec<u8>,
        strings: Vec<u8>,
        next: u32,
    }

    impl Builder {
        pub fn new(little: bool) -> Builder {
            Builder {
                little,
                types: Vec::new(),
                strings: vec![0],
                next: 1,
            }
        }

        fn put(&mut self, v: u32) {
            let b = if self.little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            self.types.extend_from_slice(&b);
        }

        fn string(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let at = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            at
        }

        /// An unsigned integer of `size` bytes; returns its id.
        pub fn int(&mut self, name: &str, size: u32) -> u32 {
            let n = self.string(name);
            self.put(n);
            self.put(super::KIND_INT << 24);
            self.put(size);
            self.put(size * 8);
            self.next += 1;
            self.next - 1
        }

        /// A pointer to `to`.
        pub fn ptr(&mut self, to: u32) -> u32 {
            self.put(0);
            self.put(super::KIND_PTR << 24);
            self.put(to);
            self.next += 1;
            self.next - 1
        }

        /// A global variable of type `ty` (`BTF_KIND_VAR`, linkage global).
        pub fn var(&mut self, name: &str, ty: u32) -> u32 {
            let n = self.string(name);
            self.put(n);
            self.put(super::KIND_VAR << 24);
            self.put(ty);
            self.put(1);
            self.next += 1;
            self.next - 1
        }

        /// A struct (or, with `union`, a union) of `size` bytes; an empty name makes it
        /// anonymous.
        pub fn record(&mut self, name: &str, size: u32, union: bool, fields: &[Field]) -> u32 {
            let n = self.string(name);
            let bitfields = fields.iter().any(|f| f.3 > 0);
            let kind = if union {
                super::KIND_UNION
            } else {
                super::KIND_STRUCT
            };
            self.put(n);
            self.put(kind << 24 | u32::from(bitfields) << 31 | fields.len() as u32);
            self.put(size);
            for (name, ty, off, bits) in fields {
                let n = self.string(name);
                self.put(n);
                self.put(*ty);
                self.put(if bitfields { bits << 24 | off } else { *off });
            }
            self.next += 1;
            self.next - 1
        }

        /// The whole BTF data: header, types, strings.
        pub fn finish(self) -> Vec<u8> {
            let mut out = Vec::new();
            let w16 = |v: u16| {
                if self.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                }
            };
            let w32 = |v: u32| {
                if self.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                }
            };
            out.extend_from_slice(&w16(0xeb9f));
            out.extend_from_slice(&[1, 0]);
            out.extend_from_slice(&w32(24));
            out.extend_from_slice(&w32(0));
            out.extend_from_slice(&w32(self.types.len() as u32));
            out.extend_from_slice(&w32(self.types.len() as u32));
            out.extend_from_slice(&w32(self.strings.len() as u32));
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::Builder;
    use super::*;

    fn sample(little: bool) -> Vec<u8> {
        let mut b = Builder::new(little);
        let u32t = b.int("unsigned int", 4);
        let u64t = b.int("long unsigned int", 8);
        let inner = b.record(
            "",
            8,
            false,
            &[("count", u32t, 0, 0), ("need", u32t, 32, 0)],
        );
        let un = b.record(
            "",
            8,
            true,
            &[("preempt_count", u64t, 0, 0), ("preempt", inner, 0, 0)],
        );
        let ti = b.record(
            "thread_info",
            16,
            false,
            &[("flags", u64t, 0, 0), ("", un, 64, 0)],
        );
        let p = b.ptr(0);
        b.record(
            "task_struct",
            64,
            false,
            &[
                ("thread_info", ti, 0, 0),
                ("stack", p, 128, 0),
                ("in_execve", u32t, 256, 1),
                ("in_iowait", u32t, 257, 1),
            ],
        );
        b.finish()
    }

    #[test]
    fn members_and_bitfields_in_both_byte_orders() {
        for little in [true, false] {
            let data = sample(little);
            let btf = Btf::parse(&data).unwrap();
            assert!(btf.find_struct("task_struct").is_some());
            assert_eq!(
                btf.member("task_struct", &["in_iowait"]),
                Some(Member {
                    bit_offset: 257,
                    bit_size: 1,
                    size: Some(4)
                })
            );
            // Through an anonymous union, inside a member struct.
            assert_eq!(
                btf.member("task_struct", &["thread_info", "preempt_count"]),
                Some(Member {
                    bit_offset: 64,
                    bit_size: 0,
                    size: Some(8)
                })
            );
            assert_eq!(
                btf.member("task_struct", &["stack"])
                    .map(|m| (m.bit_offset, m.size)),
                Some((128, None))
            );
            assert_eq!(btf.member("task_struct", &["nope"]), None);
            assert_eq!(btf.member("mm_struct", &["pgd"]), None);
        }
    }

    #[test]
    fn variables_by_name() {
        for little in [true, false] {
            let mut b = Builder::new(little);
            let int = b.int("int", 4);
            let var = b.var("__preempt_count", int);
            let data = b.finish();
            let btf = Btf::parse(&data).unwrap();
            assert_eq!(btf.find_var("__preempt_count"), Some((var, Some(4))));
            assert_eq!(btf.find_var("int"), None);
            assert_eq!(btf.find_var("pcpu_hot"), None);
        }
    }

    #[test]
    fn bad_data_is_an_error() {
        assert!(Btf::parse(b"").is_err());
        assert!(Btf::parse(b"\x9f\xeb\x01\x00").is_err());
        let mut data = sample(true);
        data.truncate(30);
        assert!(Btf::parse(&data).is_err());
    }
}
