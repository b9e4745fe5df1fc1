"""Layers and layer settings that more than one project's networks use."""

import keras
from keras import layers, ops

BATCH_NORM_MOMENTUM = 0.9  # Keras' 0.99 lags far behind the weights in runs of a few thousand steps


def batch_norm(synchronized=False):
    """Batch normalisation whose moving statistics follow a short training run.

    `synchronized`: on replicas, normalise by the statistics of the whole global batch, as
    one device would; every replica then keeps the same moving statistics. TensorFlow's
    replicas need it said (`BatchNormalization(synchronized=True)`); JAX's Keras computes
    over the global batch anyway (and refuses the setting).
    """
    synchronized = synchronized and keras.backend.backend() == "tensorflow"
    return layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, synchronized=synchronized)


def augmentation(rotation=0.0, shift=0.0, zoom=0.0, flip=False, seed=None):
    """Layers that distort each training image at random, and leave images alone outside training.

    A horizontal mirror image (`flip`), a turn of up to `rotation` degrees, a shift of up
    to `shift` and a zoom of up to `zoom` (fractions of the image's size) either way; a
    setting at 0 adds no layer. What moves in from beyond the border is zeros (black).
    """
    distortions = []
    if flip:
        distortions.append(layers.RandomFlip("horizontal", seed=seed))
    if rotation > 0:
        distortions.append(layers.RandomRotation(rotation / 360.0, fill_mode="constant", seed=seed))
    if shift > 0:
        distortions.append(layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed))
    if zoom > 0:
        distortions.append(layers.RandomZoom(zoom, fill_mode="constant", seed=seed))
    return distortions


@keras.saving.register_keras_serializable(package="common")
class ReflectionPadding(layers.Layer):
    """Pads height and width by mirroring the image at its borders, `before` and `after` pixels
    (both `before` when `after` is not given): the edges then look like the middle, where
    zeros would draw dark frames."""

    def __init__(self, before, after=None, **kwargs):
        super().__init__(**kwargs)
        self.before = int(before)
        self.after = self.before if after is None else int(after)

    def call(self, inputs):
        pad = (self.before, self.after)
        return ops.pad(inputs, ((0, 0), pad, pad, (0, 0)), mode="reflect")

    def compute_output_shape(self, shape):
        grow = lambda size: None if size is None else size + self.before + self.after
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "before": self.before, "after": self.after}
