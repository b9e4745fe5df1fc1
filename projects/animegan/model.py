"""The AnimeGANv2 generator and discriminator, and the losses that train them.

The generator (Chen et al., AnimeGANv2) is small on purpose, about 2 million weights:
three convolutions down to a quarter of the size, four inverted residual blocks
(MobileNetV2's 1x1 expand, 3x3 depthwise, 1x1 project) at 256 channels, then resize-
and-convolve twice back up to the full size and a tanh. Every convolution is followed
by layer normalisation over the whole feature map (GroupNormalization with one group:
one mean per image, a scale and shift per channel) and a leaky ReLU; borders are
reflected, not zero-padded, so the edges of a picture look like its middle. It is
fully convolutional: any size that is a multiple of `STRIDE` (4) goes in and comes out.

The discriminator is a small patch critic with spectral normalisation on every
convolution; it scores each patch of an image as real anime (1) or not (0), trained
with least squares (LSGAN). Besides the generator's pictures it is shown the anime
images in grey and edge-smoothed in grey as fakes: so the generator is pushed to
produce the colours and the crisp edges of the style, not just its textures.

The generator's other losses compare frozen VGG features (see common/vgg.py):
content is the L1 distance of conv4 features between photo and output; style is
the L1 distance of their Gram matrices between output and grey anime images (grey,
so the style's textures are learnt but not its colours); colour is L1 on the Y
channel and Huber on U and V between photo and output in YUV, which keeps the
photo's colours without fixing its brightness; total variation removes noise.
Images are in [-1, 1] throughout. Everything is `keras.ops`, for TensorFlow and JAX.
"""

import keras
from keras import layers, ops

from common import vgg
from common.layers import ReflectionPadding

LEAK = 0.2
NORM_EPSILON = 1e-5
RGB_TO_YUV = [  # columns are Y, U, V of an RGB triple in [0, 1] (the same matrix as tf.image.rgb_to_yuv)
    [0.299, -0.14714119, 0.61497538],
    [0.587, -0.28886916, -0.51496512],
    [0.114, 0.43601035, -0.10001026],
]
GREY = [0.299, 0.587, 0.114]
CONTENT_LAYERS = {"vgg19": "block4_conv4", "vgg16": "block4_conv3"}


@keras.saving.register_keras_serializable(package="animegan")
class Upsample2x(layers.Layer):
    """Bilinear resize to twice the height and width (pixel centres, edges repeated), for any input size.

    Each new pixel is 3/4 of its source pixel plus 1/4 of the neighbour on its side; written
    with slices so that it needs no static image size.
    """

    def call(self, inputs):
        return self._double(self._double(inputs, axis=1), axis=2)

    @staticmethod
    def _double(x, axis):
        take = lambda start, stop: x[:, start:stop] if axis == 1 else x[:, :, start:stop]
        before = ops.concatenate([take(0, 1), take(0, -1)], axis=axis)
        after = ops.concatenate([take(1, None), take(-1, None)], axis=axis)
        pairs = ops.stack([0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after], axis=axis + 1)
        shape = ops.shape(x)
        doubled = [-1, shape[1] * 2, shape[2], x.shape[3]] if axis == 1 else [-1, shape[1], shape[2] * 2, x.shape[3]]
        return ops.reshape(pairs, doubled)

    def compute_output_shape(self, shape):
        double = lambda size: None if size is None else 2 * size
        return (shape[0], double(shape[1]), double(shape[2]), shape[3])


