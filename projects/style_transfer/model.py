"""The fast style-transfer network (Johnson et al., 2016): one pass paints a photo in one painting's style.

An image transformation network, trained once per painting with the perceptual loss,
replaces the slow optimisation: downsample twice with strided convolutions, a stack
of residual blocks at a quarter of the resolution, upsample twice, back to RGB. As in
Ulyanov et al.'s improvement, every convolution is followed by instance normalisation
(Keras' GroupNormalization with one group per channel), which takes each image's own
contrast out of the picture and trains far better than batch normalisation here.
Upsampling is nearest-neighbour then a convolution, which avoids the checkerboard
artefacts of transposed convolutions; padding is by reflection, which avoids dark
borders. It is fully convolutional: any image size goes in, the same size comes out.

`--filters` sets the width (channels of the first layer; ×2 and ×4 after each
downsampling). Johnson used 32; 16 has a quarter of the work and fits the time a CPU
can give (see the README).
"""

import keras
from keras import layers, ops

from common import runs
from common.errors import UserError
from common.layers import ReflectionPadding
from projects.style_transfer import PROJECT


@keras.saving.register_keras_serializable(package=PROJECT)
class CropToInput(layers.Layer):
    """Crops the output to the input's height and width (downsampling rounds odd sizes up)."""

    def call(self, inputs):
        output, reference = inputs
        shape = ops.shape(reference)
        return output[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, shapes):
        output, reference = shapes
        return (output[0], reference[1], reference[2], output[3])


@keras.saving.register_keras_serializable(package=PROJECT)
class ToUint8(layers.Layer):
    """Rounds and clips RGB values to 0..255 as uint8: what an exported model hands back."""

    def call(self, x):
        return ops.cast(ops.clip(ops.round(x), 0, 255), "uint8")

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, "uint8")


def conv(x, filters, size, strides=1, normalise=True, relu=True, **conv_options):
    x = ReflectionPadding(size // 2)(x)
    x = layers.Conv2D(filters, size, strides=strides, padding="valid", use_bias=not normalise, **conv_options)(x)
    if normalise:
        x = layers.GroupNormalization(groups=-1, epsilon=1e-5)(x)  # groups=-1: instance normalisation
    return layers.ReLU()(x) if relu else x


def build_transform_net(filters=16, residual_blocks=5):
    """RGB [0, 255] (batch, height, width, 3) of any size → stylized RGB, the same size (to be clipped to [0, 255]).

    The network predicts a change to the photo, added to it, through a linear last layer:
    training starts from the photo's content and spends its steps on the style, and no
    squashing function can saturate a region to black where no gradient reaches it.
    """
    inputs = keras.Input((None, None, 3), name="photo")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = conv(x, filters, 9)
    x = conv(x, filters * 2, 3, strides=2)
    x = conv(x, filters * 4, 3, strides=2)
    for _ in range(residual_blocks):
        y = conv(x, filters * 4, 3)
        y = conv(y, filters * 4, 3, relu=False)
        x = layers.Add()([x, y])
    for width in (filters * 2, filters):
        x = layers.UpSampling2D(2, interpolation="nearest")(x)
        x = conv(x, width, 3)
    x = conv(x, 3, 9, normalise=False, relu=False, kernel_initializer="zeros")  # an untrained network returns the photo
    change = layers.Rescaling(127.5)(CropToInput()([x, inputs]))
    outputs = layers.Add(name="stylized")([inputs, change])
    return keras.Model(inputs, outputs, name="transform_net")


def inference_model(net):
    """The transform network with uint8 output: the exported, self-contained stylizing model."""
    outputs = ToUint8(name="rgb")(net.output)
    return keras.Model(net.input, outputs, name="style_transfer")


def load_network(path):
    """A trained (or exported) network from its .keras file; this module's import registers the layers it is made of.

    `runs.load_model` refuses another project's model by the project the file names; one that names
    none (saved elsewhere) must at least take RGB images of any size, as the transform network does.
    """
    net = runs.load_model(path, PROJECT)
    shapes = [tuple(tensor.shape) for tensor in net.inputs]
    if shapes != [(None, None, None, 3)]:
        raise UserError(f"{path} takes inputs of shape {', '.join(map(str, shapes))}, not RGB images of any size: "
                        f"it is not a {PROJECT} network")
    return net
