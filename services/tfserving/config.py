"""TF Serving's two configuration files, generated from the model card.

    python -m services.tfserving.config [--model PATH] [--base-path /models/NAME] [--out DIR]

- :func:`models_config`: the ``--model_config_file`` text (ModelServerConfig): the served
  name, where TF Serving finds the model's version folders, and which version it serves;
- :func:`batching_config`: the ``--batching_parameters_file`` text (BatchingParameters),
  sized from the settings and checked against the card's tensors.

TF Serving loads SavedModels only, laid out as ``<base_path>/<version>/saved_model.pb``: a
versioned folder serves its highest version (``latest``), one version folder is served as
that version (``specific``, its parent the base path). A ``.keras`` or ``.onnx`` model gets
a CardError naming the file and what to do instead. The committed ``models.config`` and
``batching.config`` beside this file are what this generates for the default model and
settings under docker compose's paths (a test keeps them equal); the native runner writes
the same text with the local path into the run folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from servebench.modelcard import CardError, ModelCard, describe

HERE = Path(__file__).resolve().parent
CONTAINER_MODELS = "/models"  # where compose mounts model folders (services/tfserving/declaration.py)

# Sized for 2 cores; each value says why in the file it ends up in.
BATCH_TIMEOUT_MICROS = 2000
MAX_ENQUEUED_BATCHES = 8
NUM_BATCH_THREADS = 2

MODELS_HEADER = """\
# TF Serving's model config (ModelServerConfig text proto), given as --model_config_file.
# /models/{name} is where docker compose mounts ./models/{name}. Generated from the model
# card; the native runner writes the same text with the local absolute path:
#   python -m services.tfserving.config --model models/{name} --base-path "$PWD/models/{name}"
# A test fails when this file and services.tfserving.config.models_config differ.
"""


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def saved_model_layout(card: ModelCard, model_path: Path | str, version: int | None = None) -> tuple[Path, int | None]:
    """(base folder, version to pin or None for the latest) of a SavedModel card (``version``: the one
    asked for, SB_MODEL_VERSION); CardError for other formats."""
    model_path = Path(model_path)
    if card.format != "savedmodel":
        raise CardError(f"{model_path}: TF Serving serves SavedModels only, and this is a {card.format} model "
                        f"({describe(card.inputs)}); export it as <folder>/<version>/saved_model.pb "
                        "(Keras: model.export(path)) or serve it with another architecture")
    if (model_path / "saved_model.pb").is_file():  # one version folder: its parent is the base path
        if not model_path.name.isdigit():
            raise CardError(f"{model_path}: TF Serving loads <base_path>/<version>/saved_model.pb, and "
                            f"{model_path.name!r} is not a version number: move it to {model_path}/1")
        return model_path.parent, int(model_path.name)
    return model_path, version


def models_config(card: ModelCard, base_path: str, version: int | None = None, name: str | None = None,
                  header: bool = False) -> str:
    """The ModelServerConfig text serving ``card`` under ``name`` (default: its own name) from ``base_path``
    (the path TF Serving sees): its highest version, or ``version`` alone when given."""
    name = name or card.name
    policy = ("      latest {\n        num_versions: 1\n      }\n" if version is None else
              f"      specific {{\n        versions: {int(version)}\n      }}\n")
    body = (
        "model_config_list {\n"
        "  config {\n"
        f"    name: {_quoted(name)}\n"
        f"    base_path: {_quoted(base_path)}\n"
        '    model_platform: "tensorflow"\n'
        "    model_version_policy {\n"
        f"{policy}"
        "    }\n"
        "  }\n"
        "}\n"
    )
    return (MODELS_HEADER.format(name=name) if header else "") + body


def batching_config(card: ModelCard, settings) -> str:
    """The BatchingParameters text for ``card`` under ``settings`` (SB_MAX_BATCH), with why each value.

    TF Serving's batcher concatenates requests along the first dimension, so every input's first
    dimension must be the batch and its other dimensions fixed: a variable one gets a CardError
    naming the tensor (TF Serving would pad it with made-up values, changing the answers)."""
    for spec in card.inputs:
        if not spec.shape or spec.shape[0] is not None:
            raise CardError(f"{card.source}: input {spec.name} [{spec.shape}]: TF Serving batches on the first "
                            "dimension, which must be the batch")
        if any(d is None for d in spec.item_shape):
            raise CardError(f"{card.source}: input {describe([spec])} has a variable dimension besides the batch: "
                            "TF Serving's batcher cannot combine such requests without padding them; serve it with "
                            "SB_TFSERVING_BATCHING=false")
    return f"""\
# TF Serving's server-side batching (BatchingParameters text proto), given as
# --batching_parameters_file; used only with --enable_batching=true
# (SB_TFSERVING_BATCHING=true). Generated for model {card.name} ({describe(card.inputs)})
# by services.tfserving.config.batching_config; sized for 2 cores.

# At least SB_MAX_BATCH ({settings.max_batch}): with large-batch splitting off, TF Serving rejects a
# request that holds more items than one batch may.
max_batch_size {{ value: {settings.max_batch} }}

# Wait at most {BATCH_TIMEOUT_MICROS / 1000:g} ms for more requests to join a batch: under half of one
# single-image call of the default CNN (4-6 ms), so a lone request pays little and
# concurrent ones still merge.
batch_timeout_micros {{ value: {BATCH_TIMEOUT_MICROS} }}

# A short queue: once {MAX_ENQUEUED_BATCHES} batches wait, TF Serving answers UNAVAILABLE at once
# instead of letting latency grow towards SB_BACKEND_TIMEOUT_S.
max_enqueued_batches {{ value: {MAX_ENQUEUED_BATCHES} }}

# One batch thread per core; each batch runs on SB_INTRA_OP_THREADS thread(s),
# so more threads would only contend for the same 2 cores.
num_batch_threads {{ value: {NUM_BATCH_THREADS} }}
"""


def write(card: ModelCard, settings, model_path: Path | str, base_path: str, out: Path,
          batching: bool = True) -> list[Path]:
    """``models.config`` (and ``batching.config`` unless ``batching`` is false) for ``card`` into ``out``:
    the run folder, or this folder for the default model."""
    _, version = saved_model_layout(card, model_path, settings.model_version)
    out.mkdir(parents=True, exist_ok=True)
    models = out / "models.config"
    models.write_text(models_config(card, base_path, version, name=settings.model_name, header=True))
    if not batching:
        return [models]
    path = out / "batching.config"
    path.write_text(batching_config(card, settings))
    return [models, path]


def main(argv: list[str] | None = None) -> int:
    from servebench.modelcard import read_card
    from servebench.settings import Settings

    settings = Settings()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=settings.model_base, help="the model (default: SB_MODEL's)")
    p.add_argument("--base-path", default=None,
                   help="the base path TF Serving sees (default: /models/<name>, compose's mount)")
    p.add_argument("--out", type=Path, default=None, help="write models.config and batching.config here "
                   "(default: print models.config)")
    args = p.parse_args(argv)
    try:
        card = read_card(args.model)
        _, version = saved_model_layout(card, args.model)
        base_path = args.base_path or f"{CONTAINER_MODELS}/{settings.model_name}"
        if args.out is None:
            sys.stdout.write(models_config(card, base_path, version, name=settings.model_name))
            return 0
        for path in write(card, settings, args.model, base_path, args.out):
            print(f"wrote {path}")
    except CardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
