"""Ray Serve's knobs (a section of servebench.settings.Settings): the cluster's shape and its ports."""
from servebench.knobs import KnobSection, knob

RAY = "rayserve"  # the service: the supervisor that owns the cluster's namespace, its nodes and the deployment


class Knobs(KnobSection):
    # On the host's loopback: the runtime probes it, the front end asks it where Serve listens.
    rayserve_port: int = knob(8060, "Ray cluster supervisor port (host loopback: health, where Serve listens)",
                              ("frontend", RAY), recorded=False)
    # Inside the cluster's network namespace: nothing else listens there, and the host's ports stay free.
    ray_serve_port: int = knob(8061, "Ray Serve's HTTP proxy port (on the namespace's link-local address)", (RAY,),
                               recorded=False)
    ray_port: int = knob(6379, "Ray's GCS port in the namespace; each node's other ports follow it (base + 10 + "
                               "40 x node)", (RAY,), recorded=False)
    ray_nodes: int = knob(1, "Ray nodes: 1 is the head alone, more adds worker nodes (ray start --address)",
                          (RAY,), ge=1, le=8)
    ray_replicas: int = knob(1, "Ray Serve replicas of the model deployment, spread evenly over the nodes",
                             (RAY,), ge=1)
    ray_cpus_per_node: int = knob(1, "num_cpus each Ray node declares (scheduling only: not a CPU limit)",
                                  (RAY,), ge=1)
    ray_object_store_mb: int = knob(200, "each Ray node's object store in MB (Ray's default: 30% of RAM)", (RAY,),
                                    ge=80)
