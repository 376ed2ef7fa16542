"""scikit-learn's digits as the offline demo dataset."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from cuda_convnet.data.digits import DigitsAugment, augment_digits, load_digits, stratified_split  # noqa: E402


def test_shapes_range_and_split():
    d = load_digits(seed=0)
    assert d.train_images.shape[1:] == (32, 32, 3) and d.train_images.dtype == np.float32
    assert len(d.train_images) + len(d.val_images) == 1797
    assert d.train_images.min() >= 0.0 and d.train_images.max() <= 1.0
    assert np.array_equal(d.train_images[..., 0], d.train_images[..., 2])
    # each 8x8 pixel became a 4x4 block
    assert np.all(d.train_images[:, ::4, ::4] == d.train_images[:, 3::4, 3::4])
    vc = np.bincount(d.val_labels, minlength=10) / np.bincount(
        np.concatenate([d.train_labels, d.val_labels])
    )
    assert np.all(np.abs(vc - 0.2) < 0.02)  # stratified
    assert d.classes == [str(i) for i in range(10)]


def test_split_is_fixed_by_seed():
    a, b, c = load_digits(seed=1), load_digits(seed=1), load_digits(seed=2)
    np.testing.assert_array_equal(a.val_images, b.val_images)
    assert not np.array_equal(a.val_labels, c.val_labels) or not np.array_equal(
        a.val_images, c.val_images
    )
    tr, va = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.25, 0)
    assert len(va) == 2 and set(np.array([0, 0, 0, 0, 1, 1, 1, 1])[va]) == {0, 1}
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(8))


def test_standardize():
    d = load_digits(standardize=True, size=16)
    assert d.train_images.shape[1:] == (16, 16, 3)
    np.testing.assert_allclose(d.train_images.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(d.train_images.std(axis=(0, 1, 2)), 1, atol=1e-3)
    with pytest.raises(ValueError):
        load_digits(size=30)


def test_augment_is_a_deterministic_translation():
    d = load_digits()
    x = d.train_images[:64]
    a = augment_digits(x, seed=3, offset=10)
    np.testing.assert_array_equal(a, augment_digits(x, seed=3, offset=10))
    np.testing.assert_array_equal(a, DigitsAugment(seed=3)(x, offset=10))
    assert not np.array_equal(a, augment_digits(x, seed=4, offset=10))
    for i in range(len(x)):  # every output is the input shifted by at most 4 pixels
        found = any(
            np.array_equal(
                a[i], np.pad(x[i], ((4, 4), (4, 4), (0, 0)))[4 + dy : 36 + dy, 4 + dx : 36 + dx]
            )
            for dy in range(-4, 5)
            for dx in range(-4, 5)
        )
        assert found
