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
/// The key field of a map entry whose key is "values".
const VALUES_KEY: [u8; 8] = [0x0a, 6, b'v', b'a', b'l', b'u', b'e', b's'];

/// `payload` as a [`Canonical`] record: `features {"values": Value {float32_tensor {values?, keys?,
/// shape: [dim]}}}` then optionally `label {"values": Value {float32_tensor {values: [label]}}}`,
/// each field once, in this order, with nothing else; `None` for anything else (valid or not),
/// which the general decoder then handles.
///
/// Every record is read here, so it is read as bytes at known places rather than field by field:
/// each nested message must end where the feature entry ends, and the label entry is one
/// comparison.
#[inline]
pub(super) fn canonical(payload: &[u8]) -> Option<Canonical<'_>> {
    let mut at = Fields { bytes: payload, pos: 0 };
    let entry = at.field(0x0a)?;
    let end = at.pos;
    // The fixed parts are compared as integers: one comparison each, no call to `memcmp` (a
    // label entry of another length gives `fixed`'s zeros, which differ from it).
    let label = match payload.get(end..)? {
        [] => None,
        [head @ .., b0, b1, b2, b3] if u128::from_le_bytes(fixed(head)) == u128::from_le_bytes(LABEL_ENTRY) => {
            Some([*b0, *b1, *b2, *b3])
        }
        _ => return None,
    };
    let mut at = Fields { bytes: entry, pos: 0 };
    if u64::from_le_bytes(fixed(entry.get(..VALUES_KEY.len())?)) != u64::from_le_bytes(VALUES_KEY) {
        return None;
    }
    at.pos = VALUES_KEY.len();
    // The Value and its float32 tensor each take the rest of the entry.
    let value = at.field(0x12)?;
    if at.pos != entry.len() {
        return None;
    }
    let mut at = Fields { bytes: value, pos: 0 };
    let tensor = at.field(0x12)?;
    if at.pos != value.len() {
        return None;
    }
    let mut at = Fields { bytes: tensor, pos: 0 };
    let values = at.optional_field(0x0a)?;
    let keys = at.optional_field(0x12)?;
    let shape = at.field(0x1a)?;
    let (dim, used) = short_varint(shape)?;
    (used == shape.len() && at.pos == tensor.len() && values.len() % 4 == 0).then_some(Canonical {
        values,
        keys,
        dim,
        label,
    })
}

/// Length-delimited fields read one after another; every method returns `None` where the bytes
/// are not what it expects.
struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// The contents of the length-delimited field `tag` that comes next.
    #[inline(always)]
    fn field(&mut self, tag: u8) -> Option<&'a [u8]> {
        if *self.bytes.get(self.pos)? != tag {
            return None;
        }
        let rest = self.bytes.get(self.pos + 1..)?;
        let (len, used) = short_varint(rest)?;
        let contents = rest.get(used..)?.get(..usize::try_from(len).ok()?)?;
        self.pos += 1 + used + contents.len();
        Some(contents)
    }

    /// As [`Fields::field`], or empty contents when the next field is not `tag` (an omitted one).
    #[inline(always)]
    fn optional_field(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.bytes.get(self.pos) {
            Some(&next) if next == tag => self.field(tag),
            _ => Some(&[]),
        }
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
