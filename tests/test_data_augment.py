"""§4.1 training views (crop, flip, PCA lighting, mean) and the ten test views.

The first test re-implements the Philox recipe of augment.py's docstring one scalar at
a time (Python floats and libm, index arithmetic instead of slicing) and requires
bit-equality: it is the contract the fused CUDA kernel will be held to.
"""

import math

import numpy as np
import pytest

from cuda_convnet.data.augment import TrainAugment
from cuda_convnet.data.views import VIEW_NAMES, ten_crop_offsets
from cuda_convnet.data.views import test_views as make_test_views
from cuda_convnet.random import philox4x32
from cuda_convnet.reference.augment import (
    AUGMENT_TAG,
    lighting_constants,
    lighting_deltas,
    train_view_params,
    train_views,
)

RNG = np.random.default_rng(7)
EIGVALS = np.array([4200.0, 610.0, 95.0])
EIGVECS = np.linalg.qr(RNG.normal(size=(3, 3)))[0]


def _coords(size=256):
    """R = x, G = y, B = 0 (exact in uint8 for size <= 256)."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8)


def _scalar_recipe(images, seed, offset, mean, eigvals, eigvecs, crop, lighting_std):
    """The module docstring's recipe, written out independently, one image at a time."""
    f32 = np.float32
    n, h, w, _ = images.shape
    sigma = [f32(math.sqrt(float(v))) for v in eigvals]
    P = [[f32(eigvecs[r][c]) for c in range(3)] for r in range(3)]
    out = np.empty((n, crop, crop, 3), np.float32)
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], np.uint32)
    for i in range(n):
        g = (offset + i) % 2**64
        r0 = philox4x32(np.array([g & 0xFFFFFFFF, g >> 32, 0, AUGMENT_TAG], np.uint32), key)
        r1 = philox4x32(np.array([g & 0xFFFFFFFF, g >> 32, 1, AUGMENT_TAG], np.uint32), key)
        cy = int(r0[0]) % (h - crop + 1)
        cx = int(r0[1]) % (w - crop + 1)
        flip = int(r0[2]) >> 31
        u = [((int(r1[k]) >> 8) + 0.5) * 2.0**-24 for k in range(4)]
        ra, rb = math.sqrt(-2.0 * math.log(u[0])), math.sqrt(-2.0 * math.log(u[2]))
        ta, tb = 6.283185307179586 * u[1], 6.283185307179586 * u[3]
        z = [ra * math.cos(ta), ra * math.sin(ta), rb * math.cos(tb)]
        s = [f32(f32(z[k]) * f32(lighting_std)) * sigma[k] for k in range(3)]
        delta = [
            f32(f32(P[c][0] * s[0]) + f32(P[c][1] * s[1])) + f32(P[c][2] * s[2]) for c in range(3)
        ]
        ys = cy + np.arange(crop)
        xs = cx + (crop - 1 - np.arange(crop) if flip else np.arange(crop))
        src = images[i][ys[:, None], xs[None, :]].astype(np.float32)
        m = mean[ys[:, None], xs[None, :]]
        out[i] = (src - m) + np.array(delta, np.float32)
    return out


@pytest.mark.parametrize(
    "size,crop,seed,offset", [(40, 32, 5, 0), (256, 224, 2**40 + 3, 2**64 - 2)]
)
def test_train_views_match_the_recipe_bit_for_bit(size, crop, seed, offset):
    n = 6
    imgs = RNG.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    mean = RNG.uniform(0, 255, (size, size, 3)).astype(np.float32)
    got = train_views(
        imgs, seed=seed, offset=offset, mean=mean, eigvals=EIGVALS, eigvecs=EIGVECS, crop=crop
    )
    want = _scalar_recipe(imgs, seed, offset, mean, EIGVALS, EIGVECS, crop, 0.1)
    assert got.dtype == np.float32 and got.shape == (n, crop, crop, 3)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_reproducible_and_seed_dependent():
    imgs = RNG.integers(0, 256, (8, 256, 256, 3), dtype=np.uint8)
    kw = dict(mean=imgs.mean(0).astype(np.float32), eigvals=EIGVALS, eigvecs=EIGVECS)
    a = train_views(imgs, seed=1, offset=100, **kw)
    np.testing.assert_array_equal(a, train_views(imgs, seed=1, offset=100, **kw))
    assert not np.array_equal(a, train_views(imgs, seed=2, offset=100, **kw))
    assert not np.array_equal(a, train_views(imgs, seed=1, offset=108, **kw))
    # Only offset + index matters: a batch split in two gives the same views.
    np.testing.assert_array_equal(a[3:], train_views(imgs[3:], seed=1, offset=103, **kw))


