"""The figure commands' numbers follow the project's rules for non-finite values: top-k
counts use the top-k rule (a tie with the k-th class or a NaN row is an error), and a net
whose features are not finite gets a refusal, never a picture of meaningless neighbours."""
from __future__ import annotations

import numpy as np
import pytest
from net_support import tiny_net

from cuda_convnet.experiments import neighbours, top5


def test_top5_correct_counts_follow_the_top_k_rule():
    """Uniform probabilities (every class tied) and a NaN row count as errors; the
    unlabelled image (-1) is not counted at all. Ranking by argsort alone would have
    counted the uniform row top-5 correct and the NaN row correct at both k."""
    probs = np.array([
        np.full(10, 0.1),                                    # label 3: tied with all
        np.full(10, np.nan),                                 # label 0: a diverged net
        [0.02, 0.03, 0.5, 0.05, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05],  # label 2: the largest
        [0.3, 0.04, 0.06, 0.1, 0.2, 0.1, 0.05, 0.05, 0.05, 0.05],   # label 4: second
        [0.3, 0.04, 0.06, 0.1, 0.2, 0.1, 0.05, 0.05, 0.05, 0.05],   # unlabelled
    ])
    idx, _ = top5.top_k(probs)
    assert idx[1].tolist() == [0, 1, 2, 3, 4] and idx[0].tolist() == [0, 1, 2, 3, 4]
    assert top5.correct_counts(probs, [3, 0, 2, 4, -1]) == {1: 1, 5: 2}
    assert top5.correct_counts(probs, [-1] * 5) == {1: 0, 5: 0}


def _transform(images):
    return images.astype(np.float64) / 255.0


def test_neighbours_of_a_finite_net_find_the_query_itself():
    rng = np.random.default_rng(0)
    db = rng.integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    net = tiny_net(towers=1)
    idx, dist = neighbours.nearest(net, _transform, db[[4]], db, k=3, chunk=4)
    assert idx[0, 0] == 4 and dist[0, 0] < 1e-6 * max(dist[0, 1], 1e-300)
    assert np.all(np.diff(dist[0]) >= 0) and np.isfinite(dist).all()


def test_neighbours_refuse_non_finite_features():
    rng = np.random.default_rng(1)
    db = rng.integers(0, 256, (9, 16, 16, 3), dtype=np.uint8)
    net = tiny_net(towers=1)
    p = net.parameters()[0]
    p.data[...] = np.nan  # conv1's weights: every later feature is NaN
    with pytest.raises(ValueError, match=r"nearest: layer '.*' gives non-finite features for image 0 "
                                         r"\(and 0 more of images 0\.\.0\)"):
        neighbours.nearest(net, _transform, db[[2]], db, k=3, chunk=4)
