"""The fused training-view kernel (csrc/augment.cuh), §4.1: random crop + flip + PCA lighting
+ mean subtraction of a uint8 batch, against the NumPy recipe of cuda_convnet/reference/augment.py
(the cpu backend's `train_views`).

Exactness.  The recipe was written so that a kernel can match it bit for bit, and on the
emulator it must: every comparison there is of the float32 bit patterns.  The one
documented exception is the double-precision log/sin/cos of Box-Muller: the GPU's libm and
the CPU's may round differently, and when the double result lies that close to a float32
rounding boundary (~1e-8 per draw) alpha moves by one float32 ulp.  So on cuda an image
passes if it is bit-exact, or bit-exact to the reference recomputed with each of its three
alphas moved by at most one ulp (`assert_views_match`).  (The emulator calls glibc's
log/sin/cos; NumPy 2's AVX-512 log differs from glibc's in the last double bit for ~0.4% of
inputs, which moves a float32 alpha with probability ~1e-9 per draw: the fixed seeds below,
and the 90,000-draw probe, are exact.)
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import simt_build as sb
from kernel_inputs import assert_same_in_every_order, in_every_thread_order, unaligned

import cuda_convnet as ccn
from cuda_convnet.data.augment import KernelTrainAugment, TrainAugment
from cuda_convnet.data.loader import BatchLoader
from cuda_convnet.reference import augment as A

RNG = np.random.default_rng(41)
EIGVALS = np.array([4200.0, 610.0, 95.0])
EIGVECS = np.linalg.qr(RNG.normal(size=(3, 3)))[0]

# (n, h, w, crop): small sizes, odd sizes (rows not whole float4: the scalar path),
# batch 1, a rectangular image, and the paper's 256 -> 224 (28 row chunks per image).
SHAPES = [(1, 40, 40, 32), (3, 40, 40, 32), (4, 37, 37, 29), (2, 37, 45, 29), (2, 256, 256, 224)]
DRAWS = [(0, 0), (2012, 5), (2**64 - 1, 2**64 - 2), (2**40 + 3, 2**32 - 1)]  # (seed, offset); the third wraps


def images(rng, n, h, w):
    """Random uint8 images with no zero byte (never an all-zero image)."""
    return rng.integers(1, 256, (n, h, w, 3), dtype=np.uint8)


def run(dev, imgs, mean, **kw):
    return dev.get(dev.ops.train_views(dev.put(imgs), mean=dev.put(mean), **kw))


def _ulp_neighbours(a):
    return [np.nextafter(a, np.float32(-np.inf)), a, np.nextafter(a, np.float32(np.inf))]


def assert_views_match(dev, got, imgs, *, seed, offset, mean, sigma, P, crop, lighting_std=0.1):
    """Bit-exact on the emulator; on cuda each image bit-exact up to one float32 ulp of
    each alpha (see the module docstring)."""
    want = A.train_views_from_constants(imgs, seed=seed, offset=offset, mean=mean, sigma=sigma, P=P,
                                        crop=crop, lighting_std=lighting_std)
    assert got.dtype == np.float32 and got.shape == want.shape
    if dev.name != "cuda":
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        return
    n, h, w, _ = imgs.shape
    cy, cx, flip, alpha = A.train_view_params(n, seed=seed, offset=offset, size=h, width=w, crop=crop)
    for i in np.flatnonzero((got.view(np.uint32) != want.view(np.uint32)).reshape(n, -1).any(axis=1)):
        for a in itertools.product(*(_ulp_neighbours(alpha[i, k]) for k in range(3))):
            delta = A.lighting_deltas(np.array([a], np.float32), sigma, P, lighting_std)
            alt = A._write_views(imgs[i:i + 1], mean, cy[i:i + 1], cx[i:i + 1], flip[i:i + 1], delta, crop, None)
            if np.array_equal(alt.view(np.uint32), got[i:i + 1].view(np.uint32)):
                break
        else:
            raise AssertionError(f"image {i} differs from the reference by more than one ulp of alpha")


@pytest.mark.parametrize("n,h,w,crop", SHAPES)
def test_train_views_match_the_recipe(kernel_device, n, h, w, crop):
    rng = np.random.default_rng(n * 1000 + h * 10 + crop)
    imgs = images(rng, n, h, w)
    mean = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    # every draw with one (mean?, reading) pair; the first two cover both of each
    cases = [(d, m, scale) for d, (m, scale) in
             zip(DRAWS, [(mean, "stdev"), (None, "eigval01"), (mean, "eigval01"), (None, "stdev")])]
    if h == 256:
        cases = cases[:2]  # the big case: with and without the mean, both pca_scale readings
    for (seed, offset), m, scale in cases:
        sigma, P = A.lighting_constants(EIGVALS, EIGVECS, scale)
        kw = dict(seed=seed, offset=offset, sigma=sigma, P=P, crop=crop)
        got = run(kernel_device, imgs, m, **kw)
        assert_views_match(kernel_device, got, imgs, mean=m, **kw)


def test_kernel_equals_the_data_pipelines_train_views(kernel_device):
    """The kernel op fed lighting_constants() is augment.train_views (eigvals form), for
    both magnitude readings; lighting_std=0 and a large std too."""
    imgs = images(np.random.default_rng(3), 3, 40, 40)
    mean = imgs.mean(0).astype(np.float32)
    for scale, std in (("stdev", 0.1), ("eigval01", 0.1), ("stdev", 0.0), ("eigval01", 7.5)):
        want = A.train_views(imgs, seed=9, offset=100, mean=mean, eigvals=EIGVALS, eigvecs=EIGVECS, crop=32,
                             lighting_std=std, pca_scale=scale)
        sigma, P = A.lighting_constants(EIGVALS, EIGVECS, scale)
        got = run(kernel_device, imgs, mean, seed=9, offset=100, sigma=sigma, P=P, crop=32, lighting_std=std)
        if kernel_device.name != "cuda":
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg=f"{scale} {std}")
        else:
            assert_views_match(kernel_device, got, imgs, seed=9, offset=100, mean=mean, sigma=sigma, P=P, crop=32,
                               lighting_std=std)


@pytest.mark.parametrize("size,crop", [(256, 224), (37, 29)])
def test_crops_and_flips_exact_on_a_coordinate_image(kernel_device, size, crop):
    """R = x, G = y, B = image index; no mean, no lighting: every output pixel names the
    source pixel it came from, so positions and reflections are checked exactly."""
    n = 40 if size == 256 else 200
    y, x = np.mgrid[0:size, 0:size]
    imgs = np.empty((n, size, size, 3), np.uint8)
    imgs[..., 0], imgs[..., 1] = x, y
    imgs[..., 2] = np.arange(n, dtype=np.uint8)[:, None, None]
    sigma, P = A.lighting_constants(EIGVALS, EIGVECS)
    out = run(kernel_device, imgs, None, seed=77, offset=5, sigma=sigma, P=P, crop=crop, lighting_std=0.0)
    cy, cx, flip, _ = A.train_view_params(n, seed=77, offset=5, size=size, crop=crop)
    cols = np.arange(crop)
    sx = cx[:, None] + np.where(flip[:, None], crop - 1 - cols[None, :], cols[None, :])  # (n, crop)
    sy = cy[:, None] + cols[None, :]
    np.testing.assert_array_equal(out[..., 0], np.broadcast_to(sx[:, None, :], (n, crop, crop)))
    np.testing.assert_array_equal(out[..., 1], np.broadcast_to(sy[:, :, None], (n, crop, crop)))
    np.testing.assert_array_equal(out[..., 2], np.broadcast_to(np.arange(n)[:, None, None], (n, crop, crop)))
    assert 0 < flip.sum() < n and len(set(cy)) > 1 and len(set(cx)) > 1  # both branches, several positions


def test_lighting_coefficients_over_many_draws(kernel_device):
    """A probe of alpha alone: 1x1 black images, crop 1, P = I, sigma = 1, lighting_std = 1
    make the output exactly (alpha_0, alpha_1, alpha_2) of each image (0 + (alpha + 0*s) ...
    rounds to alpha). 30,000 images = 90,000 Box-Muller normals."""
    n = 30000
    imgs = np.zeros((n, 1, 1, 3), np.uint8)
    got = run(kernel_device, imgs, None, seed=2**63 + 11, offset=123456789, sigma=np.ones(3, np.float32),
              P=np.eye(3, dtype=np.float32), crop=1, lighting_std=1.0)[:, 0, 0, :]
    _, _, _, alpha = A.train_view_params(n, seed=2**63 + 11, offset=123456789, size=1, crop=1)
    bits, want = got.view(np.int32), alpha.view(np.int32)
    if kernel_device.name != "cuda":
        np.testing.assert_array_equal(bits, want)
    else:  # libm: at most one ulp, and rarely (expected ~1e-3 of the 90,000 draws, allow 10)
        diff = np.abs(bits.astype(np.int64) - want)
        assert diff.max() <= 1 and np.count_nonzero(diff) <= 10, np.count_nonzero(diff)


def test_batch_is_offset_plus_index(kernel_device):
    """Image i of a batch at offset o is image 0 of a batch at offset o + i: a batch can be
    split anywhere (the loader's threads, two towers' halves) without changing a view."""
    imgs = images(np.random.default_rng(5), 5, 40, 40)
    sigma, P = A.lighting_constants(EIGVALS, EIGVECS)
    kw = dict(mean=None, seed=3, sigma=sigma, P=P, crop=32)
    whole = run(kernel_device, imgs, offset=10, **kw)
    for i in range(5):
        np.testing.assert_array_equal(run(kernel_device, imgs[i:i + 1], offset=10 + i, **kw), whole[i:i + 1])


def test_empty_batch(kernel_device):
    sigma, P = A.lighting_constants(EIGVALS, EIGVECS)
    out = run(kernel_device, np.zeros((0, 40, 40, 3), np.uint8), None, seed=1, offset=0, sigma=sigma, P=P, crop=32)
    assert out.shape == (0, 32, 32, 3) and out.dtype == np.float32


@pytest.mark.emu
def test_unaligned_images_pointer():
    """A uint8 batch that starts off a word boundary: every staged row has edge words."""
    emu = ccn.backend("emu")
    imgs = unaligned(images(np.random.default_rng(8), 3, 37, 37))
    mean = np.random.default_rng(9).uniform(0, 255, (37, 37, 3)).astype(np.float32)
    sigma, P = A.lighting_constants(EIGVALS, EIGVECS)
    for crop in (29, 32):
        kw = dict(seed=4, offset=1, mean=mean, sigma=sigma, P=P, crop=crop)
        np.testing.assert_array_equal(emu.train_views(imgs, **kw).view(np.uint32),
                                      A.train_views_from_constants(imgs, **kw).view(np.uint32))


@pytest.mark.emu
def test_identical_in_every_thread_order(monkeypatch):
    emu = ccn.backend("emu")
    rng = np.random.default_rng(12)
    sigma, P = A.lighting_constants(EIGVALS, EIGVECS)
    cases = [(images(rng, 2, 40, 40), 32), (images(rng, 2, 37, 37), 29), (images(rng, 1, 256, 256), 224)]
    results = in_every_thread_order(monkeypatch, lambda: [
        emu.train_views(imgs, seed=6, offset=2, mean=imgs[0].astype(np.float32), sigma=sigma, P=P, crop=crop)
        for imgs, crop in cases])
    assert_same_in_every_order(results)
    for (imgs, crop), got in zip(cases, results["forward"]):
        want = A.train_views_from_constants(imgs, seed=6, offset=2, mean=imgs[0].astype(np.float32), sigma=sigma,
                                            P=P, crop=crop)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


# ------------------------------------------------------------------ barriers (SIMT emulator)

ORDERS = ("forward", "reverse", "shuffle:1")
DRIVER = sb.SIMT_DIR / "augment_driver.cpp"
needs_gxx = pytest.mark.skipif(sb.compiler() is None, reason="needs g++")


@needs_gxx
def test_driver_passes_in_every_order(tmp_path):
    exe = sb.build([DRIVER], tmp_path)
    for order in ORDERS:
        r = sb.run(exe, order)
        assert r.returncode == 0, f"{order}: {r.stdout}{r.stderr}"
        assert r.stdout.count("match") == 5 and "MISMATCH" not in r.stdout, r.stdout


@needs_gxx
def test_removing_either_syncthreads_is_caught(tmp_path):
    """Delete each __syncthreads of augment.cuh in turn: every mutant must fail in at least
    one thread order. Without the first, a thread reads the per-image crop position before
    thread 0 wrote it (NaN-poisoned shared memory: a wild read, the driver crashes); without
    the second, it reads staged bytes and delta before they were written (wrong values)."""
    source = (sb.CSRC / "augment.cuh").read_text()
    lines = source.splitlines()
    sites = [i for i, line in enumerate(lines) if re.search(r"\b__syncthreads\(\)\s*;", line)]
    assert len(sites) == 2, "one barrier after the per-image geometry, one after the staged rows"
    for site in sites:
        mutant_dir = tmp_path / f"mutant_{site}"
        mutant_dir.mkdir()
        mutated = list(lines)
        mutated[site] = re.sub(r"__syncthreads\(\)\s*;", ";", mutated[site])
        (mutant_dir / "augment.cuh").write_text("\n".join(mutated) + "\n")
        exe = sb.build([DRIVER], mutant_dir, include_first=mutant_dir)
        caught = [o for o in ORDERS if sb.run(exe, o).returncode != 0]
        assert caught, f"removing the __syncthreads on line {site + 1} of augment.cuh went unnoticed"


@needs_gxx
def test_asan_build_sees_no_out_of_bounds_read_and_would(tmp_path):
    """The staged rows start at any byte: edge words are assembled from single bytes so no
    read leaves the row. Under AddressSanitizer the driver (whose uint8 batch ends exactly
    at its allocation, the last row of a full-image crop included) is clean, and a planted
    mutant that loads every word whole is reported."""
    env = {"ASAN_OPTIONS": "detect_leaks=0"}
    try:
        exe = sb.build([DRIVER], tmp_path, sanitize=True)
    except RuntimeError as e:  # pragma: no cover - a compiler without libasan
        pytest.skip(f"no AddressSanitizer runtime: {e}")
    r = sb.run(exe, "shuffle:3", env=env)
    assert r.returncode == 0 and "AddressSanitizer" not in r.stderr, r.stdout + r.stderr[-2000:]
    source = (sb.CSRC / "augment.cuh").read_text()
    planted = source.replace("if (lo >= 0 && lo + 4 <= row_elems) {", "if (true) {")
    assert planted != source
    mutant_dir = tmp_path / "whole_words"
    mutant_dir.mkdir()
    (mutant_dir / "augment.cuh").write_text(planted)
    r = sb.run(sb.build([DRIVER], mutant_dir, include_first=mutant_dir, sanitize=True), env=env)
    assert r.returncode != 0 and "heap-buffer-overflow" in r.stderr, r.stderr[-2000:]


# ------------------------------------------------------------------ bad input

def test_rejects_bad_input(kernel_device):
    ops, put = kernel_device.ops, kernel_device.put
    sigma, P = A.lighting_constants(EIGVALS, EIGVECS)
    imgs = put(np.ones((2, 40, 40, 3), np.uint8))
    kw = dict(seed=1, offset=0, mean=None, sigma=sigma, P=P, crop=32)
    with pytest.raises(TypeError, match="images must be uint8, got float32"):
        ops.train_views(put(np.ones((2, 40, 40, 3), np.float32)), **kw)
    with pytest.raises(ValueError, match=r"images must be 4-D \(N, H, W, 3\), got 3-D"):
        ops.train_views(put(np.ones((40, 40, 3), np.uint8)), **kw)
    with pytest.raises(ValueError, match="3 channels"):
        ops.train_views(put(np.ones((2, 40, 40, 4), np.uint8)), **kw)
    with pytest.raises(ValueError, match="crop 41 is larger than the 40x40 images"):
        ops.train_views(imgs, **dict(kw, crop=41))
    with pytest.raises(ValueError, match="crop must be >= 1"):
        ops.train_views(imgs, **dict(kw, crop=0))
    with pytest.raises(ValueError, match=r"mean must have shape \(40, 40, 3\)"):
        ops.train_views(imgs, **dict(kw, mean=put(np.zeros((32, 32, 3), np.float32))))
    with pytest.raises(TypeError, match="mean must be float32, got float64"):
        ops.train_views(imgs, **dict(kw, mean=put(np.zeros((40, 40, 3)))))
    with pytest.raises(ValueError, match=r"sigma must have shape \(3\)"):
        ops.train_views(imgs, **dict(kw, sigma=np.ones(4, np.float32)))
    with pytest.raises(TypeError, match="P must be float32"):
        ops.train_views(imgs, **dict(kw, P=np.eye(3)))
    with pytest.raises(ValueError, match="seed must be <= "):
        ops.train_views(imgs, **dict(kw, seed=2**64))
    with pytest.raises(ValueError, match="offset must be >= 0"):
        ops.train_views(imgs, **dict(kw, offset=-1))
    with pytest.raises(ValueError, match="lighting_std must be >= 0"):
        ops.train_views(imgs, **dict(kw, lighting_std=-0.1))
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.train_views(put(np.ones((2, 40, 80, 3), np.uint8))[:, :, ::2], **kw)


def test_cpu_backend_has_the_same_op_and_checks(cpu):
    sigma, P = A.lighting_constants(EIGVALS, EIGVECS)
    imgs = images(np.random.default_rng(1), 2, 40, 40)
    np.testing.assert_array_equal(
        cpu.train_views(imgs, seed=1, offset=0, mean=None, sigma=sigma, P=P, crop=32),
        A.train_views(imgs, seed=1, offset=0, mean=None, eigvals=EIGVALS, eigvecs=EIGVECS, crop=32))
    with pytest.raises(TypeError, match="images must be uint8"):
        cpu.train_views(imgs.astype(np.float32), seed=1, offset=0, mean=None, sigma=sigma, P=P, crop=32)


@pytest.mark.emu
def test_launcher_checks_its_own_preconditions():
    """Called directly (no Python checks), the launcher refuses what would read out of bounds."""
    ext = ccn.backend("emu").ext
    buf = np.zeros((1, 8, 8, 3), np.uint8)
    out = np.zeros((1, 8, 8, 3), np.float32)

    def call(**kw):
        args = dict(images=buf.ctypes.data, mean=0, out=out.ctypes.data, n=1, h=8, w=8, crop=8, seed=0, offset=0,
                    sigma=[1.0] * 3, P=[1.0] * 9, lighting_std=0.1)
        ext.train_views(**{**args, **kw})

    call()
    with pytest.raises(ValueError, match=r"crop must be in \[1, min\(h, w\)\], got 9 for 8x8"):
        call(crop=9)
    with pytest.raises(ValueError, match="n must be >= 0"):
        call(n=-1)
    with pytest.raises(ValueError, match="null pointer"):
        call(images=0)


# ------------------------------------------------------------------ the loader path

def test_kernel_train_augment_in_the_loader(kernel_device):
    """BatchLoader with KernelTrainAugment gives TrainAugment's batches (the last one short)."""
    rng = np.random.default_rng(21)
    x = images(rng, 10, 40, 40)
    y = np.arange(10)
    mean = x.mean(0).astype(np.float32)
    stats = dict(seed=13, mean=mean, eigvals=EIGVALS, eigvecs=EIGVECS, crop=32)
    kernel_aug = KernelTrainAugment(backend=kernel_device.name, **stats)
    numpy_aug = TrainAugment(**stats)
    with BatchLoader((x, y), 4, shuffle=True, seed=2, augment=kernel_aug) as kl, \
            BatchLoader((x, y), 4, shuffle=True, seed=2, augment=numpy_aug) as nl:
        for _epoch in range(2):
            batches = 0
            for (kx, ky), (nx, ny) in zip(kl, nl):
                np.testing.assert_array_equal(ky, ny)
                assert kernel_device.name != "cuda" or type(kx).__module__.startswith("cupy")
                kx = kernel_device.get(kx)
                if kernel_device.name != "cuda":
                    np.testing.assert_array_equal(kx.view(np.uint32), nx.view(np.uint32))
                else:  # bit-exact but for a rare ulp of alpha (its effect: a few ulps of ~255)
                    np.testing.assert_allclose(kx, nx, rtol=0, atol=1e-4)
                    assert (kx != nx).reshape(len(kx), -1).any(axis=1).sum() <= 1
                batches += 1
            assert batches == 3


