"""The offloading study's record. No architecture: the edge server and the client run in namespaces over a
shaped link, started by the study itself (bench/studies/offloading/experiments.py), not as a stack."""
from servebench.registry import declare_study

ORDER = 90

declare_study(__name__, ORDER, "offloading",
              "Incremental offloading of a partitioned DNN to an edge server over a limited link",
              "../shared/STUDIES.md, section 5")
