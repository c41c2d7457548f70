//! The in-memory index of a file log: where each record lives and which records each
//! stream holds. Rebuilt from the segments on every open; only the writer changes it.

use hashbrown::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Where a record's frame starts in its segment, and its body length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Offset of the frame within the segment file.
    pub offset: u32,
    /// Length of the body (the frame is `HEADER` bytes longer).
    pub len: u32,
}

/// One segment file.
#[derive(Debug)]
pub struct Segment {
    /// Position of its first record.
    pub base: u64,
    /// Its path.
    pub path: PathBuf,
    file: OnceLock<Arc<File>>,
}

impl Segment {
    /// A segment not opened for reading yet.
    pub fn new(base: u64, path: PathBuf) -> Segment {
        Segment {
            base,
            path,
            file: OnceLock::new(),
        }
    }

    /// A segment with its file already open.
    pub fn with_file(base: u64, path: PathBuf, file: Arc<File>) -> Segment {
        let segment = Segment::new(base, path);
        let _ = segment.file.set(file);
        segment
    }

    /// The file, opened on first use.
    pub fn file(&self) -> std::io::Result<Arc<File>> {
        if let Some(file) = self.file.get() {
            return Ok(file.clone());
        }
        let file = Arc::new(File::open(&self.path)?);
        Ok(self.file.get_or_init(|| file).clone())
    }
}

/// Every record's location and every stream's positions.
#[derive(Debug, Default)]
pub struct Index {
    /// Segments ordered by base position.
    pub segments: Vec<Segment>,
    /// `locations[p - 1]` is where position `p` is.
    locations: Vec<Location>,
    /// The positions of each stream's events, in version order.
    streams: HashMap<Box<str>, Vec<u64>>,
}

/// A contiguous run of records inside one segment.
#[derive(Debug)]
pub struct Run {
    /// The segment's file.
    pub file: Arc<File>,
    /// The segment's path (for error messages).
    pub path: PathBuf,
    /// Position of the first record of the run.
    pub first: u64,
    /// Offset of the first frame.
    pub start: u64,
    /// Offset just past the last frame.
    pub end: u64,
}

impl Index {
    /// The last position indexed (0 when empty).
    pub fn head(&self) -> u64 {
        self.locations.len() as u64
    }

    /// How many events `stream` holds.
    pub fn stream_version(&self, stream: &str) -> u64 {
        self.streams.get(stream).map_or(0, |p| p.len() as u64)
    }

    /// How many streams exist.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Records the next position, belonging to `stream`.
    pub fn push(&mut self, stream: &str, location: Location) {
        self.locations.push(location);
        let position = self.head();
        match self.streams.get_mut(stream) {
            Some(positions) => positions.push(position),
            None => {
                self.streams.insert(stream.into(), vec![position]);
            }
        }
    }

    /// The positions of `stream` from `from_version` on.
    pub fn stream_positions(&self, stream: &str, from_version: u64) -> Vec<u64> {
        let skip = from_version.saturating_sub(1) as usize;
        self.streams
            .get(stream)
            .map(|p| p.get(skip..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    /// Splits positions `first..=last` into runs, one per segment touched.
    pub fn runs(&self, first: u64, last: u64) -> std::io::Result<Vec<Run>> {
        let mut runs = Vec::new();
        let mut position = first;
        while position <= last {
            let seg = self.segments.partition_point(|s| s.base <= position) - 1;
            let segment = &self.segments[seg];
            let seg_last = self
                .segments
                .get(seg + 1)
                .map_or(last, |next| (next.base - 1).min(last));
            let from = self.locations[(position - 1) as usize];
            let to = self.locations[(seg_last - 1) as usize];
            runs.push(Run {
                file: segment.file()?,
                path: segment.path.clone(),
                first: position,
                start: u64::from(from.offset),
                end: u64::from(to.offset) + super::frame::HEADER as u64 + u64::from(to.len),
            });
            position = seg_last + 1;
        }
        Ok(runs)
    }
}
