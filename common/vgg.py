"""A frozen VGG16/VGG19 that turns images into the feature maps perceptual losses compare.

Style transfer and AnimeGAN both measure content and style with VGG features, so the
backbone lives here once. It is `keras.applications.VGG16`/`VGG19` without the
classifier, any image size, fed RGB values in [0, 255] and preprocessed the way those
weights were trained (BGR, ImageNet means subtracted). Weights: "imagenet" (downloaded
by Keras), "random" (tests), or a local file: a Keras weights file of the same network,
or a conv stack saved block by block (`block{1..5}/layers/conv2d{,_1,...}/vars/{0,1}`,
the layout of the HED-trained VGG16 in the shared data folder).
"""

from pathlib import Path

import keras
from keras import ops

from common.errors import UserError

BACKBONES = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}
CONVS_PER_BLOCK = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
MEAN_BGR = (103.939, 116.779, 123.68)


def layer_names(backbone):
    """Every convolution's name, block by block: block1_conv1, ..., block5_conv3 (or conv4)."""
    check_backbone(backbone)
    return [f"block{b}_conv{c}" for b, count in enumerate(CONVS_PER_BLOCK[backbone], 1) for c in range(1, count + 1)]


def check_backbone(backbone):
    if backbone not in BACKBONES:
        raise UserError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")


def preprocess(images):
    """RGB in [0, 255] to what VGG's weights expect: BGR with the ImageNet means subtracted."""
    return ops.flip(images, axis=-1) - ops.convert_to_tensor(MEAN_BGR, dtype=images.dtype)


class Features:
    """`Features(["block4_conv1"])(images)` → {"block4_conv1": feature maps}, from a frozen VGG.

    `images` are RGB, (batch, height, width, 3), values in [0, 255].
    """

    def __init__(self, layers, backbone="vgg19", weights="imagenet"):
        layers = list(layers)
        known = layer_names(backbone)
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise UserError(f"{backbone} has no layer {', '.join(unknown)}; it has {', '.join(known)}")
        network = build(backbone, weights)
        # A functional model computes only what its outputs need: nothing past the deepest layer asked for.
        self.model = keras.Model(network.input, {name: network.get_layer(name).output for name in layers})
        self.model.trainable = False
        self.layers, self.backbone = layers, backbone

    def __call__(self, images):
        return self.model(preprocess(images), training=False)


def build(backbone="vgg19", weights="imagenet"):
    """The convolutional part of VGG16/VGG19 (any input size) with the weights asked for."""
    check_backbone(backbone)
    make = BACKBONES[backbone]
    if weights in (None, "random"):
        return make(include_top=False, weights=None, input_shape=(None, None, 3))
    if weights == "imagenet":
        try:
            return make(include_top=False, weights="imagenet", input_shape=(None, None, 3))
        except Exception as error:  # no network, a proxy, a broken download: all end the same way for the user
            raise UserError(
                f"could not download the ImageNet {backbone} weights ({type(error).__name__}: {error}); "
                "give a local file with --backbone-weights PATH"
            ) from None
    network = make(include_top=False, weights=None, input_shape=(None, None, 3))
    load_weights(network, backbone, weights)
    return network


def load_weights(network, backbone, path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--backbone-weights {path}: no such file")
    if not _is_conv_stack(path):
        try:
            network.load_weights(path)
        except Exception as error:
            raise UserError(f"--backbone-weights {path}: not {backbone} weights ({type(error).__name__}: {error})") from None
        return
    kernels = _conv_stack(path)
    convs = [network.get_layer(name) for name in layer_names(backbone)]
    if len(kernels) != len(convs):
        raise UserError(f"{path} holds {len(kernels)} convolutions; {backbone} has {len(convs)}")
    for layer, (kernel, bias) in zip(convs, kernels):
        if tuple(kernel.shape) != tuple(layer.kernel.shape):
            raise UserError(f"{path}: {layer.name} should be {tuple(layer.kernel.shape)}, the file has {kernel.shape}")
        layer.set_weights([kernel, bias])


def _is_conv_stack(path):
    import h5py

    try:
        with h5py.File(path, "r") as file:
            return "block1" in file and "layers" in file["block1"]
    except OSError:
        return False


def _conv_stack(path):
    """[(kernel, bias), ...] from a file laid out block{N}/layers/conv2d{,_1,...}/vars/{0,1}."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            blocks = sorted((k for k in file if k.startswith("block") and k[5:].isdigit()), key=lambda k: int(k[5:]))
            stack = []
            for block in blocks:
                layers = file[block].get("layers", {})
                convs = [name for name in layers if name == "conv2d" or name.startswith("conv2d_")]
                for name in sorted(convs, key=lambda n: int(n.rpartition("_")[2]) if "_" in n else 0):
                    stack.append((layers[name]["vars"]["0"][()], layers[name]["vars"]["1"][()]))
    except (OSError, KeyError) as error:
        raise UserError(f"--backbone-weights {path}: not a VGG weights file ({error})") from None
    if not stack:
        raise UserError(f"--backbone-weights {path}: holds no VGG convolution weights")
    return stack


def gram_matrix(features):
    """Channel correlations of (batch, height, width, channels) features, divided by height x width.

    (batch, channels, channels): the style statistic of Gatys et al., compared between images.
    """
    shape = ops.shape(features)
    flat = ops.reshape(features, (shape[0], -1, shape[-1]))
    return ops.einsum("bpc,bpd->bcd", flat, flat) / ops.cast(shape[1] * shape[2], features.dtype)


def total_variation(images):
    """Mean absolute difference between neighbouring pixels, down and across: penalises noise."""
    down = ops.mean(ops.abs(images[:, 1:, :, :] - images[:, :-1, :, :]))
    across = ops.mean(ops.abs(images[:, :, 1:, :] - images[:, :, :-1, :]))
    return down + across