def test_crops_flips_within_bounds_on_coordinate_image():
    n = 300
    imgs = np.broadcast_to(_coords(), (n, 256, 256, 3))
    out = train_views(
        imgs, seed=3, offset=0, mean=None, eigvals=EIGVALS, eigvecs=EIGVECS, lighting_std=0.0
    )
    cy, cx, flip, _ = train_view_params(n, seed=3, offset=0)
    x_first, x_last, y_first = out[:, 0, 0, 0], out[:, 0, -1, 0], out[:, 0, 0, 1]
    np.testing.assert_array_equal(y_first, cy)
    np.testing.assert_array_equal(np.where(flip, x_last, x_first), cx)
    np.testing.assert_array_equal(np.where(flip, x_first, x_last), cx + 223)
    assert out.min() >= 0 and out[..., :2].max() <= 255
    np.testing.assert_array_equal(
        out[:, :, :, 1],
        np.broadcast_to(cy[:, None, None] + np.arange(224)[None, :, None], (n, 224, 224)),
    )


def test_position_and_flip_statistics():
    n = 40000
    cy, cx, flip, alpha = train_view_params(n, seed=11, offset=12345)
    assert abs(flip.mean() - 0.5) < 0.015  # 4 sigma of Binomial(40000, 0.5) is 0.01
    for c in (cy, cx):
        counts = np.bincount(c, minlength=33)
        assert c.min() == 0 and c.max() == 32 and len(counts) == 33
        expected = n / 33
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < 80  # 32 dof: mean 32, sd 8
    assert abs(np.corrcoef(cy, cx)[0, 1]) < 0.03


