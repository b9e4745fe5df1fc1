"""The DCGAN networks, sized from the image resolution, and their losses.

The recipe of Radford et al. (2016): the generator turns a noise vector into a small
feature map and doubles its size with strided transposed convolutions, halving the
channels each time, batch norm and ReLU after each, tanh at the end; the discriminator
mirrors it with strided convolutions (no pooling), LeakyReLU(0.2) and batch norm on all
but the first. Weights start from N(0, 0.02). A 64 px generator starts from 4x4, MNIST's
28 px from 7x7: the number of doublings is the largest that leaves a whole map of at
least 4x4.

With `classes`, both networks are told the class of each image (a conditional GAN,
Mirza and Osindero 2014): the generator gets it as a one-hot vector beside the noise,
and the discriminator's logit gains a projection term, the inner product of a learnt
class embedding with its image features (Miyato and Koyama, 2018), so it judges
"a real 7" rather than "a real digit".

The losses are the non-saturating ones of Goodfellow et al.: the discriminator learns
to give real images high logits and generated ones low; the generator learns to make
the discriminator give its images high logits.
"""

import keras
from keras import layers, ops

from common.layers import batch_norm


def layout(image_size):
    """(doublings, size of the first map) for a side that is a multiple of 4 (the Config checks it):
    28 -> (2, 7), 32 -> (3, 4), 64 -> (4, 4), 96 -> (4, 6)."""
    doublings = 2
    while image_size % 2 ** (doublings + 1) == 0 and image_size // 2 ** (doublings + 1) >= 4:
        doublings += 1
    return doublings, image_size // 2**doublings


def initializer():
    return keras.initializers.RandomNormal(0.0, 0.02)


def build_generator(image_size, channels, width, latent_dim, classes=0):
    """Noise (batch, latent_dim), and with `classes` also labels (batch, 1), to images in [-1, 1]."""
    doublings, start = layout(image_size)
    filters = width * 2 ** (doublings - 1)
    noise = keras.Input((latent_dim,), name="noise")
    inputs = x = noise
    if classes:
        label = label_input()
        inputs = [noise, label]
        x = layers.Concatenate()([noise, layers.CategoryEncoding(classes, output_mode="one_hot")(label)])
    x = layers.Dense(start * start * filters, use_bias=False, kernel_initializer=initializer())(x)
    x = layers.Reshape((start, start, filters))(layers.ReLU()(batch_norm()(x)))
    for _ in range(doublings - 1):
        filters //= 2
        x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, kernel_initializer=initializer())(x)
        x = layers.ReLU()(batch_norm()(x))
    x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", kernel_initializer=initializer())(x)
    images = layers.Activation("tanh", dtype="float32")(x)  # images in [-1, 1], float32 under mixed precision
    return keras.Model(inputs, images, name="generator")


def build_discriminator(image_size, channels, width, normalise=True, dropout=0.0, classes=0):
    """Images, and with `classes` also labels (batch, 1), to one logit each: high for real."""
    doublings, _ = layout(image_size)
    image = keras.Input((image_size, image_size, channels), name="image")
    inputs = x = image
    if classes:
        label = label_input()
        inputs = [image, label]
    for level in range(doublings):
        first = level == 0
        x = layers.Conv2D(width * 2**level, 4, strides=2, padding="same", use_bias=first or not normalise,
                          kernel_initializer=initializer())(x)
        if normalise and not first:
            x = batch_norm()(x)
        x = layers.LeakyReLU(0.2)(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    features = layers.Flatten()(x)
    logit = layers.Dense(1, kernel_initializer=initializer(), dtype="float32")(features)
    if classes:
        embedded = layers.Flatten()(layers.Embedding(classes, features.shape[-1], embeddings_initializer=initializer())(label))
        logit = layers.Add(dtype="float32")([logit, layers.Dot(axes=1, dtype="float32")([embedded, features])])
    return keras.Model(inputs, logit, name="discriminator")


def label_input():
    """A conditional network's second input: integer class labels, (batch, 1)."""
    return keras.Input((1,), dtype="int32", name="label")


def discriminator_loss(real_logits, fake_logits):
    """Cross-entropy of "real" for real images and "fake" for generated ones, from logits."""
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_loss(fake_logits):
    """Non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z)))."""
    return ops.mean(ops.softplus(-fake_logits))