def test_kernel_train_augment_with_loader_threads(kernel_device):
    """threads > 1 leaves a one-launch augment whole (whole_batch): the same batches as
    threads=1, no host concatenation of device arrays; `stream` names where they are made."""
    rng = np.random.default_rng(22)
    x = images(rng, 9, 36, 36)
    stats = dict(seed=5, mean=x.mean(0).astype(np.float32), eigvals=EIGVALS, eigvecs=EIGVECS, crop=32)
    aug = KernelTrainAugment(backend=kernel_device.name, **stats)
    assert (aug.stream is None) == (kernel_device.name == "emu")
    with BatchLoader((x, np.arange(9)), 4, shuffle=True, seed=3, augment=aug, threads=3) as threaded, \
            BatchLoader((x, np.arange(9)), 4, shuffle=True, seed=3, augment=aug) as single:
        pairs = list(zip(threaded, single))
    assert len(pairs) == 3
    for (tx, ty), (sx, sy) in pairs:
        np.testing.assert_array_equal(ty, sy)
        np.testing.assert_array_equal(kernel_device.get(tx), kernel_device.get(sx))


@pytest.mark.emu
def test_kernel_train_augment_rejects_cpu_and_non_uint8():
    with pytest.raises(ValueError, match="'emu' or 'cuda'"):
        KernelTrainAugment(backend="cpu", seed=1, mean=None, eigvals=EIGVALS, eigvecs=EIGVECS)
    aug = KernelTrainAugment(backend="emu", seed=1, mean=None, eigvals=EIGVALS, eigvecs=EIGVECS, crop=8)
    with pytest.raises(TypeError, match="uint8"):
        aug(np.zeros((1, 8, 8, 3), np.float32), offset=0)
