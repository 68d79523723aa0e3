"""The docker-serving study's record (its architectures declare themselves under services/)."""
from servebench.registry import declare_study

ORDER = 60

declare_study(__name__, ORDER, "docker-serving",
              "Docker-container serving architectures for real-time analysis",
              "../shared/STUDIES.md, section 1")
