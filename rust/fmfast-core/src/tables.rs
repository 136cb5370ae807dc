//! Feature encoding of Arrow record batches: ids looked up in fitted vocabularies, lists of ids,
//! numbers scaled or bucketed, the rows then assembled by [`crate::features::assemble`]; and the
//! learning of those vocabularies and ranges from a stream of batches.
//!
//! The semantics are those of the NumPy path of `fmfast.FeatureEncoder` (a dict of columns), so
//! that both give bit-identical matrices: a vocabulary is the sorted list of unique ids (integers
//! numerically, strings by code point, which is how Rust orders UTF-8 bytes and Python orders
//! `str`), numbers become `f64` as NumPy casts them, min-max scaling runs in `f64` and rounds once
//! to `f32`, and buckets are `np.digitize(value, edges)`. An Arrow null is an error naming the
//! block and the row (counted from the start of the stream) unless nulls are ignored: then it has
//! no entry, as `None` and NaN in a dict of columns.

use std::collections::{HashMap, HashSet};

use ahash::RandomState;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{AnyDictionaryArray, Array, ArrayAccessor, ArrowPrimitiveType, OffsetSizeTrait, RecordBatch};
use arrow_schema::{DataType, Schema};
use hashbrown::HashTable;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::features::{assemble, Block};
use crate::parallel::Monitor;

/// How many times its number of ids the range of an integer vocabulary may span for a direct
/// table (`Lookup::Dense`) rather than a hash table: memory stays within a few times the
/// vocabulary's.
const DENSE_SPAN: usize = 4;

/// Rows of a column encoded by one parallel task.
const PIECE_ROWS: usize = 1 << 16;

/// What to do with an id missing from the vocabulary, or with an Arrow null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// An [`Error::InvalidInput`] naming the block and the row.
    Error,
    /// No entry.
    Ignore,
}

/// A fitted vocabulary: sorted unique ids.
#[derive(Debug, Clone, PartialEq)]
pub enum Vocabulary {
    Ints(Vec<i64>),
    Strings(Strings),
}

/// Strings end to end in one buffer, each found by where it ends: a vocabulary of a million ids
/// in two allocations rather than a million (and a quarter of the memory).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Strings {
    bytes: String,
    ends: Vec<usize>,
}

impl Strings {
    /// Room for `n` strings of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Strings {
        Strings {
            bytes: String::with_capacity(bytes),
            ends: Vec::with_capacity(n),
        }
    }

    /// Appends `s`.
    pub fn push(&mut self, s: &str) {
        self.bytes.push_str(s);
        self.ends.push(self.bytes.len());
    }

    /// Appends the characters of `chars` as one more string.
    pub fn push_chars(&mut self, chars: impl IntoIterator<Item = char>) {
        self.bytes.extend(chars);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// String `i`, `None` past the end.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        // Every end is a char boundary: it was the buffer's length after a push.
        self.bytes.get(start..end)
    }

    /// The strings in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl<'a> FromIterator<&'a str> for Strings {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Strings {
        let mut strings = Strings::default();
        iter.into_iter().for_each(|s| strings.push(s));
        strings
    }
}

impl Vocabulary {
    fn len(&self) -> usize {
        match self {
            Vocabulary::Ints(ids) => ids.len(),
            Vocabulary::Strings(ids) => ids.len(),
        }
    }
}

/// How one block encodes its column.
#[derive(Debug, Clone)]
pub enum Encoding {
    /// One id per row: column `offset + code` of the id, weight 1.
    OneHot(Vocabulary),
    /// A list of ids per row, weight 1 (`1/sqrt(n)` when `normalize`).
    MultiHot { vocabulary: Vocabulary, normalize: bool },
    /// The value in one column, min-max scaled to `range` (`(low, high)`) when given.
    Numeric { range: Option<(f64, f64)> },
    /// One-hot of `np.digitize(value, edges)`: `edges.len() + 1` columns.
    Bucketed { edges: Vec<f64> },
}

/// The kind of id a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdKind {
    Int,
    Str,
    /// Only nulls (Arrow's `null` type): ids of no kind.
    Null,
}

impl IdKind {
    /// The kind of the ids of Arrow type `data_type`, if it can hold ids.
    fn of(data_type: &DataType) -> Option<IdKind> {
        match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Some(IdKind::Int),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(IdKind::Str),
            DataType::Null => Some(IdKind::Null),
            DataType::Dictionary(_, values) => IdKind::of(values),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IdKind::Int => "integers",
            IdKind::Str => "strings",
            IdKind::Null => "nulls",
        }
    }
}

/// Whether Arrow type `data_type` holds numbers (NumPy can cast it to `float64`).
fn is_number(data_type: &DataType) -> bool {
    data_type.is_integer() || data_type.is_floating() || *data_type == DataType::Null
}

/// The child type of a list type.
fn list_item(data_type: &DataType) -> Option<&DataType> {
    match data_type {
        DataType::List(item) | DataType::LargeList(item) => Some(item.data_type()),
        _ => None,
    }
}

/// Something wrong with one entry of a column, by its index in the array visited; the caller
/// turns it into an [`Error`] naming the block and the row.
#[derive(Debug)]
enum Bad {
    Null(usize),
    Unknown(usize, String),
    NotFinite(usize, f64),
    /// An unsigned id beyond the `int64` range of a vocabulary.
    OutOfRange(usize, String),
}

impl Bad {
    fn index(&self) -> usize {
        match *self {
            Bad::Null(i) | Bad::Unknown(i, _) | Bad::NotFinite(i, _) | Bad::OutOfRange(i, _) => i,
        }
    }

    /// The error for block `name` when entry `index()` lies in row `row`.
    fn error(&self, name: &str, row: u64) -> Error {
        let what = match self {
            Bad::Null(_) => "null (pass handle_null=\"ignore\" for no entry)".to_owned(),
            Bad::Unknown(_, id) => format!("unknown value {id}"),
            Bad::NotFinite(_, value) => format!("value {value} is not finite"),
            Bad::OutOfRange(_, id) => format!("id {id} is outside the int64 range"),
        };
        Error::invalid(format!("block {}, row {row}: {what}", repr(name)))
    }
}

/// `s` quoted as Python's `repr` quotes a string, so that messages read alike from both paths.
fn repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The outcome of visiting an entry (or a column) of ids or numbers.
type Visit = std::result::Result<(), Bad>;

/// The error for a column of type `data_type` that block `name` cannot read as `what`.
fn wrong_type(name: &str, data_type: &DataType, what: &str) -> Error {
    Error::invalid(format!(
        "block {}: an Arrow column of type {data_type} cannot be {what}",
        repr(name)
    ))
}

/// Receives the ids of a column, entry by entry.
trait IdVisitor {
    fn null(&mut self, i: usize) -> Visit;
    fn int(&mut self, i: usize, id: i64) -> Visit;
    /// An integer id that does not fit `i64` (a large `uint64`), shown as text.
    fn out_of_range(&mut self, i: usize, id: String) -> Visit;
    fn str(&mut self, i: usize, id: &str) -> Visit;
    /// A dictionary-encoded column, which each visitor reads in its own way.
    fn dictionary(&mut self, array: &dyn AnyDictionaryArray) -> Visit;
}

