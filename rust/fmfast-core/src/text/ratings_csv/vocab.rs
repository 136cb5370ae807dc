//! Ids and their vocabularies: ids coded as they are first seen (plain integers through a table
//! indexed by value, other ids by hash), ordered into a [`Vocabulary`] at the end, or looked up
//! in a given one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::text::lines::{parse_error, shown};

/// Hash maps of ids, hashed with [`IdHasher`].
pub(super) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A fast multiplicative hasher for short ids (FxHash-like, with a murmur3 finaliser so that
/// every bit of the output depends on the input). Ids come from the user's own file, so
/// SipHash's resistance to crafted collisions buys nothing here, while its cost showed in profiles.
#[derive(Clone, Copy, Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The value of an id written as a plain integer (`-12`, `0`, `345`; not `+3`, `07` or `-0`),
/// which no other such id shares, so it can be kept and looked up as a number.
#[inline]
pub(super) fn canonical_int(id: &[u8]) -> Option<i64> {
    let (negative, digits) = match id {
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        _ if digits.len() > 18 => return None,
        _ => {}
    }
    // One pass, checking and adding two digits at a time (half the loop's overhead); at most 18
    // digits: below 10^18, so no overflow.
    let (mut value, mut rest) = (0i64, digits);
    while let [a, b, tail @ ..] = rest {
        let (a, b) = (a.wrapping_sub(b'0'), b.wrapping_sub(b'0'));
        if a > 9 || b > 9 {
            return None;
        }
        value = value * 100 + i64::from(a * 10 + b);
        rest = tail;
    }
    if let [last] = rest {
        let digit = last.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + i64::from(digit);
    }
    Some(if negative { -value } else { value })
}

/// An id to look up: a plain integer (see [`canonical_int`]) as its value, which is cheaper to
/// hash and compare than text and has no pointer to follow, any other id as its text.
#[derive(Clone, Copy, Debug)]
pub(super) enum Key<'a> {
    Number(i64),
    Text(&'a str),
}

impl<'a> Key<'a> {
    #[inline]
    fn of(id: &'a str) -> Self {
        canonical_int(id.as_bytes()).map_or(Key::Text(id), Key::Number)
    }
}

/// An id kept: a [`Key`] that owns its text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Id {
    Number(i64),
    Text(Box<str>),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::Number(n) => n.to_string(),
            Id::Text(text) => text.into(),
        }
    }
}

/// Plain integers in `0..DENSE_IDS` are coded through a table indexed by their value, the way
/// MovieLens-like ids (dense, up to a few hundred thousand) are looked up fastest; the table
/// grows to the largest such id seen, so it never exceeds `4 * DENSE_IDS` bytes.
pub(super) const DENSE_IDS: i64 = 1 << 22;

/// A code (below `u32::MAX`) for each id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct IdCodes {
    /// `dense[n]` codes the plain integer `n`; `u32::MAX` when `n` has no code.
    dense: Vec<u32>,
    /// The other plain integers.
    numbers: IdMap<i64, u32>,
    texts: IdMap<Box<str>, u32>,
}

impl IdCodes {
    #[inline(always)]
    pub(super) fn get(&self, key: Key<'_>) -> Option<u32> {
        match key {
            Key::Number(n) if (0..DENSE_IDS).contains(&n) => {
                self.dense.get(n as usize).copied().filter(|&code| code != u32::MAX)
            }
            Key::Number(n) => self.numbers.get(&n).copied(),
            Key::Text(text) => self.texts.get(text).copied(),
        }
    }

    /// Gives `key` the code `code` (below `u32::MAX`); returns the code it had, if any.
    fn insert(&mut self, key: Key<'_>, code: u32) -> Option<u32> {
        match key {
            Key::Number(n) if (0..DENSE_IDS).contains(&n) => {
                let at = n as usize;
                if at >= self.dense.len() {
                    let len = (at + 1).max(2 * self.dense.len()).min(DENSE_IDS as usize);
                    self.dense.resize(len, u32::MAX);
                }
                Some(std::mem::replace(&mut self.dense[at], code)).filter(|&old| old != u32::MAX)
            }
            Key::Number(n) => self.numbers.insert(n, code),
            Key::Text(text) => self.texts.insert(text.into(), code),
        }
    }
}

