import errno
import os
import signal
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from PIL import Image

from stages.common.io import (InputError, OutputError, atomic_path, jpeg_roundtrip, list_images, load_mask, read_image,
                              write_json)

BIG = 10**8


def leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    write_json(target, {"of1": 0.5})
    assert target.read_text().strip().endswith("}")
    assert leftovers(target.parent) == []


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_sigkill_mid_write_leaves_no_partial_destination(tmp_path):
    target = tmp_path / "model.pt"
    script = textwrap.dedent(f"""
        import sys, time
        from stages.common.io import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"x" * 1000)
                f.flush()
                print("writing", flush=True)
                time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not target.exists()


@pytest.mark.parametrize("err, words", [(errno.ENOSPC, "the disk is full"), (errno.EACCES, "permission denied")])
def test_disk_full_and_permission_errors_name_the_path(tmp_path, monkeypatch, err, words):
    def refuse(src, dst):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, "replace", refuse)
    target = tmp_path / "reports" / "metrics.json"
    with pytest.raises(OutputError, match=f"cannot write {target}: {words}"):
        write_json(target, {})
    assert leftovers(target.parent) == []


def test_output_under_a_file_names_the_path(tmp_path):
    (tmp_path / "reports").write_text("a file, not a folder")
    with pytest.raises(OutputError, match="cannot write .*reports/metrics.json"):
        write_json(tmp_path / "reports" / "metrics.json", {})


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "1"])
def test_every_colour_mode_reads_as_rgb8(tmp_path, mode):
    path = tmp_path / f"im_{mode.replace(';', '')}.png"
    if mode == "I;16":
        Image.fromarray(np.full((7, 9), 40000, np.uint16)).save(path)
    else:
        Image.new(mode, (9, 7)).save(path)
    image = read_image(path, BIG)
    assert image.shape == (7, 9, 3) and image.dtype == np.uint8
    if mode == "I;16":
        assert image[0, 0, 0] == round(40000 / 65535 * 255)


def test_pixel_limit_is_a_clear_error(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (300, 200)).save(path)
    with pytest.raises(InputError, match="exceeds data.max_image_pixels") as info:
        read_image(path, max_pixels=300 * 200 - 1)
    assert info.value.code == "too_large"


def save_tiff_pages(path, pages):
    first, *rest = [Image.fromarray(page) for page in pages]
    first.save(path, save_all=True, append_images=rest)


def test_each_page_of_a_multi_page_tiff_reads_on_its_own(tmp_path):
    path = tmp_path / "figure.tif"
    save_tiff_pages(path, [np.full((8, 10, 3), 50, np.uint8), np.full((12, 6, 3), 200, np.uint8)])
    second = read_image(path, BIG, page=2)
    assert second.shape == (12, 6, 3) and (second == 200).all()
    with pytest.raises(InputError, match="figure.tif: a TIFF of 2 pages") as info:
        read_image(path, BIG)  # its first page alone would leave the second unscreened without a word
    assert info.value.code == "multi_page"
    with pytest.raises(InputError, match="figure.tif page 3: the file has 2 page"):
        read_image(path, BIG, page=3)


def test_an_image_is_opened_once_to_check_and_decode_it(tmp_path, monkeypatch):
    path = tmp_path / "figure.tif"
    save_tiff_pages(path, [np.full((8, 10, 3), 50, np.uint8), np.full((12, 6, 3), 200, np.uint8)])
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: opened.append(args[0]) or real_open(*args, **kwargs))
    assert read_image(path, BIG, page=2).shape == (12, 6, 3)
    assert opened == [path]


def test_hidden_files_are_not_listed(tmp_path):
    Image.new("RGB", (9, 7)).save(tmp_path / "fig1.png")
    (tmp_path / "._fig1.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS's resource fork on a shared drive
    assert [p.name for p in list_images(tmp_path)] == ["fig1.png"]


@pytest.mark.parametrize("shape, expected", [((5, 6), (1, 5, 6)), ((5, 6, 2), (2, 5, 6)), ((2, 5, 6), (2, 5, 6))])
def test_mask_layouts_normalise_to_channels_first(tmp_path, shape, expected):
    mask = np.zeros(shape, np.uint8)
    mask.flat[7] = 1
    np.save(tmp_path / "m.npy", mask)
    assert load_mask(tmp_path / "m.npy", (5, 6)).shape == expected


def test_pickled_mask_is_refused_without_running_it(tmp_path):
    np.save(tmp_path / "m.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError) as info:
        load_mask(tmp_path / "m.npy", (5, 6))
    assert info.value.code == "mask_unreadable"


@pytest.mark.parametrize("quality", [50, 75, 90, 100])
def test_jpeg_roundtrip_degrades_as_opencvs_codec_does(quality):
    """Synthetic figures, benchmarks and tests all recompress through jpeg_roundtrip; it must give
    the pixels OpenCV's codec gives, grey and colour, and keep the shape and dtype."""
    rng = np.random.default_rng(quality)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), (3, 3), 0)
    grey = np.ascontiguousarray(rgb[:, :, 1])
    for pixels, to_bgr in ((rgb, lambda a: a[:, :, ::-1]), (grey, lambda a: a)):
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(to_bgr(pixels)), [cv2.IMWRITE_JPEG_QUALITY, quality])
        expected = to_bgr(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED))
        decoded = jpeg_roundtrip(pixels, quality)
        assert decoded.shape == pixels.shape and decoded.dtype == np.uint8
        assert np.array_equal(decoded, expected)
        if quality < 100:
            assert not np.array_equal(decoded, pixels)


def test_jpeg_roundtrip_refuses_a_quality_out_of_range():
    with pytest.raises(ValueError, match="must be 1 to 100"):
        jpeg_roundtrip(np.zeros((8, 8), np.uint8), 0)
