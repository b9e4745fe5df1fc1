"""The shared custom training step, the VGG backbone and its losses, and TensorFlow's start-up lines."""

import random

import h5py
import keras
import numpy as np
import pytest

from common import backend, vgg
from common.errors import UserError
from helpers import run_subprocess


def values(tensor):
    """A tensor's or a variable's values in NumPy (a variable through a copy: Keras' own conversion of one warns)."""
    return keras.ops.convert_to_numpy(keras.ops.copy(tensor))


def test_gradient_step_takes_the_gradient_and_keeps_batch_norm_statistics():
    # Batch norm without a scale or offset learns nothing, so the gradient for the kernel can be worked
    # out here by hand: the inputs normalised by the batch's own statistics, times the error.
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=(16, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    norm = keras.layers.BatchNormalization(momentum=0.5, center=False, scale=False)
    model = keras.Sequential([keras.Input((3,)), norm, keras.layers.Dense(1, use_bias=False)])
    kernel = np.array([[0.3], [0.1], [-0.2]], "float32")
    model.layers[1].kernel.assign(kernel)
    optimizer = keras.optimizers.SGD(0.1)

    def loss_fn(x, y):
        error = model(x, training=True) - y
        return keras.ops.mean(error**2), {"mae": keras.ops.mean(keras.ops.abs(error))}

    step = backend.gradient_step(loss_fn, model.trainable_variables, optimizer, model.non_trainable_variables)
    mean, variance = x.mean(0), x.var(0)
    normalised = (x - mean) / np.sqrt(variance + norm.epsilon)
    error = normalised @ kernel - y
    after_one = kernel - 0.1 * 2 * normalised.T @ error / len(x)

    loss, metrics = step(x, y)
    assert isinstance(loss, float) and isinstance(metrics["mae"], float) and set(metrics) == {"mae"}
    assert loss == pytest.approx(float(np.mean(error**2)), rel=1e-5)
    assert metrics["mae"] == pytest.approx(float(np.mean(np.abs(error))), rel=1e-5)
    np.testing.assert_allclose(values(model.layers[1].kernel), after_one, rtol=1e-5)
    np.testing.assert_allclose(values(norm.moving_mean), 0.5 * mean, rtol=1e-5)
    np.testing.assert_allclose(values(norm.moving_variance), 0.5 + 0.5 * variance, rtol=1e-5)

    loss, _ = step(x, y)  # the second step starts from what the first one left
    assert loss == pytest.approx(float(np.mean((normalised @ after_one - y) ** 2)), rel=1e-5)
    np.testing.assert_allclose(values(norm.moving_mean), 0.75 * mean, rtol=1e-5)
    assert int(values(optimizer.iterations)) == 2


def test_a_loss_scaled_step_uses_the_scale_it_has_now():
    weight = keras.Variable(0.0)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    optimizer.build([weight])
    step = backend.gradient_step(lambda x: (keras.ops.sum(weight * x), {}), [weight], optimizer)
    x = np.ones(1, "float32")
    step(x)
    assert float(values(weight)) == pytest.approx(-0.1)
    optimizer.dynamic_scale.assign(optimizer.dynamic_scale * 4)
    step(x)
    assert float(values(weight)) == pytest.approx(-0.2)  # the gradient, however scaled, is 1


def test_gram_matrix_and_total_variation_by_hand():
    features = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)  # 4 positions x 2 channels
    flat = features.reshape(4, 2)
    np.testing.assert_allclose(values(vgg.gram_matrix(features))[0], flat.T @ flat / 4, rtol=1e-6)
    image = np.array([[0, 1], [3, 5]], "float32").reshape(1, 2, 2, 1)
    # down: |3-0|, |5-1| -> mean 3.5; across: |1-0|, |5-3| -> mean 1.5
    assert float(values(vgg.total_variation(image))) == pytest.approx(5.0)


def test_start_up_lines_are_dropped_other_stderr_kept_and_jax_never_imports_tensorflow():
    # Under TensorFlow its start-up lines come when Keras is imported; under JAX, seeding must not import it.
    code = ("from common import backend; import keras, os, sys; keras.ops.ones(1); backend.set_random_seed(0); "
            "print('tensorflow' in sys.modules); os.write(2, b'kept\\n')")
    result = run_subprocess("-c", code)
    assert result.returncode == 0 and result.stderr == "kept\n", result.stderr
    assert result.stdout.split() == [str(keras.backend.backend() == "tensorflow")]