/// The ids of the user columns and of the item columns, and the column of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    /// User ids: user code `j` is `users[j]`.
    pub users: Vec<String>,
    /// Item ids: item code `j` is `items[j]`.
    pub items: Vec<String>,
    pub(super) user_codes: IdCodes,
    pub(super) item_codes: IdCodes,
}

impl Vocabulary {
    /// The vocabulary of these ids; an id listed twice is an error.
    pub fn new(users: Vec<String>, items: Vec<String>) -> Result<Self> {
        Ok(Vocabulary {
            user_codes: codes(&users, "user")?,
            item_codes: codes(&items, "item")?,
            users,
            items,
        })
    }
}

/// Code `j` for `ids[j]`.
pub(super) fn codes(ids: &[String], what: &str) -> Result<IdCodes> {
    let mut codes = IdCodes::default();
    for (code, id) in ids.iter().enumerate() {
        let code = u32::try_from(code)
            .ok()
            .filter(|&c| c != u32::MAX)
            .ok_or_else(|| Error::invalid(format!("more than {} {what} ids", u32::MAX - 1)))?;
        if codes.insert(Key::of(id), code).is_some() {
            return Err(Error::invalid(format!("{what} id {} is listed twice", shown(id))));
        }
    }
    Ok(codes)
}

/// Distinct ids, coded in the order first seen.
#[derive(Debug, Default)]
pub(super) struct FirstSeen {
    codes: IdCodes,
    ids: Vec<Id>,
}

impl FirstSeen {
    /// The code of `key`, new if it was not seen before.
    #[inline(always)]
    pub(super) fn code(&mut self, key: Key<'_>, line: u64) -> Result<u32> {
        match self.codes.get(key) {
            Some(code) => Ok(code),
            None => self.new_code(key, line),
        }
    }

    /// [`Self::code`] of an id not seen before: kept out of line, as most ids were seen before.
    #[inline(never)]
    fn new_code(&mut self, key: Key<'_>, line: u64) -> Result<u32> {
        let code = u32::try_from(self.ids.len())
            .ok()
            .filter(|&c| c != u32::MAX)
            .ok_or_else(|| parse_error(line, format!("more than {} distinct ids", u32::MAX - 1)))?;
        self.codes.insert(key, code);
        self.ids.push(match key {
            Key::Number(n) => Id::Number(n),
            Key::Text(text) => Id::Text(text.into()),
        });
        Ok(code)
    }

    /// The ids in vocabulary order (see the module documentation), and the rank there of each
    /// first-seen code.
    pub(super) fn ordered(self) -> (IdList, Vec<i64>) {
        let numbers: Option<Vec<i64>> = self
            .ids
            .iter()
            .map(|id| match id {
                Id::Number(n) => Some(*n),
                Id::Text(_) => None,
            })
            .collect();
        let mut order: Vec<usize> = (0..self.ids.len()).collect();
        let ids = match numbers {
            // Plain integers are distinct as numbers: no ties to break by text.
            Some(numbers) => {
                order.sort_unstable_by_key(|&code| numbers[code]);
                IdList::Numbers(order.iter().map(|&code| numbers[code]).collect())
            }
            None => {
                let ids: Vec<String> = self.ids.into_iter().map(Id::into_string).collect();
                let numbers: Option<Vec<i64>> = ids.iter().map(|id| id.parse::<i64>().ok()).collect();
                match numbers {
                    Some(numbers) => order.sort_unstable_by(|&a, &b| (numbers[a], &ids[a]).cmp(&(numbers[b], &ids[b]))),
                    None => order.sort_unstable_by(|&a, &b| ids[a].cmp(&ids[b])),
                }
                let mut ids: Vec<Option<String>> = ids.into_iter().map(Some).collect();
                IdList::Texts(order.iter().map(|&code| ids[code].take().unwrap_or_default()).collect())
            }
        };
        let mut rank = vec![0i64; order.len()];
        for (position, &code) in order.iter().enumerate() {
            rank[code] = position as i64;
        }
        (ids, rank)
    }
}

