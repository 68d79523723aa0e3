"""The streaming study (registry: streaming): frames over one persistent connection (TCP, WebSocket, gRPC)
against one HTTP request per frame, on loopback and on a shaped link, with the model process under CPU quotas.

``experiments`` plans the runs, ``run`` measures them (one record, kind ``streaming``), ``report`` draws its
section, ``published`` holds the study's per-image table.
"""
