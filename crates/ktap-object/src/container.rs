//! The container both file kinds share: header, compression, postcard, and the errors a bad
//! file can cause. Every check happens before the next step trusts a byte.

use ktap_bpf::{Arch, Endian, Target};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;

/// The version of the layout of the encoded values; a file of another version is refused
/// with a message rather than misread. Version 2 added `argstr`'s event layouts, `-C`'s
/// profile CPU, and the address, time and `argstr` value types; version 3 maps' initial
/// entries (the calls a probe on `raw_syscalls` stands for); version 4 marks the probes a
/// pattern produced (`Probe::optional`); version 5 has per-CPU tables, whose readers sum the
/// CPUs' values (an older reader would print one CPU's raw slots).
pub const FORMAT_VERSION: u16 = 5;

const HEADER: usize = 24;

/// The largest postcard payload accepted. A description of every tracepoint of a large kernel
/// inflates to about 2 MiB; the limit keeps a hostile file from asking for gigabytes.
const MAX_PAYLOAD: usize = 64 << 20;

/// zlib's best compression: both files are written once and read often, and at this size the
/// time is a few milliseconds.
const LEVEL: u8 = 9;

/// Which of the two files a container holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Object,
    KernelDesc,
}

impl Kind {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Object => b"\x7fKTAPOBJ",
            Kind::KernelDesc => b"\x7fKTAPKRN",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Object => "compiled ktap object",
            Kind::KernelDesc => "ktap kernel description",
        }
    }

    /// True when `bytes` start with this kind's magic (the file is meant to be one, whether or
    /// not the rest is sound).
    pub fn matches(self, bytes: &[u8]) -> bool {
        bytes.starts_with(self.magic())
    }
}

/// Why a file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The file does not start with the kind's magic.
    NotKtap { kind: Kind, other: Option<Kind> },
    /// The file ends before its header or its data does.
    Truncated {
        kind: Kind,
        have: usize,
        need: usize,
    },
    /// Written by a ktap with another format version.
    Version { kind: Kind, found: u16 },
    /// The header names a target this ktap does not know.
    UnknownTarget { kind: Kind },
    /// Made for another target than the one asked for.
    WrongTarget {
        kind: Kind,
        found: Target,
        expected: Target,
    },
    /// The header is sound but what follows is not.
    Corrupt { kind: Kind, reason: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotKtap { kind, other: Some(other) } => write!(
                f,
                "this is a {}, not a {}",
                other.noun(),
                kind.noun()
            ),
            Error::NotKtap { kind, other: None } => {
                write!(f, "not a {} (it does not start with one's header)", kind.noun())
            }
            Error::Truncated { kind, have, need } => write!(
                f,
                "truncated {}: {} bytes of {} (was the copy cut short?)",
                kind.noun(),
                have,
                need
            ),
            Error::Version { kind, found } => write!(
                f,
                "{} of format version {}; this ktap reads version {}: write it again with this ktap",
                kind.noun(),
                found,
                FORMAT_VERSION
            ),
            Error::UnknownTarget { kind } => write!(
                f,
                "{} for a target this ktap does not know (known: {})",
                kind.noun(),
                Target::NAMES.join(", ")
            ),
            Error::WrongTarget {
                kind,
                found,
                expected,
            } => write!(
                f,
                "{} for {}, but this is {}",
                kind.noun(),
                describe_target(*found),
                describe_target(*expected)
            ),
            Error::Corrupt { kind, reason } => write!(f, "corrupt {}: {}", kind.noun(), reason),
        }
    }
}

impl std::error::Error for Error {}

/// `mips (big-endian, 32-bit)`.
pub fn describe_target(t: Target) -> String {
    let order = match t.endian {
        Endian::Little => "little-endian",
        Endian::Big => "big-endian",
    };
    format!(
        "{} ({}, {}-bit)",
        t.name(),
        order,
        u32::from(t.word_size) * 8
    )
}

/// Stable codes for the header; never reuse one.
fn arch_code(a: Arch) -> u8 {
    match a {
        Arch::X86_64 => 1,
        Arch::Aarch64 => 2,
        Arch::Arm => 3,
        Arch::Mips => 4,
        Arch::Mips64 => 5,
        Arch::Powerpc => 6,
        Arch::Powerpc64 => 7,
    }
}

fn target_from(bytes: [u8; 3]) -> Option<Target> {
    let arch = match bytes[0] {
        1 => Arch::X86_64,
        2 => Arch::Aarch64,
        3 => Arch::Arm,
        4 => Arch::Mips,
        5 => Arch::Mips64,
        6 => Arch::Powerpc,
        7 => Arch::Powerpc64,
        _ => return None,
    };
    let endian = match bytes[1] {
        0 => Endian::Little,
        1 => Endian::Big,
        _ => return None,
    };
    let t = Target {
        arch,
        endian,
        word_size: bytes[2],
    };
    // Only the combinations ktap builds for: x86_64 big-endian is not a target.
    (Target::by_name(t.name()) == Some(t)).then_some(t)
}

