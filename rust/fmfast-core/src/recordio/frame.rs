//! RecordIO framing: little-endian u32 magic, u32 length word, payload, zero padding to 4 bytes.
//!
//! The top 3 bits of the length word are a continuation flag (0 whole, 1 first, 2 middle,
//! 3 last part). The SageMaker SDK never sets them; MXNet/dmlc writers split a record wherever
//! the magic appears 4-byte aligned in its payload and drop that magic, so a reader joins the
//! parts with the magic between them.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// The RecordIO magic number.
pub const MAGIC: u32 = 0xCED7_230A;
/// Records are padded to a multiple of this many bytes.
pub const PAD: usize = 4;
/// The largest payload one frame can carry (29 bits of length).
pub const MAX_PAYLOAD: usize = (1 << 29) - 1;
/// Bytes of a frame header.
pub const HEADER: usize = 8;

/// Appends a whole-record frame header for a payload of `len` bytes.
pub fn put_frame_header(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

/// Bytes a payload of `len` bytes takes on disk after its header.
pub fn padded(len: usize) -> usize {
    len.div_ceil(PAD) * PAD
}

/// The error for a frame whose payload (with padding) needs more bytes than the `left` that follow
/// its header.
pub fn past_end(record: u64, offset: u64, len: usize, left: usize) -> Error {
    Error::recordio(
        record,
        offset,
        format!("length {len} runs past the end of the data ({left} bytes left after the header)"),
    )
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Continuation flag (0..=3).
    pub flag: u32,
    /// Payload length in bytes.
    pub len: usize,
}

impl Header {
    /// Parses the 8 header bytes of the record `record` found at `offset`.
    pub fn parse(bytes: [u8; HEADER], record: u64, offset: u64) -> Result<Self> {
        let [m0, m1, m2, m3, l0, l1, l2, l3] = bytes;
        let magic = u32::from_le_bytes([m0, m1, m2, m3]);
        if magic != MAGIC {
            return Err(Error::recordio(
                record,
                offset,
                format!("bad magic 0x{magic:08X}, expected 0x{MAGIC:08X} (not a RecordIO stream, or corrupt)"),
            ));
        }
        let word = u32::from_le_bytes([l0, l1, l2, l3]);
        let flag = word >> 29;
        if flag > 3 {
            return Err(Error::recordio(
                record,
                offset,
                format!("invalid continuation flag {flag}"),
            ));
        }
        Ok(Header {
            flag,
            len: (word & MAX_PAYLOAD as u32) as usize,
        })
    }
}

/// Joins the parts of a multi-part record and checks that flags come in a valid order.
#[derive(Default)]
pub struct Assembler {
    parts: Option<Vec<u8>>,
}

impl Assembler {
    /// Feeds one frame; returns the payload once a whole record is complete. `Ok(None)` means
    /// more parts follow.
    pub fn push<'a>(
        &mut self,
        header: Header,
        payload: &'a [u8],
        record: u64,
        offset: u64,
    ) -> Result<Option<Cow<'a, [u8]>>> {
        let misplaced = |what: &str| {
            Err(Error::recordio(
                record,
                offset,
                format!("continuation flag {} {what}", header.flag),
            ))
        };
        match (header.flag, self.parts.as_mut()) {
            (0, None) => Ok(Some(Cow::Borrowed(payload))),
            (1, None) => {
                self.parts = Some(payload.to_vec());
                Ok(None)
            }
            (2 | 3, Some(parts)) => {
                parts.extend_from_slice(&MAGIC.to_le_bytes());
                parts.extend_from_slice(payload);
                Ok(if header.flag == 3 {
                    self.parts.take().map(Cow::Owned)
                } else {
                    None
                })
            }
            (0 | 1, Some(_)) => misplaced("inside a multi-part record"),
            _ => misplaced("without a first part"),
        }
    }

    /// Whether a multi-part record was started and not finished.
    pub fn is_open(&self) -> bool {
        self.parts.is_some()
    }
}

/// One logical record: its index, the offset of its (first) frame header, and its payload.
pub struct Frame<'a> {
    /// Zero-based record index.
    pub record: u64,
    /// Byte offset of the record's first header in the stream.
    pub offset: u64,
    /// The protobuf payload, joined when the record came in parts.
    pub payload: Cow<'a, [u8]>,
}

/// Walks a RecordIO stream held in memory, a block of records at a time, borrowing whole-record
/// payloads (multi-part records are joined into owned buffers).
pub struct FrameScanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    record: u64,
    base_offset: u64,
}

