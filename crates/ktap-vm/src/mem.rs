//! VM memory: the tagged pointer encoding and the regions it names (the context, one stack per
//! call frame, the copies of looked-up map values), with bounds and writability checked on every
//! access, and the write-back of changed map values.

use crate::host::Host;
use ktap_bpf::helpers::BPF_EXIST;
use ktap_bpf::insn::STACK_SIZE;
use ktap_bpf::Endian;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::ops::Range;

/// The top byte of every pointer. No architecture ktap supports has addresses with this top byte
/// (x86_64 would call them non-canonical), so a real kernel or user address handed to
/// `probe_read` is never mistaken for VM memory.
const TAG: u64 = 0x4b;
/// Added to a pointer's offset so that offsets down to -2^31 stay inside the offset field.
const BIAS: i64 = 1 << 31;
/// Frames of bpf-to-bpf calls, the entry function included, as the kernel's `MAX_CALL_FRAMES`.
pub(crate) const MAX_FRAMES: usize = 8;
/// Bytes of each frame's stack; `r10` points at its end.
pub(crate) const STACK: usize = STACK_SIZE as usize;
/// Map value copies one run may hold: the index field has 20 bits.
pub(crate) const MAX_VALUES: usize = 1 << 20;

/// What a pointer points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Ctx = 0,
    Stack = 1,
    MapRef = 2,
    MapValue = 3,
    /// A kernel variable's copy, as `bpf_this_cpu_ptr()` gives it: [`KERNEL_MEM`] zero bytes,
    /// read-only. The VM runs in a process, never in interrupt context, so a preempt count
    /// read there is rightly 0.
    Kernel = 4,
}

/// The bytes a [`Kind::Kernel`] pointer reaches (a page, the bound ktap's verifier puts on such
/// reads too).
pub(crate) const KERNEL_MEM: usize = 4096;
static ZEROS: [u8; KERNEL_MEM] = [0; KERNEL_MEM];

/// A decoded pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ptr {
    pub kind: Kind,
    pub index: u32,
    pub off: i64,
}

/// The register value of a pointer `off` bytes into region `index` of `kind`.
#[inline]
pub(crate) fn pointer(kind: Kind, index: u32, off: i64) -> u64 {
    (TAG << 56)
        | ((kind as u64) << 52)
        | ((u64::from(index) & 0xf_ffff) << 32)
        | (BIAS.wrapping_add(off) as u64 & 0xffff_ffff)
}

/// The pointer a register value encodes, or `None` for a plain number.
#[inline]
pub(crate) fn decode(v: u64) -> Option<Ptr> {
    if v >> 56 != TAG {
        return None;
    }
    let kind = match (v >> 52) & 0xf {
        0 => Kind::Ctx,
        1 => Kind::Stack,
        2 => Kind::MapRef,
        3 => Kind::MapValue,
        4 => Kind::Kernel,
        _ => return None,
    };
    Some(Ptr {
        kind,
        index: ((v >> 32) & 0xf_ffff) as u32,
        off: (v & 0xffff_ffff) as i64 - BIAS,
    })
}

/// The verifier's name for the type of a register value, for helper argument messages.
pub(crate) fn type_name(v: u64) -> &'static str {
    match decode(v).map(|p| p.kind) {
        Some(Kind::Ctx) => "ctx",
        Some(Kind::Stack) => "fp",
        Some(Kind::MapRef) => "map_ptr",
        Some(Kind::MapValue) => "map_value",
        Some(Kind::Kernel) => "rdonly_mem",
        None => "scalar",
    }
}

/// Reads a value of `bytes.len()` (at most 8) bytes in `endian` order. The widths loads use
/// get a fixed-size conversion each, which compiles to one load.
#[inline]
pub(crate) fn get(bytes: &[u8], endian: Endian) -> u64 {
    let little = endian == Endian::Little;
    match *bytes {
        [a] => u64::from(a),
        [a, b] if little => u64::from(u16::from_le_bytes([a, b])),
        [a, b] => u64::from(u16::from_be_bytes([a, b])),
        [a, b, c, d] if little => u64::from(u32::from_le_bytes([a, b, c, d])),
        [a, b, c, d] => u64::from(u32::from_be_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] if little => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        [a, b, c, d, e, f, g, h] => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
        _ => {
            let fold = |v: u64, b: &u8| v << 8 | u64::from(*b);
            if little {
                bytes.iter().rev().fold(0, fold)
            } else {
                bytes.iter().fold(0, fold)
            }
        }
    }
}