/// Visits the ids of `array`, whose type [`IdKind::of`] accepts.
fn visit_ids<V: IdVisitor>(array: &dyn Array, v: &mut V) -> Visit {
    match array.data_type() {
        DataType::Int8 => visit_ints(array.as_primitive::<Int8Type>(), v),
        DataType::Int16 => visit_ints(array.as_primitive::<Int16Type>(), v),
        DataType::Int32 => visit_ints(array.as_primitive::<Int32Type>(), v),
        DataType::Int64 => visit_ints(array.as_primitive::<Int64Type>(), v),
        DataType::UInt8 => visit_ints(array.as_primitive::<UInt8Type>(), v),
        DataType::UInt16 => visit_ints(array.as_primitive::<UInt16Type>(), v),
        DataType::UInt32 => visit_ints(array.as_primitive::<UInt32Type>(), v),
        DataType::UInt64 => visit_ints(array.as_primitive::<UInt64Type>(), v),
        DataType::Utf8 => visit_strs(array.as_string::<i32>(), v),
        DataType::LargeUtf8 => visit_strs(array.as_string::<i64>(), v),
        DataType::Utf8View => visit_strs(array.as_string_view(), v),
        DataType::Dictionary(..) => v.dictionary(array.as_any_dictionary()),
        // `DataType::Null`, and (not reached: callers check the type first) anything else.
        _ => (0..array.len()).try_for_each(|i| v.null(i)),
    }
}

fn visit_ints<T: ArrowPrimitiveType, V: IdVisitor>(array: &arrow_array::PrimitiveArray<T>, v: &mut V) -> Visit
where
    T::Native: TryInto<i64> + std::fmt::Display,
{
    let nulls = array.nulls().filter(|n| n.null_count() > 0);
    for (i, &id) in array.values().iter().enumerate() {
        if nulls.is_some_and(|n| n.is_null(i)) {
            v.null(i)?;
        } else {
            match id.try_into() {
                Ok(id) => v.int(i, id)?,
                Err(_) => v.out_of_range(i, id.to_string())?,
            }
        }
    }
    Ok(())
}

fn visit_strs<'a, A: ArrayAccessor<Item = &'a str>, V: IdVisitor>(array: A, v: &mut V) -> Visit {
    let nulls = array.nulls().filter(|n| n.null_count() > 0);
    for i in 0..array.len() {
        if nulls.is_some_and(|n| n.is_null(i)) {
            v.null(i)?;
        } else {
            v.str(i, array.value(i))?;
        }
    }
    Ok(())
}

/// Calls `f` with each entry of a numeric `array` as NumPy casts it to `float64` (`None`: null).
fn visit_numbers(array: &dyn Array, mut f: impl FnMut(usize, Option<f64>) -> Visit) -> Visit {
    fn each<T: ArrowPrimitiveType>(
        array: &arrow_array::PrimitiveArray<T>,
        cast: impl Fn(T::Native) -> f64,
        f: &mut impl FnMut(usize, Option<f64>) -> Visit,
    ) -> Visit {
        let nulls = array.nulls().filter(|n| n.null_count() > 0);
        for (i, &value) in array.values().iter().enumerate() {
            f(
                i,
                if nulls.is_some_and(|n| n.is_null(i)) {
                    None
                } else {
                    Some(cast(value))
                },
            )?;
        }
        Ok(())
    }
    match array.data_type() {
        DataType::Float16 => each(array.as_primitive::<Float16Type>(), |x| x.to_f64(), &mut f),
        DataType::Float32 => each(array.as_primitive::<Float32Type>(), f64::from, &mut f),
        DataType::Float64 => each(array.as_primitive::<Float64Type>(), |x| x, &mut f),
        DataType::Int8 => each(array.as_primitive::<Int8Type>(), f64::from, &mut f),
        DataType::Int16 => each(array.as_primitive::<Int16Type>(), f64::from, &mut f),
        DataType::Int32 => each(array.as_primitive::<Int32Type>(), f64::from, &mut f),
        // Rounded to nearest, as NumPy casts.
        DataType::Int64 => each(array.as_primitive::<Int64Type>(), |x| x as f64, &mut f),
        DataType::UInt8 => each(array.as_primitive::<UInt8Type>(), f64::from, &mut f),
        DataType::UInt16 => each(array.as_primitive::<UInt16Type>(), f64::from, &mut f),
        DataType::UInt32 => each(array.as_primitive::<UInt32Type>(), f64::from, &mut f),
        DataType::UInt64 => each(array.as_primitive::<UInt64Type>(), |x| x as f64, &mut f),
        // `DataType::Null`, and (not reached: callers check the type first) anything else.
        _ => (0..array.len()).try_for_each(|i| f(i, None)),
    }
}

/// The keys of a dictionary-encoded column as indices into its values (a null key's is
/// meaningless). Unlike arrow-rs' `normalized_keys`, fine with an empty dictionary.
fn dictionary_keys(keys: &dyn Array) -> Vec<usize> {
    fn each<T: ArrowPrimitiveType>(keys: &arrow_array::PrimitiveArray<T>) -> Vec<usize>
    where
        T::Native: TryInto<i64>,
    {
        // A negative key (only ever behind a null, once validated) becomes an index out of range.
        let index = |k: T::Native| k.try_into().ok().and_then(|k: i64| usize::try_from(k).ok());
        keys.values().iter().map(|&k| index(k).unwrap_or(usize::MAX)).collect()
    }
    match keys.data_type() {
        DataType::Int8 => each(keys.as_primitive::<Int8Type>()),
        DataType::Int16 => each(keys.as_primitive::<Int16Type>()),
        DataType::Int32 => each(keys.as_primitive::<Int32Type>()),
        DataType::Int64 => each(keys.as_primitive::<Int64Type>()),
        DataType::UInt8 => each(keys.as_primitive::<UInt8Type>()),
        DataType::UInt16 => each(keys.as_primitive::<UInt16Type>()),
        DataType::UInt32 => each(keys.as_primitive::<UInt32Type>()),
        DataType::UInt64 => each(keys.as_primitive::<UInt64Type>()),
        // Dictionary keys are integers: not reached.
        _ => vec![usize::MAX; keys.len()],
    }
}

/// The offsets and the ids of a list column (`List` or `LargeList`), the ids sliced to the rows.
fn list_parts(array: &dyn Array) -> (Vec<i64>, std::sync::Arc<dyn Array>) {
    fn parts<O: OffsetSizeTrait>(list: &arrow_array::GenericListArray<O>) -> (Vec<i64>, std::sync::Arc<dyn Array>) {
        // An empty column is not validated (see `validate`), so its one offset is not trusted.
        if list.is_empty() {
            return (vec![0], list.values().slice(0, 0));
        }
        let offsets: Vec<i64> = list.value_offsets().iter().map(|o| o.as_usize() as i64).collect();
        let (first, last) = (offsets[0], offsets[offsets.len() - 1]);
        let shifted = offsets.iter().map(|o| o - first).collect();
        (shifted, list.values().slice(first as usize, (last - first) as usize))
    }
    match array.data_type() {
        DataType::LargeList(_) => parts(array.as_list::<i64>()),
        _ => parts(array.as_list::<i32>()),
    }
}

/// The row of entry `i` of a list column's ids, given the list's offsets.
fn row_of_item(offsets: &[i64], i: usize) -> usize {
    offsets.partition_point(|&o| o <= i as i64).saturating_sub(1)
}