impl<'a> FrameScanner<'a> {
    /// Starts at the beginning of `bytes`; `base_offset` is added to every reported offset.
    pub fn new(bytes: &'a [u8], base_offset: u64) -> Self {
        Self::resuming(bytes, base_offset, 0)
    }

    /// As [`FrameScanner::new`], for bytes that start at record `record` of a longer stream (a
    /// stream read a batch at a time): records are numbered from it.
    pub fn resuming(bytes: &'a [u8], base_offset: u64, record: u64) -> Self {
        FrameScanner {
            bytes,
            pos: 0,
            record,
            base_offset,
        }
    }

    /// Bytes of `bytes` scanned so far (the end of the last record returned).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes of `bytes` not scanned yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `max_records` records (fewer at the end, none once done).
    pub fn next_block(&mut self, max_records: usize) -> Result<Vec<Frame<'a>>> {
        let bytes = self.bytes;
        // Sized once (a frame takes at least a header): no regrowth, no copies.
        let mut frames = Vec::with_capacity(max_records.min(self.remaining() / HEADER));
        let mut assembler = Assembler::default();
        let mut start = self.pos;
        while self.pos < bytes.len() && (frames.len() < max_records || assembler.is_open()) {
            let (record, pos) = (self.record, self.pos);
            let offset = self.base_offset + pos as u64;
            let header_bytes: [u8; HEADER] =
                bytes[pos..]
                    .get(..HEADER)
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| {
                        let left = bytes.len() - pos;
                        Error::recordio(record, offset, format!("truncated header: {left} bytes left, 8 needed"))
                    })?;
            let header = Header::parse(header_bytes, record, offset)?;
            let body = pos + HEADER;
            let left = bytes.len() - body;
            if padded(header.len) > left {
                return Err(past_end(record, offset, header.len, left));
            }
            if !assembler.is_open() {
                start = pos;
            }
            self.pos = body + padded(header.len);
            if let Some(payload) = assembler.push(header, &bytes[body..body + header.len], record, offset)? {
                frames.push(Frame {
                    record,
                    offset: self.base_offset + start as u64,
                    payload,
                });
                self.record += 1;
            }
        }
        if assembler.is_open() {
            let offset = self.base_offset + start as u64;
            return Err(Error::recordio(
                self.record,
                offset,
                "multi-part record has no last part",
            ));
        }
        Ok(frames)
    }
}

/// Splits a whole RecordIO stream held in memory into records.
pub fn split_frames(bytes: &[u8], base_offset: u64) -> Result<Vec<Frame<'_>>> {
    FrameScanner::new(bytes, base_offset).next_block(usize::MAX)
}

/// One frame: header (continuation `flag`, `payload`'s length), payload, padding.
#[cfg(test)]
pub(crate) fn frame(flag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_le_bytes().to_vec();
    out.extend_from_slice(&((flag << 29) | payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(HEADER + padded(payload.len()), 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_whole_and_multi_part_records() {
        let mut bytes = frame(0, b"abc");
        bytes.extend(frame(1, b"1234"));
        bytes.extend(frame(2, b""));
        bytes.extend(frame(3, b"xy"));
        bytes.extend(frame(0, b""));
        let frames = split_frames(&bytes, 0).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(&*frames[0].payload, b"abc");
        let mut joined = b"1234".to_vec();
        joined.extend_from_slice(&MAGIC.to_le_bytes());
        joined.extend_from_slice(&MAGIC.to_le_bytes());
        joined.extend_from_slice(b"xy");
        assert_eq!(&*frames[1].payload, &joined[..]);
        assert_eq!((frames[1].record, frames[1].offset), (1, 12));
        assert_eq!((frames[2].record, frames[2].offset), (2, 44));
    }

    #[test]
    fn reports_broken_framing_with_its_position() {
        let good = frame(0, b"abcd");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..5].to_vec(), "truncated header"),
            ([&good[..], &[0; 8]].concat(), "record 1 at byte offset 12: bad magic"),
            (good[..10].to_vec(), "runs past the end"),
            (frame(2, b"x"), "without a first part"),
            (frame(1, b"x"), "no last part"),
            ([frame(1, b"x"), frame(0, b"y")].concat(), "inside a multi-part"),
            (frame(5, b"x"), "invalid continuation flag 5"),
        ];
        for (bytes, message) in cases {
            let err = split_frames(&bytes, 0).err().expect(message).to_string();
            assert!(err.contains(message), "{err:?} lacks {message:?}");
        }
    }
}
