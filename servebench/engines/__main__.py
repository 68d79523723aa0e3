"""``python -m servebench.engines --model PATH [--engine NAME]``: convert a model for the engines (``make engines``).

Without ``--engine``, every engine that converts the model's format. Prints
where each conversion is cached and whether it was already there. (Internal:
``--convert-into DIR --engine NAME --card-json JSON`` is the child process one
conversion runs in; see :mod:`servebench.engines.cache`.)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _convert_into(out_dir: Path, engine: str, card_json: str) -> int:
    from servebench.engines import EngineError, get
    from servebench.engines.cache import ERROR_MARK
    from servebench.modelcard import ModelCard

    card = ModelCard.from_dict(json.loads(card_json))
    try:
        get(engine).convert(card, Path(card.source), out_dir)
    except EngineError as exc:
        print(ERROR_MARK + exc.reason, file=sys.stderr, flush=True)
        return 2
    except Exception as exc:  # a converter's own error: its first line says why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(ERROR_MARK + f"{type(exc).__name__}: {first}"[:500], file=sys.stderr, flush=True)
        return 2
    return 0


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from servebench.engines import ENGINES, EngineError, check, get

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="a versioned SavedModel folder, one version, a .keras or an .onnx file")
    p.add_argument("--version", type=int, default=None)
    p.add_argument("--engine", choices=ENGINES, default=None, help="default: every engine that converts the model")
    p.add_argument("--convert-into", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--card-json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.convert_into:
        return _convert_into(args.convert_into, args.engine, args.card_json)
    if args.model is None:
        p.error("--model is required")

    from servebench.engines.cache import ensure_converted
    from servebench.modelcard import CardError, read_card

    try:
        card = read_card(args.model, args.version)
    except CardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = [args.engine] if args.engine else [n for n in ENGINES if card.format in get(n).CONVERTS]
    failed = 0
    for name in names:
        module = get(name)
        try:
            check(module, card)
            if card.format in module.RUNS:
                print(f"{name}: runs {card.source} as it is (nothing to convert)")
                continue
            folder, fresh = ensure_converted(card, name)
        except EngineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name} {module.version()}: {'converted into' if fresh else 'already converted in'} {folder}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
