"""The studies, one package each (see :mod:`bench.study` for what a study provides)."""
