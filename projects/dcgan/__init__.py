"""A deep convolutional GAN (Radford et al. 2016) for MNIST-style digits or your own images."""

from pathlib import Path

PROJECT = "dcgan"
FOLDER = Path(__file__).resolve().parent
DATASETS = ("mnist", "fashion-mnist")  # the registry's labelled sets it learns (and evaluate scores)
