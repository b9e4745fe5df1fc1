"""MNIST CNN: a small batch-normalised convnet that reads handwritten digits (and Fashion-MNIST's clothes)."""

from pathlib import Path

PROJECT = "mnist_cnn"
FOLDER = Path(__file__).resolve().parent
