//! Opening a log directory: reading every segment, checking every frame's CRC and the hash
//! chain, rebuilding the in-memory index, and deciding what a damaged spot means.
//!
//! Recovery rule: damage in the last segment that nothing valid follows (a frame cut short,
//! or a bad frame followed only by zeros or the end of the file) is a torn tail, left by a
//! crash before its fdatasync and therefore never acknowledged: it is truncated (or, when
//! opened read-only, reported). Any other damage stops the open with an error naming the
//! segment and offset. Nothing is ever skipped silently.

use super::frame::{self, FrameError};
use super::index::{Index, Location, Spill};
use crate::events::StoreError;
use crate::events::envelope::{self, ChainHash};
use std::fs;
use std::path::{Path, PathBuf};

/// Suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// The file name of the segment whose first record is at `base`.
pub fn segment_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

/// An incomplete record at the end of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the incomplete record starts.
    pub offset: u64,
    /// How many bytes from there to the end of the file.
    pub bytes: u64,
    /// What was wrong with them.
    pub reason: String,
}

/// What opening the directory found.
#[derive(Debug)]
pub struct Recovered {
    /// The index of every good record.
    pub index: Index,
    /// The hash of the last good record.
    pub last_hash: ChainHash,
    /// Length of the last segment up to its last good record.
    pub last_segment_len: u64,
    /// An incomplete record at the end, if any.
    pub torn_tail: Option<TornTail>,
}

/// Lists the segment files of `dir`, ordered by base position.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(StoreError::io(format!("reading {}", dir.display())))? {
        let path = entry
            .map_err(StoreError::io(format!("reading {}", dir.display())))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        let base = stem
            .parse::<u64>()
            .map_err(|_| StoreError::Corrupt(format!("{}: not a segment name", path.display())))?;
        segments.push((base, path));
    }
    segments.sort();
    Ok(segments)
}

/// Reads every segment in order and rebuilds the index.
pub fn scan(segments: &[(u64, PathBuf)], spill: Spill) -> Result<Recovered, StoreError> {
    let mut index = Index::new(spill).map_err(StoreError::io("starting the log index"))?;
    let mut last_hash = [0u8; 32];
    let mut last_segment_len = 0;
    let mut torn_tail = None;
    for (i, (base, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let data = fs::read(path).map_err(StoreError::io(format!("reading {}", path.display())))?;
        let corrupt = |offset: usize, reason: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!(
                "corrupt record in segment {} at offset {offset}: {reason}",
                path.display()
            ))
        };
        if *base != index.head() + 1 {
            return Err(corrupt(
                0,
                &format!(
                    "segment starts at position {base}, expected {}",
                    index.head() + 1
                ),
            ));
        }
        if data.is_empty() && !is_last {
            return Err(corrupt(0, &"empty segment before the last one"));
        }
        index.add_segment(super::index::Segment::new(*base, path.clone()));
        let mut offset = 0;
        while offset < data.len() {
            let body = match frame::read(&data[offset..]) {
                Ok(body) => body,
                Err(err) if is_last && is_torn(&data[offset..], &err) => {
                    torn_tail = Some(TornTail {
                        segment: path.clone(),
                        offset: offset as u64,
                        bytes: (data.len() - offset) as u64,
                        reason: err.to_string(),
                    });
                    break;
                }
                Err(err) => return Err(corrupt(offset, &err)),
            };
            let raw = envelope::parse_body(body).map_err(|e| corrupt(offset, &e))?;
            let expected_position = index.head() + 1;
            if raw.position != expected_position {
                return Err(corrupt(
                    offset,
                    &format!(
                        "position {} where {expected_position} belongs",
                        raw.position
                    ),
                ));
            }
            if raw.prev_hash != last_hash {
                return Err(corrupt(
                    offset,
                    &format!(
                        "hash chain broken at position {}: previous-record hash does not match the record before it",
                        raw.position
                    ),
                ));
            }
            let stream_version = index
                .stream_version(raw.stream)
                .map_err(StoreError::io("reading the log index"))?;
            if raw.version != stream_version + 1 {
                return Err(corrupt(
                    offset,
                    &format!(
                        "stream `{}` version {} follows version {stream_version}",
                        raw.stream, raw.version
                    ),
                ));
            }
            last_hash = envelope::hash_body(body);
            index.push(
                raw.stream,
                raw.version,
                Location {
                    offset: offset as u32,
                    len: body.len() as u32,
                },
            );
            offset += frame::HEADER + body.len();
        }
        last_segment_len = torn_tail.as_ref().map_or(data.len() as u64, |t| t.offset);
    }
    Ok(Recovered {
        index,
        last_hash,
        last_segment_len,
        torn_tail,
    })
}

/// Whether damage at the start of `rest` (which runs to the end of the last segment) is a
/// torn write rather than corruption: nothing valid can follow it.
fn is_torn(rest: &[u8], err: &FrameError) -> bool {
    match err {
        FrameError::Incomplete { .. } => true,
        FrameError::BadLength(_) | FrameError::BadCrc { .. } => {
            let frame_end = match err {
                FrameError::BadCrc { .. } => {
                    frame::HEADER + u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize
                }
                _ => frame::HEADER,
            };
            frame_end >= rest.len() || rest[frame_end..].iter().all(|&b| b == 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_position() {
        assert_eq!(segment_name(1), "00000000000000000001.seg");
        assert!(segment_name(99) < segment_name(100));
    }

    #[test]
    fn zeros_after_a_bad_frame_are_a_torn_tail() {
        let mut rest = vec![5, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9, 9, 9];
        rest.extend([0; 100]);
        let err = frame::read(&rest).unwrap_err();
        assert!(is_torn(&rest, &err));
        rest.push(1);
        assert!(!is_torn(&rest, &err));
    }
}
