//! The files that cross between a host and a board: compiled objects ([`Object`], written by
//! `ktapc`, run by `ktap FILE`) and kernel descriptions ([`KernelDesc`], written by
//! `ktap-selftest --dump`, compiled against by `ktapc --kernel`).
//!
//! Both are one container: a fixed 24-byte header, then a zlib stream of the postcard encoding
//! of the value. The header is little-endian whatever the host, and postcard and the
//! compressor depend on nothing but the value, so a file's bytes are the same whichever machine
//! wrote it. Nothing here performs I/O: bytes in, bytes out.
//!
//! ```text
//!  0..8   magic: "\x7fKTAPOBJ" (object) or "\x7fKTAPKRN" (kernel description)
//!  8..10  format version, u16
//! 10..13  target: architecture code, byte order (0 little, 1 big), word size
//! 13..16  zero
//! 16..20  length of the zlib stream, u32
//! 20..24  length of the postcard bytes it inflates to, u32
//! 24..    the zlib stream
//! ```

mod container;
mod desc;
mod object;

pub use container::{describe_target, Error, Kind, FORMAT_VERSION};
pub use desc::KernelDesc;
pub use object::{Assumptions, Object, Recording};