/// The ids of a vocabulary, in its order: as numbers when every one is a plain integer (`7` or
/// `-12`, not `07` or `+7`), which spares making and handing over a string for each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdList {
    /// Every id is a plain integer.
    Numbers(Vec<i64>),
    /// The ids as written.
    Texts(Vec<String>),
}

impl IdList {
    /// The ids as written.
    pub fn into_strings(self) -> Vec<String> {
        match self {
            IdList::Numbers(numbers) => numbers.iter().map(i64::to_string).collect(),
            IdList::Texts(texts) => texts,
        }
    }
}

/// Replaces first-seen codes by vocabulary-order codes; returns the vocabulary.
pub(super) fn recode(seen: FirstSeen, codes: &mut [i64]) -> IdList {
    let (ids, rank) = seen.ordered();
    codes.par_iter_mut().for_each(|code| *code = rank[*code as usize]);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_plain_integers_in_a_table_and_other_ids_by_hash() {
        for (id, want) in [
            ("0", 0),
            ("-12", -12),
            ("345", 345),
            ("999999999999999999", 999_999_999_999_999_999),
        ] {
            assert_eq!(canonical_int(id.as_bytes()), Some(want), "{id}");
        }
        for id in ["", "-", "-0", "07", "+3", "1.5", "x1", "1 2", "1234567890123456789"] {
            assert_eq!(canonical_int(id.as_bytes()), None, "{id}");
            assert!(matches!(Key::of(id), Key::Text(_)), "{id}");
        }
        let big = (DENSE_IDS + 5).to_string();
        let ids = ["5", "-3", "05", "x", big.as_str(), "0"];
        let mut codes = IdCodes::default();
        for (code, id) in ids.iter().enumerate() {
            assert_eq!(codes.insert(Key::of(id), code as u32), None, "{id}");
        }
        assert_eq!((codes.dense.len(), codes.numbers.len(), codes.texts.len()), (6, 2, 2));
        for (code, id) in ids.iter().enumerate() {
            assert_eq!(codes.get(Key::of(id)), Some(code as u32), "{id}");
        }
        for absent in ["4", "6", "-4", "005", "y", "99999999"] {
            assert_eq!(codes.get(Key::of(absent)), None, "{absent}");
        }
        assert_eq!(codes.insert(Key::of("5"), 9), Some(0));
    }

    #[test]
    fn reads_plain_integers_as_the_parser_reads_them() {
        let plain = |id: &str| {
            id.parse::<i64>()
                .ok()
                .filter(|n| n.to_string() == id && n.unsigned_abs() < 10u64.pow(18))
        };
        let mut ids: Vec<String> = (0..100_000)
            .chain((1..=18).map(|k| 10u64.pow(k) - 1))
            .map(|n| n.to_string())
            .collect();
        ids.extend((1..=18).flat_map(|k| {
            [
                10u64.pow(k - 1),
                10u64.pow(k) - 7,
                123_456_789_012_345_678 % 10u64.pow(k),
            ]
            .map(|n| n.to_string())
        }));
        let negative: Vec<String> = ids.iter().map(|id| format!("-{id}")).collect();
        ids.extend(negative);
        // Every byte that is not a digit, at every place of every length.
        for len in 1..=19 {
            for at in 0..len {
                for byte in (0..=255u8).filter(|b| !b.is_ascii_digit()) {
                    let mut id = vec![b'7'; len];
                    id[at] = byte;
                    if let Ok(id) = String::from_utf8(id) {
                        ids.push(id);
                    }
                }
            }
        }
        for id in ["", "-", "00", "-0", "007", "1234567890123456789", "+5", " 5"] {
            ids.push(id.to_owned());
        }
        for id in &ids {
            assert_eq!(canonical_int(id.as_bytes()), plain(id), "{id:?}");
        }
    }
}
