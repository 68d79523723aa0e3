"""The saturation study's record."""
from servebench.registry import declare_study

ORDER = 61

declare_study(__name__, ORDER, "saturation",
              "Saturated throughput: server-side batching, Triton, and cross-checks by outside tools",
              "issue 10 (no published system: our stacks against the machine's in-process limit)")
