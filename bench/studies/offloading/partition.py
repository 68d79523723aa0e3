"""Cut a Keras functional model into a chain of pieces at layer boundaries where exactly one tensor flows.

A boundary after operation *i* (in the graph's topological order) is a cut
point when exactly one tensor produced at or before *i* is still needed after
it; inside a residual block the block's input also flows along the shortcut,
so a block is never split. Of the cut points, :func:`choose_cuts` picks those
that divide the weights' bytes most evenly into the number of pieces asked
for (fewer when the model has fewer cut points).

Each piece is a functional sub-model from one cut's tensor to the next's:
``pieces(model, n)`` returns them, and :func:`encode` serialises them in the
wire format of :mod:`bench.studies.offloading.pieces`. Run in order, the pieces compute what
the whole model computes (``tests/bench/studies/offloading/test_partition.py``).

    python -m bench.studies.offloading.partition resnet50    # its cut points and the pieces' sizes
"""
from __future__ import annotations

import argparse
import sys

import keras
import numpy as np

from bench.studies.offloading import pieces as wire


def _key(tensor) -> tuple:
    h = tensor._keras_history
    return id(h.operation), h.node_index, h.tensor_index


def cut_points(model: keras.Model) -> list[int]:
    """Indices *i* into ``model.operations`` after which exactly one tensor flows to the rest."""
    ops = model.operations
    position = {id(op): i for i, op in enumerate(ops)}
    last_use: dict[tuple, int] = {}
    mine = model._nodes  # keys "<id(op)>_ib-<node index>": sub-models made from this graph add nodes of their own
    for i, op in enumerate(ops):
        for n, node in enumerate(op._inbound_nodes):
            if f"{id(op)}_ib-{n}" not in mine:
                continue
            for tensor in node.input_tensors:
                last_use[_key(tensor)] = max(last_use.get(_key(tensor), -1), i)
    cuts = []
    for i, op in enumerate(ops[:-1]):
        live = [k for k, last in last_use.items() if position[k[0]] <= i < last]
        # The one live tensor must be this op's output: then the piece ends where the next begins.
        if len(live) == 1 and live[0][0] == id(op):
            cuts.append(i)
    return cuts


def weight_bytes(op) -> int:
    return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in op.weights)


def choose_cuts(cuts: list[int], sizes: list[int], n_pieces: int) -> list[int]:
    """``n_pieces - 1`` of ``cuts`` (fewer when there are not enough) that split ``sizes`` (bytes per
    operation) most evenly: the least sum of squared piece sizes (dynamic programming over the cut points),
    which also keeps weightless pieces out while a weighted layer is left to split off."""
    want = min(n_pieces - 1, len(cuts))
    if want <= 0:
        return []
    before = np.cumsum(np.asarray(sizes, dtype=float))
    at = np.array([0.0] + [before[c] for c in cuts])  # bytes before each boundary; index 0 is the start
    end = before[-1]
    m = len(cuts)
    # cost[j][b]: the best sum of squares of the first j pieces when the j-th cut is cut point b (1-based).
    cost = np.full((want + 1, m + 1), np.inf)
    prev = np.zeros((want + 1, m + 1), dtype=int)
    cost[0][0] = 0.0
    for j in range(1, want + 1):
        for b in range(j, m + 1):
            options = cost[j - 1][:b] + (at[b] - at[:b]) ** 2
            u = int(np.argmin(options))
            cost[j][b], prev[j][b] = options[u], u
    last = cost[want][1:] + (end - at[1:]) ** 2
    b = int(np.argmin(last)) + 1
    chosen = []
    for j in range(want, 0, -1):
        chosen.append(cuts[b - 1])
        b = prev[j][b]
    return chosen[::-1]


def pieces(model: keras.Model, n_pieces: int) -> list[keras.Model]:
    """The model as a chain of at most ``n_pieces`` sub-models (sharing its layers and weights)."""
    if n_pieces < 1:
        raise ValueError(f"a model is cut into at least one piece, not {n_pieces}")
    ops = model.operations
    chosen = choose_cuts(cut_points(model), [weight_bytes(op) for op in ops], n_pieces)
    ends = [ops[i].output for i in chosen] + [model.outputs[0]]
    starts = [model.inputs[0]] + [ops[i].output for i in chosen]
    return [keras.Model(a, b, name=f"{model.name}_piece{k + 1}") for k, (a, b) in enumerate(zip(starts, ends))]


def to_wire(model_name: str, chain: list[keras.Model]) -> list[wire.Piece]:
    return [wire.Piece(model=model_name, index=k, count=len(chain),
                       config=keras.saving.serialize_keras_object(p), weights=p.get_weights(),
                       input_shape=tuple(p.inputs[0].shape[1:]), output_shape=tuple(p.outputs[0].shape[1:]))
            for k, p in enumerate(chain)]


def encode(model_name: str, chain: list[keras.Model]) -> list[bytes]:
    """Each piece in the wire format (configuration, weights, checksum)."""
    return [wire.encode(p) for p in to_wire(model_name, chain)]


def main(argv=None) -> int:
    from models import offload_models

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=list(offload_models.MODELS))
    p.add_argument("--pieces", type=int, default=None, help="default: the study's count")
    a = p.parse_args(argv)
    spec = offload_models.get(a.model)
    model = spec.make()
    cuts = cut_points(model)
    blobs = encode(spec.name, pieces(model, a.pieces or spec.pieces))
    print(f"{spec.title}: {len(model.operations)} operations, {len(cuts)} cut points, {len(blobs)} pieces, "
          f"{sum(map(len, blobs)) / 1e6:.1f} MB" + (" (random weights: timing only)" if spec.timing_only else ""))
    for k, blob in enumerate(blobs):
        print(f"  piece {k + 1}: {len(blob) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
