"""Partitioning at single-tensor boundaries (bench/studies/offloading/partition.py): the chained pieces
compute what the whole model computes, a residual block is never split, and the pieces survive the wire format."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from bench.studies.offloading import partition
from bench.studies.offloading import pieces as wire
from models import offload_models

pytestmark = pytest.mark.unit


def chained(chain, x):
    for piece in chain:
        x = piece(x, training=False)
    return np.asarray(x)


@pytest.fixture(scope="module")
def small_resnet():
    """ResNet-50's structure (random weights) at 32x32: small enough for a unit test."""
    keras.utils.set_random_seed(0)
    return keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)


def test_chained_pieces_equal_the_whole_resnet(small_resnet):
    chain = partition.pieces(small_resnet, 11)
    assert len(chain) == 11
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(chained(chain, x), np.asarray(small_resnet(x, training=False)), rtol=1e-4,
                               atol=1e-6)


def test_a_residual_block_is_never_split(small_resnet):
    ops = small_resnet.operations
    for i in partition.cut_points(small_resnet):
        name = ops[i].name
        inside_a_block = name.startswith(("conv2_block", "conv3_block", "conv4_block", "conv5_block"))
        assert not inside_a_block or name.endswith(("_out", "_add")), f"cut inside a residual block at {name}"


def test_the_trained_cnn_chained_equals_whole_and_survives_the_wire(cifar_dir):
    from servebench import data
    from bench.studies.offloading import builder

    model = offload_models.get("cifar10_cnn").make()
    images = data.load_test(cifar_dir, limit=16).images.astype("float32")
    whole = np.asarray(model(images, training=False))
    blobs = partition.encode("cifar10_cnn", partition.pieces(model, 5))
    assert len(blobs) == 5
    decoded = [wire.decode(b) for b in blobs]
    assert [(p.index, p.count, p.model) for p in decoded] == [(k, 5, "cifar10_cnn") for k in range(5)]
    units = [builder.build([p]) for p in decoded]
    np.testing.assert_allclose(builder.run_chain(units, images), whole, rtol=1e-5, atol=1e-6)
    together = builder.build(decoded[1:4])  # several pieces built as one unit, as the build thread does
    np.testing.assert_allclose(builder.run_chain([units[0], together, units[4]], images), whole, rtol=1e-5,
                               atol=1e-6)


def test_choose_cuts_gives_the_count_asked_for_or_every_cut_point():
    sizes = [0, 10, 0, 10, 0, 10, 0, 10]
    cuts = [0, 1, 2, 3, 4, 5, 6]
    chosen = partition.choose_cuts(cuts, sizes, 4)
    assert chosen == sorted(chosen) and len(chosen) == 3
    pieces = np.split(np.array(sizes), [c + 1 for c in chosen])
    assert [int(p.sum()) for p in pieces] == [10, 10, 10, 10]  # even, and no weightless piece
    assert partition.choose_cuts([2, 4], sizes, 10) == [2, 4]  # fewer cut points than asked: all of them
    assert partition.choose_cuts(cuts, sizes, 1) == []


def test_study_models_and_their_piece_counts():
    assert [offload_models.get(m).pieces for m in offload_models.STUDY_MODELS] == [41, 11, 17, 7]
    assert all(offload_models.get(m).timing_only for m in offload_models.STUDY_MODELS)
    assert not offload_models.get("cifar10_cnn").timing_only
    with pytest.raises(ValueError, match="unknown model"):
        offload_models.get("vgg")
