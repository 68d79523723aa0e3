"""The offloading study (registry: offloading): a partitioned model uploaded piece by piece to an edge
server over a shaped link, queries speeding up as pieces arrive, baseline and proposed build modes.

``experiments`` plans the uploads and runs them (:mod:`.edge_server`, :mod:`.edge_client`), ``report``
draws its section, ``published`` holds the study's Table 1. The study's subsystem lives here too:
``partition`` cuts a model into pieces, ``pieces`` and ``protocol`` put them on the wire, ``builder``
turns them into runnable models.
"""
