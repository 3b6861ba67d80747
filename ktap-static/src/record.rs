//! Recordings: the raw events of a `ktap --record FILE` run, so that `ktap-vm --replay FILE
//! script.kp` can run a script over them later, on any machine.
//!
//! A recording carries everything a replay needs and nothing of the recording machine's
//! state: the target (the raw records are in its byte order and word size), each tracepoint's
//! identity with the text of its tracefs `format` file (the compiler reads the layouts from
//! the recording, through [`RecordingKernel`]), and per event its source, CPU, task (pid, tid,
//! name, uid and gid at the time), time, instruction pointer, raw record and the user memory
//! the recording run's probes read (so `user_string` gives the same text in a replay).
//!
//! The file is a 24-byte header (magic, version, payload sizes) and the zlib-compressed
//! postcard encoding (miniz_oxide). Every length is checked before it is trusted, so a
//! truncated or corrupt file ends in one sentence, never a panic.

use ktap_bpf::kernel::{glob_match, parse_tp_format, Kernel, TpFormat};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"\x7fKTAPREC";
const VERSION: u32 = 1;
const HEADER: usize = 24;
/// The largest decompressed recording accepted (a hostile header cannot ask for more).
const MAX_PAYLOAD: u64 = 4 << 30;
/// A fast compression level: recordings are written at the end of every `--record` run.
const LEVEL: u8 = 6;

/// Where events came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecSource {
    /// A tracepoint and the text of its tracefs `format` file.
    Tracepoint {
        category: String,
        name: String,
        format: String,
    },
    /// cpu-clock samples every `period_ns`.
    Profile { period_ns: u64 },
}

/// A task as it was when one of its events happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecTask {
    pub pid: u32,
    pub tid: u32,
    pub comm: [u8; 16],
    pub uid: u32,
    pub gid: u32,
}

/// User memory a probe read while the event was live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecRead {
    pub addr: u64,
    /// A string read (`bytes` ends with its NUL) rather than a fixed-size one.
    pub string: bool,
    pub bytes: Vec<u8>,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecEvent {
    /// Index into [`Recording::sources`].
    pub source: u32,
    pub cpu: u32,
    /// Index into [`Recording::tasks`].
    pub task: u32,
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub time_ns: u64,
    pub ip: u64,
    pub raw: Vec<u8>,
    pub reads: Vec<RecRead>,
}

/// A whole recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The recording machine's target name (`ktap_bpf::Target::name`).
    pub target: String,
    /// When recording started and stopped (`CLOCK_MONOTONIC` nanoseconds), so a replay runs
    /// `tick` blocks over the same span.
    pub start_ns: u64,
    pub end_ns: u64,
    /// The wall clock at `start_ns` (nanoseconds since the Unix epoch).
    pub start_wall_ns: u64,
    pub sources: Vec<RecSource>,
    pub tasks: Vec<RecTask>,
    pub events: Vec<RecEvent>,
}

/// The bytes of a recording file.
pub fn encode(rec: &Recording) -> Vec<u8> {
    // Plain data (no maps, floats or custom serializers): encoding into memory cannot fail,
    // and an empty payload would be refused on reading.
    let raw = postcard::to_allocvec(rec).unwrap_or_default();
    let packed = miniz_oxide::deflate::compress_to_vec_zlib(&raw, LEVEL);
    let mut out = Vec::with_capacity(HEADER + packed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(&packed);
    out
}

/// A recording from the bytes of a file, or the sentence saying what is wrong with them.
pub fn decode(bytes: &[u8]) -> Result<Recording, String> {
    if !bytes.starts_with(MAGIC) {
        if !bytes.is_empty() && MAGIC.starts_with(bytes) {
            return Err(truncated(bytes.len(), HEADER));
        }
        return Err("not a ktap recording (it does not start with one's header)".into());
    }
    if bytes.len() < HEADER {
        return Err(truncated(bytes.len(), HEADER));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(8);
    if version != VERSION {
        return Err(format!(
            "a ktap recording of format version {version}; this ktap reads version {VERSION}: record it again with this ktap"
        ));
    }
    let packed_len = word(12) as usize;
    let raw_len = u64::from(word(16)) | u64::from(word(20)) << 32;
    let need = HEADER.saturating_add(packed_len);
    if bytes.len() < need {
        return Err(truncated(bytes.len(), need));
    }
    let corrupt = |why: String| format!("corrupt ktap recording: {why}");
    if bytes.len() > need {
        return Err(corrupt(format!(
            "{} bytes after the end of its data",
            bytes.len() - need
        )));
    }
    if raw_len == 0 || raw_len > MAX_PAYLOAD {
        return Err(corrupt(format!("implausible data size {raw_len}")));
    }
    let raw =
        miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&bytes[HEADER..], raw_len as usize)
            .map_err(|e| {
                corrupt(format!(
                    "its compressed data does not inflate ({:?})",
                    e.status
                ))
            })?;
    if raw.len() as u64 != raw_len {
        return Err(corrupt(format!(
            "its data inflates to {} bytes, its header says {raw_len}",
            raw.len()
        )));
    }
    let (rec, rest): (Recording, _) =
        postcard::take_from_bytes(&raw).map_err(|e| corrupt(format!("undecodable data ({e})")))?;
    if !rest.is_empty() {
        return Err(corrupt(format!(
            "{} undecoded bytes at the end",
            rest.len()
        )));
    }
    check(&rec).map_err(corrupt)?;
    Ok(rec)
}

fn truncated(have: usize, need: usize) -> String {
    format!("truncated ktap recording: {have} bytes of {need} (was the copy cut short, or the run killed while writing?)")
}

/// Every index inside a recording points at something.
fn check(rec: &Recording) -> Result<(), String> {
    if ktap_bpf::Target::by_name(&rec.target).is_none() {
        return Err(format!("unknown target `{}`", rec.target));
    }
    for (i, e) in rec.events.iter().enumerate() {
        if e.source as usize >= rec.sources.len() || e.task as usize >= rec.tasks.len() {
            return Err(format!("event {i} names a source or task it does not have"));
        }
    }
    for s in &rec.sources {
        if let RecSource::Tracepoint {
            category,
            name,
            format,
        } = s
        {
            parse_tp_format(category, format).map_err(|e| {
                format!(
                    "the format of {category}:{name} does not parse (line {}: {})",
                    e.line, e.message
                )
            })?;
        }
    }
    Ok(())
}

/// The kernel as the recording describes it: exactly the tracepoints it recorded.
pub struct RecordingKernel<'r>(pub &'r Recording);