/// The container of `value` for `target`.
pub(crate) fn pack(kind: Kind, target: Target, value: &impl Serialize) -> Vec<u8> {
    // The types are plain data (no maps, no custom serializers, no floats), so encoding them
    // into memory cannot fail; an empty payload would be refused on reading.
    let raw = postcard::to_allocvec(value).unwrap_or_default();
    let packed = miniz_oxide::deflate::compress_to_vec_zlib(&raw, LEVEL);
    let mut out = Vec::with_capacity(HEADER + packed.len());
    out.extend_from_slice(kind.magic());
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[
        arch_code(target.arch),
        match target.endian {
            Endian::Little => 0,
            Endian::Big => 1,
        },
        target.word_size,
        0,
        0,
        0,
    ]);
    out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&packed);
    out
}

/// The target in a container's header, checked up to the target (magic, version, known
/// target), without reading the rest.
pub(crate) fn peek(kind: Kind, bytes: &[u8]) -> Result<Target, Error> {
    if !kind.matches(bytes) {
        let other = [Kind::Object, Kind::KernelDesc]
            .into_iter()
            .find(|k| *k != kind && k.matches(bytes));
        // A file shorter than the magic that starts like it is a cut copy, not another file.
        if other.is_none() && !bytes.is_empty() && kind.magic().starts_with(bytes) {
            return Err(Error::Truncated {
                kind,
                have: bytes.len(),
                need: HEADER,
            });
        }
        return Err(Error::NotKtap { kind, other });
    }
    if bytes.len() < HEADER {
        return Err(Error::Truncated {
            kind,
            have: bytes.len(),
            need: HEADER,
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(Error::Version {
            kind,
            found: version,
        });
    }
    target_from([bytes[10], bytes[11], bytes[12]]).ok_or(Error::UnknownTarget { kind })
}

/// The target and value in a container, every length and checksum checked.
pub(crate) fn unpack<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<(Target, T), Error> {
    let target = peek(kind, bytes)?;
    let corrupt = |reason: String| Error::Corrupt { kind, reason };
    if bytes[13..16] != [0, 0, 0] {
        return Err(corrupt("reserved header bytes are not zero".into()));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let packed_len = word(16) as usize;
    let raw_len = word(20) as usize;
    let need = HEADER.saturating_add(packed_len);
    if bytes.len() < need {
        return Err(Error::Truncated {
            kind,
            have: bytes.len(),
            need,
        });
    }
    if bytes.len() > need {
        return Err(corrupt(format!(
            "{} bytes after the end of its data",
            bytes.len() - need
        )));
    }
    if raw_len == 0 || raw_len > MAX_PAYLOAD {
        return Err(corrupt(format!("implausible data size {raw_len}")));
    }
    let raw = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&bytes[HEADER..], raw_len)
        .map_err(|e| {
            corrupt(format!(
                "its compressed data does not inflate ({:?})",
                e.status
            ))
        })?;
    if raw.len() != raw_len {
        return Err(corrupt(format!(
            "its data inflates to {} bytes, its header says {}",
            raw.len(),
            raw_len
        )));
    }
    let (value, rest) =
        postcard::take_from_bytes(&raw).map_err(|e| corrupt(format!("undecodable data ({e})")))?;
    if !rest.is_empty() {
        return Err(corrupt(format!(
            "{} undecoded bytes at the end",
            rest.len()
        )));
    }
    Ok((target, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_round_trips_through_the_header() {
        for name in Target::NAMES {
            let t = Target::by_name(name).unwrap();
            let bytes = pack(Kind::Object, t, &7u32);
            assert_eq!(unpack::<u32>(Kind::Object, &bytes), Ok((t, 7)));
            assert_eq!(peek(Kind::Object, &bytes), Ok(t));
        }
    }

    #[test]
    fn header_errors() {
        let t = Target::by_name("mips").unwrap();
        let good = pack(Kind::Object, t, &"hello".to_string());
        let e = peek(Kind::KernelDesc, &good).unwrap_err();
        assert_eq!(
            e.to_string(),
            "this is a compiled ktap object, not a ktap kernel description"
        );
        assert!(matches!(
            peek(Kind::Object, b"#!/bin/sh"),
            Err(Error::NotKtap { other: None, .. })
        ));
        assert!(matches!(
            peek(Kind::Object, b"\x7fKTA"),
            Err(Error::Truncated { .. })
        ));
        let mut v = good.clone();
        v[8] = 9;
        assert_eq!(
            peek(Kind::Object, &v).unwrap_err().to_string(),
            "compiled ktap object of format version 9; this ktap reads version 5: write it again with this ktap"
        );
        let mut bad = good.clone();
        bad[10] = 1; // x86_64, with mips' byte order: no such target
        assert_eq!(
            peek(Kind::Object, &bad),
            Err(Error::UnknownTarget { kind: Kind::Object })
        );
        let short = &good[..good.len() - 1];
        assert!(matches!(
            unpack::<String>(Kind::Object, short),
            Err(Error::Truncated { .. })
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            unpack::<String>(Kind::Object, &long),
            Err(Error::Corrupt { .. })
        ));
    }
}
