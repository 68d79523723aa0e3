"""A function computing its record in chunks (SB_SERVERLESS_CHUNK) gives exactly what it gives on the whole
record, stage by stage (no store, no workers)."""
import io

import numpy as np
import pytest

from bench.studies.serverless import handler, records, stages
from models import splits

pytestmark = pytest.mark.unit
N = 50


@pytest.fixture(scope="module")
def record(test_images):
    return records.encode(test_images.images[:N], test_images.labels[:N], np.arange(N))


def test_a_record_decodes_chunk_by_chunk_into_the_same_images(record, test_images):
    assert records.count(record) == N
    parts = list(records.decode_chunks(record, 16))
    assert [len(p[0]) for p in parts] == [16, 16, 16, 2]
    images, labels, indices = (np.concatenate([p[i] for p in parts]) for i in range(3))
    assert np.array_equal(images, test_images.images[:N]) and np.array_equal(indices, np.arange(N))
    assert np.array_equal(labels, test_images.labels[:N])
    whole = records.decode(record)
    assert all(np.array_equal(a, b) for a, b in zip(whole, (images, labels, indices)))


def test_a_truncated_record_is_refused_before_decoding(record):
    with pytest.raises(records.CorruptRecord, match="truncated"):
        records.count(record[:-3])
    with pytest.raises(records.CorruptRecord, match="empty"):
        records.count(b"")
    with pytest.raises(ValueError, match="chunk"):
        next(records.decode_chunks(record, -1))


@pytest.mark.parametrize("chunk", [0, 7, 16, N, 1000])
def test_every_stage_in_chunks_equals_the_stage_on_the_whole_record(cnn, record, chunk):
    parts = stages.split(cnn, splits.SPLITS["cifar10_cnn"])
    outputs = {}
    for c in (0, chunk):
        y, meta = handler._compute(parts[0][1], [record], True, c, {"read_s": 0.0})
        ys = [y]
        for i, (_, model) in enumerate(parts[1:], 1):
            buf = io.BytesIO()
            np.savez(buf, x=ys[-1], **meta)
            y, meta2 = handler._compute(model, [buf.getvalue()], False, c, {"read_s": 0.0}, i == len(parts) - 1)
            assert np.array_equal(meta2["indices"], meta["indices"])
            ys.append(y)
        outputs[c] = (ys, meta)
    for whole, chunked in zip(outputs[0][0], outputs[chunk][0]):
        assert whole.shape == chunked.shape and np.array_equal(whole, chunked), np.abs(whole - chunked).max()
    assert np.array_equal(outputs[0][1]["labels"], outputs[chunk][1]["labels"])


def test_run_chunks_refuses_rows_that_do_not_add_up(cnn):
    part = stages.split(cnn, splits.SPLITS["cifar10_cnn"])[-1][1]
    x = np.zeros((4, *part.inputs[0].shape[1:]), np.float32)
    with pytest.raises(stages.StageError, match="not the 5 announced"):
        stages.run_chunks(part, [x[:2], x[2:]], 5)
    with pytest.raises(stages.StageError, match="more than the 3"):
        stages.run_chunks(part, [x[:2], x[2:]], 3)


def test_a_negative_chunk_is_a_bad_event():
    out = handler.handle({"stage": "Conv_1", "input_key": "a", "output_key": "b", "weights_key": "c", "chunk": -1})
    assert out["kind"] == "bad_event" and "chunk" in out["error"]
