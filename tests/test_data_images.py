"""§2 geometry (shorter side 256, central 256x256) and colour-mode handling of one file."""

import numpy as np
import pytest
from PIL import Image

from cuda_convnet.data.images import center_square_box, load_fixed_size


def _coords_image(width, height, sx=4.0, sy=4.0):
    """R = x / sx, G = y / sy, B = 7: pixel values that encode their coordinates."""
    y, x = np.mgrid[0:height, 0:width]
    a = np.stack([x / sx, y / sy, np.full_like(x, 7.0, dtype=float)], axis=-1)
    return np.round(a).astype(np.uint8)


def test_no_rescale_is_an_exact_centre_crop(tmp_path):
    # Shorter side already 256: the result must be the exact central window, bit for bit.
    y, x = np.mgrid[0:256, 0:456]
    a = np.stack([x % 256, y, x // 256], axis=-1).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "wide.png")
    out = load_fixed_size(tmp_path / "wide.png")
    np.testing.assert_array_equal(out, a[:, 100:356])
    Image.fromarray(a.transpose(1, 0, 2).copy()).save(tmp_path / "tall.png")
    out = load_fixed_size(tmp_path / "tall.png")
    np.testing.assert_array_equal(out, a.transpose(1, 0, 2)[100:356, :])


@pytest.mark.parametrize("width,height", [(912, 512), (512, 912), (701, 350), (333, 517)])
def test_rescale_then_centre_geometry(tmp_path, width, height):
    # Lines whose positions are known in the source must land where "rescale by
    # 256/short, then take the central 256x256" puts them.  A source point u (pixel k
    # spans [k, k+1)) maps to output pixel coordinate (u - x0) * 256 / short - 0.5, with
    # x0 the left edge of the central short x short square.  The line centroids are
    # sub-pixel accurate (the filter is symmetric), so a half-source-pixel error in the
    # crop origin (>= 0.25 output px here) is far outside the tolerance.
    short = min(width, height)
    x0, y0 = (width - short) / 2, (height - short) / 2
    a = np.zeros((height, width, 3), np.uint8)
    xs = [int(x0 + f * short) for f in (0.1, 0.37, 0.5, 0.81)]
    ys = [int(y0 + f * short) for f in (0.15, 0.42, 0.77)]
    for x in xs:
        a[:, x : x + 2, 0] = 255  # red vertical lines, 2 px wide: centre x + 1
    for y in ys:
        a[y : y + 2, :, 1] = 255  # green horizontal lines
    Image.fromarray(a).save(tmp_path / "lines.png")
    out = load_fixed_size(tmp_path / "lines.png").astype(np.float64)
    assert out.shape == (256, 256, 3)
    scale = 256 / short
    red = out[20:236, :, 0].mean(axis=0)  # profile across x, rows away from green lines' effect
    green = out[:, 20:236, 1].mean(axis=1)
    for profile, positions, origin in ((red, xs, x0), (green, ys, y0)):
        for p in positions:
            want = (p + 1 - origin) * scale - 0.5
            lo, hi = int(np.floor(want)) - 4, int(np.ceil(want)) + 5
            w = profile[max(lo, 0) : hi]
            got = (np.arange(max(lo, 0), hi) * w).sum() / w.sum()
            assert got == pytest.approx(want, abs=0.1), (p, want, got)


def test_center_square_box():
    assert center_square_box(400, 300) == (50.0, 0.0, 350.0, 300.0)
    assert center_square_box(300, 401) == (0.0, 50.5, 300.0, 350.5)


def test_small_image_is_upscaled(tmp_path):
    Image.fromarray(_coords_image(100, 80, 1, 1)).save(tmp_path / "s.png")
    assert load_fixed_size(tmp_path / "s.png").shape == (256, 256, 3)


def test_colour_modes(tmp_path):
    gray = Image.fromarray(np.full((300, 320), 90, np.uint8), mode="L")
    gray.save(tmp_path / "g.jpg")
    out = load_fixed_size(tmp_path / "g.jpg")
    assert np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2])
    assert abs(int(out[100, 100, 0]) - 90) <= 2

    Image.new("CMYK", (300, 280), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")  # no ink: white
    assert np.all(load_fixed_size(tmp_path / "cmyk.jpg") >= 250)
    Image.new("CMYK", (300, 280), (255, 0, 0, 0)).save(tmp_path / "cyan.jpg")  # cyan ink
    r, g, b = load_fixed_size(tmp_path / "cyan.jpg")[128, 128].astype(int)
    assert r < 40 and g > 215 and b > 215

    rgba = np.zeros((300, 300, 4), np.uint8)
    rgba[:, :150] = (200, 10, 10, 255)  # opaque red left half, transparent right half
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = load_fixed_size(tmp_path / "a.png")
    np.testing.assert_array_equal(out[128, 10], (200, 10, 10))
    np.testing.assert_array_equal(out[128, 250], (255, 255, 255))  # composited over white

    pal = Image.fromarray(np.full((270, 300, 3), (10, 120, 230), np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE
    )
    pal.save(tmp_path / "p.png")
    np.testing.assert_allclose(
        load_fixed_size(tmp_path / "p.png")[128, 128], (10, 120, 230), atol=2
    )

    g16 = Image.fromarray(np.full((260, 260), 65535, np.uint16))
    g16.save(tmp_path / "g16.png")
    assert np.all(load_fixed_size(tmp_path / "g16.png") == 255)


def test_png_named_jpeg_and_corrupt_files(tmp_path):
    a = _coords_image(300, 300, 2, 2)
    Image.fromarray(a).save(tmp_path / "x.JPEG", format="PNG")
    assert load_fixed_size(tmp_path / "x.JPEG").shape == (256, 256, 3)

    Image.fromarray(a).save(tmp_path / "t.jpg", quality=90)
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError):
        load_fixed_size(tmp_path / "t.jpg")
    (tmp_path / "z.jpg").write_bytes(b"")
    with pytest.raises(OSError):  # PIL.UnidentifiedImageError
        load_fixed_size(tmp_path / "z.jpg")
    (tmp_path / "n.jpg").write_bytes(b"not an image at all" * 10)
    with pytest.raises(OSError):
        load_fixed_size(tmp_path / "n.jpg")


def _quadrants(width, height):
    """Four flat colours, one per quadrant: red top-left, green top-right, blue
    bottom-left, white bottom-right (easy to locate after a rotation, even in a JPEG)."""
    a = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    a[:h, :w] = (255, 0, 0)
    a[:h, w:] = (0, 255, 0)
    a[h:, :w] = (0, 0, 255)
    a[h:, w:] = (255, 255, 255)
    return a


@pytest.mark.parametrize("orientation,turn", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    """A JPEG stored sideways with an EXIF Orientation tag comes out as a viewer shows it:
    tag 6 = turn 90 degrees clockwise, 8 = counter-clockwise, 3 = 180 degrees."""
    stored = _quadrants(120, 80)  # stored wide; tags 6 and 8 display it tall
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "phone.jpg", quality=95, exif=exif)
    Image.fromarray(stored).save(tmp_path / "plain.jpg", quality=95)
    upright = np.rot90(stored, k=turn)  # np.rot90 turns counter-clockwise for k > 0
    Image.fromarray(np.ascontiguousarray(upright)).save(tmp_path / "upright.png")

    out = load_fixed_size(tmp_path / "phone.jpg", 64).astype(int)
    want = load_fixed_size(tmp_path / "upright.png", 64).astype(int)
    # Corners, away from the quadrant edges (JPEG blurs those): the rotated colours.
    for y, x in ((8, 8), (8, 55), (55, 8), (55, 55)):
        np.testing.assert_allclose(out[y, x], want[y, x], atol=24, err_msg=f"pixel {(y, x)}")
    assert np.mean(np.abs(out - want)) < 6
    # ... and not what the pixels as stored would give.
    as_stored = load_fixed_size(tmp_path / "plain.jpg", 64).astype(int)
    assert np.mean(np.abs(out - as_stored)) > 60
