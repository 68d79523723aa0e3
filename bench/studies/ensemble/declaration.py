"""The ensemble study's record (its architectures: services/ensemble/)."""
from servebench.registry import declare_study

ORDER = 71

declare_study(__name__, ORDER, "ensemble",
              "A parallel versus serial ensemble of three CIFAR-10 models served as functions",
              "../shared/STUDIES.md, section 3")
