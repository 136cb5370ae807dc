//! Bounded-memory reading of a RecordIO stream from any `Read`, a batch of records at a time.

use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;

use super::decode::{decode_records, Decoded, Signature};
use super::frame::{padded, past_end, Assembler, Frame, Header, HEADER};
use crate::error::{Error, Result};
use crate::parallel::Monitor;

/// Reads whole records from a byte stream; memory is bounded by one batch.
pub struct RecordStream<R> {
    reader: R,
    offset: u64,
    record: u64,
    signature: Option<Signature>,
    /// The current batch's payloads, back to back (kept between batches to reuse its memory).
    arena: Vec<u8>,
}

/// Where a record of the current batch lies: its index, the offset of its first header, and its
/// payload's bytes in the arena.
type Span = (u64, u64, Range<usize>);

impl<R: Read> RecordStream<R> {
    /// Starts reading `reader` from its current position, counted as byte offset 0.
    pub fn new(reader: R) -> Self {
        RecordStream {
            reader,
            offset: 0,
            record: 0,
            signature: None,
            arena: Vec::new(),
        }
    }

    /// Reads up to `max_records` records (fewer, or none, at the end of the stream) into the
    /// arena, one after another, so that a batch costs no allocation per record.
    fn read_records(&mut self, max_records: usize) -> Result<Vec<Span>> {
        self.arena.clear();
        let mut spans = Vec::new();
        let mut assembler = Assembler::default();
        let mut start = self.offset;
        while spans.len() < max_records {
            let at = self.offset;
            let Some(header) = self.read_header()? else {
                if assembler.is_open() {
                    return Err(Error::recordio(
                        self.record,
                        start,
                        "multi-part record has no last part",
                    ));
                }
                break;
            };
            // `take` + `read_to_end` grows the arena only as data arrives: a hostile length
            // cannot make us allocate more than the stream holds.
            let wanted = padded(header.len) as u64;
            let body = self.arena.len();
            (&mut self.reader).take(wanted).read_to_end(&mut self.arena)?;
            let got = self.arena.len() - body;
            if (got as u64) < wanted {
                return Err(past_end(self.record, at, header.len, got));
            }
            self.offset += HEADER as u64 + wanted;
            if !assembler.is_open() {
                start = at;
            }
            self.arena.truncate(body + header.len);
            // A single-part record stays where it was read; the parts of a multi-part one are
            // joined by the assembler and copied back once complete.
            let joined = match assembler.push(header, &self.arena[body..], self.record, at)? {
                None => {
                    self.arena.truncate(body);
                    continue;
                }
                Some(Cow::Borrowed(_)) => None,
                Some(Cow::Owned(joined)) => Some(joined),
            };
            if let Some(joined) = joined {
                self.arena.truncate(body);
                self.arena.extend_from_slice(&joined);
            }
            spans.push((self.record, start, body..self.arena.len()));
            self.record += 1;
        }
        Ok(spans)
    }

