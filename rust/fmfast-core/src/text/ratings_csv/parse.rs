//! Parsing: pieces of lines into ratings ([`PieceRatings`]), fields checked and ids coded, in
//! parallel, one piece per task.

use std::io::Read;

use super::dialect::{detect, records, Dialect};
use super::options::{RatingsOptions, Unknown};
use super::vocab::{canonical_int, FirstSeen, IdCodes, IdMap, Key};
use crate::error::Result;
use crate::parallel::Monitor;
use crate::text::lines::{for_each_block, parse_error, parse_pieces, shown, Piece};

/// A field as text, or an error naming the line.
#[inline]
pub(super) fn text(field: &[u8], line: u64) -> Result<&str> {
    std::str::from_utf8(field.trim_ascii()).map_err(|e| {
        parse_error(
            line,
            format!("not UTF-8 text (invalid byte {} of a field)", e.valid_up_to() + 1),
        )
    })
}

/// An id of a piece's record in eight bytes, half an enum's: a plain integer as its value (below
/// 10^18 in magnitude, see [`canonical_int`]), or a code in the piece's texts stored below that.
/// The pieces of a block are written out and read back once, so their size is time.
#[derive(Clone, Copy, Debug)]
pub(super) struct PieceId(i64);

/// Plain integers lie strictly between `-PLAIN` and `PLAIN`.
const PLAIN: i64 = 1_000_000_000_000_000_000;

impl PieceId {
    #[inline]
    fn number(n: i64) -> Self {
        debug_assert!(n.abs() < PLAIN);
        PieceId(n)
    }

    #[inline]
    fn text(code: u32) -> Self {
        PieceId(i64::MIN + i64::from(code))
    }

    /// The id as a plain integer, or (`Err`) as a code in the piece's texts.
    #[inline]
    fn get(self) -> std::result::Result<i64, usize> {
        match self.0 {
            n if n > -PLAIN => Ok(n),
            code => Err((code - i64::MIN) as usize),
        }
    }
}

/// The ratings of one piece. Parsing runs on many threads, so it leaves coding the ids to the
/// one thread that merges pieces in order; it only gathers the text ids, each once.
#[derive(Debug, Default)]
pub(super) struct PieceRatings {
    first_line: u64,
    /// Each record's line, counted from `first_line`.
    lines: Vec<u32>,
    pub(super) users: Vec<PieceId>,
    items: Vec<PieceId>,
    text_codes: IdMap<Box<str>, u32>,
    texts: Vec<Box<str>>,
    pub(super) ratings: Vec<f32>,
    pub(super) timestamps: Vec<i64>,
    /// Bytes parsed.
    pub(super) bytes: usize,
}

impl PieceRatings {
    /// The id in `field` (trimmed), the `what` of the record on `line`. A plain integer is taken
    /// from the bytes, before (and without) checking that they are UTF-8 text.
    #[inline(always)]
    fn id(&mut self, field: &[u8], what: &str, line: u64) -> Result<PieceId> {
        match canonical_int(field) {
            Some(n) => Ok(PieceId::number(n)),
            None => self.text_id(field, what, line),
        }
    }

    /// [`Self::id`] of any other id: its code among the piece's texts. Kept out of line, so that
    /// the integer path stays short.
    #[inline(never)]
    fn text_id(&mut self, field: &[u8], what: &str, line: u64) -> Result<PieceId> {
        let id = text(field, line)?;
        if id.is_empty() {
            return Err(parse_error(line, format!("empty {what} id")));
        }
        Ok(PieceId::text(match self.text_codes.get(id) {
            Some(&code) => code,
            None => {
                let code = self.texts.len() as u32;
                self.text_codes.insert(id.into(), code);
                self.texts.push(id.into());
                code
            }
        }))
    }

