//! The fast path: records laid out exactly as the SageMaker SDK writes sparse float32 rows,
//! recognised and read without the general decoder's bookkeeping. Anything else, valid or not,
//! is left to the general decoder (`record`), which also reports what is wrong.

use super::decoded::fixed;
use crate::csr::CsrIndex;
use crate::recordio::wire::Cursor;

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

/// A label entry as the SDK writes it, up to its 4 value bytes: `label {"values": Value
/// {float32_tensor {values: [label]}}}` (tags and lengths are fixed for one float32 value).
const LABEL_ENTRY: [u8; 16] = [
    0x12, 0x12, 0x0a, 6, b'v', b'a', b'l', b'u', b'e', b's', 0x12, 8, 0x12, 6, 0x0a, 4,
];
/// The label entry up to its value ([`LABEL_ENTRY`]) as a little-endian integer.
pub(super) const LABEL_ENTRY_WORD: u128 = u128::from_le_bytes(LABEL_ENTRY);
/// The key field of a map entry whose key is "values".
const VALUES_KEY: [u8; 8] = [0x0a, 6, b'v', b'a', b'l', b'u', b'e', b's'];
/// The first 14 bytes of a feature entry whose lengths take one byte each, as a little-endian
/// integer, its three lengths (bytes 1, 11 and 13) zero: `features {"values": Value
/// {float32_tensor {`.
const FEATURES_HEAD: u128 = u128::from_le_bytes([
    0x0a, 0, 0x0a, 6, b'v', b'a', b'l', b'u', b'e', b's', 0x12, 0, 0x12, 0, 0, 0,
]);
/// The first 14 bytes of 16.
const FEATURES_HEAD_MASK: u128 = (1 << 112) - 1;

/// `payload` as a [`Canonical`] record: `features {"values": Value {float32_tensor {values?, keys?,
/// shape: [dim]}}}` then optionally `label {"values": Value {float32_tensor {values: [label]}}}`,
/// each field once, in this order, with nothing else; `None` for anything else (valid or not),
/// which the general decoder then handles.
///
/// Every record is read here, so it is read as bytes at known places rather than field by field:
/// each nested message must end where the feature entry ends, and the label entry is one
/// comparison.
#[inline(always)]
pub(super) fn canonical(payload: &[u8]) -> Option<Canonical<'_>> {
    let (tensor, rest) = features_tensor(payload)?;
    // The fixed parts are compared as integers: one comparison each, no call to `memcmp`.
    let label = match *rest {
        [] => None,
        [ref head @ .., b0, b1, b2, b3]
            if head.len() == LABEL_ENTRY.len()
                && u128::from_le_bytes(fixed(head)) == u128::from_le_bytes(LABEL_ENTRY) =>
        {
            Some([b0, b1, b2, b3])
        }
        _ => return None,
    };
    let (values, tensor) = optional_field(tensor, 0x0a)?;
    let (keys, tensor) = optional_field(tensor, 0x12)?;
    let (shape, []) = field(tensor, 0x1a)? else {
        return None;
    };
    let (dim, used) = short_varint(shape)?;
    (used == shape.len() && values.len() % 4 == 0).then_some(Canonical {
        values,
        keys,
        dim,
        label,
    })
}

/// The float32 tensor of the feature entry `"values": Value {float32_tensor {...}}` at the start of
/// `payload`, and the bytes after the entry.
#[inline(always)]
fn features_tensor(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(split) = short_head(payload) {
        return Some(split);
    }
    let (entry, rest) = field(payload, 0x0a)?;
    let (key, value) = entry.split_at_checked(VALUES_KEY.len())?;
    if u64::from_le_bytes(fixed(key)) != u64::from_le_bytes(VALUES_KEY) {
        return None;
    }
    // The Value and its float32 tensor each take the rest of the entry.
    let (value, []) = field(value, 0x12)? else {
        return None;
    };
    let (tensor, []) = field(value, 0x12)? else {
        return None;
    };
    Some((tensor, rest))
}

/// As [`features_tensor`] for a feature entry under 128 bytes (a sparse row of up to about 12
/// values), recognised by one comparison of its first 14 bytes: its three lengths, one byte each,
/// follow from the first. `None` for any other start.
#[inline(always)]
pub(super) fn short_head(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let head = payload.first_chunk::<16>()?;
    let len = head[1];
    if !(12..0x80).contains(&len) {
        return None;
    }
    let lengths = u128::from(len) << 8 | u128::from(len - 10) << 88 | u128::from(len - 12) << 104;
    if u128::from_le_bytes(*head) & FEATURES_HEAD_MASK != FEATURES_HEAD | lengths {
        return None;
    }
    payload.get(14..)?.split_at_checked(usize::from(len - 12))
}

/// The contents of the length-delimited field `tag` at the start of `bytes`, and the bytes after
/// it; `None` when `bytes` starts otherwise.
#[inline(always)]
fn field(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match *bytes {
        // A length below 128 (one byte), the usual case, without the general varint.
        [first, len, ref rest @ ..] if first == tag && len < 0x80 => rest.split_at_checked(usize::from(len)),
        [first, ref rest @ ..] if first == tag => {
            let (len, used) = short_varint(rest)?;
            rest.get(used..)?.split_at_checked(usize::try_from(len).ok()?)
        }
        _ => None,
    }
}

/// As [`field`], or empty contents when `bytes` does not start with `tag` (an omitted field).
#[inline(always)]
fn optional_field(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match bytes.first() {
        Some(&first) if first == tag => field(bytes, tag),
        _ => Some((&[], bytes)),
    }
}

/// The varint at the start of `bytes` and the bytes it takes; `None` when malformed. Values of up
/// to 21 bits (3 bytes: lengths and column keys, mostly) are decoded without the general loop.
#[inline(always)]
fn short_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    match *bytes {
        [b0, ..] if b0 < 0x80 => Some((u64::from(b0), 1)),
        [b0, b1, ..] if b1 < 0x80 => Some((u64::from(b0 & 0x7f) | (u64::from(b1) << 7), 2)),
        [b0, b1, b2, ..] if b2 < 0x80 => Some((
            u64::from(b0 & 0x7f) | (u64::from(b1 & 0x7f) << 7) | (u64::from(b2) << 14),
            3,
        )),
        _ => {
            let mut cursor = Cursor::new(bytes);
            let value = cursor.varint().ok()?;
            Some((value, cursor.position()))
        }
    }
}

/// Appends packed varint `keys`, each below `dim` and representable as `I`, to `out` (whose
/// capacity is made to hold `expected` more); `false` as soon as one is not (or is malformed).
#[inline(always)]
pub(super) fn push_keys<I: CsrIndex>(mut keys: &[u8], dim: u64, expected: usize, out: &mut Vec<I>) -> bool {
    out.reserve(expected);
    while !keys.is_empty() {
        let Some((key, used)) = short_varint(keys) else {
            return false;
        };
        match I::from_u64(key) {
            Some(k) if key < dim => out.push(k),
            _ => return false,
        }
        keys = keys.get(used..).unwrap_or_default();
    }
    true
}