/// The code of each id of a vocabulary, built once per encoder.
#[derive(Debug)]
enum Lookup {
    /// No ids: every id is unknown, whatever its type.
    Empty,
    /// Integer ids that span a range of at most [`DENSE_SPAN`] times their number (item ids
    /// `0..n`, say): the code of id `i` is `codes[i - first]` (`-1`: absent), one load instead of
    /// a hash.
    Dense {
        first: i64,
        codes: Vec<i64>,
    },
    Ints(HashMap<i64, i64, RandomState>),
    Strings(StringCodes),
}

/// The codes of string ids: the ids in one buffer and a hash table of each id's head (its first
/// [`HEAD`] bytes), where the id lies and its code, about 45 bytes an id besides the strings (a
/// `HashMap<Box<str>, i64>` takes about 50, and an allocation per id, whose building cost more
/// time than the table's). A lookup reads the table's slot, and the id's bytes in the buffer only
/// for an id longer than its head: on a vocabulary larger than the cache, each read is a cache
/// miss (360 ns a row with an array of ends between slot and bytes, 225 without; a short id, read
/// from its slot alone, saves the second miss too: `docs/benchmarks.md`).
#[derive(Debug)]
struct StringCodes {
    bytes: String,
    slots: HashTable<Slot>,
    hasher: RandomState,
}

/// Bytes of an id kept in its slot: ids this short (user ids such as `u123456`, short codes) are
/// compared without reading the buffer.
const HEAD: usize = 8;

/// An id's head, its bytes (`start..end` of the buffer) and its code.
#[derive(Debug, Clone, Copy)]
struct Slot {
    head: [u8; HEAD],
    start: u32,
    end: u32,
    code: u32,
}

/// The first [`HEAD`] bytes of `id`, zero-padded.
fn head(id: &[u8]) -> [u8; HEAD] {
    let mut head = [0; HEAD];
    let n = id.len().min(HEAD);
    head[..n].copy_from_slice(&id[..n]);
    head
}

impl StringCodes {
    /// The codes of `ids`, which are unique.
    fn new(name: &str, ids: Strings) -> Result<StringCodes> {
        if u32::try_from(ids.bytes.len()).is_err() {
            return Err(Error::invalid(format!(
                "block {}: a vocabulary of more than 4 GiB of ids",
                repr(name)
            )));
        }
        let hasher = RandomState::new();
        let bytes = ids.bytes.as_bytes();
        let id = |slot: &Slot| bytes.get(slot.start as usize..slot.end as usize).unwrap_or_default();
        let mut slots = HashTable::with_capacity(ids.len());
        let mut start = 0;
        for (code, &end) in ids.ends.iter().enumerate() {
            // Fit u32: no more ids than bytes, and ends within the buffer (checked above); an
            // empty id is the one more id than bytes there can be, and codes of up to 2^32 ids
            // fit u32 as well.
            let slot = Slot {
                head: head(bytes.get(start..end).unwrap_or_default()),
                start: start as u32,
                end: end as u32,
                code: code as u32,
            };
            // The ids are unique: no probe for an equal one.
            slots.insert_unique(hasher.hash_one(id(&slot)), slot, |s| hasher.hash_one(id(s)));
            start = end;
        }
        Ok(StringCodes {
            bytes: ids.bytes,
            slots,
            hasher,
        })
    }

    /// The code of `id`, if it is one of the ids.
    fn get(&self, id: &str) -> Option<i64> {
        let (id, bytes) = (id.as_bytes(), self.bytes.as_bytes());
        let id_head = head(id);
        // Equal heads and lengths: the same id, unless it is longer than its head.
        let same = |slot: &Slot| {
            slot.head == id_head
                && (slot.end - slot.start) as usize == id.len()
                && (id.len() <= HEAD || bytes.get(slot.start as usize + HEAD..slot.end as usize) == id.get(HEAD..))
        };
        let found = self.slots.find(self.hasher.hash_one(id), same);
        found.map(|slot| i64::from(slot.code))
    }
}

impl Lookup {
    /// The lookup of `vocabulary`, which must be sorted and unique.
    fn new(name: &str, vocabulary: Vocabulary) -> Result<Lookup> {
        let sorted = match &vocabulary {
            Vocabulary::Ints(ids) => ids.windows(2).all(|w| w[0] < w[1]),
            Vocabulary::Strings(ids) => ids.iter().zip(ids.iter().skip(1)).all(|(a, b)| a < b),
        };
        if !sorted {
            return Err(Error::invalid(format!(
                "block {}: the vocabulary is not sorted and unique",
                repr(name)
            )));
        }
        Ok(match vocabulary {
            _ if vocabulary.len() == 0 => Lookup::Empty,
            Vocabulary::Ints(ids) => {
                let (first, last) = (ids[0], ids[ids.len() - 1]);
                // In i128: the span of two i64 may not fit one.
                let span = i128::from(last) - i128::from(first) + 1;
                if span <= (DENSE_SPAN * ids.len()) as i128 {
                    let mut codes = vec![-1; span as usize];
                    for (code, &id) in ids.iter().enumerate() {
                        // `first <= id` and `id - first < span`, which fits `usize`.
                        codes[(id - first) as usize] = code as i64;
                    }
                    Lookup::Dense { first, codes }
                } else {
                    let codes = ids.iter().enumerate().map(|(code, &id)| (id, code as i64));
                    Lookup::Ints(codes.collect())
                }
            }
            Vocabulary::Strings(ids) => Lookup::Strings(StringCodes::new(name, ids)?),
        })
    }

    /// Whether ids of `kind` can be looked up: those of the vocabulary's kind, and nulls.
    fn accepts(&self, kind: IdKind) -> bool {
        match self {
            Lookup::Empty => true,
            Lookup::Dense { .. } | Lookup::Ints(_) => kind != IdKind::Str,
            Lookup::Strings(_) => kind != IdKind::Int,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Lookup::Empty => "no ids",
            Lookup::Dense { .. } | Lookup::Ints(_) => "integers",
            Lookup::Strings(_) => "strings",
        }
    }
}

/// Looks ids up, appending their codes (`-1`: no entry) to `codes`.
struct Coder<'a> {
    lookup: &'a Lookup,
    unknown: Policy,
    null: Policy,
    codes: Vec<i64>,
}

impl Coder<'_> {
    fn found(&mut self, i: usize, code: Option<i64>, show: impl FnOnce() -> String) -> Visit {
        match (code, self.unknown) {
            (Some(code), _) => self.codes.push(code),
            (None, Policy::Ignore) => self.codes.push(-1),
            (None, Policy::Error) => return Err(Bad::Unknown(i, show())),
        }
        Ok(())
    }
}

