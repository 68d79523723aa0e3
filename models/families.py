"""The CIFAR-10 networks this repository trains, by name (train/export pick one with --model).

The Table 1 CNN is the study's model; the ResNet-20-class and MobileNetV2-style
networks are the two other members of the ensemble (issue 12), chosen from
different families so their errors differ and averaging helps.
"""
from __future__ import annotations

from models import cnn, mobilenet, resnet

BUILDERS = {cnn.NAME: cnn.build, resnet.NAME: resnet.build, mobilenet.NAME: mobilenet.build}