def test_seeding_repeats_python_numpy_and_keras_random_numbers():
    def draws():
        return [random.random(), np.random.rand(), *keras.ops.convert_to_numpy(keras.random.normal((2,))).tolist()]

    backend.set_random_seed(7)
    first = draws()
    backend.set_random_seed(8)
    other = draws()
    backend.set_random_seed(7)
    assert draws() == first
    assert all(a != b for a, b in zip(first, other))


# --- The VGG backbone: nothing here depends on the backend --------------------------------

# VGG16's convolutions, block by block: (input channels, output channels).
VGG16_CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                  (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def write_conv_stack(path, shapes):
    """A weights file laid out block by block, as the shared HED-trained VGG16 is; returns its (kernel, bias) pairs."""
    rng = np.random.default_rng(0)
    stack = []
    with h5py.File(path, "w") as file:
        for name, shape in zip(vgg.layer_names("vgg16"), shapes):
            block, conv = name.split("_")
            index = int(conv[4:]) - 1
            kernel, bias = rng.normal(size=shape).astype("float32"), rng.normal(size=shape[-1]).astype("float32")
            group = file.create_group(f"{block}/layers/conv2d{'_' + str(index) if index else ''}/vars")
            group["0"], group["1"] = kernel, bias
            stack.append((kernel, bias))
        file.create_group("block1/layers/max_pooling2d")
    return stack


@pytest.mark.backend_independent
def test_local_weights_load_block_by_block_and_mismatches_are_clear(tmp_path):
    stack = write_conv_stack(tmp_path / "stack.weights.h5", [(3, 3, *channels) for channels in VGG16_CHANNELS])
    network = vgg.build("vgg16", tmp_path / "stack.weights.h5")
    for name, (kernel, bias) in zip(vgg.layer_names("vgg16"), stack, strict=True):
        loaded_kernel, loaded_bias = network.get_layer(name).get_weights()
        np.testing.assert_array_equal(loaded_kernel, kernel)
        np.testing.assert_array_equal(loaded_bias, bias)

    write_conv_stack(tmp_path / "short.h5", [(1, 1, 1, 1)] * 12)
    with pytest.raises(UserError, match="short.h5 holds 12 convolutions; vgg16 has 13"):
        vgg.load_weights(network, "vgg16", tmp_path / "short.h5")
    write_conv_stack(tmp_path / "small.h5", [(1, 1, 1, 1)] * 13)
    with pytest.raises(UserError, match=r"block1_conv1 should be \(3, 3, 3, 64\), the file has \(1, 1, 1, 1\)"):
        vgg.load_weights(network, "vgg16", tmp_path / "small.h5")
    with pytest.raises(UserError, match="missing.h5: no such file"):
        vgg.load_weights(network, "vgg16", tmp_path / "missing.h5")
    (tmp_path / "notes.h5").write_text("not weights")
    with pytest.raises(UserError, match="notes.h5: not vgg16 weights"):
        vgg.load_weights(network, "vgg16", tmp_path / "notes.h5")
    with pytest.raises(UserError, match="unknown backbone 'resnet'"):
        vgg.build("resnet", tmp_path / "stack.weights.h5")


@pytest.mark.backend_independent
def test_vgg_features_are_the_layers_asked_for_at_any_size():
    features = vgg.Features(["block1_conv2", "block3_conv1"], "vgg16", "random")
    images = np.random.default_rng(0).uniform(0, 255, (2, 40, 24, 3)).astype("float32")
    out = features(images)
    assert set(out) == {"block1_conv2", "block3_conv1"}
    assert out["block1_conv2"].shape == (2, 40, 24, 64) and out["block3_conv1"].shape == (2, 10, 6, 256)
    # The first block by hand: RGB to BGR, ImageNet means subtracted, then its two convolutions.
    first, second = (features.model.get_layer(name) for name in ("block1_conv1", "block1_conv2"))
    expected = second(first(images[..., ::-1] - np.array(vgg.MEAN_BGR, "float32")))
    np.testing.assert_allclose(values(out["block1_conv2"]), values(expected), rtol=1e-4, atol=1e-3)
    with pytest.raises(UserError, match="vgg16 has no layer block5_conv4"):
        vgg.Features(["block5_conv4"], "vgg16", "random")
