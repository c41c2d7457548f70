//! Record framing in a segment file.
//!
//! ```text
//! frame := len:u32le  crc:u32le  body[len]
//! ```
//!
//! `crc` is the CRC32C (Castagnoli) of `body`; the body layout is documented in
//! [`crate::events::envelope`].

use crate::events::ChainHash;

/// Bytes before the body.
pub const HEADER: usize = 8;

/// The largest body the log accepts or reads back.
pub const MAX_BODY: usize = 1 << 20;

/// Appends one frame to `out`, letting `encode` write the body; returns the body length and
/// what `encode` returned (the record's hash).
pub fn append(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> ChainHash,
) -> (u32, ChainHash) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let hash = encode(out);
    let body = &out[start + HEADER..];
    let len = body.len() as u32;
    let crc = crc32c::crc32c(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    (len, hash)
}

/// Why the bytes at an offset are not a good frame.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The data ends before the frame does.
    Incomplete {
        /// Bytes the frame would need.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The length field is zero or larger than any record.
    BadLength(u32),
    /// The body does not match its checksum.
    BadCrc {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the body as read.
        computed: u32,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Incomplete { needed, available } => write!(
                f,
                "incomplete record: needs {needed} bytes, {available} remain"
            ),
            FrameError::BadLength(len) => write!(f, "impossible record length {len}"),
            FrameError::BadCrc { stored, computed } => write!(
                f,
                "checksum mismatch: stored crc32c {stored:08x}, computed {computed:08x}"
            ),
        }
    }
}

/// Reads the frame at the start of `data`; returns its body.
pub fn read(data: &[u8]) -> Result<&[u8], FrameError> {
    if data.len() < HEADER {
        return Err(FrameError::Incomplete {
            needed: HEADER,
            available: data.len(),
        });
    }
    let len = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let stored = u32::from_le_bytes(data[4..8].try_into().unwrap());
    if len == 0 || len as usize > MAX_BODY {
        return Err(FrameError::BadLength(len));
    }
    let end = HEADER + len as usize;
    if data.len() < end {
        return Err(FrameError::Incomplete {
            needed: end,
            available: data.len(),
        });
    }
    let body = &data[HEADER..end];
    let computed = crc32c::crc32c(body);
    if computed != stored {
        return Err(FrameError::BadCrc { stored, computed });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        append(&mut out, |o| {
            o.extend_from_slice(body);
            [0; 32]
        });
        out
    }

    #[test]
    fn round_trip() {
        let data = framed(b"hello");
        assert_eq!(read(&data).unwrap(), b"hello");
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let data = framed(b"some record body");
        for byte in 0..data.len() {
            for bit in 0..8 {
                let mut bad = data.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    read(&bad).is_err(),
                    "flip at byte {byte} bit {bit} went unseen"
                );
            }
        }
    }

    #[test]
    fn short_data_is_incomplete() {
        let data = framed(b"hello");
        assert!(matches!(
            read(&data[..data.len() - 1]),
            Err(FrameError::Incomplete { .. })
        ));
        assert!(matches!(
            read(&data[..3]),
            Err(FrameError::Incomplete { .. })
        ));
    }
}
