//! The one parser of ratings files (`user, item, rating[, timestamp]`), behind both
//! `fmfast.load_ratings` ([`read_ratings`]) and `fmfast convert` ([`convert_ratings_csv`]).
//!
//! * **Format.** RFC 4180 CSV read by the `csv` crate: quoted fields (which may hold the
//!   delimiter or `""`), CRLF or LF line ends, a UTF-8 byte-order mark; surrounding whitespace is
//!   trimmed and blank lines are skipped. The delimiter is a given byte or detected from the first
//!   non-blank line: whichever of tab, `,` and `;` splits it into the most fields. A line holding
//!   `::` is MovieLens `ratings.dat`, its own format: fields split on `::`, no quoting. A quoted
//!   field may not hold a line break (each rating is one line, so that blocks of lines can be
//!   parsed in parallel; pandas' pyarrow engine makes the same choice by default).
//! * **Columns.** The first record is a header when its names give the user and the item column,
//!   or when its third field is not a number; a header's names say which column is which (`userId`,
//!   `user_id:token`, `movieId`, `item`, `rating`, `timestamp` and the other names of `ROLES`;
//!   case, `_` and a `:type` suffix ignored), otherwise the columns are user, item, rating, timestamp by position. Every record
//!   has as many fields as the first.
//! * **Ids** are the text as written: `7` and `07` are two users. A vocabulary lists each id
//!   once, in numeric order when every id is an integer (ties such as `07` and `7` by text),
//!   otherwise in text (byte) order.
//! * **Errors** are [`crate::Error::Parse`] naming the 1-based line and the offending text.
//!
//! Blocks of lines are cut into pieces parsed in parallel; one thread then codes the ids of each
//! piece in order (plain integers through a table indexed by value, other ids by hash), so results
//! do not depend on the thread count. The hot path of a piece without quotes: lines cut into
//! fields at the set bits of a mask of line ends and delimiters (64 bytes at a time), integer ids
//! and whole or short decimal ratings read without the UTF-8 check and the float parser.
//!
//! * `options`: what a caller chooses ([`RatingsOptions`], [`Unknown`]).
//! * `dialect`: delimiter and header detection, and splitting lines into records.
//! * `parse`: pieces of lines into ratings, in parallel.
//! * `vocab`: ids coded as first seen or by a given [`Vocabulary`].
//! * `convert`: the two entry points, [`read_ratings`] and [`convert_ratings_csv`].

mod convert;
mod dialect;
mod options;
mod parse;
mod vocab;

pub use convert::{convert_ratings_csv, read_ratings, write_ratings_csv, RatingsSummary, RatingsTable};
pub use options::{RatingsOptions, Unknown};
pub use vocab::{IdList, Vocabulary};

#[cfg(test)]
mod tests {
    use super::convert::{read_in_blocks, write_in_blocks};
    use super::*;
    use crate::error::{Error, Result};
    use crate::parallel::Unmonitored;
    use crate::recordio::decode::Indices;
    use crate::recordio::{decode_records, split_frames, FeatureValues};
    use crate::text::lines::BLOCK_BYTES;

    fn convert_in(text: &str, options: &RatingsOptions<'_>, block_bytes: usize) -> Result<(RatingsSummary, Vec<u8>)> {
        let mut out = Vec::new();
        let summary = write_in_blocks(|| Ok(text.as_bytes()), &mut out, options, &Unmonitored, block_bytes)?;
        Ok((summary, out))
    }

    fn convert(text: &str, options: &RatingsOptions<'_>) -> Result<(RatingsSummary, Vec<u8>)> {
        convert_in(text, options, BLOCK_BYTES)
    }

    fn read(text: &str, options: &RatingsOptions<'_>) -> Result<RatingsTable> {
        read_in_blocks(
            text.as_bytes(),
            Some(text.len() as u64),
            options,
            &Unmonitored,
            BLOCK_BYTES,
        )
    }

