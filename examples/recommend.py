"""Recommend: a ranking FM on (user, item) pairs, top-10 per user, measured on held-out ratings.

    python examples/recommend.py

A rating regressor ranks obscure, highly rated items first; to rank what a user will pick, train a
``binary_classifier`` on the observed pairs (label 1) and sampled unobserved ones (label 0). The
top-10 of every user comes from ``fmfast.recommend``: exact, in parallel, without a score matrix.
"""

import fmfast
import numpy as np
import scipy.sparse as sp
from fmfast.recsys import (
    leave_n_out,
    most_popular,
    ndcg_at_k,
    precision_at_k,
    sample_negatives,
    synthetic_ratings,
)
from fmfast.recsys.recommend import one_hot


def main() -> None:
    """Train, recommend, and compare with recommending the most popular items."""
    data = synthetic_ratings(n_users=300, n_items=500, n_ratings=20_000, seed=0)
    n_users, n_items = data.n_users, data.n_items
    train, test = leave_n_out(data.users, n=5, seed=0)  # 5 random ratings of each user held out

    pairs = sample_negatives(data.users[train], data.items[train], n_users, n_items, per_positive=4, seed=0)
    X, labels = pairs.one_hot()  # one-hot user + item columns
    model = fmfast.FactorizationMachine(
        "binary_classifier", num_factors=32, epochs=10, mini_batch_size=100, factors_lr=0.001, random_state=0
    ).fit(X, labels)

    users = one_hot(np.arange(n_users), 0, X.shape[1])  # the query side: user columns
    items = one_hot(np.arange(n_items), n_users, X.shape[1])  # the item side: item columns
    seen = sp.csr_array(
        (np.ones(len(train)), (data.users[train], data.items[train])), shape=(n_users, n_items)
    )
    top, scores = fmfast.recommend(model, users, items, k=10, exclude=seen)

    liked = data.ratings[test] >= 4  # relevant: held-out items the user rated 4 or 5
    relevant = sp.csr_array(
        (np.ones(liked.sum()), (data.users[test][liked], data.items[test][liked])), shape=(n_users, n_items)
    )
    popular, _ = most_popular(np.bincount(data.items[train], minlength=n_items), seen, k=10)
    for name, ranked in [("ranking FM", top), ("most popular", popular)]:
        print(
            f"{name:>12}: precision@10 {precision_at_k(ranked, relevant):.3f}, "
            f"NDCG@10 {ndcg_at_k(ranked, relevant):.3f}"
        )
    print(f"user 0's top 3: items {top[0, :3]}, probabilities {np.round(scores[0, :3], 3)}")


if __name__ == "__main__":
    main()
