"""The ensemble's members, defined once: member name -> its model folder under models/ (and the model it serves).

Stdlib only, so that the registry, the settings, the study and the accuracy script can read it
without importing the coordinator.
"""
MEMBERS = {"cnn": "cifar10_cnn", "resnet20": "cifar10_resnet20", "mobilenetv2": "cifar10_mobilenetv2"}
