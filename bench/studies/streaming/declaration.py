"""The streaming study's record (its architectures: services/stream/)."""
from servebench.registry import declare_study

ORDER = 81

declare_study(__name__, ORDER, "streaming",
              "A streaming inference server: frames over one persistent connection versus one request per image",
              "../shared/STUDIES.md, section 4")