    fn delimited(delimiter: &str) -> RatingsOptions<'_> {
        RatingsOptions {
            delimiter: Some(delimiter),
            ..RatingsOptions::default()
        }
    }

    /// Decodes `bytes` into `(n_cols, columns of each row, labels)`.
    fn decode(bytes: &[u8]) -> (u64, Vec<Vec<i64>>, Vec<f32>) {
        let decoded = decode_records(&split_frames(bytes, 0).unwrap(), &Unmonitored).unwrap();
        let (indptr, indices): (Vec<i64>, Vec<i64>) = match decoded.indices {
            Indices::I32 { indptr, indices } => (
                indptr.into_iter().map(i64::from).collect(),
                indices.into_iter().map(i64::from).collect(),
            ),
            Indices::I64 { indptr, indices } => (indptr, indices),
        };
        let rows = indptr
            .windows(2)
            .map(|w| indices[w[0] as usize..w[1] as usize].to_vec())
            .collect();
        assert_eq!(decoded.values, FeatureValues::F32(vec![1.0; indices.len()]));
        let Some(FeatureValues::F32(labels)) = decoded.labels else {
            panic!("no float32 labels")
        };
        (decoded.n_cols, rows, labels)
    }

    fn strings(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn converts_ratings_with_a_header_to_one_hot_rows() {
        let text = "userId,movieId,rating,timestamp\n10,b,4.5,99\n2,a,3,98\n\n10,a,1,97\n";
        let (summary, bytes) = convert(text, &RatingsOptions::default()).unwrap();
        assert_eq!(summary.n_rows, 3);
        assert_eq!(summary.vocabulary.users, strings(&["2", "10"]), "numeric order");
        assert_eq!(summary.vocabulary.items, strings(&["a", "b"]), "text order");
        let (n_cols, rows, labels) = decode(&bytes);
        assert_eq!(n_cols, 4);
        assert_eq!(rows, [vec![1, 3], vec![0, 2], vec![1, 2]]);
        assert_eq!(labels, [4.5, 3.0, 1.0]);
        let (_, small) = convert_in(text, &RatingsOptions::default(), 5).unwrap();
        assert_eq!(small, bytes, "block size changes nothing");
    }

    #[test]
    fn reads_the_same_ratings_in_every_dialect() {
        let want = read("1,10,3,100\n2,10,4,200\n", &RatingsOptions::default()).unwrap();
        for text in [
            "1::10::3::100\r\n2::10::4::200\r\n",
            "1\t10\t3\t100\n2\t10\t4\t200\n",
            "1;10;3;100\n2;10;4;200",
            "\u{feff}user_id:token,item_id:token,rating:float,timestamp:float\r\n1,10,3,100\r\n2,10,4,200.0\r\n",
            "\"1\",\"10\",\"3\",\"100\"\n 2 , 10 , 4 , 200 \n",
            "item,user,rating,timestamp\n10,1,3,100\n10,2,4,200\n",
            "timestamp;rating;movieId;userId\n100;3;10;1\n200;4;10;2\n",
        ] {
            assert_eq!(read(text, &RatingsOptions::default()).unwrap(), want, "{text:?}");
        }
        assert_eq!(want.user_ids, IdList::Numbers(vec![1, 2]));
        assert_eq!((want.users, want.items), (vec![0, 1], vec![0, 0]));
        assert_eq!(want.ratings, Some(vec![3.0, 4.0]));
        assert_eq!(want.timestamps, None, "not asked for");
        let options = RatingsOptions {
            timestamps: true,
            ..RatingsOptions::default()
        };
        assert_eq!(read("1,10,3,100\n", &options).unwrap().timestamps, Some(vec![100]));
    }

    #[test]
    fn header_names_decide_the_columns_of_a_conversion() {
        let (swapped, bytes) = convert("item,user,rating\ni1,u1,5\ni2,u1,3\n", &RatingsOptions::default()).unwrap();
        assert_eq!(swapped.vocabulary.users, strings(&["u1"]));
        assert_eq!(swapped.vocabulary.items, strings(&["i1", "i2"]));
        assert_eq!(decode(&bytes).1, [vec![0, 1], vec![0, 2]]);
    }

    #[test]
    fn quoted_fields_hold_delimiters_and_quotes() {
        let table = read("\"Smith, J\",\"a \"\"b\"\"\",4\nx;y,c,5\n", &RatingsOptions::default()).unwrap();
        assert_eq!(table.user_ids, IdList::Texts(strings(&["Smith, J", "x;y"])));
        assert_eq!(table.item_ids, IdList::Texts(strings(&["a \"b\"", "c"])));
        let (summary, _) = convert("a,b;c;5\n", &delimited(";")).unwrap();
        assert_eq!(
            (summary.vocabulary.users, summary.vocabulary.items),
            (strings(&["a,b"]), strings(&["c"]))
        );
        let table = read("1|2|3\n", &delimited("|")).unwrap();
        assert_eq!(table.ratings, Some(vec![3.0]));
    }

    #[test]
    fn ids_are_the_text_as_written() {
        let table = read("7,a,1\n07,a,2\n7,a,3\n", &RatingsOptions::default()).unwrap();
        assert_eq!(
            table.user_ids,
            IdList::Texts(strings(&["07", "7"])),
            "numeric order, ties by text"
        );
        assert_eq!(table.users, [1, 0, 1]);
        let (summary, _) = convert("7,a,1\n07,a,2\n", &RatingsOptions::default()).unwrap();
        assert_eq!(summary.vocabulary.users, strings(&["07", "7"]));
        let table = read("10,x,1\n9,y,1\nb,y,1\n", &RatingsOptions::default()).unwrap();
        assert_eq!(
            table.user_ids,
            IdList::Texts(strings(&["10", "9", "b"])),
            "text order once an id is not a number"
        );
        assert_eq!(table.users, [0, 1, 2]);
        let table = read("10,x,1\n-9,y,1\n", &RatingsOptions::default()).unwrap();
        assert_eq!(table.user_ids, IdList::Numbers(vec![-9, 10]));
        assert_eq!(table.user_ids.into_strings(), strings(&["-9", "10"]));
    }

    #[test]
    fn codes_ids_by_a_given_vocabulary() {
        let vocabulary = Vocabulary::new(strings(&["u1", "u2"]), strings(&["a", "b"])).unwrap();
        let mut options = RatingsOptions {
            vocabulary: Some(&vocabulary),
            ..RatingsOptions::default()
        };
        let text = "user,item,rating\nu2,a,5\nu3,b,4\nu1,c,3\n";
        let err = read(text, &options).unwrap_err();
        assert!(matches!(&err, Error::Parse { line: 3, .. }), "{err}");
        assert!(
            err.to_string().contains("user id \"u3\" is not in the vocabulary"),
            "{err}"
        );
        assert!(convert(text, &options).is_err());
        options.unknown = Unknown::Skip;
        let table = read(text, &options).unwrap();
        assert_eq!((table.users, table.items), (vec![1, -1, 0], vec![0, 1, -1]));
        assert_eq!(table.user_ids, IdList::Texts(vocabulary.users.clone()));
        let (summary, bytes) = convert(text, &options).unwrap();
        assert_eq!((summary.n_rows, summary.n_unknown), (3, 2));
        assert_eq!(decode(&bytes).1, [vec![1, 2], vec![3], vec![0]]);
        let err = Vocabulary::new(strings(&["u1", "u1"]), vec![]).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[test]
    fn reads_pairs_when_asked() {
        let options = RatingsOptions {
            pairs: true,
            ..RatingsOptions::default()
        };
        let table = read("user,item\nu1,a\nu2,a\n", &options).unwrap();
        assert_eq!((table.users, table.ratings), (vec![0, 1], None));
        let table = read("u1,a\n", &options).unwrap();
        assert_eq!(table.item_ids, IdList::Texts(strings(&["a"])));
        let one_field = RatingsOptions {
            delimiter: Some(","),
            ..options
        };
        let err = read("u1\n", &one_field).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected at least 2 fields (user, item), found 1"),
            "{err}"
        );
        let err = read("user,item,stars2\n1,2,3\n", &RatingsOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("line 1: the header names no rating column"),
            "{err}"
        );
        let err = read("u1,a\n", &RatingsOptions::default()).unwrap_err();
        assert!(err.to_string().contains("expected at least 3 fields"), "{err}");
    }

    #[test]
    fn detects_a_header_only_on_the_first_line() {
        let (summary, _) = convert("\n\nuser\titem\trating:float\n1\t1\t5\n", &RatingsOptions::default()).unwrap();
        assert_eq!(summary.n_rows, 1);
        let (summary, _) = convert("1,1,5\n2,2,4\n", &RatingsOptions::default()).unwrap();
        assert_eq!(summary.n_rows, 2);
        let (summary, bytes) = convert("user,item,rating\n", &RatingsOptions::default()).unwrap();
        assert_eq!((summary.n_rows, bytes.len()), (0, 0));
        let (summary, _) = convert("", &RatingsOptions::default()).unwrap();
        assert_eq!((summary.n_rows, summary.vocabulary.users.len()), (0, 0));
        let err = read("user,item,rating\n", &RatingsOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no ratings"), "{err}");
        let no_header = RatingsOptions {
            header: Some(false),
            ..RatingsOptions::default()
        };
        let err = read("user,item,rating\n1,2,3\n", &no_header).unwrap_err();
        assert!(
            err.to_string().contains("line 1: rating \"rating\" is not a number"),
            "{err}"
        );
    }

    #[test]
    fn reports_each_error_with_its_line() {
        let cases: [(&str, Option<&str>, u64, &str); 10] = [
            ("1 2 3\n", None, 1, "cannot detect the delimiter"),
            ("1,2,3\n1,2\n", None, 2, "expected 3 fields, found 2"),
            ("1\t2\t3\n\n1\t2\t3\t4\n", None, 3, "expected 3 fields, found 4"),
            ("1,2,3\n1,2,good\n", None, 2, "rating \"good\" is not a number"),
            ("1,2,3\n1,2,inf\n", None, 2, "rating \"inf\" is not finite"),
            ("1,2,3\n\n,2,3\n", None, 3, "empty user id"),
            ("1;;3\n", Some(";"), 1, "empty item id"),
            ("1,2,3\n\"a\nb\",2,3\n", None, 2, "a quoted field holds a line break"),
            ("1,2,3,4\n1,2,3,1.5\n", None, 2, "timestamp \"1.5\" is not an integer"),
            ("1,2,3\n1,\"2,3\n1,2,3\n", None, 2, "a quote is not closed"),
        ];
        let options = |delimiter| RatingsOptions {
            delimiter,
            timestamps: true,
            ..RatingsOptions::default()
        };
        for (text, delimiter, line, message) in cases {
            let Err(Error::Parse {
                line: got,
                message: said,
            }) = read(text, &options(delimiter))
            else {
                panic!("{text:?}: expected a parse error")
            };
            assert_eq!(got, line, "{text:?}: {said}");
            assert!(said.contains(message), "{said:?} lacks {message:?}");
        }
        let bytes = b"1,2,3\n1,\xff,3\n";
        let err = read_in_blocks(&bytes[..], None, &RatingsOptions::default(), &Unmonitored, 64).unwrap_err();
        assert!(matches!(err, Error::Parse { line: 2, .. }), "{err}");
        for bad in ["", "ab", "\""] {
            let err = convert("1,2,3\n", &delimited(bad)).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
    }

    #[test]
    fn writes_the_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("r.csv"), dir.path().join("r.recordio"));
        std::fs::write(&source, "1,1,5\n2,1,3\n").unwrap();
        let summary = convert_ratings_csv(&source, &target, &RatingsOptions::default(), &Unmonitored).unwrap();
        assert_eq!(summary.n_rows, 2);
        assert_eq!(decode(&std::fs::read(&target).unwrap()).1, [vec![0, 2], vec![1, 2]]);
        std::fs::write(&source, "1,1,5\n2,1,x\n").unwrap();
        std::fs::remove_file(&target).unwrap();
        assert!(convert_ratings_csv(&source, &target, &RatingsOptions::default(), &Unmonitored).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the source remains"
        );
    }
}
