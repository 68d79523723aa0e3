"""The ensemble study (registry: ensemble): three CIFAR-10 models as functions, serial against parallel.

``experiments`` plans the runs, ``run`` runs them (:mod:`.experiments`),
``report`` draws the section, ``published`` holds the study's numbers.
"""
