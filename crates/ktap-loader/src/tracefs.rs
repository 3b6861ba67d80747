//! tracefs: finding (or mounting) it, and the kernel's tracepoints as the compiler asks for
//! them through [`ktap_bpf::kernel::Kernel`].
//!
//! A kernel has a couple of thousand tracepoints; a pattern usually names one, so a literal
//! category or name is looked up directly and only the globbed parts of a pattern are listed.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use ktap_bpf::kernel::{glob_match, parse_tp_format, FileBytes, Kernel, TpFormat};

use crate::error::LoadError;

/// Where ktap mounts tracefs when nobody has.
pub const MOUNT_POINT: &str = "/sys/kernel/tracing";

/// Older systems only reach tracefs through debugfs.
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// The tracefs root: the first of the usual places that has an `events` directory, else a
/// fresh mount at [`MOUNT_POINT`]. The mount is left in place: it is a view of kernel state,
/// not something ktap attached.
pub fn find_or_mount() -> Result<PathBuf, LoadError> {
    let mut denied = false;
    for root in [MOUNT_POINT, DEBUGFS_TRACING].map(PathBuf::from) {
        match fs::metadata(root.join("events")) {
            Ok(m) if m.is_dir() => return Ok(root),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied = true,
            _ => {}
        }
    }
    // tracefs is there but closed to us: mounting would be refused too, and for the same
    // reason.
    if denied {
        return Err(LoadError::Permission {
            action: format!("read tracefs ({MOUNT_POINT})"),
        });
    }
    let path = PathBuf::from(MOUNT_POINT);
    mount_tracefs(&path)?;
    if path.join("events").is_dir() {
        Ok(path)
    } else {
        Err(LoadError::Tracefs {
            path,
            reason: "the mount has no events directory (is CONFIG_EVENT_TRACING on?)".into(),
        })
    }
}

fn mount_tracefs(path: &Path) -> Result<(), LoadError> {
    let fail = |reason: String| LoadError::Tracefs {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_dir() {
        return Err(fail(
            "the directory does not exist (is CONFIG_TRACING on, and sysfs mounted?)".into(),
        ));
    }
    let target = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| fail("the path contains a NUL byte".into()))?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call, and
    // tracefs takes no mount data.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Err(LoadError::Permission {
            action: format!("mount tracefs at {}", path.display()),
        }),
        // Someone mounted it between our look and our mount.
        Some(libc::EBUSY) if path.join("events").is_dir() => Ok(()),
        Some(libc::ENODEV) => Err(fail(
            "this kernel has no tracefs (built without CONFIG_TRACING)".into(),
        )),
        _ => Err(fail(crate::error::describe(&e))),
    }
}

/// The running kernel's tracepoints, read from tracefs.
#[derive(Clone, Debug)]
pub struct TracefsKernel {
    root: PathBuf,
}

impl TracefsKernel {
    /// The kernel's tracefs, mounting it if needed.
    pub fn new() -> Result<TracefsKernel, LoadError> {
        Ok(TracefsKernel {
            root: find_or_mount()?,
        })
    }