def test_lighting_noise_statistics():
    n = 40000
    _, _, _, alpha = train_view_params(n, seed=5, offset=0)
    assert alpha.dtype == np.float32
    np.testing.assert_allclose(alpha.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(alpha.std(0), 1, atol=0.03)
    np.testing.assert_allclose(np.corrcoef(alpha.T), np.eye(3), atol=0.03)
    sigma, P = lighting_constants(EIGVALS, EIGVECS)
    delta = lighting_deltas(alpha, sigma, P, 0.1).astype(np.float64)
    # "stdev" magnitudes: the noise covariance is 0.01 x the pixel covariance P diag(l) P^T.
    want = 0.01 * EIGVECS @ np.diag(EIGVALS) @ EIGVECS.T
    np.testing.assert_allclose(np.cov(delta.T), want, atol=0.05 * EIGVALS[0] * 0.01)
    sigma01, _ = lighting_constants(EIGVALS, EIGVECS, "eigval01")
    np.testing.assert_allclose(sigma01, EIGVALS / 255.0, rtol=1e-6)


def test_lighting_adds_one_colour_to_every_pixel():
    img = np.full((3, 256, 256, 3), (10, 128, 240), np.uint8)
    out = train_views(
        img,
        seed=9,
        offset=0,
        mean=np.zeros((256, 256, 3), np.float32),
        eigvals=EIGVALS,
        eigvecs=EIGVECS,
    )
    for i in range(3):
        d = out[i] - np.array((10, 128, 240), np.float32)
        assert np.all(d == d[0, 0])
        assert np.any(d[0, 0] != 0)


def test_mean_is_aligned_with_the_crop_and_flip():
    img = RNG.integers(0, 256, (64, 256, 256, 3), dtype=np.uint8)
    same = RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    imgs = np.broadcast_to(same, img.shape)
    out = train_views(
        imgs,
        seed=4,
        offset=0,
        mean=same.astype(np.float32),
        eigvals=EIGVALS,
        eigvecs=EIGVECS,
        lighting_std=0.0,
    )
    assert np.all(out == 0)  # subtracting the image itself at the same window and flip


def test_validation():
    ok = np.zeros((1, 256, 256, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        train_views(
            ok.astype(np.float32), seed=0, offset=0, mean=None, eigvals=EIGVALS, eigvecs=EIGVECS
        )
    with pytest.raises(ValueError, match="smaller than"):
        train_views(ok, seed=0, offset=0, mean=None, eigvals=EIGVALS, eigvecs=EIGVECS, crop=300)
    with pytest.raises(ValueError, match="pca_scale"):
        train_views(
            ok, seed=0, offset=0, mean=None, eigvals=EIGVALS, eigvecs=EIGVECS, pca_scale="x"
        )
    with pytest.raises(ValueError, match="mean image"):
        train_views(
            ok, seed=0, offset=0, mean=np.zeros((224, 224, 3)), eigvals=EIGVALS, eigvecs=EIGVECS
        )
    with pytest.raises(ValueError, match="seed"):
        train_views(ok, seed=-1, offset=0, mean=None, eigvals=EIGVALS, eigvecs=EIGVECS)


def test_ten_crop_geometry_on_coordinate_image():
    assert ten_crop_offsets(256, 224) == [
        (0, 0, False),
        (0, 32, False),
        (32, 0, False),
        (32, 32, False),
        (16, 16, False),
        (0, 0, True),
        (0, 32, True),
        (32, 0, True),
        (32, 32, True),
        (16, 16, True),
    ]
    img = _coords()[None]
    views = make_test_views(img, None)
    assert (
        views.shape == (10, 1, 224, 224, 3) and views.dtype == np.float32 and len(VIEW_NAMES) == 10
    )
    corners = {
        "top-left": (0, 0),
        "top-right": (0, 32),
        "bottom-left": (32, 0),
        "bottom-right": (32, 32),
        "centre": (16, 16),
    }
    for k, name in enumerate(VIEW_NAMES):
        v = views[k, 0]
        top, left = corners[name.replace(" flipped", "")]
        flipped = name.endswith("flipped")
        assert v[0, 0, 1] == top and v[-1, 0, 1] == top + 223
        assert v[0, 0, 0] == (left + 223 if flipped else left)
        assert v[0, -1, 0] == (left if flipped else left + 223)
    centre = make_test_views(img, None, ten_crop=False)
    np.testing.assert_array_equal(centre, views[4])


def test_test_views_subtract_the_aligned_mean():
    imgs = RNG.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    mean = RNG.uniform(0, 255, (256, 256, 3)).astype(np.float32)
    views = make_test_views(imgs, mean)
    full = imgs.astype(np.float32) - mean  # subtract first, then crop / flip
    for k, (t, left, f) in enumerate(ten_crop_offsets()):
        want = full[:, t : t + 224, left : left + 224]
        np.testing.assert_array_equal(views[k], want[:, :, ::-1] if f else want)


def test_train_augment_callable():
    imgs = RNG.integers(0, 256, (4, 256, 256, 3), dtype=np.uint8)
    mean = imgs.mean(0).astype(np.float32)
    aug = TrainAugment(seed=3, mean=mean, eigvals=EIGVALS, eigvecs=EIGVECS)
    np.testing.assert_array_equal(
        aug(imgs, offset=7),
        train_views(imgs, seed=3, offset=7, mean=mean, eigvals=EIGVALS, eigvecs=EIGVECS),
    )
    assert aug.output_shape(4) == (4, 224, 224, 3)
