//! Checkpoints: a snapshot of the read models with the position (and that record's hash)
//! they cover, so start-up folds only what came after.
//!
//! File layout: `magic "WRNTCKPA" | crc32c:u32le | postcard(ReadModels)`. Written to a
//! temporary file, fsynced, renamed over the old one, directory fsynced: a crash leaves
//! either the old checkpoint or the new one, never a mix. A checkpoint is only a cache:
//! one that is damaged, from another log, or ahead of the log is ignored and the models are
//! rebuilt from the log.

use super::ReadModels;
use crate::events::EventStore;
use std::fs;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"WRNTCKPA";

/// Where the checkpoint of a data directory lives.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("checkpoints").join("projections.ckpt")
}

/// Writes `models` as the checkpoint at `path`, durably.
pub fn save(path: &Path, models: &ReadModels) -> std::io::Result<()> {
    write(path, models)?.commit()
}

/// A checkpoint written to its temporary file but neither durable nor in place yet.
#[must_use = "a written checkpoint is used only once committed"]
pub struct Written {
    file: fs::File,
    tmp: PathBuf,
    path: PathBuf,
}

/// Writes `models` to the temporary file of the checkpoint at `path`. The models are
/// streamed to the file (no copy of them is built in memory) and read only here: the slow
/// part, making the file durable, is [`Written::commit`], which needs them no more.
pub fn write(path: &Path, models: &ReadModels) -> std::io::Result<Written> {
    let parent = path.parent().expect("checkpoint paths have a directory");
    fs::create_dir_all(parent)?;
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(MAGIC)?;
    file.write_all(&[0; 4])?;
    // The serializer writes a field at a time: the buffer comes first, so the checksum is
    // computed over whole buffers rather than over every field.
    let mut body = BufWriter::new(Crc32cWriter {
        inner: &mut file,
        crc: 0,
    });
    postcard::to_io(models, &mut body).map_err(std::io::Error::other)?;
    let crc = body.into_inner().map_err(|e| e.into_error())?.crc;
    file.seek(SeekFrom::Start(MAGIC.len() as u64))?;
    file.write_all(&crc.to_le_bytes())?;
    Ok(Written {
        file,
        tmp,
        path: path.to_owned(),
    })
}

impl Written {
    /// Makes the checkpoint durable and puts it in place: the file synced, renamed over the
    /// old checkpoint, the directory synced.
    pub fn commit(self) -> std::io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.tmp, &self.path)?;
        let parent = self
            .path
            .parent()
            .expect("checkpoint paths have a directory");
        fs::File::open(parent)?.sync_all()
    }
}

/// A writer that keeps the CRC32C of everything written through it.
struct Crc32cWriter<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for Crc32cWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the checkpoint at `path`; `Err` says why it cannot be used.
pub fn read(path: &Path) -> Result<ReadModels, String> {
    let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if data.len() < 12 || &data[..8] != MAGIC {
        return Err(format!("{}: not a warrant checkpoint", path.display()));
    }
    let stored = u32::from_le_bytes(data[8..12].try_into().unwrap());
    if crc32c::crc32c(&data[12..]) != stored {
        return Err(format!("{}: checksum mismatch", path.display()));
    }
    postcard::from_bytes(&data[12..]).map_err(|e| format!("{}: {e}", path.display()))
}

/// Loads the checkpoint at `path` if it belongs to `store`'s log; otherwise (none, damaged,
/// from another log) empty models, with the reason logged.
pub async fn load_for(path: &Path, store: &dyn EventStore) -> ReadModels {
    if !path.exists() {
        return ReadModels::default();
    }
    let models = match read(path) {
        Ok(models) => models,
        Err(reason) => {
            tracing::warn!(%reason, "ignoring unusable checkpoint; rebuilding from the log");
            return ReadModels::default();
        }
    };
    if models.position == 0 {
        return models;
    }
    match store.read_all(models.position, 1).await {
        Ok(records) if records.first().is_some_and(|r| r.hash == models.last_hash) => models,
        Ok(_) => {
            tracing::warn!(
                position = models.position,
                "checkpoint does not match this log (ahead of it, or from another log); rebuilding from the log"
            );
            ReadModels::default()
        }
        Err(err) => {
            tracing::warn!(%err, "cannot check the checkpoint against the log; rebuilding from the log");
            ReadModels::default()
        }
    }
}
