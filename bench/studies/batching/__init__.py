"""The batching study (registry: batching): does server-side batching pay with the one knob a user sets?

For embedded, Flask and FastAPI: a stack with the defaults against a stack with only ``SB_BATCH_MAX_SIZE``
set, closed loop with raw bodies at concurrency 1 to 64, repeated; the server's efficiency with batching;
and the p50 at concurrency 1 with JSON bodies over the model's own in-process p50, measured in the same run.
``experiments`` plans the runs, ``measured`` reads them back, ``report`` and ``answer`` show them.
"""
