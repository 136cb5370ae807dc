"""Synthetic MovieLens-shaped ratings: the embedded default data set of demos and tests.

Users and items get low-rank taste vectors; who rates what follows skewed (Zipf-like) user
activity and item popularity; ratings are the rounded, clipped low-rank score plus noise, 1 to 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fmfast._scores import sigmoid


@dataclass(frozen=True)
class Ratings:
    """Ratings with users and items coded ``0..n-1``: ``users[i]`` gave ``items[i]`` ``ratings[i]``.

    The one ratings type of fmfast: :func:`synthetic_ratings` makes it, :func:`fmfast.read_ratings`
    reads it from a file (``fmfast.RatingsData`` is another name for it), and
    :func:`fmfast.implicit.sample_negatives` gives pairs labelled 1.0 or 0.0 (``Interactions``).
    ``user_ids[c]`` and ``item_ids[c]`` are the ids of user or item code ``c`` in the file (int64,
    or str when an id is not a plain integer); without a file they are the codes themselves.
    """

    users: np.ndarray
    """User code of each rating, int64 in ``0..n_users-1``."""
    items: np.ndarray
    """Item code of each rating, int64 in ``0..n_items-1``."""
    ratings: np.ndarray
    """The ratings, float32."""
    n_users: int
    """Number of distinct users."""
    n_items: int
    """Number of distinct items."""
    timestamps: np.ndarray | None = None
    """Time of each rating as int64 (usually Unix seconds), or ``None`` when there are none."""
    user_ids: np.ndarray = None  # type: ignore[assignment]
    """Original user id of each user code (int64 or str array); the codes when not given."""
    item_ids: np.ndarray = None  # type: ignore[assignment]
    """Original item id of each item code (int64 or str array); the codes when not given."""

    def __post_init__(self) -> None:
        if self.user_ids is None:
            object.__setattr__(self, "user_ids", np.arange(self.n_users, dtype=np.int64))
        if self.item_ids is None:
            object.__setattr__(self, "item_ids", np.arange(self.n_items, dtype=np.int64))

    def __len__(self) -> int:
        """Number of ratings."""
        return len(self.ratings)

    def one_hot(self) -> tuple[sp.csr_array, np.ndarray]:
        """The classic FM encoding: one-hot user then one-hot item per rating, and the ratings."""
        return user_item_one_hot(self.users, self.items, self.n_users, self.n_items), self.ratings.astype(
            np.float32
        )

    @property
    def labels(self) -> np.ndarray:
        """The values as the labels of implicit feedback (:func:`fmfast.implicit.sample_negatives`)."""
        return self.ratings

    def to_ratings(self) -> Ratings:
        """The ratings themselves (kept for code written when files were read into another type)."""
        return self


def one_hot_rows(columns: np.ndarray, n_features: int) -> sp.csr_array:
    """The one one-hot builder: row ``i`` holds a 1 (float32) in each column ``columns[i, j]``.

    ``columns`` is ``(n, blocks)``, one column per block (user, item, ...) and row; a column of
    ``-1`` (an id the vocabulary does not know) leaves that block of the row empty.
    """
    columns = np.asarray(columns, dtype=np.int64)
    n, blocks = columns.shape
    known = columns >= 0
    if known.all():
        indices = columns.reshape(-1)
        indptr = np.arange(0, n * blocks + 1, blocks, dtype=np.int64)
    else:
        indices = columns[known]
        indptr = np.concatenate([[0], np.cumsum(known.sum(axis=1))]).astype(np.int64)
    return sp.csr_array((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n, n_features))


def user_item_one_hot(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_array:
    """One row per pair: a 1 in column ``users[i]`` and in column ``n_users + items[i]`` (float32).

    An item code of ``-1`` (unknown) leaves the item block of its row empty.
    """
    items = np.asarray(items, dtype=np.int64)
    columns = np.column_stack([np.asarray(users, dtype=np.int64), np.where(items >= 0, n_users + items, -1)])
    return one_hot_rows(columns, n_users + n_items)


#: How strongly taste decides which pairs are rated (logit per unit of taste).
_SELECTION = 8.0
_TASTE_CHUNK = 1 << 18


def synthetic_ratings(
    n_users: int = 943, n_items: int = 1682, n_ratings: int = 100_000, rank: int = 8, seed: int = 0
) -> Ratings:
    """Generate ratings shaped like MovieLens-100K (its sizes are the defaults).

    Users and items have skewed activity and popularity; ratings come from low-rank tastes plus
    user and item biases and noise, rounded to 1..5. As in real data, users rate what appeals to
    them: a (user, item) pair drawn by activity and popularity is kept with a probability that
    grows with the user's taste for the item, so which items a user rated carries signal too.
    Each (user, item) pair occurs at most once; the same seed gives the same data.
    """
    if n_ratings > n_users * n_items:
        raise ValueError("more ratings than (user, item) pairs")
    rng = np.random.default_rng(seed)
    user_weight = rng.pareto(1.5, n_users) + 1
    item_weight = 1.0 / np.arange(1, n_items + 1) ** 0.9
    item_weight = item_weight[rng.permutation(n_items)]
    user_factors = rng.normal(0, 1 / np.sqrt(rank), (n_users, rank))
    item_factors = rng.normal(0, 1 / np.sqrt(rank), (n_items, rank))

    def taste(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = np.empty(len(users))
        for start in range(0, len(users), _TASTE_CHUNK):  # bounded temporaries for large draws
            chunk = slice(start, start + _TASTE_CHUNK)
            out[chunk] = (user_factors[users[chunk]] * item_factors[items[chunk]]).sum(1)
        return 1.2 * out

    pairs = np.empty(0, dtype=np.int64)
    while len(pairs) < n_ratings:
        draw = 4 * (n_ratings - len(pairs))
        users = rng.choice(n_users, size=draw, p=user_weight / user_weight.sum())
        items = rng.choice(n_items, size=draw, p=item_weight / item_weight.sum())
        kept = rng.random(draw) < sigmoid(_SELECTION * taste(users, items))
        pairs = np.unique(np.concatenate([pairs, users[kept] * n_items + items[kept]]))
    pairs = rng.permutation(pairs)[:n_ratings]
    users, items = pairs // n_items, pairs % n_items
    score = 3.5 + taste(users, items)
    score += rng.normal(0, 0.3, n_users)[users] + rng.normal(0, 0.4, n_items)[items]
    ratings = np.clip(np.rint(score + rng.normal(0, 0.8, n_ratings)), 1, 5).astype(np.float32)
    return Ratings(users.astype(np.int64), items.astype(np.int64), ratings, n_users, n_items)
