"""The scale-out study's record."""
from servebench.registry import declare_study

ORDER = 66

declare_study(__name__, ORDER, "scale-out",
              "Scale-out: Ray Serve across nodes, its faults, and load generators on another host",
              "no published system: Ray Serve, the distributed engine many users run, as a peer of our stacks")
