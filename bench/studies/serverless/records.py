"""Records: TFRecord files (protobuf ``tf.train.Example``, one per image) that travel through the store.

A record holds up to 1,000 images at the model's input size (uint8), their
labels and their indices in the test set. Written and read in memory
(TensorFlow's ``ram://`` file system) so a function needs no disk; TFRecord's
CRCs make a corrupt record fail loudly (:class:`CorruptRecord`) rather than
feed garbage to the model.
"""
from __future__ import annotations

import itertools
import struct
import uuid
from typing import Iterator

import numpy as np

SIZES = (100, 250, 500, 1000)  # images per record, as in the study


class CorruptRecord(ValueError):
    """The bytes are not a readable record (bad CRC, truncated, wrong fields)."""


def key(prefix: str, size: int, number: int) -> str:
    return f"{prefix}/{size}/r{number:05d}.tfrecord"


def _example(image: np.ndarray, label: int, index: int):
    import tensorflow as tf

    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def encode(images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> bytes:
    """uint8 images [N, H, W, C] with their labels and indices -> the TFRecord file's bytes."""
    import tensorflow as tf

    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"a record holds uint8 images [N, H, W, C], not {images.dtype} {images.shape}")
    if not len(images) == len(labels) == len(indices):
        raise ValueError("images, labels and indices differ in length")
    path = f"ram://servebench-record-{uuid.uuid4().hex}"
    try:
        with tf.io.TFRecordWriter(path) as w:
            for img, lab, idx in zip(images, labels, indices):
                w.write(_example(img, lab, idx).SerializeToString())
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    finally:
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)


def count(body: bytes) -> int:
    """How many images a record holds, from the TFRecord framing alone (length, CRC, data, CRC per image)."""
    n, pos = 0, 0
    while pos < len(body):
        if pos + 12 > len(body):
            raise CorruptRecord(f"truncated record: {len(body) - pos} stray bytes after image {n}")
        (length,) = struct.unpack_from("<Q", body, pos)
        pos += 12 + length + 4
        n += 1
    if pos != len(body):
        raise CorruptRecord(f"truncated record: image {n} runs past the end")
    if not n:
        raise CorruptRecord("empty record: no images")
    return n


def decode_chunks(body: bytes, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The record's (images uint8 [n, H, W, C], labels, indices), ``chunk`` images at a time (0: all at once),
    so a function need never hold more decoded images than one chunk; CorruptRecord if unreadable."""
    import tensorflow as tf

    if chunk < 0:
        raise ValueError(f"a chunk holds 0 (the whole record) or more images, not {chunk}")
    path = f"ram://servebench-record-{uuid.uuid4().hex}"
    try:
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(body)
        del body  # the in-memory file holds the bytes now
        images, labels, indices, shapes, seen = [], [], [], set(), 0
        try:
            for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
                ex = tf.train.Example.FromString(raw).features.feature
                shape = tuple(ex["shape"].int64_list.value)
                shapes.add(shape)
                if len(shapes) > 1:
                    raise CorruptRecord(f"images of different shapes in one record: {sorted(shapes)}")
                images.append(np.frombuffer(ex["image"].bytes_list.value[0], np.uint8).reshape(shape))
                labels.append(ex["label"].int64_list.value[0])
                indices.append(ex["index"].int64_list.value[0])
                if chunk and len(images) == chunk:
                    seen += len(images)
                    yield np.stack(images), np.asarray(labels, np.int64), np.asarray(indices, np.int64)
                    images, labels, indices = [], [], []
        except CorruptRecord:
            raise
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, KeyError, IndexError, ValueError) as exc:
            raise CorruptRecord(f"unreadable record: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        if images:
            yield np.stack(images), np.asarray(labels, np.int64), np.asarray(indices, np.int64)
        elif not seen:
            raise CorruptRecord("empty record: no images")
    finally:
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)


def decode(body: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bytes of a record -> (images uint8 [N, H, W, C], labels, indices); CorruptRecord if unreadable."""
    parts = decode_chunks(body, 0)
    try:
        return next(parts)
    finally:
        parts.close()  # removes its in-memory file now


def batches(n_images: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) of each record when ``n_images`` are cut into records of ``size``."""
    starts = range(0, n_images, size)
    return [(s, min(s + size, n_images)) for s in itertools.islice(starts, None)]


def resize(images: np.ndarray, side: int) -> np.ndarray:
    """CIFAR-10's 32x32 images scaled up (bilinear) to ``side`` x ``side``, still uint8."""
    import tensorflow as tf

    if images.shape[1] == side and images.shape[2] == side:
        return images
    out = tf.image.resize(images, (side, side), method="bilinear")
    return np.clip(np.rint(out.numpy()), 0, 255).astype(np.uint8)
