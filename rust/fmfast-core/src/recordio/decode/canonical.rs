//! The fast path: records laid out exactly as the SageMaker SDK writes sparse float32 rows,
//! recognised and read without the general decoder's bookkeeping. Anything else, valid or not,
//! is left to the general decoder (`record`), which also reports what is wrong.

use crate::csr::CsrIndex;
use crate::recordio::wire::{Cursor, LEN};

/// A sparse float32 record in the exact layout the SageMaker SDK writes.
pub(super) struct Canonical<'a> {
    /// Packed float32 values (a multiple of 4 bytes).
    pub(super) values: &'a [u8],
    /// Packed varint keys.
    pub(super) keys: &'a [u8],
    /// The one dimension of the shape.
    pub(super) dim: u64,
    /// The one float32 label, when there is one.
    pub(super) label: Option<[u8; 4]>,
}

/// `payload` as a [`Canonical`] record: `features {"values": Value {float32_tensor {values?, keys?,
/// shape: [dim]}}}` then optionally `label {"values": Value {float32_tensor {values: [label]}}}`,
/// each field once, in this order, with nothing else; `None` for anything else (valid or not),
/// which the general decoder then handles.
#[inline]
pub(super) fn canonical(payload: &[u8]) -> Option<Canonical<'_>> {
    const FLOAT32_TENSOR: u8 = (2 << 3) | LEN;
    let mut record = Cursor::new(payload);
    let tensor = canonical_entry(&mut record, (1 << 3) | LEN, FLOAT32_TENSOR)?;
    let label = if record.is_done() {
        None
    } else {
        match canonical_entry(&mut record, (2 << 3) | LEN, FLOAT32_TENSOR)? {
            &[0x0a, 4, b0, b1, b2, b3] => Some([b0, b1, b2, b3]),
            _ => return None,
        }
    };
    if !record.is_done() {
        return None;
    }
    let mut tensor = Cursor::new(tensor);
    let mut field = |tag: u8| match tensor.eat(tag) {
        true => tensor.len_delimited().ok(),
        false => Some(&[][..]),
    };
    let (values, keys) = (field((1 << 3) | LEN)?, field((2 << 3) | LEN)?);
    if !tensor.eat((3 << 3) | LEN) {
        return None;
    }
    let mut shape = Cursor::new(tensor.len_delimited().ok()?);
    let dim = shape.varint().ok()?;
    if !shape.is_done() || !tensor.is_done() || values.len() % 4 != 0 {
        return None;
    }
    Some(Canonical {
        values,
        keys,
        dim,
        label,
    })
}

/// The tensor of a map entry `{"values": Value {<tensor_tag>: tensor}}` under `entry_tag`.
#[inline(always)]
fn canonical_entry<'a>(cursor: &mut Cursor<'a>, entry_tag: u8, tensor_tag: u8) -> Option<&'a [u8]> {
    if !cursor.eat(entry_tag) {
        return None;
    }
    let mut entry = Cursor::new(cursor.len_delimited().ok()?);
    if !(entry.eat((1 << 3) | LEN) && entry.eat(6) && entry.take(6).ok()? == b"values" && entry.eat((2 << 3) | LEN)) {
        return None;
    }
    let mut value = Cursor::new(entry.len_delimited().ok()?);
    if !entry.is_done() || !value.eat(tensor_tag) {
        return None;
    }
    let tensor = value.len_delimited().ok()?;
    value.is_done().then_some(tensor)
}

/// Appends packed varint `keys`, each below `dim` and representable as `I`, to `out` (whose
/// capacity is made to hold `expected` more); `false` as soon as one is not (or is malformed).
#[inline(always)]
pub(super) fn push_keys<I: CsrIndex>(mut keys: &[u8], dim: u64, expected: usize, out: &mut Vec<I>) -> bool {
    out.reserve(expected);
    while !keys.is_empty() {
        // Keys of up to 21 bits (3 bytes) are decoded without the general loop.
        let (key, used) = match *keys {
            [b0, ..] if b0 < 0x80 => (u64::from(b0), 1),
            [b0, b1, ..] if b1 < 0x80 => (u64::from(b0 & 0x7f) | (u64::from(b1) << 7), 2),
            [b0, b1, b2, ..] if b2 < 0x80 => (
                u64::from(b0 & 0x7f) | (u64::from(b1 & 0x7f) << 7) | (u64::from(b2) << 14),
                3,
            ),
            _ => {
                let mut cursor = Cursor::new(keys);
                match cursor.varint() {
                    Ok(key) => (key, cursor.position()),
                    Err(_) => return false,
                }
            }
        };
        match I::from_u64(key) {
            Some(k) if key < dim => out.push(k),
            _ => return false,
        }
        keys = keys.get(used..).unwrap_or_default();
    }
    true
}