    /// A tracefs tree at `root` (a test fixture or an unusual mount point).
    pub fn at(root: impl Into<PathBuf>) -> TracefsKernel {
        TracefsKernel { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one tracepoint.
    pub fn event_dir(&self, category: &str, name: &str) -> PathBuf {
        self.root.join("events").join(category).join(name)
    }

    /// True when tracepoint `category:name` exists.
    pub fn exists(&self, category: &str, name: &str) -> bool {
        valid_component(category)
            && valid_component(name)
            && self.event_dir(category, name).join("id").is_file()
    }

    /// The subdirectory names of `dir` matching `pattern`, or just `pattern` itself when it has
    /// no glob characters and the directory exists (one `stat` instead of a listing).
    fn matching(&self, dir: &Path, pattern: &str) -> Vec<String> {
        if !has_glob(pattern) {
            return if valid_component(pattern) && dir.join(pattern).is_dir() {
                vec![pattern.to_string()]
            } else {
                Vec::new()
            };
        }
        subdirs(dir, |name| glob_match(pattern, name))
    }
}

/// The names of `dir`'s subdirectories that `keep` accepts, in directory order; empty when it
/// cannot be read. Through libc's readdir rather than `fs::read_dir`: std makes two allocations
/// per entry before anything can look at its name, and `events/syscalls/` has over 700 entries,
/// of which a glob keeps half. That was a fifth of the instructions a compile of
/// `syscalls:sys_enter_*` ran.
fn subdirs(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    // SAFETY: a valid NUL-terminated path; a null result is handled.
    let d = unsafe { libc::opendir(path.as_ptr()) };
    if d.is_null() {
        return Vec::new();
    }
    let mut out = Vec::new();
    loop {
        // SAFETY: `d` is open until closedir below; the entry stays valid until the next call.
        let e = unsafe { libc::readdir(d) };
        if e.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated.
        let (name, d_type) =
            unsafe { (std::ffi::CStr::from_ptr((*e).d_name.as_ptr()), (*e).d_type) };
        let Ok(name) = name.to_str() else { continue };
        if name.starts_with('.') || !keep(name) {
            continue;
        }
        // File systems that do not fill in d_type (DT_UNKNOWN) get a stat.
        let is_dir = match d_type {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => dir.join(name).is_dir(),
            _ => false,
        };
        if is_dir {
            out.push(name.to_string());
        }
    }
    // SAFETY: `d` was opened above and is closed once.
    unsafe { libc::closedir(d) };
    out
}

/// A file mapped read-only. Only the pages the compiler touches are read: for a uprobe on a
/// C library, the ELF headers and symbol tables, where reading all of libc.so.6 (1.9 MB) was
/// most of the time `ktap` took to compile such a script.
struct Mapped {
    addr: std::ptr::NonNull<libc::c_void>,
    len: usize,
}

impl Mapped {
    fn new(file: &fs::File, len: u64) -> Option<Mapped> {
        use std::os::fd::AsRawFd as _;
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        // SAFETY: a fresh private read-only mapping of an open descriptor; nothing aliases it
        // mutably, and it stays valid after the descriptor is closed.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return None;
        }
        Some(Mapped {
            addr: std::ptr::NonNull::new(addr)?,
            len,
        })
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `len` readable bytes are mapped at `addr` until drop.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr().cast(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.addr.as_ptr(), self.len) };
    }
}

