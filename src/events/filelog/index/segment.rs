//! One segment file as the index knows it: where it starts, where each of its records
//! starts, and where its last one ends.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Where each record of a segment starts: in memory (4 bytes a record) while the segment is
/// the last, in an unnamed file once a later one is started, read back 4 bytes at a time.
#[derive(Debug)]
enum Offsets {
    Open(Vec<u32>),
    Sealed(File),
}

/// One segment file.
#[derive(Debug)]
pub struct Segment {
    /// Position of its first record.
    pub base: u64,
    /// Its path.
    pub path: PathBuf,
    file: OnceLock<Arc<File>>,
    offsets: Offsets,
    /// Offset just past its last indexed frame.
    pub(super) end: u64,
}

impl Segment {
    /// A segment not opened for reading yet.
    pub fn new(base: u64, path: PathBuf) -> Segment {
        Segment {
            base,
            path,
            file: OnceLock::new(),
            offsets: Offsets::Open(Vec::new()),
            end: 0,
        }
    }

    /// A segment with its file already open.
    pub fn with_file(base: u64, path: PathBuf, file: Arc<File>) -> Segment {
        let segment = Segment::new(base, path);
        segment.keep_open(file);
        segment
    }

    /// Reads through `file` from now on, unless the segment was opened for reading already.
    pub fn keep_open(&self, file: Arc<File>) {
        let _ = self.file.set(file);
    }

    /// The file, opened on first use.
    pub fn file(&self) -> io::Result<Arc<File>> {
        if let Some(file) = self.file.get() {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(&self.path)?);
        Ok(self.file.get_or_init(|| file).clone())
    }

    /// Records the next record's frame, starting at `offset` and ending at `end`.
    pub(super) fn push(&mut self, offset: u32, end: u64) {
        let Offsets::Open(offsets) = &mut self.offsets else {
            unreachable!("records are only added to the last segment, which is never sealed")
        };
        offsets.push(offset);
        self.end = end;
    }

    /// Moves the offsets to an unnamed file in `dir`: no record is added from now on. If
    /// the file cannot be written, they stay in memory.
    pub(super) fn seal(&mut self, dir: &Path) {
        let Offsets::Open(offsets) = &self.offsets else {
            return;
        };
        let written = tempfile::tempfile_in(dir).and_then(|file| {
            let bytes: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
            (&file).write_all(&bytes)?;
            Ok(file)
        });
        match written {
            Ok(file) => self.offsets = Offsets::Sealed(file),
            Err(err) => tracing::warn!(
                %err,
                segment = %self.path.display(),
                "could not move a segment's record offsets to disk; keeping them in memory"
            ),
        }
    }

    /// Where the frame of `position` (one of this segment's) starts.
    pub(super) fn offset(&self, position: u64) -> io::Result<u32> {
        let i = position - self.base;
        match &self.offsets {
            Offsets::Open(offsets) => Ok(offsets[i as usize]),
            Offsets::Sealed(file) => {
                let mut bytes = [0; 4];
                file.read_exact_at(&mut bytes, i * 4)?;
                Ok(u32::from_le_bytes(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_the_same_once_sealed_and_nothing_is_added_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = Segment::new(100, dir.path().join("segment"));
        for i in 0..1_000u32 {
            segment.push(i * 300, u64::from(i * 300 + 290));
        }
        let before: Vec<u32> = (100..1_100).map(|p| segment.offset(p).unwrap()).collect();
        segment.seal(dir.path());
        assert!(matches!(segment.offsets, Offsets::Sealed(_)));
        let after: Vec<u32> = (100..1_100).map(|p| segment.offset(p).unwrap()).collect();
        assert_eq!(before, after);
        assert_eq!(after[999], 999 * 300);
        assert_eq!(segment.end, 999 * 300 + 290);
        assert!(segment.offset(1_100).is_err(), "past its last record");
    }
}
