//! Bounded-memory reading of a RecordIO stream from any `Read`, a batch of records at a time.
//!
//! The stream is read in large pieces into one buffer reused from batch to batch; the frame
//! headers are followed through it (a few instructions a record) until it holds a batch of whole
//! records, which are then split into frames ([`FrameScanner`]: the checks and errors of a buffer
//! in memory) and decoded in place. Bytes read past the batch stay for the next one.

use std::io::Read;
use std::sync::Arc;

use super::decode::{decode_scanned, DecodeScratch, Decoded, FusedRows, Signature, PROGRESS_RECORDS};
use super::frame::{padded, FrameScanner, Header, HEADER};
use super::pool::ArrayPool;
use crate::error::Result;
use crate::parallel::Monitor;

/// The least and the most bytes asked of the reader at a time: large reads cost one call for
/// thousands of records; an upper bound keeps a hostile or mistaken length from making a read
/// (and the buffer) larger than the data that actually arrives.
const MIN_READ: usize = 64 << 10;
const MAX_READ: usize = 64 << 20;

/// Reads whole records from a byte stream; memory is bounded by one batch (and one read).
pub struct RecordStream<R> {
    reader: R,
    /// Offset in the stream of `buffer[0]`.
    offset: u64,
    /// Index of the record that starts at `buffer[0]`.
    record: u64,
    signature: Option<Signature>,
    /// Bytes read and not yet decoded, from `buffer[0]` on (kept between batches to reuse its memory).
    buffer: Vec<u8>,
    /// Whether the reader has reported its end.
    at_end: bool,
    /// The decoder's intermediate arrays, kept from batch to batch.
    scratch: DecodeScratch,
    /// Records and values of the last batch the fused decoder gave, to size the next one's arrays.
    last_batch: (usize, usize),
    /// The arrays of earlier batches given back, which the fused decoder fills again.
    pool: Arc<ArrayPool>,
}

impl<R: Read> RecordStream<R> {
    /// Starts reading `reader` from its current position, counted as byte offset 0.
    pub fn new(reader: R) -> Self {
        RecordStream {
            reader,
            offset: 0,
            record: 0,
            signature: None,
            buffer: Vec::new(),
            at_end: false,
            scratch: DecodeScratch::default(),
            last_batch: (0, 0),
            pool: Arc::default(),
        }
    }

    /// Where the arrays of its batches may be given back once used, for later batches to fill.
    pub fn pool(&self) -> Arc<ArrayPool> {
        Arc::clone(&self.pool)
    }

    /// Reads until the buffer holds `max_records` whole records (or the stream ends); returns
    /// the bytes they take. Only headers are looked at (and checked, so that a corrupt one stops
    /// reading at once); the frames are split and checked again by the caller.
    fn fill(&mut self, max_records: usize) -> Result<usize> {
        let (mut pos, mut records) = (0, 0);
        loop {
            while records < max_records {
                let Some(bytes) = self.buffer.get(pos..pos + HEADER) else {
                    break;
                };
                let bytes: [u8; HEADER] = bytes.try_into().unwrap_or_default();
                let header = Header::parse(bytes, self.record + records as u64, self.offset + pos as u64)?;
                let next = pos + HEADER + padded(header.len);
                if next > self.buffer.len() {
                    break;
                }
                pos = next;
                // The first and middle parts of a record in parts do not end it.
                records += usize::from(!matches!(header.flag, 1 | 2));
            }
            if records == max_records || self.at_end {
                return Ok(pos);
            }
            self.read_more(pos, records, max_records)?;
        }
    }

    /// Reads more of the stream into the buffer, which holds `records` whole records in its first
    /// `pos` bytes and needs `max_records`; sets `at_end` when nothing more arrives.
    fn read_more(&mut self, pos: usize, records: usize, max_records: usize) -> Result<()> {
        // Enough for the records still missing at the mean size of those read so far.
        let want = match records {
            0 => MIN_READ.max(self.buffer.len() - pos),
            // Saturating: `max_records` may be any size a caller asks for.
            _ => (pos / records)
                .saturating_mul(max_records - records)
                .saturating_add(MIN_READ),
        };
        let (before, want) = (self.buffer.len(), want.min(MAX_READ));
        // Room for the whole read, kept from batch to batch (no regrowth, no new pages); `take`
        // + `read_to_end` then fills only what arrives.
        self.buffer.reserve(want);
        (&mut self.reader).take(want as u64).read_to_end(&mut self.buffer)?;
        self.at_end = self.buffer.len() == before;
        Ok(())
    }

    /// The next batch of up to `max_records` records decoded by the fused decoder ([`FusedRows`])
    /// as they are read, and the bytes they take; `None` (the bytes read so far kept in the
    /// buffer) where the records are not all SDK records that agree: the general decoder decodes
    /// that batch.
    fn next_fused(&mut self, max_records: usize, monitor: &dyn Monitor) -> Result<Option<(Decoded, usize)>> {
        // Room for a batch like the last one (most are full batches of one file's records).
        let (rows, nnz) = self.last_batch;
        let scale = |n: usize| n.saturating_mul(max_records.min(rows.max(1))) / rows.max(1);
        let mut fused = FusedRows::new(&self.pool, scale(rows), scale(nnz));
        let mut pos = 0;
        while fused.n_rows() < max_records {
            let step = (max_records - fused.n_rows()).min(PROGRESS_RECORDS);
            let Some((used, records)) = fused.extend(&self.buffer[pos..], step) else {
                return Ok(None);
            };
            pos += used;
            if records == step {
                monitor.progress(fused.n_rows() as u64)?;
            } else if !self.at_end {
                self.read_more(pos, fused.n_rows(), max_records)?;
            } else if pos < self.buffer.len() {
                // A truncated record at the end: the general decoder reports it.
                return Ok(None);
            } else {
                break;
            }
        }
        self.last_batch = (fused.n_rows(), fused.nnz());
        Ok(fused.finish(pos).map(|decoded| (decoded, pos)))
    }

