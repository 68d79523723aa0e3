"""The serverless study (registry: serverless): AlexNet and the Table 1 CNN split into four memory-limited
functions with an S3 store (SeaweedFS) between them; Fig. 3, Fig. 5, Tables 1 and 2 beside the study's.
"""
from bench.studies.serverless.experiments import experiments, run

__all__ = ["experiments", "run"]
