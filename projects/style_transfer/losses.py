"""The perceptual loss both methods minimise: content, style and total variation, weighted by name.

A frozen VGG (`common.vgg`) describes an image by its feature maps. Content is *where*
things are: the feature maps of a deep layer, compared position by position with the
photo's. Style is *what textures and colours occur together*: the Gram matrices of
several layers (channel correlations, positions summed away), compared with the
painting's (Gatys et al., 2016). Total variation penalises pixel noise.

Each term is a relative squared error, divided by the size of its target (the photo's
features, the painting's Gram matrix), and averaged over its layers. That keeps every
layer's say equal whatever the scale of its activations, and lets the same weights
serve VGG16 and VGG19, ImageNet or other weights alike: the weights are then plain
ratios of how much content, style and smoothness matter.
"""

from pathlib import Path

from keras import ops

from common import vgg
from common.errors import UserError

EPSILON = 1e-8  # a black target (all-zero features) must not divide by zero


def parse_layers(text, backbone):
    """A comma-separated list of VGG layer names, checked against the backbone."""
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    if not names:
        raise UserError("give at least one VGG layer, e.g. block4_conv2")
    known = vgg.layer_names(backbone)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UserError(f"{backbone} has no layer {', '.join(unknown)}; it has {', '.join(known)}")
    return names


def content_loss(features, target):
    """Squared error between feature maps, relative to the target's: sum (F - P)^2 / sum P^2."""
    return ops.sum(ops.square(features - target)) / (ops.sum(ops.square(target)) + EPSILON)


def style_loss(features, target_gram):
    """Squared error between Gram matrices, relative to the target's, averaged over the batch.

    `target_gram` (channels, channels) is the painting's (or a blend of paintings').
    """
    grams = vgg.gram_matrix(features)
    error = ops.sum(ops.square(grams - target_gram)) / ops.cast(ops.shape(grams)[0], grams.dtype)
    return error / (ops.sum(ops.square(target_gram)) + EPSILON)


def smoothness_loss(images):
    """Total variation of RGB [0, 255] images, in units of the full pixel range."""
    return vgg.total_variation(images) / 255.0


class PerceptualLoss:
    """`loss(images, content_targets, style_targets)` → (total, {"content", "style", "tv"}).

    The targets come from `content_targets(photos)` and `style_targets(paintings, blend)`;
    images are RGB in [0, 255], (batch, height, width, 3).
    """

    def __init__(self, backbone, backbone_weights, content_layers, style_layers, content_weight, style_weight, tv_weight):
        self.content_layers = parse_layers(content_layers, backbone)
        self.style_layers = parse_layers(style_layers, backbone)
        needed = list(dict.fromkeys(self.content_layers + self.style_layers))
        self.features = vgg.Features(needed, backbone, backbone_weights)
        self.weights = {"content": content_weight, "style": style_weight, "tv": tv_weight}

    def content_targets(self, photos):
        features = self.features(photos)
        return {name: features[name] for name in self.content_layers}

    def style_targets(self, paintings, blend=None):
        """Gram matrices of each layer, blended across paintings by `blend` (weights summing to 1).

        Paintings may differ in size, so each goes through the network on its own.
        """
        blend = blend or [1.0 / len(paintings)] * len(paintings)
        targets = {name: 0.0 for name in self.style_layers}
        for painting, share in zip(paintings, blend):
            features = self.features(ops.expand_dims(ops.convert_to_tensor(painting, "float32"), 0))
            for name in self.style_layers:
                targets[name] = targets[name] + share * vgg.gram_matrix(features[name])[0]
        return targets

    def __call__(self, images, content_targets, style_targets):
        features = self.features(images)
        terms = {
            "content": sum(content_loss(features[n], content_targets[n]) for n in self.content_layers) / len(self.content_layers),
            "style": sum(style_loss(features[n], style_targets[n]) for n in self.style_layers) / len(self.style_layers),
            "tv": smoothness_loss(images),
        }
        total = sum(self.weights[name] * value for name, value in terms.items())
        return total, terms


def perceptual_loss(config):
    """The PerceptualLoss a config (optimisation or training) names; builds its VGG."""
    return PerceptualLoss(
        config.backbone,
        config.backbone_weights,
        config.content_layers,
        config.style_layers,
        config.content_weight,
        config.style_weight,
        config.tv_weight,
    )


def check_settings(config):
    """Clear messages for bad VGG flags before any work starts (shared by `train` and `stylize`)."""
    vgg.check_backbone(config.backbone)
    parse_layers(config.content_layers, config.backbone)
    parse_layers(config.style_layers, config.backbone)
    weights = config.backbone_weights
    if weights not in ("imagenet", "random") and not Path(weights).is_file():
        raise UserError(f"--backbone-weights {weights}: no such file (give a VGG weights file, 'imagenet' or 'random')")
