"""The engines study (registry: engines): which runtime should execute the model. Per engine: the in-process
model curve at 1 and 2 threads, c=1 latency and saturated throughput through the embedded and FastAPI stacks
(batching off and on, CPU per image per service), and its correctness against TensorFlow (make evaluate).

``experiments`` plans and runs them, ``curve`` measures the in-process curve, ``measured`` reads the figures
back from the results, ``report`` draws the section.
"""
