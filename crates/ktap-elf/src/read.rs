//! Bounds-checked reads of the file's integers and strings in its own byte order and class:
//! every accessor returns `None` past the end instead of panicking.

use crate::{ByteOrder, Class};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    pub data: &'a [u8],
    pub class: Class,
    pub order: ByteOrder,
}

impl<'a> Reader<'a> {
    /// Bytes in an address or offset field: 4 or 8.
    pub fn word_size(&self) -> usize {
        match self.class {
            Class::Elf32 => 4,
            Class::Elf64 => 8,
        }
    }

    fn array<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.data.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    pub fn u16(&self, at: usize) -> Option<u16> {
        let b = self.array(at)?;
        Some(match self.order {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        })
    }

    pub fn u32(&self, at: usize) -> Option<u32> {
        let b = self.array(at)?;
        Some(match self.order {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        })
    }

    pub fn u64(&self, at: usize) -> Option<u64> {
        let b = self.array(at)?;
        Some(match self.order {
            ByteOrder::Little => u64::from_le_bytes(b),
            ByteOrder::Big => u64::from_be_bytes(b),
        })
    }

    /// An address-sized field, widened to 64 bits.
    pub fn word(&self, at: usize) -> Option<u64> {
        match self.class {
            Class::Elf32 => self.u32(at).map(u64::from),
            Class::Elf64 => self.u64(at),
        }
    }

    /// `len` bytes at file offset `offset`.
    pub fn bytes(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(start..end)
    }

    /// The NUL-terminated UTF-8 string at `index` in the string table at file offset `table`
    /// of `size` bytes. A name without its NUL, or not UTF-8, is `None`.
    pub fn str_in(&self, table: u64, size: u64, index: u64) -> Option<&'a str> {
        let strtab = self.bytes(table, size)?;
        cstr(strtab.get(usize::try_from(index).ok()?..)?)
    }
}

/// The UTF-8 string before the first NUL of `bytes`; `None` without a NUL or if not UTF-8.
pub(crate) fn cstr(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&bytes[..end]).ok()
}
