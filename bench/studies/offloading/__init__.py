"""The offloading study (registry: offloading): a partitioned model uploaded piece by piece to an edge
server over a shaped link, queries speeding up as pieces arrive, baseline and proposed build modes.

``experiments`` plans the uploads and runs them (:mod:`services.edge`), ``report`` draws its section,
``published`` holds the study's Table 1.
"""
from bench.studies.offloading.experiments import experiments, run

__all__ = ["experiments", "run"]