impl RecordingKernel<'_> {
    fn recorded(&self) -> impl Iterator<Item = (&String, &String, &String)> {
        self.0.sources.iter().filter_map(|s| match s {
            RecSource::Tracepoint {
                category,
                name,
                format,
            } => Some((category, name, format)),
            RecSource::Profile { .. } => None,
        })
    }
}

impl Kernel for RecordingKernel<'_> {
    fn tracepoints(&self, category: &str, name: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .recorded()
            .filter(|(c, n, _)| glob_match(category, c) && glob_match(name, n))
            .map(|(c, n, _)| (c.clone(), n.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn tp_format(&self, category: &str, name: &str) -> Result<TpFormat, String> {
        let (_, _, text) = self
            .recorded()
            .find(|(c, n, _)| *c == category && *n == name)
            .ok_or_else(|| {
                format!("tracepoint `{category}:{name}` is not in the recording (record it with a script that traces it)")
            })?;
        parse_tp_format(category, text).map_err(|e| format!("line {}: {}", e.line, e.message))
    }

    fn all_tracepoints(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .recorded()
            .map(|(c, n, _)| format!("{c}:{n}"))
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Recording {
        let format = "name: sys_enter_getppid\nID: 7\nformat:\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\nprint fmt: \"\"\n";
        let mut rec = Recording {
            target: "x86_64".into(),
            start_ns: 10,
            end_ns: 20,
            start_wall_ns: 30,
            sources: vec![
                RecSource::Tracepoint {
                    category: "syscalls".into(),
                    name: "sys_enter_getppid".into(),
                    format: format.into(),
                },
                RecSource::Profile { period_ns: 1000 },
            ],
            tasks: Vec::new(),
            events: Vec::new(),
        };
        rec.tasks.push(RecTask {
            pid: 1,
            tid: 2,
            comm: *b"ktap-workload\0\0\0",
            uid: 0,
            gid: 0,
        });
        let task = 0;
        rec.events.push(RecEvent {
            source: 0,
            cpu: 1,
            task,
            time_ns: 15,
            ip: 0,
            raw: vec![1, 2, 3, 4, 5, 6, 7, 8],
            reads: vec![RecRead {
                addr: 0x1000,
                string: true,
                bytes: b"/etc\0".to_vec(),
            }],
        });
        rec
    }

    #[test]
    fn round_trips() {
        let rec = sample();
        assert_eq!(decode(&encode(&rec)).unwrap(), rec);
        let k = RecordingKernel(&rec);
        assert_eq!(k.tracepoints("syscalls", "sys_enter_*").len(), 1);
        assert_eq!(k.tp_format("syscalls", "sys_enter_getppid").unwrap().id, 7);
        assert!(k
            .tp_format("sched", "x")
            .unwrap_err()
            .contains("not in the recording"));
        assert_eq!(k.all_tracepoints(), ["syscalls:sys_enter_getppid"]);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let bytes = encode(&sample());
        for cut in [0, 3, 10, 23, 24, bytes.len() / 2, bytes.len() - 1] {
            let e = decode(&bytes[..cut]).unwrap_err();
            assert!(
                e.contains("truncated") || e.contains("not a ktap recording"),
                "{cut}: {e}"
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0xff;
        assert!(decode(&flipped).unwrap_err().starts_with("corrupt"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).unwrap_err().contains("after the end"));
        let mut version = bytes.clone();
        version[8] = 9;
        assert!(decode(&version).unwrap_err().contains("version 9"));
        assert!(decode(b"hello world")
            .unwrap_err()
            .contains("not a ktap recording"));
        // Every single-byte corruption of the payload is refused or decodes; never a panic.
        for i in HEADER..bytes.len() {
            let mut b = bytes.clone();
            b[i] = b[i].wrapping_add(1);
            let _ = decode(&b);
        }
    }
}
