"""The saturation study (registry: saturation): what each stack sustains, batching off and on, beside the
machine's in-process limit and Triton, with the CPU budget of one image.

``experiments`` plans the model curve and one sweep per architecture
(:mod:`bench.sweep`), ``report`` draws its section of the report.
"""
