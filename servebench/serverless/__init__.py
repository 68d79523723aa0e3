"""Serverless serving of a layer-split CNN: functions under memory limits, an object store between them.

- :mod:`~servebench.serverless.records`: TFRecord files of images, the unit of work.
- :mod:`~servebench.serverless.stages`: a Sequential model split into stage models, packed for the store.
- :mod:`~servebench.serverless.handler`: the function body (read input and weights, run, write output),
  the same locally, in a container and on AWS Lambda.
- :mod:`~servebench.serverless.worker`: the process a local or container function runs in.
- :mod:`~servebench.serverless.invokers`: how a function is invoked: local cgroup workers, docker, AWS Lambda.
- :mod:`~servebench.serverless.orchestrator`: records through the stages, P in flight, retries, reruns.
- :mod:`~servebench.serverless.cost`: the dated price table and what an invocation costs.
- :mod:`~servebench.serverless.sizing`: memMin, found by running on Lambda's memory grid.
- :mod:`~servebench.serverless.options`: the study's knobs (SB_SERVERLESS_*).
"""
