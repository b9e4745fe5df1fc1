"""A deep convolutional GAN (Radford et al. 2016) for MNIST-style digits or your own images."""
