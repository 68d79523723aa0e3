"""The CIFAR-10 loader, on a tiny fake copy in the real format, and on the shared copy."""
from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

from servebench import data
from servebench.data import DatasetError
from servebench.types import CLASS_NAMES

pytestmark = pytest.mark.unit

IMAGES_PER_BATCH = 4


def _write_batch(path, rows: np.ndarray, labels: list[int]) -> None:
    # The original files are Python 2 pickles of a dict with bytes keys.
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": labels,
        b"data": rows,
        b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _write_sums(folder) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
        for p in sorted(folder.iterdir()) if p.name != "SHA256SUMS"
    ]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


@pytest.fixture
def fake_copy(tmp_path):
    """A complete cifar-10-batches-py folder with a few random images per file; returns (folder, rows)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(7)
    rows = {}
    for name in (*data.TRAIN_FILES, data.TEST_FILE):
        rows[name] = rng.integers(0, 256, (IMAGES_PER_BATCH, 3072), dtype=np.uint8)
        _write_batch(folder / name, rows[name], [int(x) for x in rng.integers(0, 10, IMAGES_PER_BATCH)])
    (folder / data.META_FILE).write_bytes(pickle.dumps({b"label_names": [n.encode() for n in CLASS_NAMES]}, protocol=2))
    _write_sums(folder)
    return folder, rows


def test_pixels_land_channel_last(tmp_path):
    # Row layout: 1024 R values, then 1024 G, then 1024 B, each plane row by row.
    rows = np.zeros((2, 3072), np.uint8)
    row, col = 1, 2
    rows[1, 0 * 1024 + row * 32 + col] = 10
    rows[1, 1 * 1024 + row * 32 + col] = 20
    rows[1, 2 * 1024 + row * 32 + col] = 30
    _write_batch(tmp_path / data.TEST_FILE, rows, [3, 5])

    split = data.load_test(tmp_path)
    assert split.images.shape == (2, 32, 32, 3)
    assert split.images.dtype == np.uint8
    assert split.images.flags.c_contiguous
    assert split.images[1, row, col].tolist() == [10, 20, 30]
    assert split.images[1, col, row].tolist() == [0, 0, 0]  # rows and columns not swapped
    assert int(split.images.sum()) == 60
    assert split.labels.tolist() == [3, 5]
    assert split.labels.dtype == np.int64


def test_every_pixel_follows_the_plane_layout(fake_copy):
    folder, rows = fake_copy
    images = data.load_test(folder).images
    n, r, c, ch = np.indices(images.shape)
    np.testing.assert_array_equal(images, rows[data.TEST_FILE][n, ch * 1024 + r * 32 + c])


def test_load_train_concatenates_the_five_batches(fake_copy):
    folder, rows = fake_copy
    split = data.load_train(folder)
    assert len(split) == 5 * IMAGES_PER_BATCH
    assert split.images.shape == (5 * IMAGES_PER_BATCH, 32, 32, 3)
    expected = np.concatenate([rows[name] for name in data.TRAIN_FILES])
    np.testing.assert_array_equal(split.images[:, :, :, 0].reshape(-1, 1024), expected[:, :1024])


def test_limit(fake_copy):
    folder, _ = fake_copy
    assert len(data.load_test(folder, limit=3)) == 3
    assert len(data.load_test(folder, limit=100)) == IMAGES_PER_BATCH


def test_checksum_mismatch_names_the_file(fake_copy):
    folder, rows = fake_copy
    corrupt = folder / data.TEST_FILE
    changed = rows[data.TEST_FILE].copy()
    changed[0, 0] ^= 1  # one pixel off by one: still a readable pickle
    _write_batch(corrupt, changed, [0] * IMAGES_PER_BATCH)
    with pytest.raises(DatasetError, match="SHA-256 mismatch") as info:
        data.load_test(folder)
    assert str(corrupt) in str(info.value)
    data.load_train(folder)  # the other files still verify


def test_missing_file_is_named(fake_copy):
    folder, _ = fake_copy
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing") as info:
        data.load_train(folder)
    assert "data_batch_3" in str(info.value)


def test_folder_without_sha256sums_loads(fake_copy):
    folder, rows = fake_copy
    (folder / "SHA256SUMS").unlink()
    assert len(data.load_test(folder)) == IMAGES_PER_BATCH
    assert len(data.load_train(folder)) == 5 * IMAGES_PER_BATCH


@pytest.mark.parametrize(
    "content",
    [b"not a pickle", pickle.dumps({b"labels": [1]}), pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}),
     pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), pickle.dumps([1, 2])],
    ids=["garbage", "no-data-key", "short-rows", "label-count", "not-a-dict"],
)
def test_unreadable_file_is_named(tmp_path, content):
    (tmp_path / data.TEST_FILE).write_bytes(content)
    with pytest.raises(DatasetError, match="unreadable") as info:
        data.load_test(tmp_path)
    assert data.TEST_FILE in str(info.value)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DatasetError, match="folder not found"):
        data.load_test(tmp_path / "nowhere")


def test_sb_cifar10_dir_is_used(fake_copy, monkeypatch):
    folder, _ = fake_copy
    monkeypatch.setenv("SB_CIFAR10_DIR", str(folder))
    assert data.default_dir() == folder
    assert len(data.load_test()) == IMAGES_PER_BATCH


def test_sb_cifar10_dir_pointing_nowhere_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SB_CIFAR10_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="SB_CIFAR10_DIR"):
        data.load_test()


@pytest.mark.parametrize("env", [{"SB_ALLOW_DOWNLOAD": "0"}, {"CI": "true", "SB_ALLOW_DOWNLOAD": "1"}], ids=["sb-allow-download-0", "ci"])
def test_download_refused_without_a_local_copy(tmp_path, monkeypatch, env):
    monkeypatch.delenv("SB_CIFAR10_DIR", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(data, "SHARED_COPY", tmp_path / "no-shared-copy")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert data.default_dir() is None
    with pytest.raises(DatasetError, match="SB_CIFAR10_DIR"):
        data.load_test()


def test_provenance_records_the_checksums(fake_copy):
    folder, _ = fake_copy
    info = data.provenance(folder)
    assert info["path"] == str(folder)
    assert info["sha256sums"] == hashlib.sha256((folder / "SHA256SUMS").read_bytes()).hexdigest()


@pytest.mark.dataset
def test_shared_copy_verifies(cifar_dir):
    names = (*data.TRAIN_FILES, data.TEST_FILE, data.META_FILE)
    data.verify(cifar_dir, names)  # raises on a missing or corrupt file
    sums = cifar_dir / "SHA256SUMS"
    if sums.is_file():
        listed = {line.split()[1].lstrip("*") for line in sums.read_text().splitlines() if line.strip()}
        assert set(names) <= listed, "SHA256SUMS should cover every file"
    split = data.load_test(cifar_dir)
    assert split.images.shape == (10000, 32, 32, 3)
    assert np.bincount(split.labels, minlength=10).tolist() == [1000] * 10