    /// [`Self::code_ids`] of the users and of the items, on two threads (they are independent);
    /// a user's error first.
    pub(super) fn code_users_and_items(
        &self,
        (user_codes, user_code_of): (&mut Vec<i64>, impl FnMut(Key<'_>, u64) -> Result<i64> + Send),
        (item_codes, item_code_of): (&mut Vec<i64>, impl FnMut(Key<'_>, u64) -> Result<i64> + Send),
    ) -> Result<()> {
        let (users, items) = rayon::join(
            || self.code_ids(&self.users, user_codes, user_code_of),
            || self.code_ids(&self.items, item_codes, item_code_of),
        );
        users.and(items)
    }

    /// The code of each of `ids` (the piece's users or items) that `code_of(key, line)` gives,
    /// appended to `out`; each distinct text is looked up once.
    fn code_ids(
        &self,
        ids: &[PieceId],
        out: &mut Vec<i64>,
        mut code_of: impl FnMut(Key<'_>, u64) -> Result<i64>,
    ) -> Result<()> {
        let mut text_codes: Vec<Option<i64>> = vec![None; self.texts.len()];
        out.reserve(ids.len());
        for (&id, &line) in ids.iter().zip(&self.lines) {
            let line = self.first_line + u64::from(line);
            let code = match id.get() {
                Ok(n) => code_of(Key::Number(n), line)?,
                Err(t) => match text_codes[t] {
                    Some(code) => code,
                    None => *text_codes[t].insert(code_of(Key::Text(&self.texts[t]), line)?),
                },
            };
            out.push(code);
        }
        Ok(())
    }
}

/// Parses the records of a piece (the header skipped).
fn parse_piece(piece: &Piece<'_>, dialect: &Dialect, options: &RatingsOptions<'_>) -> Result<PieceRatings> {
    let layout = dialect.layout;
    let timestamp = layout.timestamp.filter(|_| options.timestamps);
    let mut out = PieceRatings {
        first_line: piece.first_line,
        bytes: piece.bytes.len(),
        ..PieceRatings::default()
    };
    records(piece.bytes, dialect.split, piece.first_line, |line, fields| {
        if Some(line) == dialect.header {
            return Ok(());
        }
        if fields.len() != layout.n_fields {
            return Err(parse_error(
                line,
                format!("expected {} fields, found {}", layout.n_fields, fields.len()),
            ));
        }
        let user = out.id(fields[layout.user], "user", line)?;
        let item = out.id(fields[layout.item], "item", line)?;
        out.users.push(user);
        out.items.push(item);
        // A piece is far shorter than 2^32 lines.
        out.lines.push((line - piece.first_line) as u32);
        if let Some(at) = layout.rating {
            out.ratings.push(rating(fields[at], line)?);
        }
        if let Some(at) = timestamp {
            out.timestamps.push(time(fields[at], line)?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Codes by a given vocabulary: a known id's code, -1 for an unknown one when `unknown` skips
/// it, else an error naming it and its line.
pub(super) fn known<'a>(
    codes: &'a IdCodes,
    what: &'a str,
    unknown: Unknown,
) -> impl Fn(Key<'_>, u64) -> Result<i64> + Send + 'a {
    move |key, line| match (codes.get(key), unknown) {
        (Some(code), _) => Ok(i64::from(code)),
        (None, Unknown::Skip) => Ok(-1),
        (None, Unknown::Refuse) => {
            let id = match key {
                Key::Number(n) => n.to_string(),
                Key::Text(text) => text.to_owned(),
            };
            Err(parse_error(
                line,
                format!("{what} id {} is not in the vocabulary", shown(&id)),
            ))
        }
    }
}

/// Codes by first appearance in `seen`.
pub(super) fn first_seen(seen: &mut FirstSeen) -> impl FnMut(Key<'_>, u64) -> Result<i64> + Send + '_ {
    #[inline(always)]
    move |key, line| seen.code(key, line).map(i64::from)
}

/// A rating: a finite number, as `f32`.
#[inline]
pub(super) fn rating(field: &[u8], line: u64) -> Result<f32> {
    // Whole ratings (1 to 5, say) skip the text check and the float parser; below 2^24 in
    // magnitude an integer is exact in f32, as the parser would give it.
    if let Some(n) = canonical_int(field).filter(|n| n.unsigned_abs() < 1 << 24) {
        return Ok(n as f32);
    }
    if let Some(value) = short_decimal(field) {
        return Ok(value);
    }
    let token = text(field, line)?;
    match token.parse::<f32>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(parse_error(line, format!("rating {} is not finite", shown(token)))),
        Err(_) => Err(parse_error(line, format!("rating {} is not a number", shown(token)))),
    }
}

/// Powers of ten that `f32` holds exactly.
const POWERS_OF_TEN: [f32; 6] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5];

/// The value of a short decimal such as `4.5` or `-0.25` (digits, a point, digits; at most six
/// digits in all), as `str::parse::<f32>` gives it, without the text check and the parser.
///
/// The digits without the point, `m` (below 10^6), and `10^k` for the `k` digits after it are
/// exact in `f32`, and IEEE division rounds correctly, so `m / 10^k` is the nearest `f32` to the
/// decimal: the parser's answer (the fast path of Clinger's algorithm, which the parser also takes).
#[inline]
fn short_decimal(field: &[u8]) -> Option<f32> {
    let (negative, digits) = match field {
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    let point = digits.iter().position(|&b| b == b'.')?;
    if point == 0 || point + 1 == digits.len() || digits.len() > 7 {
        return None;
    }
    let mut mantissa = 0u32;
    for (i, &b) in digits.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if i != point {
            if digit > 9 {
                return None;
            }
            mantissa = mantissa * 10 + u32::from(digit);
        }
    }
    let value = mantissa as f32 / POWERS_OF_TEN[digits.len() - point - 1];
    Some(if negative { -value } else { value })
}

/// A timestamp: an integer, also written as an integral float (RecBole's `timestamp:float`).
#[inline]
pub(super) fn time(field: &[u8], line: u64) -> Result<i64> {
    // The usual case, Unix seconds, without the text check.
    if let Some(n) = canonical_int(field) {
        return Ok(n);
    }
    let token = text(field, line)?;
    if let Ok(value) = token.parse::<i64>() {
        return Ok(value);
    }
    match token.parse::<f64>() {
        Ok(value) if value.fract() == 0.0 && value.abs() < 9.2e18 => Ok(value as i64),
        Ok(_) => Err(parse_error(
            line,
            format!("timestamp {} is not an integer", shown(token)),
        )),
        Err(_) => Err(parse_error(line, format!("timestamp {} is not a number", shown(token)))),
    }
}

/// Calls `visit` with the ratings of every piece of the file `reader` holds, in order, once the
/// first non-blank line fixed the dialect; returns the dialect (`None` for a file without
/// records) and the bytes read. The pieces of a block are visited while the next block's are
/// parsed, so that the visits (on one thread) overlap the parsing (on the others).
pub(super) fn for_each_piece<R: Read>(
    reader: R,
    options: &RatingsOptions<'_>,
    block_bytes: usize,
    done_before: u64,
    known: Option<Dialect>,
    monitor: &dyn Monitor,
    mut visit: impl FnMut(PieceRatings) -> Result<()> + Send,
) -> Result<(Option<Dialect>, u64)> {
    let mut dialect = known;
    let mut parsed: Vec<PieceRatings> = Vec::new();
    let read = for_each_block(reader, block_bytes, done_before, monitor, |pieces| {
        let dialect = match &mut dialect {
            Some(dialect) => &*dialect,
            slot => match first_line(pieces) {
                Some((line, text)) => &*slot.insert(detect(line, text, options)?),
                None => return Ok(()),
            },
        };
        let previous = std::mem::take(&mut parsed);
        let (visited, current) = rayon::join(
            || previous.into_iter().try_for_each(&mut visit),
            || parse_pieces(pieces, |p| parse_piece(p, dialect, options)),
        );
        visited?;
        parsed = current?;
        Ok(())
    })?;
    parsed.into_iter().try_for_each(visit)?;
    Ok((dialect, read))
}

/// The first non-blank line of a block, if any.
pub(super) fn first_line<'a>(pieces: &[Piece<'a>]) -> Option<(u64, &'a [u8])> {
    pieces
        .iter()
        .flat_map(|p| p.lines())
        .find(|(_, line)| !line.trim_ascii().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_ratings_and_times_read_as_the_parsers_read_them() {
        for field in [
            "4", "0", "-3", "07", "+5", "-0", "16777215", "16777217", "3.5", "1e1", " 2 ",
        ] {
            let parsed: f32 = field.trim().parse().unwrap();
            let got = rating(field.as_bytes().trim_ascii(), 1).unwrap();
            assert_eq!(got.to_bits(), parsed.to_bits(), "rating {field:?}");
        }
        for field in ["1180437385", "0", "-12", "07", "+5", "999999999999999999"] {
            assert_eq!(
                time(field.as_bytes(), 1).unwrap(),
                field.parse::<i64>().unwrap(),
                "time {field:?}"
            );
        }
        assert_eq!(time(b"1.5e9", 1).unwrap(), 1_500_000_000);
        assert!(rating(b"nan", 1).is_err() && time(b"1.5", 1).is_err());
    }

    #[test]
    fn short_decimals_read_as_the_parser_reads_them() {
        // Every field the fast path takes: two to six digits, a point between two of them, a sign.
        let mut field = Vec::with_capacity(8);
        for n in 2..=6u32 {
            for digits in 0..10u32.pow(n) {
                let digits = format!("{digits:0width$}", width = n as usize);
                for point in 1..n as usize {
                    for sign in [&b""[..], b"-"] {
                        field.clear();
                        field.extend_from_slice(sign);
                        field.extend_from_slice(&digits.as_bytes()[..point]);
                        field.push(b'.');
                        field.extend_from_slice(&digits.as_bytes()[point..]);
                        let text = std::str::from_utf8(&field).unwrap();
                        let want = text.parse::<f32>().unwrap();
                        assert_eq!(short_decimal(&field).map(f32::to_bits), Some(want.to_bits()), "{text}");
                    }
                }
            }
        }
        for other in [
            "1234.567", "1234567", ".5", "5.", "-.5", "1e1", "4.5.", "4..5", "--1.5", "+1.5", "1.5 ", "", "-", "1,5",
            "a.5", "1.x",
        ] {
            assert_eq!(short_decimal(other.as_bytes()), None, "{other}");
        }
    }
}
