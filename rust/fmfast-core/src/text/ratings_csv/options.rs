//! What a caller chooses: [`RatingsOptions`] and what to do with an [`Unknown`] id.

use super::vocab::Vocabulary;

/// What to do with an id that a given vocabulary lacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unknown {
    /// Fail, naming the id and its line.
    #[default]
    Refuse,
    /// Give it no column (code -1): the rating keeps its other id.
    Skip,
}

/// How to read a ratings file.
#[derive(Clone, Copy, Debug, Default)]
pub struct RatingsOptions<'a> {
    /// A one-byte delimiter or `::`; `None` detects it.
    pub delimiter: Option<&'a str>,
    /// Whether the first record is a header; `None` detects it.
    pub header: Option<bool>,
    /// Whether to read the timestamp column (it is skipped otherwise).
    pub timestamps: bool,
    /// Whether a file of `user, item` pairs without ratings is accepted.
    pub pairs: bool,
    /// Code ids by this vocabulary rather than by the file's own.
    pub vocabulary: Option<&'a Vocabulary>,
    /// What to do with ids outside `vocabulary`.
    pub unknown: Unknown,
}
