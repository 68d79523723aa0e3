"""The advisor (`make advise`): from the committed measurements, the cheapest stack that meets a p99 SLO at a rate.

Like Triton Model Analyzer it searches configurations under latency and
throughput constraints, but it measures nothing to search: every candidate is
a configuration some run under ``results/`` measured (a saturation sweep's
batching mode, a bench run's stack). ``candidates`` reads them, ``ranking``
finds each one's operating point and ranks those that meet the constraints,
``pareto`` draws the front, ``verify`` checks the top pick with a short run
and ``answer`` keeps each answer in ``results/advice-<UTC time>/``.
"""
