"""The serverless study's four functions as layer groups: AlexNet (the study's model) and the Table 1 CNN.

Each split maps a stage (a function) to its last layer; see
:func:`bench.studies.serverless.stages.split`. Conv_1 holds the first
convolution and the largest activations, FC the dense layers and most weights.
"""
from __future__ import annotations

STAGES = ("Conv_1", "Conv_2", "Conv_3", "FC")

SPLITS: dict[str, dict[str, str]] = {
    # conv1+pool1 | conv2+pool2 | conv3-5+pool5 | fc6-fc8
    "alexnet": {"Conv_1": "pool1", "Conv_2": "pool2", "Conv_3": "pool5", "FC": "fc8"},
    # conv1 | conv2+pool1 | conv3, conv4 and their pools | dense1, probabilities
    "cifar10_cnn": {"Conv_1": "drop1", "Conv_2": "pool1", "Conv_3": "pool3", "FC": "probabilities"},
}