/// Writes the low `bytes.len()` (at most 8) bytes of `v` in `endian` order.
#[inline]
pub(crate) fn put(bytes: &mut [u8], v: u64, endian: Endian) {
    let little = endian == Endian::Little;
    if let Ok(b) = <&mut [u8; 8]>::try_from(&mut *bytes) {
        *b = if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        };
    } else if let Ok(b) = <&mut [u8; 4]>::try_from(&mut *bytes) {
        let v = v as u32;
        *b = if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        };
    } else if let Ok(b) = <&mut [u8; 2]>::try_from(&mut *bytes) {
        let v = v as u16;
        *b = if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        };
    } else {
        let n = bytes.len() as u32;
        for (i, b) in (0u32..).zip(bytes.iter_mut()) {
            let byte = if little { i } else { n - 1 - i };
            *b = v.checked_shr(8 * byte).unwrap_or(0) as u8;
        }
    }
}

/// Why an access failed; the interpreter turns it into a message naming the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AccessError {
    /// The value is not a pointer to memory (carries the value, to tell null apart).
    Scalar(u64),
    /// A map reference, which has no memory behind it.
    MapRef,
    /// The stack of a call that has returned.
    DeadFrame,
    /// Outside the frame's stack; `off` counts from the stack's end, as `r10`-relative offsets do.
    Stack { off: i64, size: u64 },
    /// Outside a map value of `len` bytes.
    Value { off: i64, size: u64, len: usize },
    /// Outside the context.
    Ctx { off: i64, size: u64 },
    /// A store into the read-only context.
    ReadOnly { off: i64, size: u64 },
    /// A store into the value of a map the program may only read (`BPF_F_RDONLY_PROG`).
    ReadOnlyValue { off: i64, size: u64, len: usize },
    /// Outside a kernel variable's copy, or a store into it.
    Rdonly { off: i64, size: u64 },
}

/// A looked-up map value's copy.
struct Slot {
    map: u32,
    /// The map index (4 bytes, little endian) followed by the key: the deduplication key.
    tag: Vec<u8>,
    data: Vec<u8>,
    dirty: bool,
    /// Read-only data: a value of a map the program may not write.
    read_only: bool,
}

impl Slot {
    fn key(&self) -> &[u8] {
        self.tag.get(4..).unwrap_or(&[])
    }
}

/// All memory of one run.
pub(crate) struct Memory<'c> {
    ctx: &'c mut [u8],
    ctx_writable: bool,
    /// One stack per live frame: the entry function's, plus one per bpf-to-bpf call in
    /// progress. The kernel's fixed `MAX_CALL_FRAMES` is the capacity, so a run never allocates
    /// for its stacks and only the frames actually entered are zeroed.
    stacks: heapless::Vec<[u8; STACK], MAX_FRAMES>,
    values: Vec<Slot>,
    /// Indices of slots changed since the last write-back, each once.
    dirty: Vec<u32>,
    /// Slot index by tag. The hasher has fixed keys: the VM stays free of the system's random
    /// source, and runs are reproducible.
    by_tag: HashMap<Vec<u8>, u32, BuildHasherDefault<DefaultHasher>>,
    /// Scratch for building a slot's tag without allocating.
    tag: Vec<u8>,
}

/// The byte range `size` bytes at `off` covers in a region of `len` bytes, if it fits.
#[inline]
fn span(off: i64, size: u64, len: usize) -> Option<Range<usize>> {
    let start = u64::try_from(off).ok()?;
    let end = start.checked_add(size)?;
    if end > len as u64 {
        return None;
    }
    Some(start as usize..end as usize)
}

