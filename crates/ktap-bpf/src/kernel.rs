//! What the compiler needs to know about the kernel it compiles for: the tracepoints that exist
//! and their record layouts. The loader reads them from tracefs; tests and cross-compiles supply
//! them as data. Parsing tracefs' text lives here because it is pure.

use std::sync::Arc;

/// One field of a tracepoint record, as its `format` file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TpField {
    pub name: String,
    /// The C declaration before the name, e.g. `const char *` or `char[16]` for arrays.
    pub c_type: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    /// Element count for `char comm[16]`-style arrays.
    pub array_len: Option<u32>,
}

impl TpField {
    /// True for the `common_*` fields every record starts with.
    pub fn is_common(&self) -> bool {
        self.name.starts_with("common_")
    }
    /// True for a C string pointer (`char *` / `const char *`).
    pub fn is_string_pointer(&self) -> bool {
        let t = self.c_type.replace(' ', "");
        t == "char*" || t == "constchar*"
    }
    /// True for a fixed `char name[N]` array held inside the record.
    pub fn is_char_array(&self) -> bool {
        self.array_len.is_some() && self.c_type.trim_start_matches("const ").starts_with("char")
    }
    /// True for `__data_loc` strings (an offset/length word pointing into the record).
    pub fn is_data_loc(&self) -> bool {
        self.c_type.contains("__data_loc")
    }
}

/// A tracepoint's record layout.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TpFormat {
    pub category: String,
    pub name: String,
    pub id: u32,
    /// All fields, common ones first, in record order; shared, because a glob's events can
    /// be hundreds of copies of one layout (`syscalls:sys_exit_*`).
    pub fields: Arc<[TpField]>,
    /// The `print fmt:` line, as the kernel renders the event.
    pub print_fmt: String,
}

/// Sorts events by category, then name: the order they are attached and listed in. A list
/// already in that order, which is what [`Kernel::tracepoints`] gives, is only checked: the
/// names of a glob's events share long prefixes (`sys_enter_`), and sorting 360 of them was
/// a seventh of the instructions a compile of `syscalls:sys_enter_*` ran.
pub fn sort_events<T: std::borrow::Borrow<TpFormat>>(events: &mut [T]) {
    fn key<T: std::borrow::Borrow<TpFormat>>(e: &T) -> (&str, &str) {
        let e = e.borrow();
        (e.category.as_str(), e.name.as_str())
    }
    if !events.is_sorted_by(|a, b| key(a) <= key(b)) {
        events.sort_by(|a, b| key(a).cmp(&key(b)));
    }
}

impl TpFormat {
    /// The event's own fields (without `common_*`), in format order: `arg0`, `arg1`, ...
    pub fn args(&self) -> impl Iterator<Item = &TpField> {
        self.fields.iter().filter(|f| !f.is_common())
    }
    /// The field called `name`, common or not.
    pub fn field(&self, name: &str) -> Option<&TpField> {
        self.fields.iter().find(|f| f.name == name)
    }
    /// The record's size: the end of its last field.
    pub fn size(&self) -> u32 {
        self.fields
            .iter()
            .map(|f| f.offset + f.size)
            .max()
            .unwrap_or(0)
    }
}

/// A malformed `format` file: the 1-based line and what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    pub line: usize,
    pub message: String,
}

