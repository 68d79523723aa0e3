"""The split, the packed stages and the records, in process (no store, no workers)."""
import numpy as np
import pytest

from bench.studies.serverless import records, stages
from models import splits

pytestmark = pytest.mark.unit


@pytest.mark.slow
def test_chained_stages_give_exactly_the_whole_models_predictions_on_the_test_set(cnn, test_images):
    parts = [stages.unpack(stages.pack(m)) for _, m in stages.split(cnn, splits.SPLITS["cifar10_cnn"])]
    assert len(test_images) == 10_000
    for a in range(0, 10_000, 2000):
        x = test_images.images[a:a + 2000].astype(np.float32)
        whole = stages.run(cnn, x)
        y = x
        for m in parts:
            y = stages.run(m, y)
        assert (y.argmax(1) == whole.argmax(1)).all()
        assert np.array_equal(y, whole), np.abs(y - whole).max()


def test_alexnet_splits_into_the_studys_four_stages():
    from models import alexnet

    parts = stages.split(alexnet.build(), splits.SPLITS["alexnet"])
    assert [name for name, _ in parts] == list(splits.STAGES)
    assert parts[0][1].inputs[0].shape[1:] == (227, 227, 3)
    assert parts[-1][1].outputs[0].shape[-1] == 1000
    sizes = [m.count_params() for _, m in parts]
    assert sizes[-1] == max(sizes)  # FC holds most weights


def test_a_split_that_does_not_fit_is_refused(cnn):
    with pytest.raises(stages.StageError, match="no layer"):
        stages.split(cnn, {"A": "nope", "B": "probabilities"})
    with pytest.raises(stages.StageError, match="last stage"):
        stages.split(cnn, {"A": "conv1"})


def test_a_record_round_trips_and_a_corrupt_one_is_refused():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    body = records.encode(images, np.arange(7), np.arange(100, 107))
    got, labels, idx = records.decode(body)
    assert np.array_equal(got, images) and list(labels) == list(range(7)) and list(idx) == list(range(100, 107))
    flipped = bytearray(body)
    flipped[len(body) // 2] ^= 0xFF
    for bad in (bytes(flipped), body[:-5], b"not a record", b""):
        with pytest.raises(records.CorruptRecord):
            records.decode(bad)


def test_unreadable_weights_are_a_stage_error():
    with pytest.raises(stages.StageError):
        stages.unpack(b"garbage")