def conv(x, filters, kernel=3, strides=1, name=None):
    """A bias-free convolution on a reflected border: same size, or half of it with stride 2."""
    before, after = (0, 1) if strides == 2 else ((kernel - 1) // 2, (kernel - 1) // 2)
    if before or after:
        x = ReflectionPadding(before, after, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, kernel, strides, use_bias=False, kernel_initializer="he_normal", name=name)(x)


def norm_lrelu(x, name):
    x = layers.GroupNormalization(groups=1, epsilon=NORM_EPSILON, name=f"{name}_norm")(x)
    return layers.LeakyReLU(LEAK, name=f"{name}_lrelu")(x)


def conv_block(x, filters, kernel=3, strides=1, name=None):
    return norm_lrelu(conv(x, filters, kernel, strides, name=name), name)


def inverted_residual(x, filters, expansion, name):
    """1x1 expand, 3x3 depthwise, 1x1 project (linear); added to its input when the widths match."""
    h = conv_block(x, x.shape[-1] * expansion, kernel=1, name=f"{name}_expand")
    h = ReflectionPadding(1, name=f"{name}_depthwise_pad")(h)
    h = layers.DepthwiseConv2D(3, depthwise_initializer="he_normal", name=f"{name}_depthwise")(h)
    h = norm_lrelu(h, f"{name}_depthwise")
    h = conv(h, filters, kernel=1, name=f"{name}_project")
    h = layers.GroupNormalization(groups=1, epsilon=NORM_EPSILON, name=f"{name}_project_norm")(h)
    return layers.Add(name=f"{name}_add")([x, h]) if x.shape[-1] == filters else h


def upsample(x, filters, name):
    """Resize then convolve, rather than a transposed convolution: no checkerboard artefacts."""
    x = Upsample2x(name=f"{name}_resize")(x)
    return conv_block(x, filters, name=name)


def build_generator(residual_blocks=4, expansion=2):
    """Photo in [-1, 1], (batch, height, width, 3) with sides a multiple of STRIDE → anime image in [-1, 1]."""
    photo = keras.Input((None, None, 3), name="photo")
    x = conv_block(photo, 32, kernel=7, name="a1")
    x = conv_block(x, 64, strides=2, name="a2")
    x = conv_block(x, 64, name="a3")
    x = conv_block(x, 128, strides=2, name="b1")
    x = conv_block(x, 128, name="b2")
    x = conv_block(x, 128, name="c1")
    for index in range(1, residual_blocks + 1):
        x = inverted_residual(x, 256, expansion, name=f"c_residual{index}")
    x = conv_block(x, 128, name="c2")
    x = upsample(x, 128, name="d1")
    x = conv_block(x, 128, name="d2")
    x = upsample(x, 64, name="e1")
    x = conv_block(x, 64, name="e2")
    x = conv_block(x, 32, kernel=7, name="e3")
    x = conv(x, 3, kernel=1, name="to_rgb")
    anime = layers.Activation("tanh", dtype="float32", name="anime")(x)
    return keras.Model(photo, anime, name="animegan_generator")


def build_discriminator(channels=64, layers_count=3):
    """A patch critic: image in [-1, 1] → (batch, height/4, width/4, 1) scores, spectrally normalised."""

    def sn_conv(x, filters, strides=1, name=None):
        init = keras.initializers.RandomNormal(stddev=0.02)
        convolution = layers.Conv2D(filters, 3, strides, padding="same", use_bias=False, kernel_initializer=init)
        return layers.SpectralNormalization(convolution, name=name)(x)

    image = keras.Input((None, None, 3), name="image")
    width = channels // 2
    x = layers.LeakyReLU(LEAK)(sn_conv(image, width, name="conv0"))
    for index in range(1, layers_count):
        x = layers.LeakyReLU(LEAK)(sn_conv(x, width * 2, strides=2, name=f"down{index}"))
        x = norm_lrelu(sn_conv(x, width * 4, name=f"conv{index}"), f"conv{index}")
        width *= 2
    x = norm_lrelu(sn_conv(x, width * 2, name="last"), "last")
    scores = layers.Activation("linear", dtype="float32", name="scores")(sn_conv(x, 1, name="logits"))
    return keras.Model(image, scores, name="animegan_discriminator")


# --- losses ---------------------------------------------------------------------------


def to_grey(images):
    """Images in [-1, 1] as grey, still three channels (what the style and grey-fake losses see)."""
    grey = ops.sum(images * ops.convert_to_tensor(GREY, dtype=images.dtype), axis=-1, keepdims=True)
    return ops.repeat(grey, 3, axis=-1)


def rgb_to_yuv(images):
    """Images in [-1, 1] → YUV of the same pixels in [0, 1]: Y in [0, 1], U and V around 0."""
    rgb = (ops.cast(images, "float32") + 1.0) / 2.0
    return ops.tensordot(rgb, ops.convert_to_tensor(RGB_TO_YUV), axes=1)


def huber(a, b, delta=1.0):
    error = ops.abs(a - b)
    return ops.mean(ops.where(error <= delta, 0.5 * ops.square(error), delta * (error - 0.5 * delta)))


def color_loss(photos, generated):
    """L1 on Y (brightness) plus Huber on U and V (colour) between the photo and the output."""
    photo, fake = rgb_to_yuv(photos), rgb_to_yuv(generated)
    return (
        ops.mean(ops.abs(photo[..., 0] - fake[..., 0]))
        + huber(photo[..., 1], fake[..., 1])
        + huber(photo[..., 2], fake[..., 2])
    )


def content_loss(photo_features, generated_features):
    return ops.mean(ops.abs(photo_features - generated_features))


def style_loss(style_features, generated_features):
    """L1 between Gram matrices; divided by the channels too, as AnimeGAN does (its weights assume it)."""
    channels = ops.cast(ops.shape(generated_features)[-1], "float32")
    return ops.mean(ops.abs(vgg.gram_matrix(style_features) - vgg.gram_matrix(generated_features))) / channels


def generator_adversarial_loss(fake_scores):
    """LSGAN: the generator wants its pictures scored 1 (anime)."""
    return ops.mean(ops.square(fake_scores - 1.0))


def discriminator_losses(anime, grey, generated, smoothed):
    """LSGAN terms: anime scored 1; grey anime, generated and grey edge-smoothed anime scored 0."""
    return {
        "real": ops.mean(ops.square(anime - 1.0)),
        "grey": ops.mean(ops.square(grey)),
        "fake": ops.mean(ops.square(generated)),
        "smooth": ops.mean(ops.square(smoothed)),
    }


class Perceptual:
    """The frozen VGG's conv4 features of images in [-1, 1], as float32 (the losses are computed in float32
    under mixed precision too)."""

    def __init__(self, backbone="vgg19", weights="imagenet"):
        vgg.check_backbone(backbone)
        self.layer = CONTENT_LAYERS[backbone]
        self.features = vgg.Features([self.layer], backbone, weights)

    def __call__(self, images):
        return ops.cast(self.features((ops.cast(images, "float32") + 1.0) * 127.5)[self.layer], "float32")
