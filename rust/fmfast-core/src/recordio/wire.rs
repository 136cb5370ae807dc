//! The few pieces of the protobuf wire format that `aialgs.data.Record` needs.

/// Wire type of varint fields.
pub const VARINT: u8 = 0;
/// Wire type of 8-byte fields (double).
pub const FIXED64: u8 = 1;
/// Wire type of length-delimited fields (strings, messages, packed repeated).
pub const LEN: u8 = 2;
/// Wire type of 4-byte fields (float).
pub const FIXED32: u8 = 5;

/// The one-byte tag of a field numbered below 16.
#[inline]
pub const fn tag(field: u8, wire_type: u8) -> u8 {
    (field << 3) | wire_type
}

/// Bytes that `v` takes as a varint.
#[inline]
pub fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` as a varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of a length-delimited field holding `len` bytes, or 0 when `len` is 0 (omitted).
#[inline]
pub fn len_field_size(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + varint_len(len as u64) + len
    }
}

/// Appends the tag and length of a length-delimited field.
#[inline]
pub fn put_len_header(out: &mut Vec<u8>, field: u8, len: usize) {
    out.push(tag(field, LEN));
    put_varint(out, len as u64);
}

/// A cursor over protobuf bytes that reports malformed input as a message (the caller adds where).
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Starts reading `bytes` from the beginning.
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Whether everything has been read.
    #[inline]
    pub fn is_done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Reads a varint.
    #[inline]
    pub fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// Reads a field key, returning (field number, wire type).
    #[inline]
    pub fn key(&mut self) -> Result<(u64, u8), String> {
        let key = self.varint()?;
        Ok((key >> 3, (key & 7) as u8))
    }

    /// Reads `n` raw bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            format!(
                "field of {n} bytes runs past the end of its message ({} left)",
                self.bytes.len() - self.pos
            )
        })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads the payload of a length-delimited field.
    #[inline]
    pub fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| format!("length {n} is too large"))?;
        self.take(n)
    }

    /// Skips the value of a field of `wire_type` that the schema does not use.
    pub fn skip(&mut self, wire_type: u8) -> Result<(), String> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            other => Err(format!("unsupported wire type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_with_their_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut cursor = Cursor::new(&out);
            assert_eq!(cursor.varint().unwrap(), v);
            assert!(cursor.is_done());
        }
    }

    #[test]
    fn malformed_varints_are_errors() {
        assert!(Cursor::new(&[0x80]).varint().is_err());
        assert!(Cursor::new(&[0xff; 11]).varint().is_err());
        assert!(Cursor::new(&[0x05, 1]).len_delimited().is_err());
        assert!(Cursor::new(&[0]).skip(3).is_err());
    }
}
