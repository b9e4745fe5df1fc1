"""The Q-networks and the Double-DQN loss, in `keras` and `keras.ops`.

`build_network` makes the Q-network for an observation: a multilayer perceptron for
feature vectors (Flappy Bird's 12 features or 180 LIDAR distances, CartPole's 4
numbers) and the Nature-DQN convolutional network (Mnih et al. 2015) for stacked
pixel frames. With `dueling` the last layer splits into a state value V(s) and
advantages A(s, a), recombined as Q = V + A - mean(A) (Wang et al. 2016).

`dqn_targets` is the bootstrapped target of n-step Double DQN (van Hasselt et al.
2016): the online network picks the next action, the target network values it:
y = R + discount * Q_target(s', argmax_a Q_online(s', a)), where a transition stores
R, the discounted sum of its n rewards, and `discount`, gamma^n (0 once the episode
ended). `td_loss` is the Huber loss between Q(s, a) and y.
"""

import keras
from keras import layers, ops

from common.errors import UserError


@keras.saving.register_keras_serializable(package="flappy_dqn")
class DuelingHead(layers.Layer):
    """Q = V + A - mean over actions of A, from the concatenated [V, A_1 .. A_n]."""

    def call(self, inputs):
        value, advantages = inputs[:, :1], inputs[:, 1:]
        return value + advantages - ops.mean(advantages, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - 1)


def build_network(input_shape, actions, hidden=(256, 256), dueling=False, activation="relu", name="q_network"):
    """The Q-network: observations in, one value per action out (float32)."""
    inputs = keras.Input(input_shape, name="observation")
    if len(input_shape) == 3:  # stacked grey frames, uint8
        x = layers.Rescaling(1 / 255)(inputs)
        x = layers.Conv2D(32, 8, strides=4, activation="relu")(x)
        x = layers.Conv2D(64, 4, strides=2, activation="relu")(x)
        x = layers.Conv2D(64, 3, strides=1, activation="relu")(x)
        x = layers.Flatten()(x)
        hidden = (512,)
    else:
        x = inputs
    for units in hidden:
        x = layers.Dense(units, activation=activation)(x)
    if dueling:
        x = layers.Dense(actions + 1, name="value_and_advantages")(x)
        outputs = DuelingHead(name="dueling")(x)
    else:
        outputs = layers.Dense(actions, name="q_values")(x)
    return keras.Model(inputs, outputs, name=name)


def dqn_targets(returns, discounts, next_q_online, next_q_target, double=True):
    """The n-step (Double) DQN target of each transition."""
    chooser = next_q_online if double else next_q_target
    best = ops.expand_dims(ops.argmax(chooser, axis=1), 1)
    next_value = ops.squeeze(ops.take_along_axis(next_q_target, best, axis=1), 1)
    return returns + discounts * next_value


def td_loss(q_values, actions, targets, huber_delta=1.0):
    """Mean Huber loss between Q(s, a) of the actions taken and their (fixed) targets."""
    chosen = ops.sum(q_values * ops.one_hot(actions, ops.shape(q_values)[1]), axis=1)
    error = ops.abs(chosen - ops.stop_gradient(targets))
    quadratic = ops.minimum(error, huber_delta)
    return ops.mean(0.5 * quadratic**2 + huber_delta * (error - quadratic))


def network_input(model):
    """What a saved network takes: its observation shape."""
    return tuple(model.inputs[0].shape[1:])


def check_fits(model, expected_shape, what):
    """One clear error when a network was trained on other observations than the ones asked for."""
    shape = network_input(model)
    if shape != tuple(expected_shape):
        raise UserError(f"the model takes observations of shape {shape}, but {what} gives {tuple(expected_shape)}: "
                        "it was trained on another environment or --observation")


# --- the agent that ships with flappy-bird-gymnasium ------------------------------------------------

PRETRAINED_FILE = "model.h5"  # its 12-feature agent (the LIDAR ones are attention networks over 16 frames)


def pretrained_network():
    """flappy-bird-gymnasium's own agent on the 12 features: a dueling network 512-256 (elu) whose weights
    ship in its assets/model/model.h5, read with h5py into the same network built here."""
    import h5py
    import numpy as np
    from flappy_bird_gymnasium.envs.utils import MODEL_PATH

    path = f"{MODEL_PATH}/{PRETRAINED_FILE}"
    net = build_network((12,), 2, hidden=(512, 256), activation="elu", dueling=True, name="pretrained")
    try:
        with h5py.File(path, "r") as saved:
            weights = [np.asarray(saved[f"{name}/dueling_dqn/{name}/{part}:0"]) for name in ("dense", "dense_1", "dense_2", "dense_3")
                       for part in ("kernel", "bias")]
    except (OSError, KeyError) as error:
        raise UserError(f"cannot read the pretrained agent's weights from {path} ({error})") from None
    dense = [layer for layer in net.layers if isinstance(layer, layers.Dense)]
    dense[0].set_weights(weights[0:2])
    dense[1].set_weights(weights[2:4])
    # Its value (dense_2, 1 unit) and advantage (dense_3, 2 units) layers, side by side as one layer here.
    dense[2].set_weights([np.concatenate([weights[4], weights[6]], axis=1), np.concatenate([weights[5], weights[7]])])
    return net
