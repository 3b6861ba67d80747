//! The initramfs: a gzip'd cpio archive in the kernel's "newc" format, the one form the kernel
//! unpacks into its first root file system.

use miniz_oxide::deflate::compress_to_vec;

/// What an archive entry is.
pub enum Kind<'a> {
    Dir,
    File {
        data: &'a [u8],
        exec: bool,
    },
    Symlink {
        target: &'a str,
    },
    /// A character device, e.g. /dev/console (5, 1), which the kernel opens for init's stdio
    /// before init could mount devtmpfs.
    CharDev {
        major: u32,
        minor: u32,
    },
}

/// Builds archives entry by entry; names are paths without a leading `/`.
#[derive(Default)]
pub struct Archive {
    bytes: Vec<u8>,
    ino: u32,
}

impl Archive {
    pub fn add(&mut self, name: &str, kind: Kind) {
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match kind {
            Kind::Dir => (0o040755, &[], (0, 0)),
            Kind::File { data, exec } => (if exec { 0o100755 } else { 0o100644 }, data, (0, 0)),
            Kind::Symlink { target } => (0o120777, target.as_bytes(), (0, 0)),
            Kind::CharDev { major, minor } => (0o020600, &[], (major, minor)),
        };
        self.ino += 1;
        self.header(name, self.ino, mode, data.len(), rdev);
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, name: &str, ino: u32, mode: u32, size: usize, rdev: (u32, u32)) {
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [ino, mode, 0, 0, nlink, 0, size as u32, 0, 0, rdev.0, rdev.1];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        // The name's size counts its NUL; the checksum field is zero in this format.
        self.bytes
            .extend_from_slice(format!("{:08x}{:08x}", name.len() + 1, 0).as_bytes());
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// The archive with its trailer, gzip-compressed.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, 0, (0, 0));
        gzip(&self.bytes)
    }
}

/// A gzip member around a raw deflate stream: the kernel's initramfs decompressor wants the
/// gzip framing, with the CRC-32 and size trailer.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    out.extend(compress_to_vec(data, 6));
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// The system's gzip and cpio read what we write: the same tools the kernel's format is
    /// defined by.
    #[test]
    fn gzip_and_cpio_read_it() {
        let mut a = Archive::default();
        a.add("bin", Kind::Dir);
        a.add(
            "bin/x",
            Kind::File {
                data: b"hello",
                exec: true,
            },
        );
        a.add("bin/y", Kind::Symlink { target: "x" });
        a.add("dev", Kind::Dir);
        a.add("dev/console", Kind::CharDev { major: 5, minor: 1 });
        let gz = a.finish();
        let mut gunzip = Command::new("gzip")
            .arg("-dc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        gunzip.stdin.take().unwrap().write_all(&gz).unwrap();
        let raw = gunzip.wait_with_output().unwrap();
        assert!(raw.status.success());
        let mut cpio = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cpio (Debian package cpio)");
        cpio.stdin.take().unwrap().write_all(&raw.stdout).unwrap();
        let out = cpio.wait_with_output().unwrap();
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success());
        for want in ["bin/x", "bin/y -> x", "dev/console", "crw-------"] {
            assert!(listing.contains(want), "{want} in\n{listing}");
        }
        assert!(
            listing.contains("-rwxr-xr-x") && listing.contains(" 5 "),
            "{listing}"
        );
    }
}