    /// The next header, or `None` at a clean end of stream.
    fn read_header(&mut self) -> Result<Option<Header>> {
        let mut bytes = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            match self.reader.read(&mut bytes[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match got {
            0 => Ok(None),
            HEADER => Header::parse(bytes, self.record, self.offset).map(Some),
            _ => Err(Error::recordio(
                self.record,
                self.offset,
                format!("truncated header: {got} bytes left, 8 needed"),
            )),
        }
    }

    /// Decodes the next batch of up to `max_records` records, `None` at the end of the stream.
    /// Every batch must agree with the first on feature dimension, tensor types and labels.
    pub fn next_batch(&mut self, max_records: usize, monitor: &dyn Monitor) -> Result<Option<Decoded>> {
        let spans = self.read_records(max_records.max(1))?;
        let frames: Vec<Frame<'_>> = spans
            .into_iter()
            .map(|(record, offset, span)| Frame {
                record,
                offset,
                payload: Cow::Borrowed(&self.arena[span]),
            })
            .collect();
        let Some(first) = frames.first() else { return Ok(None) };
        let (record, offset) = (first.record, first.offset);
        let decoded = decode_records(&frames, monitor)?;
        match &self.signature {
            Some(signature) => signature.check(&decoded.signature(), record, offset)?,
            None => self.signature = Some(decoded.signature()),
        }
        Ok(Some(decoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Unmonitored;
    use crate::recordio::decode::{decode_buffer, FeatureValues};
    use crate::recordio::frame::{frame, MAGIC};

    /// A sparse float32 record with one entry `(key, value)` in a row of `n_cols`.
    fn record(key: u8, value: f32, n_cols: u8) -> Vec<u8> {
        let mut tensor = vec![0x0a, 4];
        tensor.extend_from_slice(&value.to_le_bytes());
        tensor.extend_from_slice(&[0x12, 1, key, 0x1a, 1, n_cols]);
        let mut value_msg = vec![0x12, tensor.len() as u8];
        value_msg.extend(tensor);
        let mut entry = vec![0x0a, 6];
        entry.extend_from_slice(b"values");
        entry.extend_from_slice(&[0x12, value_msg.len() as u8]);
        entry.extend(value_msg);
        let mut payload = vec![0x0a, entry.len() as u8];
        payload.extend(entry);
        let mut out = MAGIC.to_le_bytes().to_vec();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        out.resize(8 + payload.len().div_ceil(4) * 4, 0);
        out
    }

    #[test]
    fn batches_cover_the_stream_in_order() {
        let bytes: Vec<u8> = (0..5).flat_map(|i| record(i, f32::from(i), 8)).collect();
        let mut stream = RecordStream::new(&bytes[..]);
        let mut rows = Vec::new();
        while let Some(batch) = stream.next_batch(2, &Unmonitored).unwrap() {
            assert_eq!(batch.n_cols, 8);
            rows.push(batch.n_rows);
        }
        assert_eq!(rows, [2, 2, 1]);
    }

    #[test]
    fn a_later_batch_must_agree_with_the_first() {
        let mut bytes = record(0, 1.0, 8);
        bytes.extend(record(0, 1.0, 9));
        let mut stream = RecordStream::new(&bytes[..]);
        assert!(stream.next_batch(1, &Unmonitored).unwrap().is_some());
        let err = stream.next_batch(1, &Unmonitored).unwrap_err().to_string();
        assert!(err.starts_with("record 1 at byte offset 36:"), "{err}");
        assert!(err.contains("feature dimension 9 differs from 8"), "{err}");
    }

    #[test]
    fn a_record_in_parts_among_whole_ones_decodes_as_when_whole() {
        // A value whose bytes are the magic number: MXNet writes such a record in two parts,
        // split where the magic number stands (it is put back when the parts are joined).
        let whole = record(3, f32::from_le_bytes(MAGIC.to_le_bytes()), 8);
        let payload = &whole[HEADER..HEADER + u32::from_le_bytes([whole[4], whole[5], whole[6], whole[7]]) as usize];
        let at = payload.windows(4).position(|w| w == MAGIC.to_le_bytes()).unwrap();
        let parts = [frame(1, &payload[..at]), frame(3, &payload[at + 4..])].concat();
        let (first, last) = (record(1, 1.0, 8), record(2, 2.0, 8));
        let expected = decode_buffer(&[first.clone(), whole, last.clone()].concat(), &Unmonitored).unwrap();
        let streamed = [first, parts, last].concat();
        for batch_size in [1, 2, 3, 5] {
            let mut stream = RecordStream::new(&streamed[..]);
            let mut values = FeatureValues::F32(Vec::new());
            while let Some(batch) = stream.next_batch(batch_size, &Unmonitored).unwrap() {
                if let (FeatureValues::F32(all), FeatureValues::F32(more)) = (&mut values, batch.values) {
                    all.extend(more);
                }
            }
            assert_eq!(values, expected.values, "batches of {batch_size}");
        }
    }

    #[test]
    fn a_hostile_length_is_an_error_not_an_allocation() {
        let mut bytes = MAGIC.to_le_bytes().to_vec();
        bytes.extend_from_slice(&((1u32 << 29) - 1).to_le_bytes());
        bytes.extend_from_slice(&[0; 16]);
        let err = RecordStream::new(&bytes[..]).read_records(1).err().unwrap().to_string();
        assert!(
            err.contains("length 536870911 runs past the end of the data (16 bytes left"),
            "{err}"
        );
    }
}
