"""The streaming study (registry: streaming): frames over one persistent connection (TCP, WebSocket, gRPC)
against one HTTP request per frame, on loopback, on a shaped link and over a delayed link (0-80 ms round trips),
with the model process under CPU quotas.

``experiments`` plans the runs, ``run`` measures them (one record, kind ``streaming``), ``report`` draws its
section (``round_trips`` its delayed-link and keep-alive parts, ``passes`` gathers repeated passes into
median/min-max cells), ``knobs`` holds ``SB_STREAMING_*``, ``published`` the study's per-image table.
"""
