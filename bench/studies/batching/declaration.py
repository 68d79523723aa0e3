"""The batching study's record."""
from servebench.registry import declare_study

ORDER = 63

declare_study(__name__, ORDER, "batching",
              "Batching that pays with one knob: SB_BATCH_MAX_SIZE alone against the defaults",
              "issue 23 (no published system: Triton, TF Serving, Ray Serve and BentoML switch on dynamic batching "
              "with one setting)")