impl IdVisitor for Coder<'_> {
    fn null(&mut self, i: usize) -> Visit {
        match self.null {
            Policy::Ignore => {
                self.codes.push(-1);
                Ok(())
            }
            Policy::Error => Err(Bad::Null(i)),
        }
    }

    fn int(&mut self, i: usize, id: i64) -> Visit {
        let code = match self.lookup {
            Lookup::Dense { first, codes } => {
                let index = id.checked_sub(*first).and_then(|i| usize::try_from(i).ok());
                index.and_then(|i| codes.get(i)).copied().filter(|&code| code >= 0)
            }
            Lookup::Ints(codes) => codes.get(&id).copied(),
            _ => None,
        };
        self.found(i, code, || id.to_string())
    }

    fn out_of_range(&mut self, i: usize, id: String) -> Visit {
        self.found(i, None, || id)
    }

    fn str(&mut self, i: usize, id: &str) -> Visit {
        let code = match self.lookup {
            Lookup::Strings(codes) => codes.get(id),
            _ => None,
        };
        self.found(i, code, || repr(id))
    }

    /// Each dictionary value is looked up once; the keys then pick their codes.
    fn dictionary(&mut self, array: &dyn AnyDictionaryArray) -> Visit {
        const NULL: i64 = -2;
        const UNKNOWN: i64 = -3;
        let values = array.values();
        let mut lookup = Coder {
            lookup: self.lookup,
            unknown: Policy::Ignore,
            null: Policy::Ignore,
            codes: Vec::with_capacity(values.len()),
        };
        visit_ids(values.as_ref(), &mut lookup)?;
        // Told apart again: a null value, an unknown value.
        let value_codes: Vec<i64> = (0..values.len())
            .map(|k| match lookup.codes[k] {
                -1 if values.is_null(k) => NULL,
                -1 => UNKNOWN,
                code => code,
            })
            .collect();
        let key_nulls = array.keys().nulls().filter(|n| n.null_count() > 0);
        for (i, k) in dictionary_keys(array.keys()).into_iter().enumerate() {
            let code = if key_nulls.is_some_and(|n| n.is_null(i)) {
                NULL
            } else {
                value_codes.get(k).copied().unwrap_or(NULL)
            };
            match code {
                NULL => self.null(i)?,
                UNKNOWN => {
                    let mut show = Shown(None);
                    // The value is known to be valid and of an id type: this only formats it.
                    let _ = visit_ids(values.slice(k, 1).as_ref(), &mut show);
                    self.found(i, None, || show.0.unwrap_or_default())?;
                }
                code => self.codes.push(code),
            }
        }
        Ok(())
    }
}

/// Formats an id the way the errors show it.
struct Shown(Option<String>);

impl IdVisitor for Shown {
    fn null(&mut self, _: usize) -> Visit {
        Ok(())
    }
    fn int(&mut self, _: usize, id: i64) -> Visit {
        self.0 = Some(id.to_string());
        Ok(())
    }
    fn out_of_range(&mut self, _: usize, id: String) -> Visit {
        self.0 = Some(id);
        Ok(())
    }
    fn str(&mut self, _: usize, id: &str) -> Visit {
        self.0 = Some(repr(id));
        Ok(())
    }
    fn dictionary(&mut self, _: &dyn AnyDictionaryArray) -> Visit {
        Ok(())
    }
}

/// A block of an encoder: its column, how it encodes it, and where its columns start.
#[derive(Debug)]
struct EncoderBlock {
    name: String,
    kind: Kind,
    offset: u64,
    size: u64,
}

#[derive(Debug)]
enum Kind {
    OneHot(Lookup),
    MultiHot { lookup: Lookup, normalize: bool },
    Numeric { range: Option<(f64, f64)> },
    Bucketed { edges: Vec<f64> },
}

/// One block's encoding of some rows, in the shape [`Block`] borrows.
enum Part {
    Codes(Vec<i64>),
    Lists(Vec<i64>, Vec<i64>),
    Values(Vec<f32>),
}

/// A fitted encoder of record batches, built once and used for any number of them.
#[derive(Debug)]
pub struct TableEncoder {
    blocks: Vec<EncoderBlock>,
    unknown: Policy,
    null: Policy,
}

/// An encoded stream of batches: CSR arrays, and the label of each row when asked for.
#[derive(Debug)]
pub struct Encoded {
    pub indptr: Vec<i64>,
    pub indices: Vec<i64>,
    pub data: Vec<f32>,
    pub labels: Option<Vec<f32>>,
}

impl TableEncoder {
    /// The encoder of `blocks` (column name, encoding), laid out side by side in that order.
    pub fn new(blocks: Vec<(String, Encoding)>, unknown: Policy, null: Policy) -> Result<TableEncoder> {
        let mut offset = 0u64;
        let mut built = Vec::with_capacity(blocks.len());
        for (name, encoding) in blocks {
            let (kind, size) = match encoding {
                Encoding::OneHot(vocabulary) => {
                    let size = vocabulary.len();
                    (Kind::OneHot(Lookup::new(&name, vocabulary)?), size)
                }
                Encoding::MultiHot { vocabulary, normalize } => {
                    let size = vocabulary.len();
                    let lookup = Lookup::new(&name, vocabulary)?;
                    (Kind::MultiHot { lookup, normalize }, size)
                }
                Encoding::Numeric { range } => (Kind::Numeric { range }, 1),
                Encoding::Bucketed { edges } => {
                    if edges.is_empty()
                        || edges.iter().any(|e| !e.is_finite())
                        || edges.windows(2).any(|w| w[0] >= w[1])
                    {
                        return Err(Error::invalid(format!(
                            "block {}: edges must be a non-empty, strictly increasing list of finite numbers",
                            repr(&name)
                        )));
                    }
                    let size = edges.len() + 1;
                    (Kind::Bucketed { edges }, size)
                }
            };
            let size = size as u64;
            built.push(EncoderBlock {
                name,
                kind,
                offset,
                size,
            });
            offset += size;
        }
        Ok(TableEncoder {
            blocks: built,
            unknown,
            null,
        })
    }

    /// The number of columns of the encoded matrix.
    pub fn n_features(&self) -> u64 {
        self.blocks.iter().map(|b| b.size).sum()
    }

    /// Checks that `schema` has a column of a type each block can read (and the label column,
    /// when given, numbers), before any batch is read.
    pub fn check_schema(&self, schema: &Schema, label: Option<&str>) -> Result<()> {
        for block in &self.blocks {
            let data_type = column_type(schema, &block.name)?;
            match &block.kind {
                Kind::OneHot(lookup) => check_ids(&block.name, data_type, lookup)?,
                Kind::MultiHot { lookup, .. } => match list_item(data_type) {
                    Some(item) => check_ids(&block.name, item, lookup)?,
                    None => return Err(wrong_type(&block.name, data_type, "lists of ids (a list column)")),
                },
                Kind::Numeric { .. } | Kind::Bucketed { .. } => {
                    if !is_number(data_type) {
                        return Err(wrong_type(&block.name, data_type, "numbers"));
                    }
                }
            }
        }
        if let Some(label) = label {
            let data_type = schema
                .field_with_name(label)
                .map_err(|_| Error::invalid(format!("label column {} missing from the input", repr(label))))?
                .data_type();
            if !is_number(data_type) {
                return Err(Error::invalid(format!(
                    "label column {}: an Arrow column of type {data_type} cannot be labels (numbers)",
                    repr(label)
                )));
            }
        }
        Ok(())
    }

