//! The two entry points: a ratings file into arrays ([`read_ratings`]) or into one-hot RecordIO
//! rows plus vocabularies ([`convert_ratings_csv`]).

use std::io::{Read, Write};
use std::path::Path;

use super::options::RatingsOptions;
use super::parse::{first_seen, for_each_piece, known};
use super::vocab::{recode, FirstSeen, IdList, Vocabulary};
use crate::error::{Error, Result};
use crate::parallel::Monitor;
use crate::recordio::{open_input, AtomicFile};
use crate::text::lines::{block_bytes, parse_error, RowBlock};

/// Bytes per block when reading into arrays: the arrays are what should fill memory, so a block
/// (with its parsed pieces, about twice its size) is kept small; 32 pieces still keep 16 cores busy.
const READ_BLOCK_BYTES: usize = 8 << 20;

/// The ratings of a file, with users and items coded `0..n` in their vocabularies.
#[derive(Clone, Debug, PartialEq)]
pub struct RatingsTable {
    /// User code of each rating (-1 for an id outside a given vocabulary, when skipped).
    pub users: Vec<i64>,
    /// Item code of each rating (-1 likewise).
    pub items: Vec<i64>,
    /// The ratings, or `None` for a file of pairs.
    pub ratings: Option<Vec<f32>>,
    /// The timestamps, when asked for and the file has them.
    pub timestamps: Option<Vec<i64>>,
    /// The id of each user code.
    pub user_ids: IdList,
    /// The id of each item code.
    pub item_ids: IdList,
}

/// Reads every rating of the file `source` into a [`RatingsTable`]; a file without one is an error.
pub fn read_ratings(source: &Path, options: &RatingsOptions<'_>, monitor: &dyn Monitor) -> Result<RatingsTable> {
    let file = open_input(source)?;
    let size = file.metadata().map_err(Error::file(source))?.len();
    read_in_blocks(file, Some(size), options, monitor, READ_BLOCK_BYTES)
}

/// [`read_ratings`] reading blocks of `block_bytes` (small in tests, to cross block ends).
/// `size`, the bytes `reader` holds when known, sizes the arrays once the first piece shows how
/// long a line is, so that they are not grown (up to twice their size) by doubling.
pub(super) fn read_in_blocks<R: Read>(
    reader: R,
    size: Option<u64>,
    options: &RatingsOptions<'_>,
    monitor: &dyn Monitor,
    block_bytes: usize,
) -> Result<RatingsTable> {
    let (mut users, mut items) = (FirstSeen::default(), FirstSeen::default());
    let (mut user_codes, mut item_codes) = (Vec::new(), Vec::new());
    let (mut ratings, mut timestamps) = (Vec::new(), Vec::new());
    let (dialect, _) = for_each_piece(reader, options, block_bytes, 0, None, monitor, |piece| {
        let rows = piece.users.len();
        if let (Some(size), true, true) = (size, user_codes.is_empty(), rows > 0) {
            // An estimate from the file's own lines, so never more than its bytes; 2% to spare.
            let expected = (size as f64 / piece.bytes.max(1) as f64 * rows as f64 * 1.02) as usize;
            user_codes.reserve(expected);
            item_codes.reserve(expected);
            ratings.reserve(if piece.ratings.is_empty() { 0 } else { expected });
            timestamps.reserve(if piece.timestamps.is_empty() { 0 } else { expected });
        }
        match options.vocabulary {
            Some(vocabulary) => piece.code_users_and_items(
                (&mut user_codes, known(&vocabulary.user_codes, "user", options.unknown)),
                (&mut item_codes, known(&vocabulary.item_codes, "item", options.unknown)),
            )?,
            None => piece.code_users_and_items(
                (&mut user_codes, first_seen(&mut users)),
                (&mut item_codes, first_seen(&mut items)),
            )?,
        }
        ratings.extend_from_slice(&piece.ratings);
        timestamps.extend_from_slice(&piece.timestamps);
        Ok(())
    })?;
    let Some(dialect) = dialect.filter(|_| !user_codes.is_empty()) else {
        return Err(parse_error(1, "the file contains no ratings"));
    };
    let (user_ids, item_ids) = match options.vocabulary {
        Some(vocabulary) => (
            IdList::Texts(vocabulary.users.clone()),
            IdList::Texts(vocabulary.items.clone()),
        ),
        // The users and the items at once: the last step, which no parsing overlaps.
        None => rayon::join(|| recode(users, &mut user_codes), || recode(items, &mut item_codes)),
    };
    for codes in [&mut user_codes, &mut item_codes, &mut timestamps] {
        codes.shrink_to_fit();
    }
    ratings.shrink_to_fit();
    let layout = dialect.layout;
    Ok(RatingsTable {
        users: user_codes,
        items: item_codes,
        ratings: layout.rating.map(|_| ratings),
        timestamps: layout.timestamp.filter(|_| options.timestamps).map(|_| timestamps),
        user_ids,
        item_ids,
    })
}