/// Parses the text of `events/CATEGORY/NAME/format`.
pub fn parse_tp_format(category: &str, text: &str) -> Result<TpFormat, FormatError> {
    let mut name = String::new();
    let mut id = None;
    let mut fields = Vec::new();
    let mut print_fmt = String::new();
    for (n, line) in text.lines().enumerate() {
        let err = |message: &str| FormatError {
            line: n + 1,
            message: message.to_string(),
        };
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("name:") {
            name = rest.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("ID:") {
            id = Some(rest.trim().parse().map_err(|_| err("bad ID"))?);
        } else if let Some(rest) = line.strip_prefix("print fmt:") {
            print_fmt = rest.trim().to_string();
        } else if line.starts_with("field:") {
            fields.push(parse_field(line).ok_or_else(|| err("bad field line"))?);
        }
    }
    let id = id.ok_or(FormatError {
        line: 0,
        message: "no ID line".into(),
    })?;
    Ok(TpFormat {
        category: category.to_string(),
        name,
        id,
        fields: fields.into(),
        print_fmt,
    })
}

/// `field:const char * filename;\toffset:24;\tsize:8;\tsigned:0;`
fn parse_field(line: &str) -> Option<TpField> {
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, false);
    for part in line.split(';') {
        let part = part.trim();
        if let Some(d) = part.strip_prefix("field:") {
            decl = Some(d.trim().to_string());
        } else if let Some(v) = part.strip_prefix("offset:") {
            offset = v.trim().parse().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.trim().parse().ok();
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = v.trim() == "1";
        }
    }
    let decl = decl?;
    // The name is the last identifier, possibly followed by `[N]`.
    let (decl, array_len) = match decl.strip_suffix(']') {
        Some(d) => {
            let open = d.rfind('[')?;
            (
                d[..open].trim().to_string(),
                d[open + 1..].trim().parse().ok(),
            )
        }
        None => (decl, None),
    };
    let split = decl.rfind(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    let name = decl[split + 1..].to_string();
    let c_type = decl[..=split].trim().to_string();
    if name.is_empty() {
        return None;
    }
    Some(TpField {
        name,
        c_type,
        offset: offset?,
        size: size?,
        signed,
        array_len,
    })
}

/// The bytes of a file the compiler reads, held however the implementation finds cheapest:
/// a C library is megabytes, of which a uprobe needs the headers and the symbol tables, so the
/// live kernel's side maps the file instead of reading it all.
pub type FileBytes = Box<dyn AsRef<[u8]>>;

/// Where the compiler learns which tracepoints exist and what their records hold.
pub trait Kernel {
    /// Every tracepoint `(category, name)` matching a `category:name` pattern with `*` globs,
    /// sorted.
    fn tracepoints(&self, category: &str, name: &str) -> Vec<(String, String)>;
    /// The layout of one tracepoint; `Err` carries a message for the user.
    fn tp_format(&self, category: &str, name: &str) -> Result<TpFormat, String>;
    /// Every tracepoint name, `category:name`, for suggestions when a pattern matches nothing.
    fn all_tracepoints(&self) -> Vec<String>;
    /// The bytes of the file at `path` (an ELF file a uprobe names); `Err` says why not.
    fn read_file(&self, path: &str) -> Result<FileBytes, String> {
        Err(format!(
            "{path}: files cannot be read while compiling for another machine"
        ))
    }
    /// The text of `/proc/kallsyms`, when this kernel's symbols are known.
    fn kallsyms(&self) -> Option<String> {
        None
    }
    /// The text of the kprobe blacklist (`/sys/kernel/debug/kprobes/blacklist`), if known.
    fn kprobe_blacklist(&self) -> Option<String> {
        None
    }
    /// The kernel's BTF (`/sys/kernel/btf/vmlinux`), when this is the running kernel and it
    /// has one: only the task built-ins (`in_iowait()`, `in_interrupt()`) need it. A program
    /// compiled for another machine never gets it, since nothing there would check the
    /// offsets taken from it.
    fn btf(&self) -> Option<Vec<u8>> {
        None
    }
    /// The release (`uname -r`) of the kernel the program will run on, when that is certain:
    /// only the running kernel says, so that a program compiled for another machine assumes
    /// nothing of its helpers.
    fn release(&self) -> Option<String> {
        None
    }
}

/// Glob match with `*` (any run) and `?` (one character), as tracefs patterns use them.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // The common `prefix*` (`sys_enter_*`, matched against every event of a category) needs
    // no backtracking.
    if let Some(prefix) = pattern.strip_suffix('*') {
        if !prefix.bytes().any(|b| b == b'*' || b == b'?') {
            return text.starts_with(prefix);
        }
    }
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((b'?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_sort_by_category_then_name() {
        let ev = |c: &str, n: &str| TpFormat {
            category: c.into(),
            name: n.into(),
            id: 0,
            fields: Vec::new().into(),
            print_fmt: String::new(),
        };
        let names = |v: &[TpFormat]| -> Vec<String> {
            v.iter()
                .map(|e| format!("{}:{}", e.category, e.name))
                .collect()
        };
        let mut v = vec![ev("syscalls", "b"), ev("sched", "z"), ev("syscalls", "a")];
        sort_events(&mut v);
        assert_eq!(names(&v), ["sched:z", "syscalls:a", "syscalls:b"]);
        let mut refs: Vec<&TpFormat> = v.iter().rev().collect();
        sort_events(&mut refs);
        assert!(refs.iter().zip(&v).all(|(a, b)| a.name == b.name));
        sort_events(&mut v);
        assert_eq!(names(&v), ["sched:z", "syscalls:a", "syscalls:b"]);
    }

    const OPENAT: &str = "name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:char comm[16];\toffset:32;\tsize:16;\tsigned:0;

print fmt: \"dfd: 0x%08lx\", ((unsigned long)(REC->dfd))
";

    #[test]
    fn parses_a_format_file() {
        let f = parse_tp_format("syscalls", OPENAT).unwrap();
        assert_eq!(f.name, "sys_enter_openat");
        assert_eq!(f.id, 782);
        let args: Vec<_> = f.args().map(|a| a.name.as_str()).collect();
        assert_eq!(args, ["__syscall_nr", "dfd", "filename", "comm"]);
        let filename = f.field("filename").unwrap();
        assert!(filename.is_string_pointer());
        assert_eq!((filename.offset, filename.size), (24, 8));
        let comm = f.field("comm").unwrap();
        assert!(comm.is_char_array());
        assert_eq!(comm.array_len, Some(16));
        assert!(f.field("common_pid").unwrap().signed);
        assert_eq!(f.size(), 48);
    }

    #[test]
    fn globs() {
        assert!(glob_match("sys_enter_*", "sys_enter_openat"));
        assert!(!glob_match("sys_enter_*", "sys_exit_openat"));
        assert!(glob_match("*", ""));
        assert!(glob_match("s?s", "sys"));
    }
}