    /// Encodes `batches` (whose schema [`TableEncoder::check_schema`] accepted) as one CSR matrix,
    /// with the `label` column as `f32` when given, on the current rayon pool.
    pub fn encode(&self, batches: &[RecordBatch], label: Option<&str>, monitor: &dyn Monitor) -> Result<Encoded> {
        for batch in batches {
            self.check_schema(batch.schema_ref(), label)?;
        }
        let names = self.blocks.iter().map(|b| b.name.as_str()).chain(label);
        validate(batches, &names.collect::<Vec<_>>())?;
        // Pieces of rows, each encoded by one task: (batch, first row in it, rows, row in the stream).
        let mut pieces = Vec::new();
        let mut n_rows = 0usize;
        for (b, batch) in batches.iter().enumerate() {
            for start in (0..batch.num_rows()).step_by(PIECE_ROWS) {
                let len = PIECE_ROWS.min(batch.num_rows() - start);
                pieces.push((b, start, len, (n_rows + start) as u64));
            }
            n_rows += batch.num_rows();
        }
        let mut parts = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            if monitor.stop_requested() {
                return Err(Error::Interrupted);
            }
            let encoded = pieces
                .par_iter()
                .map(|&(b, start, len, first_row)| {
                    let column = column(&batches[b], &block.name)?.slice(start, len);
                    self.encode_piece(block, column.as_ref(), first_row)
                })
                .collect::<Result<Vec<Part>>>()?;
            parts.push(concatenate(&block.kind, encoded, n_rows));
        }
        let blocks: Vec<Block> = self
            .blocks
            .iter()
            .zip(&parts)
            .map(|(block, part)| match (part, &block.kind) {
                (Part::Codes(codes), _) => Block::OneHot {
                    codes,
                    offset: block.offset,
                    size: block.size,
                },
                (Part::Lists(indptr, codes), kind) => Block::MultiHot {
                    indptr,
                    codes,
                    offset: block.offset,
                    size: block.size,
                    normalize: matches!(kind, Kind::MultiHot { normalize: true, .. }),
                },
                (Part::Values(values), _) => Block::Numeric {
                    values,
                    column: block.offset,
                },
            })
            .collect();
        let (indptr, indices, data) = assemble(&blocks, n_rows, monitor)?;
        let labels = label.map(|label| labels(batches, label, n_rows)).transpose()?;
        Ok(Encoded {
            indptr,
            indices,
            data,
            labels,
        })
    }

    /// Encodes one piece of `block`'s column whose first entry is row `first_row` of the stream.
    fn encode_piece(&self, block: &EncoderBlock, column: &dyn Array, first_row: u64) -> Result<Part> {
        // An entry's index is its row in the piece, except in a list's ids.
        let fail = |bad: Bad| bad.error(&block.name, first_row + bad.index() as u64);
        let coder = |lookup, capacity| Coder {
            lookup,
            unknown: self.unknown,
            null: self.null,
            codes: Vec::with_capacity(capacity),
        };
        match &block.kind {
            Kind::OneHot(lookup) => {
                let mut coder = coder(lookup, column.len());
                visit_ids(column, &mut coder).map_err(fail)?;
                Ok(Part::Codes(coder.codes))
            }
            Kind::MultiHot { lookup, .. } => {
                let (offsets, items) = list_parts(column);
                let mut coder = coder(lookup, items.len());
                visit_ids(items.as_ref(), &mut coder).map_err(|bad| {
                    let row = row_of_item(&offsets, bad.index());
                    bad.error(&block.name, first_row + row as u64)
                })?;
                // Null rows: an error, or no entries (whatever their offsets span).
                let nulls = column.logical_nulls().filter(|n| n.null_count() > 0);
                let Some(nulls) = nulls else {
                    return Ok(Part::Lists(offsets, coder.codes));
                };
                if self.null == Policy::Error {
                    let row = nulls.iter().position(|valid| !valid).unwrap_or(0);
                    return Err(Bad::Null(row).error(&block.name, first_row + row as u64));
                }
                let mut indptr = Vec::with_capacity(offsets.len());
                let mut codes = Vec::with_capacity(coder.codes.len());
                indptr.push(0);
                for (r, w) in offsets.windows(2).enumerate() {
                    if nulls.is_valid(r) {
                        codes.extend_from_slice(&coder.codes[w[0] as usize..w[1] as usize]);
                    }
                    indptr.push(codes.len() as i64);
                }
                Ok(Part::Lists(indptr, codes))
            }
            Kind::Numeric { range } => {
                let mut values = Vec::with_capacity(column.len());
                visit_numbers(column, |i, value| {
                    let value = self.number(i, value)?;
                    let scaled = match *range {
                        Some((low, high)) if high - low > 0.0 => (value - low) / (high - low),
                        Some((low, _)) => value - low,
                        None => value,
                    };
                    values.push(scaled as f32);
                    Ok(())
                })
                .map_err(fail)?;
                Ok(Part::Values(values))
            }
            Kind::Bucketed { edges } => {
                let mut codes = Vec::with_capacity(column.len());
                visit_numbers(column, |i, value| {
                    let value = self.number(i, value)?;
                    // `np.digitize(value, edges)`: how many edges are at most `value`.
                    let code = if value.is_nan() {
                        -1
                    } else {
                        edges.partition_point(|&e| e <= value) as i64
                    };
                    codes.push(code);
                    Ok(())
                })
                .map_err(fail)?;
                Ok(Part::Codes(codes))
            }
        }
    }

    /// A number's value: NaN for a null that is ignored, an error for a null otherwise or an
    /// infinity.
    fn number(&self, i: usize, value: Option<f64>) -> std::result::Result<f64, Bad> {
        match value {
            None if self.null == Policy::Ignore => Ok(f64::NAN),
            None => Err(Bad::Null(i)),
            Some(v) if v.is_infinite() => Err(Bad::NotFinite(i, v)),
            Some(v) => Ok(v),
        }
    }
}

/// The type of column `name` of `schema`.
fn column_type<'a>(schema: &'a Schema, name: &str) -> Result<&'a DataType> {
    schema
        .field_with_name(name)
        .map(|field| field.data_type())
        .map_err(|_| Error::invalid(format!("block {}: column missing from the input", repr(name))))
}

/// Column `name` of `batch`.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a std::sync::Arc<dyn Array>> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::invalid(format!("block {}: column missing from the input", repr(name))))
}

/// Checks that ids of Arrow type `data_type` can be looked up in `lookup`.
fn check_ids(name: &str, data_type: &DataType, lookup: &Lookup) -> Result<()> {
    match IdKind::of(data_type) {
        None => Err(wrong_type(name, data_type, "ids (integers or strings)")),
        Some(kind) if !lookup.accepts(kind) => Err(Error::invalid(format!(
            "block {}: an Arrow column of type {data_type} ({}) cannot be looked up in a vocabulary of {}",
            repr(name),
            kind.name(),
            lookup.kind()
        ))),
        Some(_) => Ok(()),
    }
}

/// Checks every buffer of the `names` columns of `batches` (offsets in range, strings UTF-8,
/// dictionary keys in range), which the C data interface hands over unchecked, in parallel.
/// Empty columns are not read, and not checked: arrow-rs imports an empty slice of a string
/// array with an empty data buffer, which its own check then rejects.
fn validate(batches: &[RecordBatch], names: &[&str]) -> Result<()> {
    let columns: Vec<(&str, &std::sync::Arc<dyn Array>)> = batches
        .iter()
        .flat_map(|batch| {
            names
                .iter()
                .filter_map(|&name| batch.column_by_name(name).map(|c| (name, c)))
        })
        .filter(|(_, column)| !column.is_empty())
        .collect();
    columns.par_iter().try_for_each(|(name, column)| {
        column
            .to_data()
            .validate_full()
            .map_err(|e| Error::invalid(format!("column {}: invalid Arrow data: {e}", repr(name))))
    })
}

