"""The shared custom training step and the VGG backbone, under whichever backend runs the suite."""

import h5py
import keras
import numpy as np
import pytest

from common import backend, vgg
from common.errors import UserError
from conftest import run_python


def test_gradient_step_fits_a_line_and_updates_batch_norm_statistics():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8), keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(1e-2)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")

    def loss_fn(x, y):
        error = model(x, training=True) - y
        return keras.ops.mean(error**2), {"mae": keras.ops.mean(keras.ops.abs(error))}

    step = backend.gradient_step(loss_fn, model.trainable_variables, optimizer, model.non_trainable_variables)
    moving_mean = np.array(model.layers[1].moving_mean)
    first, metrics = step(x, y)
    for _ in range(150):
        last, metrics = step(x, y)
    assert isinstance(last, float) and set(metrics) == {"mae"}
    assert last < 0.05 * first
    assert int(optimizer.iterations) == 151
    assert not np.allclose(np.array(model.layers[1].moving_mean), moving_mean)


def test_vgg_features_have_the_layers_asked_for_at_any_size():
    features = vgg.Features(["block1_conv2", "block3_conv1"], "vgg16", "random")
    out = features(np.zeros((2, 40, 24, 3), "float32"))
    assert out["block1_conv2"].shape == (2, 40, 24, 64) and out["block3_conv1"].shape == (2, 10, 6, 256)
    with pytest.raises(UserError, match="has no layer block5_conv4"):
        vgg.Features(["block5_conv4"], "vgg16", "random")
    with pytest.raises(UserError, match="unknown backbone"):
        vgg.Features(["block1_conv1"], "resnet", "random")


def write_conv_stack(path, backbone):
    """A weights file laid out block by block, as the shared HED-trained VGG16 is."""
    rng = np.random.default_rng(0)
    network = vgg.build(backbone, "random")
    expected = []
    with h5py.File(path, "w") as file:
        for name in vgg.layer_names(backbone):
            block, conv = name.split("_")
            kernel = rng.normal(size=network.get_layer(name).kernel.shape).astype("float32")
            bias = rng.normal(size=kernel.shape[-1]).astype("float32")
            index = int(conv[4:]) - 1
            group = file.create_group(f"{block}/layers/conv2d{'_' + str(index) if index else ''}/vars")
            group["0"], group["1"] = kernel, bias
            expected.append(kernel)
        file.create_group("block1/layers/max_pooling2d")
    return expected


def test_local_weights_load_block_by_block_and_mismatches_are_clear(tmp_path):
    expected = write_conv_stack(tmp_path / "stack.weights.h5", "vgg16")
    network = vgg.build("vgg16", tmp_path / "stack.weights.h5")
    for name, kernel in zip(vgg.layer_names("vgg16"), expected):
        np.testing.assert_array_equal(np.array(network.get_layer(name).kernel), kernel)
    with pytest.raises(UserError, match="holds 13 convolutions; vgg19 has 16"):
        vgg.build("vgg19", tmp_path / "stack.weights.h5")
    with pytest.raises(UserError, match="no such file"):
        vgg.build("vgg16", tmp_path / "missing.h5")
    (tmp_path / "notes.h5").write_text("not weights")
    with pytest.raises(UserError, match="not vgg16 weights"):
        vgg.build("vgg16", tmp_path / "notes.h5")


def test_gram_matrix_and_total_variation_by_hand():
    features = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)  # 4 positions x 2 channels
    flat = features.reshape(4, 2)
    np.testing.assert_allclose(np.array(vgg.gram_matrix(features))[0], flat.T @ flat / 4, rtol=1e-6)
    image = np.array([[0, 1], [3, 5]], "float32").reshape(1, 2, 2, 1)
    # down: |3-0|, |5-1| -> mean 3.5; across: |1-0|, |5-3| -> mean 1.5
    assert float(vgg.total_variation(image)) == pytest.approx(5.0)


@pytest.mark.parametrize("use", ["keras.ops.ones(1)", "backend.set_random_seed(0)"])
def test_tensorflows_start_up_lines_are_dropped_and_other_stderr_kept(use):
    code = f"from common import backend; import keras, os; {use}; os.write(2, b'kept\\n')"
    result = run_python("-c", code)
    assert result.returncode == 0 and result.stderr == "kept\n"


def test_a_loss_scaled_step_uses_the_scale_it_has_now():
    weight = keras.Variable(0.0)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    optimizer.build([weight])
    step = backend.gradient_step(lambda x: (keras.ops.sum(weight * x), {}), [weight], optimizer)
    x = np.ones(1, "float32")
    step(x)
    assert float(keras.ops.convert_to_numpy(weight)) == pytest.approx(-0.1)
    optimizer.dynamic_scale.assign(optimizer.dynamic_scale * 4)
    step(x)
    assert float(keras.ops.convert_to_numpy(weight)) == pytest.approx(-0.2)  # the gradient, however scaled, is 1
