//! Where a process's resident anonymous memory is, by mapping, from `/proc/PID/smaps`: the
//! main heap (`[heap]`), the thread stacks, and the other anonymous mappings (glibc's thread
//! arenas and its `mmap`ed large blocks, such as sled's I/O buffers, each its own mapping).

use anyhow::{Context, Result};

/// One mapping's address-space size and resident part, in KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The pathname column: empty for an anonymous mapping, `[heap]`, `[stack]`, a file.
    pub name: String,
    /// `Size:`.
    pub size_kib: u64,
    /// `Rss:`.
    pub rss_kib: u64,
    /// `Anonymous:`: the resident pages not backed by a file.
    pub anon_kib: u64,
}

/// The mappings of `/proc/PID/smaps`.
pub fn read(pid: u32) -> Result<Vec<Mapping>> {
    let path = format!("/proc/{pid}/smaps");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(parse(&text))
}

/// Parses an smaps text: a header line per mapping (`start-end perms offset dev inode
/// [path]`) followed by `Key: value kB` lines.
pub fn parse(text: &str) -> Vec<Mapping> {
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if first.contains('-') && !first.ends_with(':') {
            // Header: the pathname is the sixth field on (it may hold spaces).
            let name = line
                .split_whitespace()
                .skip(5)
                .collect::<Vec<_>>()
                .join(" ");
            mappings.push(Mapping {
                name,
                size_kib: 0,
                rss_kib: 0,
                anon_kib: 0,
            });
            continue;
        }
        let Some(current) = mappings.last_mut() else {
            continue;
        };
        let mut value = || {
            fields
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match first {
            "Size:" => current.size_kib = value(),
            "Rss:" => current.rss_kib = value(),
            "Anonymous:" => current.anon_kib = value(),
            _ => {}
        }
    }
    mappings
}

/// Resident anonymous KiB by kind of mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnonSplit {
    /// `[heap]`: the main arena (with `MALLOC_ARENA_MAX=1`, nearly every small allocation).
    pub heap_kib: u64,
    /// Unnamed mappings of 60 MiB or more: glibc's thread arenas (64 MiB reserved each).
    pub arenas_kib: u64,
    /// Unnamed mappings of 1 MiB to 60 MiB: thread stacks (2 MiB for tokio's, 8 MiB for
    /// others) and large `mmap`ed blocks.
    pub large_kib: u64,
    /// Unnamed mappings under 1 MiB: `mmap`ed blocks of 128 KiB and more (sled's 512 KiB I/O
    /// buffers among them), guard pages.
    pub small_kib: u64,
    /// Anonymous pages of file mappings (relocated data of the binary and libraries), `[stack]`
    /// and the rest.
    pub other_kib: u64,
}

/// Splits the anonymous resident pages of `mappings` (see [`AnonSplit`]).
pub fn split(mappings: &[Mapping]) -> AnonSplit {
    let mut s = AnonSplit::default();
    for m in mappings {
        let slot = if m.name == "[heap]" {
            &mut s.heap_kib
        } else if !m.name.is_empty() {
            &mut s.other_kib
        } else if m.size_kib >= 60 * 1024 {
            &mut s.arenas_kib
        } else if m.size_kib >= 1024 {
            &mut s.large_kib
        } else {
            &mut s.small_kib
        };
        *slot += m.anon_kib;
    }
    s
}

/// The unnamed mappings with resident anonymous pages, largest resident first, as
/// `size/resident` KiB pairs (at most `n`).
pub fn top_unnamed(mappings: &[Mapping], n: usize) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = mappings
        .iter()
        .filter(|m| m.name.is_empty() && m.anon_kib > 0)
        .map(|m| (m.size_kib, m.anon_kib))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.1));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c1000000 r-xp 00000000 fd:00 123 /usr/bin/coldaisle agent
Size:              16384 kB
Rss:                7000 kB
Anonymous:             0 kB
55d0c2000000-55d0c2a00000 rw-p 00000000 00:00 0                          [heap]
Size:              10240 kB
Rss:                9000 kB
Anonymous:          9000 kB
7f0000000000-7f0004000000 rw-p 00000000 00:00 0 
Size:              65536 kB
Rss:                1500 kB
Anonymous:          1500 kB
7f0010000000-7f0010200000 rw-p 00000000 00:00 0 
Size:               2048 kB
Rss:                  40 kB
Anonymous:            40 kB
7f0020000000-7f0020081000 rw-p 00000000 00:00 0 
Size:                516 kB
Rss:                 516 kB
Anonymous:           516 kB
";

    #[test]
    fn parses_each_mapping_with_its_name_and_sizes() {
        let m = parse(SMAPS);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].name, "/usr/bin/coldaisle agent");
        assert_eq!(
            (m[0].size_kib, m[0].rss_kib, m[0].anon_kib),
            (16384, 7000, 0)
        );
        assert_eq!(m[1].name, "[heap]");
        assert_eq!(m[4].name, "");
        assert_eq!(m[4].anon_kib, 516);
    }

    #[test]
    fn splits_anonymous_pages_by_kind_of_mapping() {
        let s = split(&parse(SMAPS));
        assert_eq!(
            s,
            AnonSplit {
                heap_kib: 9000,
                arenas_kib: 1500,
                large_kib: 40,
                small_kib: 516,
                other_kib: 0,
            }
        );
        assert_eq!(
            top_unnamed(&parse(SMAPS), 2),
            vec![(65536, 1500), (516, 516)]
        );
    }
}