/// The parts of a block of `kind`, concatenated in order.
fn concatenate(kind: &Kind, parts: Vec<Part>, n_rows: usize) -> Part {
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return match kind {
            Kind::MultiHot { .. } => Part::Lists(vec![0], Vec::new()),
            Kind::Numeric { .. } => Part::Values(Vec::new()),
            Kind::OneHot(_) | Kind::Bucketed { .. } => Part::Codes(Vec::new()),
        };
    };
    match first {
        Part::Codes(mut all) => {
            all.reserve(n_rows.saturating_sub(all.len()));
            parts.for_each(|p| {
                if let Part::Codes(codes) = p {
                    all.extend_from_slice(&codes);
                }
            });
            Part::Codes(all)
        }
        Part::Values(mut all) => {
            all.reserve(n_rows.saturating_sub(all.len()));
            parts.for_each(|p| {
                if let Part::Values(values) = p {
                    all.extend_from_slice(&values);
                }
            });
            Part::Values(all)
        }
        Part::Lists(mut indptr, mut codes) => {
            indptr.reserve((n_rows + 1).saturating_sub(indptr.len()));
            parts.for_each(|p| {
                if let Part::Lists(more_indptr, more_codes) = p {
                    let base = codes.len() as i64;
                    indptr.extend(more_indptr[1..].iter().map(|o| o + base));
                    codes.extend_from_slice(&more_codes);
                }
            });
            Part::Lists(indptr, codes)
        }
    }
}

/// The `label` column of `batches` as `f32`: a finite number in every row.
fn labels(batches: &[RecordBatch], label: &str, n_rows: usize) -> Result<Vec<f32>> {
    let mut labels = Vec::with_capacity(n_rows);
    let mut first_row = 0u64;
    for batch in batches {
        let column = column(batch, label)?;
        visit_numbers(column.as_ref(), |i, value| match value {
            None => Err(Bad::Null(i)),
            Some(v) if !v.is_finite() => Err(Bad::NotFinite(i, v)),
            Some(v) => {
                labels.push(v as f32);
                Ok(())
            }
        })
        .map_err(|bad| {
            let row = first_row + bad.index() as u64;
            Error::invalid(match bad {
                Bad::NotFinite(_, v) => format!("label column {}, row {row}: value {v} is not finite", repr(label)),
                _ => format!(
                    "label column {}, row {row}: null (every row needs a label)",
                    repr(label)
                ),
            })
        })?;
        first_row += batch.num_rows() as u64;
    }
    Ok(labels)
}

/// What a block learns from its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The vocabulary of a column of ids.
    Ids,
    /// The vocabulary of a column of lists of ids.
    Lists,
    /// The range (minimum, maximum) of the finite values of a column of numbers.
    Range,
    /// Nothing, from a column of numbers.
    Numbers,
}

/// What a block learned: a vocabulary, a range (`None` when no value was finite), or nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Learned {
    Vocabulary(Vocabulary),
    Range(Option<(f64, f64)>),
    Nothing,
}

/// The unique ids seen so far in a column.
#[derive(Debug)]
enum IdSet {
    /// None yet, of any kind.
    Empty,
    Ints(HashSet<i64, RandomState>),
    Strings(HashSet<Box<str>, RandomState>),
}

impl IdSet {
    fn into_vocabulary(self) -> Vocabulary {
        match self {
            IdSet::Empty => Vocabulary::Ints(Vec::new()),
            IdSet::Ints(ids) => {
                let mut ids: Vec<i64> = ids.into_iter().collect();
                ids.sort_unstable();
                Vocabulary::Ints(ids)
            }
            IdSet::Strings(ids) => {
                let mut ids: Vec<Box<str>> = ids.into_iter().collect();
                ids.sort_unstable();
                Vocabulary::Strings(ids.iter().map(|id| &**id).collect())
            }
        }
    }
}

/// Adds ids to an [`IdSet`]; a null is an error unless nulls are ignored.
struct Collector<'a> {
    ids: &'a mut IdSet,
    null: Policy,
}

impl IdVisitor for Collector<'_> {
    fn null(&mut self, i: usize) -> Visit {
        match self.null {
            Policy::Ignore => Ok(()),
            Policy::Error => Err(Bad::Null(i)),
        }
    }

    fn int(&mut self, _: usize, id: i64) -> Visit {
        if let IdSet::Empty = self.ids {
            *self.ids = IdSet::Ints(HashSet::default());
        }
        if let IdSet::Ints(ids) = self.ids {
            ids.insert(id);
        }
        Ok(())
    }

    fn out_of_range(&mut self, i: usize, id: String) -> Visit {
        Err(Bad::OutOfRange(i, id))
    }

    fn str(&mut self, _: usize, id: &str) -> Visit {
        if let IdSet::Empty = self.ids {
            *self.ids = IdSet::Strings(HashSet::default());
        }
        if let IdSet::Strings(ids) = self.ids {
            if !ids.contains(id) {
                ids.insert(id.into());
            }
        }
        Ok(())
    }

    /// Only the values some row refers to join the vocabulary.
    fn dictionary(&mut self, array: &dyn AnyDictionaryArray) -> Visit {
        let values = array.values();
        // The first row referring to each value, to name it in an error.
        let mut first_use = vec![usize::MAX; values.len()];
        let key_nulls = array.keys().nulls().filter(|n| n.null_count() > 0);
        for (i, k) in dictionary_keys(array.keys()).into_iter().enumerate() {
            if key_nulls.is_some_and(|n| n.is_null(i)) {
                self.null(i)?;
            } else if let Some(first) = first_use.get_mut(k) {
                *first = (*first).min(i);
            }
        }
        let mut used = Used {
            first_use: &first_use,
            inner: self,
        };
        visit_ids(values.as_ref(), &mut used)
    }
}

/// Visits only the dictionary values that rows refer to, as the first row referring to each.
struct Used<'a, 'b> {
    first_use: &'a [usize],
    inner: &'a mut Collector<'b>,
}

impl Used<'_, '_> {
    fn row(&self, i: usize) -> Option<usize> {
        self.first_use.get(i).copied().filter(|&r| r != usize::MAX)
    }
}

impl IdVisitor for Used<'_, '_> {
    fn null(&mut self, i: usize) -> Visit {
        self.row(i).map_or(Ok(()), |r| self.inner.null(r))
    }
    fn int(&mut self, i: usize, id: i64) -> Visit {
        self.row(i).map_or(Ok(()), |r| self.inner.int(r, id))
    }
    fn out_of_range(&mut self, i: usize, id: String) -> Visit {
        self.row(i).map_or(Ok(()), |r| self.inner.out_of_range(r, id))
    }
    fn str(&mut self, i: usize, id: &str) -> Visit {
        self.row(i).map_or(Ok(()), |r| self.inner.str(r, id))
    }
    /// A dictionary of dictionaries: not an id type ([`IdKind::of`] takes the values' type, so
    /// this is not reached).
    fn dictionary(&mut self, _: &dyn AnyDictionaryArray) -> Visit {
        Ok(())
    }
}

/// What one block has learned so far.
#[derive(Debug)]
enum State {
    Ids(IdSet),
    Lists(IdSet),
    Range(Option<(f64, f64)>),
    Numbers,
}

/// Learns vocabularies and ranges from a stream of record batches, one batch at a time: memory
/// grows with the vocabularies, not the rows.
#[derive(Debug)]
pub struct TableLearner {
    blocks: Vec<(String, State)>,
    null: Policy,
    /// Rows seen so far, to number rows from the start of the stream.
    rows: u64,
}

