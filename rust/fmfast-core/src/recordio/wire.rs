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
    // 1 byte per started group of 7 bits (0 takes one byte): ceil(bits / 7), computed without a
    // division as (9 * bits + 64) / 64, which agrees with it for every bits in 1..=64.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    (9 * bits + 64) >> 6
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

/// Writes into a buffer whose exact size was computed beforehand (so that no write reallocates or
/// checks capacity byte by byte); writing past its end is a bug in that computation.
pub struct Put<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Put<'a> {
    /// Starts writing at the beginning of `buf`.
    #[inline(always)]
    pub fn new(buf: &'a mut [u8]) -> Self {
        Put { buf, pos: 0 }
    }

    /// Bytes written so far.
    #[inline(always)]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Writes one byte.
    #[inline(always)]
    pub fn byte(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    /// Writes `bytes`.
    #[inline(always)]
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.take(bytes.len()).copy_from_slice(bytes);
    }

    /// The next `n` bytes, to be filled by the caller.
    #[inline(always)]
    pub fn take(&mut self, n: usize) -> &mut [u8] {
        let start = self.pos;
        self.pos += n;
        &mut self.buf[start..start + n]
    }

    /// Writes `v` as a varint.
    #[inline(always)]
    pub fn varint(&mut self, mut v: u64) {
        // Column keys and lengths mostly take 1 to 3 bytes: those are written in one go.
        if v < 1 << 7 {
            return self.byte(v as u8);
        }
        if v < 1 << 14 {
            return self.bytes(&[(v as u8) | 0x80, (v >> 7) as u8]);
        }
        if v < 1 << 21 {
            return self.bytes(&[(v as u8) | 0x80, ((v >> 7) as u8) | 0x80, (v >> 14) as u8]);
        }
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// Writes the tag and length of a length-delimited field.
    #[inline(always)]
    pub fn len_header(&mut self, field: u8, len: usize) {
        self.byte(tag(field, LEN));
        self.varint(len as u64);
    }

    /// Fills the rest of the buffer with zeros.
    #[inline(always)]
    pub fn zero_rest(&mut self) {
        // Usually the 0 to 3 bytes of a record's padding: not worth a call to memset.
        for byte in &mut self.buf[self.pos..] {
            *byte = 0;
        }
        self.pos = self.buf.len();
    }
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
    #[inline(always)]
    pub fn is_done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Reads a varint.
    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64, String> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let mut value = 0u64;
        for (i, &byte) in rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        self.pos += rest.len().min(10);
        Err(bad_varint(rest.len() < 10))
    }

    /// Bytes read so far.
    #[inline(always)]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Consumes the next byte if it is `byte`.
    #[inline(always)]
    pub fn eat(&mut self, byte: u8) -> bool {
        let next = self.bytes.get(self.pos) == Some(&byte);
        self.pos += usize::from(next);
        next
    }

    /// Reads a field key, returning (field number, wire type).
    #[inline(always)]
    pub fn key(&mut self) -> Result<(u64, u8), String> {
        let key = self.varint()?;
        Ok((key >> 3, (key & 7) as u8))
    }

    /// Reads `n` raw bytes.
    #[inline(always)]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| past_end(n, self.bytes.len() - self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads the payload of a length-delimited field.
    #[inline(always)]
    pub fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| too_large(n))?;
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

#[cold]
#[inline(never)]
fn past_end(n: usize, left: usize) -> String {
    format!("field of {n} bytes runs past the end of its message ({left} left)")
}

#[cold]
#[inline(never)]
fn too_large(n: u64) -> String {
    format!("length {n} is too large")
}

#[cold]
#[inline(never)]
fn bad_varint(truncated: bool) -> String {
    if truncated {
        "truncated varint".into()
    } else {
        "varint longer than 10 bytes".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_with_their_lengths() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut buf = vec![0; out.len()];
            Put::new(&mut buf).varint(v);
            assert_eq!(buf, out, "{v}");
            let mut cursor = Cursor::new(&out);
            assert_eq!(cursor.varint().unwrap(), v);
            assert!(cursor.is_done());
        }
    }

    #[test]
    fn varint_len_is_one_byte_per_started_group_of_seven_bits() {
        for bits in 1..=64u32 {
            for v in [1u64 << (bits - 1), u64::MAX >> (64 - bits)] {
                assert_eq!(varint_len(v), bits.div_ceil(7) as usize, "{v}");
            }
        }
        assert_eq!(varint_len(0), 1);
    }

    #[test]
    fn put_writes_what_the_vec_helpers_append() {
        let mut expected = Vec::new();
        put_len_header(&mut expected, 3, 300);
        put_varint(&mut expected, u64::MAX);
        expected.extend_from_slice(b"ab\0\0");
        let mut buf = [0xffu8; 17];
        let mut put = Put::new(&mut buf);
        put.len_header(3, 300);
        put.varint(u64::MAX);
        put.bytes(b"ab");
        put.zero_rest();
        assert_eq!(put.pos(), 17);
        assert_eq!(&buf[..], &expected[..]);
    }

    #[test]
    fn malformed_varints_are_errors() {
        assert!(Cursor::new(&[0x80]).varint().is_err());
        assert!(Cursor::new(&[0xff; 11]).varint().is_err());
        assert!(Cursor::new(&[0x05, 1]).len_delimited().is_err());
        assert!(Cursor::new(&[0]).skip(3).is_err());
    }
}
