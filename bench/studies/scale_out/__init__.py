"""The scale-out study (registry: scale-out): Ray Serve beside our best Python stacks and Triton on the same
work, replicas over one node and two, Ray's faults measured, and what a load generator in another host's place
costs.

``experiments`` plans its runs, ``faults`` measures a fault as a run of its own, ``measured`` turns the runs into
figures, ``report`` draws its section (with the node projection).
"""