    /// Decodes the next batch of up to `max_records` records, `None` at the end of the stream.
    /// Every batch must agree with the first on feature dimension, tensor types and labels.
    pub fn next_batch(&mut self, max_records: usize, monitor: &dyn Monitor) -> Result<Option<Decoded>> {
        let max_records = max_records.max(1);
        let (decoded, used) = match self.next_fused(max_records, monitor)? {
            Some(fused) => fused,
            None => self.next_general(max_records, monitor)?,
        };
        if decoded.n_rows == 0 {
            return Ok(None);
        }
        // The batch starts with a whole record, at the start of the buffer.
        match &self.signature {
            Some(signature) => signature.check(&decoded.signature(), self.record, self.offset)?,
            None => self.signature = Some(decoded.signature()),
        }
        self.record += decoded.n_rows as u64;
        self.offset += used as u64;
        self.buffer.drain(..used);
        Ok(Some(decoded))
    }

    /// The next batch decoded by the general decoder, and the bytes it takes.
    fn next_general(&mut self, max_records: usize, monitor: &dyn Monitor) -> Result<(Decoded, usize)> {
        let whole = self.fill(max_records)?;
        // At the end of the stream, the bytes after the last whole record (a truncated one) are
        // scanned too, to be reported as the frames of a buffer are.
        let bytes = if self.at_end {
            &self.buffer[..]
        } else {
            &self.buffer[..whole]
        };
        let mut scanner = FrameScanner::resuming(bytes, self.offset, self.record);
        let decoded = decode_scanned(&mut scanner, max_records, &mut self.scratch, monitor)?;
        Ok((decoded, scanner.position()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Unmonitored;
    use crate::recordio::decode::{decode_buffer, FeatureValues, Indices};
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
    fn arrays_given_back_hold_a_later_batch() {
        let bytes: Vec<u8> = (0..6).flat_map(|i| record(i, f32::from(i), 8)).collect();
        let mut stream = RecordStream::new(&bytes[..]);
        let pool = stream.pool();
        let first = stream.next_batch(2, &Unmonitored).unwrap().unwrap();
        let (Indices::I32 { indptr, indices }, FeatureValues::F32(values)) = (first.indices, first.values) else {
            panic!("SDK records decode to int32 indices and float32 values");
        };
        let at = (indptr.as_ptr(), indices.as_ptr(), values.as_ptr());
        pool.give(indptr);
        pool.give(indices);
        pool.give(values);
        let next = stream.next_batch(2, &Unmonitored).unwrap().unwrap();
        let (Indices::I32 { indptr, indices }, FeatureValues::F32(values)) = (next.indices, next.values) else {
            panic!("SDK records decode to int32 indices and float32 values");
        };
        // The same memory (`indptr` and `indices` both fit either), holding the next records.
        assert!([at.0, at.1].contains(&indptr.as_ptr()) && [at.0, at.1].contains(&indices.as_ptr()));
        assert_eq!((values.as_ptr(), values), (at.2, vec![2.0, 3.0]));
        assert_eq!((indptr, indices), (vec![0, 1, 2], vec![2, 3]));
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

    /// A reader that hands over at most `step` bytes a call, as pipes and sockets may.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "too slow for miri: 1.6 MB read 3 bytes at a time; the truncated-record test streams there"
    )]
    fn short_reads_and_records_across_reads_decode_as_the_whole_buffer() {
        // More than one read's worth of bytes (MIN_READ), handed over a few bytes at a time, so
        // that records and headers are cut at every place by the ends of reads.
        let bytes: Vec<u8> = (0..4000u32)
            .flat_map(|i| record((i % 100) as u8, i as f32, 100))
            .collect();
        assert!(bytes.len() > MIN_READ);
        let expected = decode_buffer(&bytes, &Unmonitored).unwrap();
        for (step, batch) in [(7, 1000), (3, 4000), (1 << 20, 999)] {
            let mut stream = RecordStream::new(Trickle { bytes: &bytes, step });
            let (mut rows, mut values) = (0, Vec::new());
            while let Some(decoded) = stream.next_batch(batch, &Unmonitored).unwrap() {
                rows += decoded.n_rows;
                if let FeatureValues::F32(more) = decoded.values {
                    values.extend(more);
                }
            }
            assert_eq!(rows, 4000, "step {step}");
            assert_eq!(FeatureValues::F32(values), expected.values, "step {step}");
        }
    }

    #[test]
    fn a_truncated_last_record_is_reported_where_it_starts() {
        let mut bytes: Vec<u8> = (0..3).flat_map(|i| record(i, 1.0, 8)).collect();
        let whole = bytes.len();
        bytes.extend_from_slice(&record(1, 1.0, 8)[..20]);
        let mut stream = RecordStream::new(Trickle { bytes: &bytes, step: 5 });
        assert_eq!(stream.next_batch(3, &Unmonitored).unwrap().map(|d| d.n_rows), Some(3));
        let err = stream.next_batch(3, &Unmonitored).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("record 3 at byte offset {whole}: length")),
            "{err}"
        );
    }

    #[test]
    fn a_hostile_length_is_an_error_not_an_allocation() {
        let mut bytes = MAGIC.to_le_bytes().to_vec();
        bytes.extend_from_slice(&((1u32 << 29) - 1).to_le_bytes());
        bytes.extend_from_slice(&[0; 16]);
        let err = RecordStream::new(&bytes[..])
            .next_batch(1, &Unmonitored)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("length 536870911 runs past the end of the data (16 bytes left"),
            "{err}"
        );
    }
}