/// What a conversion wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatingsSummary {
    /// Records written (one per rating).
    pub n_rows: u64,
    /// Records with an id outside the given vocabulary (which has no column in them).
    pub n_unknown: u64,
    /// The columns: user `j` in column `j`, item `j` in column `users.len() + j`.
    pub vocabulary: Vocabulary,
}

/// Converts the ratings in `source` into one-hot RecordIO rows in a file at `target`, which
/// appears only when the whole file converted. Without `options.vocabulary`, a first pass
/// collects the file's own. `monitor` gets the bytes read over all passes.
pub fn convert_ratings_csv(
    source: &Path,
    target: &Path,
    options: &RatingsOptions<'_>,
    monitor: &dyn Monitor,
) -> Result<RatingsSummary> {
    AtomicFile::write_with(target, |out| {
        write_ratings_csv(|| open_input(source), out, options, monitor)
    })
}

/// Converts the ratings that `open` yields (called once per pass) into RecordIO records written
/// to `out`: per rating, value 1 in its user's column and in its item's column, and the rating
/// as label.
pub fn write_ratings_csv<R: Read>(
    open: impl FnMut() -> Result<R>,
    out: &mut (dyn Write + Send),
    options: &RatingsOptions<'_>,
    monitor: &dyn Monitor,
) -> Result<RatingsSummary> {
    write_in_blocks(open, out, options, monitor, block_bytes())
}

/// [`write_ratings_csv`] reading blocks of `block_bytes` (small in tests, to cross block ends).
pub(super) fn write_in_blocks<R: Read>(
    mut open: impl FnMut() -> Result<R>,
    out: &mut (dyn Write + Send),
    options: &RatingsOptions<'_>,
    monitor: &dyn Monitor,
    block_bytes: usize,
) -> Result<RatingsSummary> {
    let options = RatingsOptions {
        pairs: false,
        timestamps: false,
        ..*options
    };
    let (vocabulary, dialect, done) = match options.vocabulary {
        Some(given) => (given.clone(), None, 0),
        None => {
            let (mut users, mut items) = (FirstSeen::default(), FirstSeen::default());
            let (mut user_codes, mut item_codes) = (Vec::new(), Vec::new());
            let (dialect, read) = for_each_piece(open()?, &options, block_bytes, 0, None, monitor, |piece| {
                user_codes.clear();
                item_codes.clear();
                piece.code_users_and_items(
                    (&mut user_codes, first_seen(&mut users)),
                    (&mut item_codes, first_seen(&mut items)),
                )
            })?;
            let vocabulary = Vocabulary::new(users.ordered().0.into_strings(), items.ordered().0.into_strings())?;
            if dialect.is_none() {
                return Ok(RatingsSummary {
                    n_rows: 0,
                    n_unknown: 0,
                    vocabulary,
                });
            }
            (vocabulary, dialect, read)
        }
    };
    let n_users = vocabulary.users.len() as i64;
    let n_cols = (vocabulary.users.len() + vocabulary.items.len()) as u64;
    let (mut n_rows, mut n_unknown) = (0u64, 0u64);
    let (mut users, mut items) = (Vec::new(), Vec::new());
    for_each_piece(open()?, &options, block_bytes, done, dialect, monitor, |piece| {
        users.clear();
        items.clear();
        piece.code_users_and_items(
            (&mut users, known(&vocabulary.user_codes, "user", options.unknown)),
            (&mut items, known(&vocabulary.item_codes, "item", options.unknown)),
        )?;
        let mut rows = RowBlock::new();
        for ((&user, &item), &rating) in users.iter().zip(&items).zip(&piece.ratings) {
            if user >= 0 {
                rows.indices.push(user);
            }
            if item >= 0 {
                rows.indices.push(n_users + item);
            }
            n_unknown += u64::from(user < 0 || item < 0);
            rows.values.resize(rows.indices.len(), 1.0);
            rows.end_row(rating);
        }
        n_rows += rows.n_rows() as u64;
        out.write_all(&rows.encode(n_cols)?)?;
        Ok(())
    })?;
    Ok(RatingsSummary {
        n_rows,
        n_unknown,
        vocabulary,
    })
}