impl TableLearner {
    /// A learner for `blocks` (column name, what it learns).
    pub fn new(blocks: Vec<(String, Target)>, null: Policy) -> TableLearner {
        let blocks = blocks
            .into_iter()
            .map(|(name, target)| {
                let state = match target {
                    Target::Ids => State::Ids(IdSet::Empty),
                    Target::Lists => State::Lists(IdSet::Empty),
                    Target::Range => State::Range(None),
                    Target::Numbers => State::Numbers,
                };
                (name, state)
            })
            .collect();
        TableLearner { blocks, null, rows: 0 }
    }

    /// Checks that `schema` has a column of a type each block can learn from.
    pub fn check_schema(&self, schema: &Schema) -> Result<()> {
        for (name, state) in &self.blocks {
            let data_type = column_type(schema, name)?;
            // One stream has one schema, so the kind of the ids cannot change from batch to batch.
            let ids = |data_type: &DataType| match IdKind::of(data_type) {
                None => Err(wrong_type(name, data_type, "ids (integers or strings)")),
                Some(_) => Ok(()),
            };
            match state {
                State::Ids(_) => ids(data_type)?,
                State::Lists(_) => match list_item(data_type) {
                    Some(item) => ids(item)?,
                    None => return Err(wrong_type(name, data_type, "lists of ids (a list column)")),
                },
                State::Range(_) | State::Numbers => {
                    if !is_number(data_type) {
                        return Err(wrong_type(name, data_type, "numbers"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Learns from one more batch, the blocks in parallel on the current rayon pool; after an
    /// error the learner is left partly updated.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        self.check_schema(batch.schema_ref())?;
        let names: Vec<&str> = self.blocks.iter().map(|(name, _)| name.as_str()).collect();
        validate(std::slice::from_ref(batch), &names)?;
        let (null, first_row) = (self.null, self.rows);
        self.blocks.par_iter_mut().try_for_each(|(name, state)| {
            let column = column(batch, name)?;
            let at = |bad: &Bad, row: usize| bad.error(name, first_row + row as u64);
            match state {
                State::Ids(ids) => {
                    visit_ids(column.as_ref(), &mut Collector { ids, null }).map_err(|bad| at(&bad, bad.index()))
                }
                State::Lists(ids) => {
                    let (offsets, items) = list_parts(column.as_ref());
                    if let Some(nulls) = column
                        .logical_nulls()
                        .filter(|n| n.null_count() > 0 && null == Policy::Error)
                    {
                        let row = nulls.iter().position(|valid| !valid).unwrap_or(0);
                        return Err(at(&Bad::Null(row), row));
                    }
                    visit_ids(items.as_ref(), &mut Collector { ids, null })
                        .map_err(|bad| at(&bad, row_of_item(&offsets, bad.index())))
                }
                State::Range(range) => visit_numbers(column.as_ref(), |i, value| {
                    match value {
                        None if null == Policy::Error => return Err(Bad::Null(i)),
                        Some(v) if v.is_infinite() => return Err(Bad::NotFinite(i, v)),
                        Some(v) if !v.is_nan() => {
                            let (low, high) = range.get_or_insert((v, v));
                            *low = low.min(v);
                            *high = high.max(v);
                        }
                        _ => {}
                    }
                    Ok(())
                })
                .map_err(|bad| at(&bad, bad.index())),
                State::Numbers => Ok(()),
            }
        })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// What each block learned, in order.
    pub fn finish(self) -> Vec<Learned> {
        self.blocks
            .into_iter()
            .map(|(_, state)| match state {
                State::Ids(ids) | State::Lists(ids) => Learned::Vocabulary(ids.into_vocabulary()),
                State::Range(range) => Learned::Range(range),
                State::Numbers => Learned::Nothing,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::types::Int32Type;
    use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int64Array, ListArray, StringArray, UInt64Array};

    use super::*;
    use crate::parallel::Unmonitored;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn strings(ids: &[&str]) -> Vocabulary {
        Vocabulary::Strings(ids.iter().copied().collect())
    }

    fn learn(blocks: &[(&str, Target)], batches: &[RecordBatch], null: Policy) -> Result<Vec<Learned>> {
        let mut learner = TableLearner::new(blocks.iter().map(|(n, t)| (n.to_string(), *t)).collect(), null);
        for b in batches {
            learner.update(b)?;
        }
        Ok(learner.finish())
    }

    #[test]
    fn encodes_every_kind_of_block_across_batches() {
        let first = batch(vec![
            ("user", Arc::new(StringArray::from(vec!["b", "a"])) as ArrayRef),
            (
                "tags",
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                    Some(vec![Some(7), Some(5), Some(7)]),
                    Some(vec![]),
                ])),
            ),
            ("age", Arc::new(Float64Array::from(vec![20.0, f64::NAN]))),
            ("n", Arc::new(Int64Array::from(vec![1, 5]))),
        ]);
        let second = first.slice(1, 1);
        let encoder = TableEncoder::new(
            vec![
                ("user".into(), Encoding::OneHot(strings(&["a", "b"]))),
                (
                    "tags".into(),
                    Encoding::MultiHot {
                        vocabulary: Vocabulary::Ints(vec![5, 7]),
                        normalize: false,
                    },
                ),
                (
                    "age".into(),
                    Encoding::Numeric {
                        range: Some((10.0, 30.0)),
                    },
                ),
                ("n".into(), Encoding::Bucketed { edges: vec![1.0, 3.0] }),
            ],
            Policy::Error,
            Policy::Error,
        )
        .unwrap();
        assert_eq!(encoder.n_features(), 2 + 2 + 1 + 3);
        let out = encoder.encode(&[first, second], Some("n"), &Unmonitored).unwrap();
        assert_eq!(out.indptr, vec![0, 5, 7, 9]);
        assert_eq!(out.indices, vec![1, 2, 3, 4, 6, 0, 7, 0, 7]);
        assert_eq!(out.data, vec![1.0, 1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(out.labels, Some(vec![1.0, 5.0, 5.0]));
    }

    #[test]
    fn nulls_are_errors_with_the_row_of_the_stream_or_no_entry() {
        let clean = batch(vec![(
            "c",
            Arc::new(StringArray::from(vec!["a", "a", "a"])) as ArrayRef,
        )]);
        let nulls = batch(vec![(
            "c",
            Arc::new(StringArray::from(vec![Some("a"), None])) as ArrayRef,
        )]);
        let make = |null| {
            TableEncoder::new(
                vec![("c".into(), Encoding::OneHot(strings(&["a"])))],
                Policy::Error,
                null,
            )
            .unwrap()
        };
        let err = make(Policy::Error)
            .encode(&[clean.clone(), nulls.clone()], None, &Unmonitored)
            .unwrap_err();
        assert!(err.to_string().starts_with("block 'c', row 4: null"), "{err}");
        let out = make(Policy::Ignore)
            .encode(&[clean.clone(), nulls.clone()], None, &Unmonitored)
            .unwrap();
        assert_eq!(out.indptr, vec![0, 1, 2, 3, 4, 4]);
        let err = learn(&[("c", Target::Ids)], &[clean, nulls], Policy::Error).unwrap_err();
        assert!(err.to_string().starts_with("block 'c', row 4: null"), "{err}");
    }

    #[test]
    fn unknown_ids_and_list_rows_are_named() {
        let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1)]),
            None,
            Some(vec![Some(1), Some(9)]),
        ]);
        let b = batch(vec![("c", Arc::new(lists) as ArrayRef)]);
        let make = |unknown, null| {
            let encoding = Encoding::MultiHot {
                vocabulary: Vocabulary::Ints(vec![1]),
                normalize: true,
            };
            TableEncoder::new(vec![("c".into(), encoding)], unknown, null).unwrap()
        };
        let err = make(Policy::Error, Policy::Ignore)
            .encode(std::slice::from_ref(&b), None, &Unmonitored)
            .unwrap_err();
        assert_eq!(err.to_string(), "block 'c', row 2: unknown value 9");
        let err = make(Policy::Ignore, Policy::Error)
            .encode(std::slice::from_ref(&b), None, &Unmonitored)
            .unwrap_err();
        assert!(err.to_string().starts_with("block 'c', row 1: null"), "{err}");
        let out = make(Policy::Ignore, Policy::Ignore)
            .encode(&[b], None, &Unmonitored)
            .unwrap();
        assert_eq!(
            (out.indptr, out.indices, out.data),
            (vec![0, 1, 1, 2], vec![0, 0], vec![1.0, 1.0])
        );
    }

    #[test]
    fn learns_sorted_vocabularies_and_ranges() {
        let users = StringArray::from(vec!["é", "b", "Z", "b", "a"]);
        let dictionary = DictionaryArray::<arrow_array::types::Int8Type>::new(
            arrow_array::Int8Array::from(vec![2, 2, 0, 2, 0]),
            Arc::new(StringArray::from(vec!["x", "unused", "y"])),
        );
        let b = batch(vec![
            ("u", Arc::new(users) as ArrayRef),
            ("d", Arc::new(dictionary)),
            ("i", Arc::new(Int64Array::from(vec![3, -1, 3, 10, 0]))),
            (
                "f",
                Arc::new(Float64Array::from(vec![
                    Some(2.5),
                    Some(f64::NAN),
                    None,
                    Some(-1.0),
                    Some(0.0),
                ])),
            ),
        ]);
        let learned = learn(
            &[
                ("u", Target::Ids),
                ("d", Target::Ids),
                ("i", Target::Ids),
                ("f", Target::Range),
            ],
            &[b.slice(0, 3), b.slice(3, 2)],
            Policy::Ignore,
        )
        .unwrap();
        assert_eq!(learned[0], Learned::Vocabulary(strings(&["Z", "a", "b", "é"])));
        assert_eq!(learned[1], Learned::Vocabulary(strings(&["x", "y"])));
        assert_eq!(learned[2], Learned::Vocabulary(Vocabulary::Ints(vec![-1, 0, 3, 10])));
        assert_eq!(learned[3], Learned::Range(Some((-1.0, 2.5))));
    }

    #[test]
    fn wrong_types_and_unrepresentable_ids_are_errors() {
        let b = batch(vec![("c", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)]);
        let err = learn(&[("c", Target::Lists)], std::slice::from_ref(&b), Policy::Error).unwrap_err();
        assert_eq!(
            err.to_string(),
            "block 'c': an Arrow column of type Float64 cannot be lists of ids (a list column)"
        );
        let encoder = TableEncoder::new(
            vec![("c".into(), Encoding::OneHot(strings(&["a"])))],
            Policy::Ignore,
            Policy::Error,
        )
        .unwrap();
        assert!(encoder
            .encode(&[b], None, &Unmonitored)
            .unwrap_err()
            .to_string()
            .contains("cannot be ids"));
        let ints = batch(vec![("c", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]);
        let err = encoder.encode(&[ints], None, &Unmonitored).unwrap_err().to_string();
        assert!(
            err.contains("(integers) cannot be looked up in a vocabulary of strings"),
            "{err}"
        );
        let big = batch(vec![("c", Arc::new(UInt64Array::from(vec![u64::MAX])) as ArrayRef)]);
        let err = learn(&[("c", Target::Ids)], &[big], Policy::Error).unwrap_err();
        assert_eq!(
            err.to_string(),
            "block 'c', row 0: id 18446744073709551615 is outside the int64 range"
        );
        let unsorted = TableEncoder::new(
            vec![("c".into(), Encoding::OneHot(strings(&["b", "a"])))],
            Policy::Error,
            Policy::Error,
        );
        assert!(unsorted.is_err());
    }

    #[test]
    fn dense_and_hashed_integer_vocabularies_agree() {
        let ids = Int64Array::from(vec![-3, 0, 2, 4, i64::MAX, i64::MIN, 1]);
        let b = batch(vec![("c", Arc::new(ids) as ArrayRef)]);
        for vocabulary in [vec![-3, 0, 2, 4], vec![i64::MIN, -3, 0, 2, 4, i64::MAX]] {
            let lookup = Lookup::new("c", Vocabulary::Ints(vocabulary.clone())).unwrap();
            assert_eq!(matches!(lookup, Lookup::Dense { .. }), vocabulary.len() == 4);
            let encoder = TableEncoder::new(
                vec![("c".into(), Encoding::OneHot(Vocabulary::Ints(vocabulary.clone())))],
                Policy::Ignore,
                Policy::Error,
            )
            .unwrap();
            let out = encoder.encode(std::slice::from_ref(&b), None, &Unmonitored).unwrap();
            let expected: Vec<i64> = [-3, 0, 2, 4, i64::MAX, i64::MIN, 1]
                .iter()
                .filter_map(|id| vocabulary.iter().position(|v| v == id).map(|p| p as i64))
                .collect();
            assert_eq!(out.indices, expected);
        }
    }

    #[test]
    fn string_codes_find_every_id_and_only_those() {
        let ids: Vec<String> = ["", "a", "ab", "b", "é", "日本"]
            .iter()
            .map(|s| s.to_string())
            .chain((0..1000).map(|i| format!("u{i:04}")))
            // Longer than a slot's head, some alike in it and differing after it.
            .chain((0..300).map(|i| format!("user-{i:07}")))
            .chain(["abcdefgh".to_string(), "abcdefgh\0".to_string()])
            .collect();
        let strings: Strings = ids.iter().map(String::as_str).collect();
        assert_eq!(strings.len(), ids.len());
        assert!(strings.iter().eq(ids.iter().map(String::as_str)));
        assert_eq!(strings.get(ids.len()), None);
        let codes = StringCodes::new("c", strings).unwrap();
        for (code, id) in ids.iter().enumerate() {
            assert_eq!(codes.get(id), Some(code as i64), "{id:?}");
        }
        for unknown in [
            "c",
            "u",
            "u10000",
            "aa",
            " ",
            "e",
            "abcdefg",
            "abcdefgh\0\0",
            "user-0000300",
            "user-000029",
        ] {
            assert_eq!(codes.get(unknown), None, "{unknown:?}");
        }
        let mut chars = Strings::with_capacity(1, 3);
        chars.push_chars("aé".chars());
        assert_eq!(chars.get(0), Some("aé"));
    }

    #[test]
    fn no_batches_and_python_quoting() {
        let encoder = TableEncoder::new(
            vec![(
                "c".into(),
                Encoding::MultiHot {
                    vocabulary: Vocabulary::Ints(vec![1]),
                    normalize: false,
                },
            )],
            Policy::Error,
            Policy::Error,
        )
        .unwrap();
        let out = encoder.encode(&[], None, &Unmonitored).unwrap();
        assert_eq!((out.indptr, out.indices.len()), (vec![0], 0));
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("a\n'\"\\"), "'a\\n\\'\"\\\\'");
    }
}
