"""Recommendation with Factorization Machines: from rating files to top-K lists and their metrics.

* :mod:`~fmfast.recsys.ratings`: rating files (MovieLens, RecBole, CSV/TSV) read into arrays;
* :mod:`~fmfast.recsys.features`: :class:`FeatureEncoder`, named columns to a design matrix;
* :mod:`~fmfast.recsys.implicit`: implicit feedback, observed pairs against sampled negatives;
* :mod:`~fmfast.recsys.recommend`: exact top-K by the FM algebra, :func:`recommend`, :func:`similar_items`;
* :mod:`~fmfast.recsys.evaluation`: train/test splits, rating and ranking metrics;
* :mod:`~fmfast.recsys.datasets`: synthetic MovieLens-shaped ratings for demos and tests.

They all return one type, :class:`Ratings` (``RatingsData`` and ``Interactions`` are other names for it).
"""

from fmfast.recsys.datasets import Ratings, synthetic_ratings
from fmfast.recsys.evaluation import (
    catalog_coverage,
    hit_rate_at_k,
    leave_n_out,
    mae,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    random_split,
    recall_at_k,
    rmse,
    temporal_split,
)
from fmfast.recsys.features import FeatureEncoder
from fmfast.recsys.implicit import sample_negatives
from fmfast.recsys.ratings import read_ratings
from fmfast.recsys.recommend import most_popular, recommend, similar_items

__all__ = [
    "FeatureEncoder",
    "Ratings",
    "catalog_coverage",
    "hit_rate_at_k",
    "leave_n_out",
    "mae",
    "map_at_k",
    "most_popular",
    "ndcg_at_k",
    "precision_at_k",
    "random_split",
    "read_ratings",
    "recall_at_k",
    "recommend",
    "rmse",
    "sample_negatives",
    "similar_items",
    "synthetic_ratings",
    "temporal_split",
]