impl<'c> Memory<'c> {
    pub(crate) fn new(ctx: &'c mut [u8], ctx_writable: bool) -> Memory<'c> {
        Memory {
            ctx,
            ctx_writable,
            stacks: heapless::Vec::from_array([[0; STACK]]),
            values: Vec::new(),
            dirty: Vec::new(),
            by_tag: HashMap::default(),
            tag: Vec::new(),
        }
    }

    pub(crate) fn frames(&self) -> usize {
        self.stacks.len()
    }

    /// Starts a new frame with a zeroed stack; false when `MAX_FRAMES` are live already.
    pub(crate) fn push_frame(&mut self) -> bool {
        self.stacks.push([0; STACK]).is_ok()
    }

    pub(crate) fn pop_frame(&mut self) {
        self.stacks.pop();
    }

    /// The region `addr` points into and the offset within it.
    #[inline]
    fn locate(&self, addr: u64) -> Result<(&[u8], Ptr), AccessError> {
        let p = decode(addr).ok_or(AccessError::Scalar(addr))?;
        let region: &[u8] = match p.kind {
            Kind::Ctx => self.ctx,
            Kind::Stack => self.stack(p.index)?,
            Kind::MapValue => {
                &self
                    .values
                    .get(p.index as usize)
                    .ok_or(AccessError::Scalar(addr))?
                    .data
            }
            Kind::MapRef => return Err(AccessError::MapRef),
            Kind::Kernel => &ZEROS[..],
        };
        Ok((region, p))
    }

    #[inline]
    fn stack(&self, index: u32) -> Result<&[u8], AccessError> {
        self.stacks
            .get(index as usize)
            .map(|s| &s[..])
            .ok_or(AccessError::DeadFrame)
    }

    /// The `size` bytes at `addr`, for reading.
    #[inline]
    pub(crate) fn read(&self, addr: u64, size: u64) -> Result<&[u8], AccessError> {
        let (region, p) = self.locate(addr)?;
        match span(p.off, size, region.len()) {
            Some(r) => Ok(&region[r]),
            None => Err(bounds(p, size, region.len())),
        }
    }

    /// Up to `max` bytes at `addr`, fewer where the region ends first.
    pub(crate) fn read_up_to(&self, addr: u64, max: u64) -> Result<&[u8], AccessError> {
        let (region, p) = self.locate(addr)?;
        let rest = usize::try_from(p.off)
            .ok()
            .and_then(|start| region.get(start..))
            .ok_or_else(|| bounds(p, max, region.len()))?;
        Ok(&rest[..(rest.len() as u64).min(max) as usize])
    }

    /// The `size` bytes at `addr`, for writing; a map value copy becomes dirty.
    #[inline]
    pub(crate) fn write(&mut self, addr: u64, size: u64) -> Result<&mut [u8], AccessError> {
        let p = decode(addr).ok_or(AccessError::Scalar(addr))?;
        match p.kind {
            Kind::Ctx => {
                let r = span(p.off, size, self.ctx.len())
                    .ok_or(AccessError::Ctx { off: p.off, size })?;
                if !self.ctx_writable {
                    return Err(AccessError::ReadOnly { off: p.off, size });
                }
                Ok(&mut self.ctx[r])
            }
            Kind::Stack => {
                let stack = self
                    .stacks
                    .get_mut(p.index as usize)
                    .ok_or(AccessError::DeadFrame)?;
                let r = span(p.off, size, STACK).ok_or(AccessError::Stack {
                    off: p.off - STACK as i64,
                    size,
                })?;
                Ok(&mut stack[r])
            }
            Kind::MapValue => {
                let slot = self
                    .values
                    .get_mut(p.index as usize)
                    .ok_or(AccessError::Scalar(addr))?;
                let len = slot.data.len();
                let r = span(p.off, size, len).ok_or(AccessError::Value {
                    off: p.off,
                    size,
                    len,
                })?;
                if slot.read_only {
                    return Err(AccessError::ReadOnlyValue {
                        off: p.off,
                        size,
                        len,
                    });
                }
                if !slot.dirty {
                    slot.dirty = true;
                    self.dirty.push(p.index);
                }
                Ok(&mut slot.data[r])
            }
            Kind::MapRef => Err(AccessError::MapRef),
            Kind::Kernel => Err(AccessError::Rdonly { off: p.off, size }),
        }
    }

    /// Loads `size` bytes at `addr` as a zero-extended number.
    #[inline]
    pub(crate) fn load(&self, addr: u64, size: u64, endian: Endian) -> Result<u64, AccessError> {
        Ok(get(self.read(addr, size)?, endian))
    }

    /// Stores the low `size` bytes of `v` at `addr`.
    #[inline]
    pub(crate) fn store(
        &mut self,
        addr: u64,
        size: u64,
        v: u64,
        endian: Endian,
    ) -> Result<(), AccessError> {
        put(self.write(addr, size)?, v, endian);
        Ok(())
    }

    /// Fills `self.tag` with the deduplication key of `key` in `map`.
    fn set_tag(&mut self, map: u32, key: &[u8]) {
        self.tag.clear();
        self.tag.extend_from_slice(&map.to_le_bytes());
        self.tag.extend_from_slice(key);
    }

    /// Keeps `value`, just looked up under `key` in `map`, in a region and returns a pointer to
    /// it: the region of an earlier lookup of the same key if there is one, so both pointers see
    /// the same bytes. `None` when the run holds too many values already.
    /// `read_only` makes stores through the pointer fault, for the read-only data of a map
    /// the program may only read.
    pub(crate) fn hold(
        &mut self,
        map: u32,
        key: &[u8],
        value: &[u8],
        read_only: bool,
    ) -> Option<u64> {
        self.set_tag(map, key);
        if let Some(&i) = self.by_tag.get(self.tag.as_slice()) {
            if let Some(slot) = self.values.get_mut(i as usize) {
                slot.data.clear();
                slot.data.extend_from_slice(value);
            }
            return Some(pointer(Kind::MapValue, i, 0));
        }
        if self.values.len() >= MAX_VALUES {
            return None;
        }
        let i = self.values.len() as u32;
        self.values.push(Slot {
            map,
            tag: self.tag.clone(),
            data: value.to_vec(),
            dirty: false,
            read_only,
        });
        self.by_tag.insert(self.tag.clone(), i);
        Some(pointer(Kind::MapValue, i, 0))
    }

    /// After an update stored `value` under `key`, makes an earlier lookup's copy show it, as an
    /// in-place update does in the kernel.
    pub(crate) fn refresh(&mut self, map: u32, key: &[u8], value: &[u8]) {
        self.set_tag(map, key);
        if let Some(&i) = self.by_tag.get(self.tag.as_slice()) {
            if let Some(slot) = self.values.get_mut(i as usize) {
                slot.data.clear();
                slot.data.extend_from_slice(value);
            }
        }
    }

    /// Writes every changed map value copy back to its map. `BPF_EXIST` because a store through
    /// a pointer to an element deleted since the lookup is lost in the kernel too; so the
    /// result is deliberately not checked.
    pub(crate) fn flush(&mut self, host: &mut dyn Host) {
        for i in self.dirty.drain(..) {
            if let Some(slot) = self.values.get_mut(i as usize) {
                slot.dirty = false;
                host.map_update(slot.map, slot.key(), &slot.data, BPF_EXIST);
            }
        }
    }
}

/// The bounds error for an access of `size` bytes through `p` into a region of `len` bytes.
fn bounds(p: Ptr, size: u64, len: usize) -> AccessError {
    match p.kind {
        Kind::Stack => AccessError::Stack {
            off: p.off - STACK as i64,
            size,
        },
        Kind::MapValue => AccessError::Value {
            off: p.off,
            size,
            len,
        },
        // A map reference fails before any bounds are checked; it joins the context here only
        // to keep the match total.
        Kind::Kernel => AccessError::Rdonly { off: p.off, size },
        Kind::Ctx | Kind::MapRef => AccessError::Ctx { off: p.off, size },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_round_trip_and_survive_negative_offsets() {
        let p = pointer(Kind::Stack, 3, STACK as i64);
        assert_eq!(p, 0x4b10_0003_8000_0200);
        let below = p.wrapping_sub(1000);
        assert_eq!(
            decode(below),
            Some(Ptr {
                kind: Kind::Stack,
                index: 3,
                off: 512 - 1000
            })
        );
        assert_eq!(decode(0), None);
        assert_eq!(decode(0xffff_8880_0000_0000), None);
        assert_eq!(decode(0x4bf0_0000_0000_0000), None);
    }

    #[test]
    fn byte_order_of_loads_and_stores() {
        let mut b = [0u8; 4];
        put(&mut b, 0x1122_3344, Endian::Big);
        assert_eq!(b, [0x11, 0x22, 0x33, 0x44]);
        assert_eq!(get(&b, Endian::Little), 0x4433_2211);
        put(&mut b[..2], 0xaabb, Endian::Little);
        assert_eq!(b, [0xbb, 0xaa, 0x33, 0x44]);
    }
}