impl Kernel for TracefsKernel {
    fn read_file(&self, path: &str) -> Result<FileBytes, String> {
        let file = fs::File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        match Mapped::new(&file, len) {
            Some(m) => Ok(Box::new(m)),
            // Not mappable (empty, or not a regular file): read it.
            None => {
                let mut bytes = Vec::new();
                io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| e.to_string())?;
                Ok(Box::new(bytes))
            }
        }
    }

    fn kallsyms(&self) -> Option<String> {
        fs::read_to_string("/proc/kallsyms").ok()
    }

    fn release(&self) -> Option<String> {
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|r| r.trim().to_string())
    }

    fn btf(&self) -> Option<Vec<u8>> {
        fs::read("/sys/kernel/btf/vmlinux").ok()
    }

    fn kprobe_blacklist(&self) -> Option<String> {
        // debugfs is usually mounted beside tracefs; without it every function is a candidate
        // and the kernel itself refuses a blacklisted one at attach time.
        fs::read_to_string("/sys/kernel/debug/kprobes/blacklist").ok()
    }

    fn tracepoints(&self, category: &str, name: &str) -> Vec<(String, String)> {
        let events = self.root.join("events");
        let mut out = Vec::new();
        // Sorted by category, then by name within each: cheaper than sorting the pairs. The
        // stable sort, as it compares less often: a built-for-size std sorts unstably with
        // heapsort, and these names share long prefixes (`sys_enter_`).
        let mut cats = self.matching(&events, category);
        cats.sort();
        for cat in cats {
            let mut names = self.matching(&events.join(&cat), name);
            names.sort();
            out.extend(names.into_iter().map(|n| (cat.clone(), n)));
        }
        out
    }

    fn tp_format(&self, category: &str, name: &str) -> Result<TpFormat, String> {
        if !valid_component(category) || !valid_component(name) {
            return Err(format!("`{category}:{name}` is not a tracepoint name"));
        }
        let path = self.event_dir(category, name).join("format");
        let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                format!("tracepoint `{category}:{name}` does not exist on this kernel")
            }
            io::ErrorKind::PermissionDenied => format!(
                "reading {} needs root (tracefs is readable only by root)",
                path.display()
            ),
            _ => format!(
                "cannot read {}: {}",
                path.display(),
                crate::error::describe(&e)
            ),
        })?;
        parse_tp_format(category, &text).map_err(|e| {
            format!(
                "{}:{}: cannot parse the tracepoint format: {}",
                path.display(),
                e.line,
                e.message
            )
        })
    }

    fn all_tracepoints(&self) -> Vec<String> {
        // One file lists them all; walking ~100 category directories is the fallback.
        let mut all: Vec<String> = match fs::read_to_string(self.root.join("available_events")) {
            Ok(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| l.contains(':'))
                .map(String::from)
                .collect(),
            Err(_) => self
                .tracepoints("*", "*")
                .into_iter()
                .map(|(c, n)| format!("{c}:{n}"))
                .collect(),
        };
        all.sort();
        all.dedup();
        all
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// A single path component: anything else could walk out of `events/`.
fn valid_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracefs-shaped tree in a temporary directory.
    fn fixture() -> (PathBuf, TracefsKernel) {
        let root = std::env::temp_dir().join(format!("ktap-tracefs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (cat, name, id) in [
            ("syscalls", "sys_enter_openat", 1),
            ("syscalls", "sys_exit_openat", 2),
            ("sched", "sched_switch", 3),
        ] {
            let dir = root.join("events").join(cat).join(name);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("id"), format!("{id}\n")).unwrap();
            fs::write(
                dir.join("format"),
                format!(
                    "name: {name}\nID: {id}\nformat:\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\nprint fmt: \"\"\n"
                ),
            )
            .unwrap();
        }
        fs::write(root.join("events").join("syscalls").join("enable"), "0").unwrap();
        let k = TracefsKernel::at(&root);
        (root, k)
    }

    #[test]
    fn expands_globs_and_reads_formats() {
        let (root, k) = fixture();
        assert_eq!(
            k.tracepoints("syscalls", "*openat"),
            [
                ("syscalls".to_string(), "sys_enter_openat".to_string()),
                ("syscalls".to_string(), "sys_exit_openat".to_string())
            ]
        );
        assert_eq!(k.tracepoints("*", "sched_switch").len(), 1);
        assert_eq!(k.tracepoints("*", "*").len(), 3);
        assert!(k.tracepoints("syscalls", "enable").is_empty());
        assert!(k.tracepoints("nope", "*").is_empty());
        assert!(k.tracepoints("..", "*").is_empty());
        assert_eq!(k.tp_format("sched", "sched_switch").unwrap().id, 3);
        let e = k.tp_format("sched", "nope").unwrap_err();
        assert!(e.contains("`sched:nope` does not exist"), "{e}");
        assert!(k.tp_format("../..", "x").is_err());
        assert_eq!(
            k.all_tracepoints(),
            [
                "sched:sched_switch",
                "syscalls:sys_enter_openat",
                "syscalls:sys_exit_openat"
            ]
        );
        assert!(k.exists("sched", "sched_switch"));
        assert!(!k.exists("sched", "x"));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn read_file_gives_the_whole_file_mapped_or_read() {
        // The fixture's directory is another test's; this one needs only the reader.
        let k = TracefsKernel::at(Path::new("/nonexistent"));
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap();
        let mapped = k.read_file(exe).unwrap();
        assert_eq!((*mapped).as_ref(), fs::read(exe).unwrap().as_slice());
        // An empty file cannot be mapped, and /proc files say they are empty: both are read.
        let empty = std::env::temp_dir().join(format!("ktap-empty-{}", std::process::id()));
        fs::write(&empty, b"").unwrap();
        assert!((*k.read_file(empty.to_str().unwrap()).unwrap())
            .as_ref()
            .is_empty());
        let status = k.read_file("/proc/self/status").unwrap();
        assert!((*status).as_ref().starts_with(b"Name:"));
        let e = k.read_file("/nonexistent/file").err().unwrap();
        assert!(e.contains("No such file"), "{e}");
        fs::remove_file(empty).unwrap();
    }
}
