"""The serverless study (registry: serverless): AlexNet and the Table 1 CNN split into four memory-limited
functions with an S3 store (SeaweedFS) between them; Fig. 3, Fig. 5, Tables 1 and 2 beside the study's.

Its whole subsystem lives here:

- :mod:`.records`: TFRecord files of images, the unit of work.
- :mod:`.stages`: a Sequential model split into stage models, packed for the store.
- :mod:`.handler`: the function body (read input and weights, run, write output),
  the same locally, in a container and on AWS Lambda.
- :mod:`.worker`: the process a local or container function runs in.
- :mod:`.invokers`: how a function is invoked: local cgroup workers, docker, AWS Lambda.
- :mod:`.orchestrator`: records through the stages, P in flight, retries, reruns.
- :mod:`.cost`: the dated price table (``prices.toml``) and what an invocation costs.
- :mod:`.sizing`: memMin, found by running on Lambda's memory grid.
- :mod:`.knobs`: the study's knobs (SB_SERVERLESS_*), a section of the one settings model.
- :mod:`.objectstore`: the S3 client and the native SeaweedFS server (its config in ``seaweedfs/``).
- ``experiments`` plans and runs the study, ``report`` draws its section, ``published`` holds its numbers.

Engines (SB_ENGINE): the function stages do not take it. A stage is a slice of a Keras
Sequential model packed as its Keras JSON and weights (:mod:`.stages`), which a cold function
rebuilds and calls with Keras on TensorFlow; ONNX Runtime, OpenVINO and LiteRT would need each
stage converted (tf2onnx, ``openvino.convert_model``, TFLiteConverter), and XLA each stage
compiled, inside the function's cold start, which is what the study measures, or a second
packed format per engine in the store. So every stage runs on TensorFlow whatever SB_ENGINE says, and the study's results are
TensorFlow's (Keras call) alone.
"""
