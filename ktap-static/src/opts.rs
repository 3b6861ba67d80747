//! Command-line options for the applets: a table of options, parsed and turned into help text.
//! It replaces clap, which was about 150 KiB of each 1 MiB binary (see the README's sizes).
//!
//! Short options cluster (`-qv`) and take their value attached or next (`-oFILE`, `-o FILE`);
//! long ones take it after `=` or next (`--out=FILE`, `--out FILE`); `--` ends the options.

/// One option.
pub struct Opt {
    pub short: Option<char>,
    pub long: Option<&'static str>,
    /// The value's name in help (`FILE`), for an option that takes one.
    pub value: Option<&'static str>,
    pub help: &'static str,
}

/// What a command line held.
pub struct Parsed {
    /// (index into the table, value) for each option given, in order; flags have "".
    given: Vec<(usize, String)>,
    /// Everything that is not an option, in order.
    pub rest: Vec<String>,
}

impl Parsed {
    /// True when option `i` was given.
    pub fn flag(&self, i: usize) -> bool {
        self.given.iter().any(|(j, _)| *j == i)
    }
    /// The value option `i` was last given.
    pub fn value(&self, i: usize) -> Option<&str> {
        self.given
            .iter()
            .rev()
            .find(|(j, _)| *j == i)
            .map(|(_, v)| v.as_str())
    }
}

/// How options and other words mix.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Options stop at the first other word: what follows a script is the script's (`ktap`).
    OptionsFirst,
    /// Options may come anywhere (`ktapc`).
    Anywhere,
}

/// Parses `args` (without the program name). `Ok(None)` means help was asked for (`-h`,
/// `--help`); `Err` is the message for a misuse.
pub fn parse(args: &[String], table: &[Opt], order: Order) -> Result<Option<Parsed>, String> {
    let mut p = Parsed {
        given: Vec::new(),
        rest: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let options_over = order == Order::OptionsFirst && !p.rest.is_empty();
        if options_over || a == "-" || !a.starts_with('-') {
            p.rest.push(a.clone());
            continue;
        }
        if a == "--" {
            p.rest.extend(it.by_ref().cloned());
            break;
        }
        if a == "-h" || a == "--help" {
            return Ok(None);
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let i = table
                .iter()
                .position(|o| o.long == Some(name))
                .ok_or_else(|| format!("unknown option `--{name}`"))?;
            let v = match (table[i].value, inline) {
                (Some(_), Some(v)) => v,
                (Some(what), None) => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("`--{name}` needs a value ({what})"))?,
                (None, Some(_)) => return Err(format!("`--{name}` takes no value")),
                (None, None) => String::new(),
            };
            p.given.push((i, v));
            continue;
        }
        let cluster = &a[1..];
        for (at, c) in cluster.char_indices() {
            let i = table
                .iter()
                .position(|o| o.short == Some(c))
                .ok_or_else(|| format!("unknown option `-{c}`"))?;
            let Some(what) = table[i].value else {
                p.given.push((i, String::new()));
                continue;
            };
            let attached = &cluster[at + c.len_utf8()..];
            let v = if attached.is_empty() {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("`-{c}` needs a value ({what})"))?
            } else {
                attached.to_string()
            };
            p.given.push((i, v));
            break;
        }
    }
    Ok(Some(p))
}

/// Help text: what the applet does, its usage lines, and one line per option.
pub fn help(about: &str, usage: &str, table: &[Opt]) -> String {
    let mut s = format!("{about}\n\nUsage: {usage}\n\nOptions:\n");
    let names: Vec<String> = table
        .iter()
        .map(|o| {
            let mut n = match (o.short, o.long) {
                (Some(c), Some(l)) => format!("-{c}, --{l}"),
                (Some(c), None) => format!("-{c}"),
                (None, Some(l)) => format!("    --{l}"),
                (None, None) => String::new(),
            };
            if let Some(v) = o.value {
                n.push(' ');
                n.push_str(v);
            }
            n
        })
        .collect();
    let width = names.iter().map(String::len).max().unwrap_or(0).max(10);
    for (o, n) in table.iter().zip(&names) {
        s.push_str(&format!("  {n:<width$}  {}\n", o.help));
    }
    s.push_str(&format!("  {:<width$}  print this help\n", "-h, --help"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &[Opt] = &[
        Opt {
            short: Some('q'),
            long: None,
            value: None,
            help: "quiet",
        },
        Opt {
            short: Some('o'),
            long: Some("out"),
            value: Some("FILE"),
            help: "output",
        },
        Opt {
            short: None,
            long: Some("vm"),
            value: None,
            help: "vm",
        },
    ];

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_values_and_the_rest() {
        let p = parse(&words("-qoX s.kp -v --out=Y"), T, Order::OptionsFirst)
            .unwrap()
            .unwrap();
        assert!(p.flag(0) && !p.flag(2));
        assert_eq!(p.value(1), Some("X"));
        assert_eq!(p.rest, words("s.kp -v --out=Y"));
        let p = parse(&words("s.kp --vm -o Z -- -5"), T, Order::Anywhere)
            .unwrap()
            .unwrap();
        assert!(p.flag(2));
        assert_eq!(p.value(1), Some("Z"));
        assert_eq!(p.rest, words("s.kp -5"));
    }

    #[test]
    fn misuse_and_help() {
        let e = |s: &str| parse(&words(s), T, Order::Anywhere).err().unwrap();
        assert_eq!(e("-x"), "unknown option `-x`");
        assert_eq!(e("--nope"), "unknown option `--nope`");
        assert_eq!(e("-o"), "`-o` needs a value (FILE)");
        assert_eq!(e("--vm=1"), "`--vm` takes no value");
        assert!(parse(&words("-q -h"), T, Order::Anywhere)
            .unwrap()
            .is_none());
        let h = help("About.", "t [options]", T);
        assert!(h.contains("  -o, --out FILE  output\n"), "{h}");
        assert!(h.contains("      --vm        vm\n"), "{h}");
    }
}
