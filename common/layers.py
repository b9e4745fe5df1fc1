"""Layers and layer settings that more than one project's networks use."""

import keras
from keras import layers, ops

BATCH_NORM_MOMENTUM = 0.9  # Keras' 0.99 lags far behind the weights in runs of a few thousand steps


def batch_norm():
    """Batch normalisation whose moving statistics follow a short training run."""
    return layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM)


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
