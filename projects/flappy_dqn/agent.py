"""The DQN agent: online and target Q-networks, the optimiser, ε-greedy acting and the compiled update."""

import keras
import numpy as np
from keras import ops

from common import backend
from projects.flappy_dqn import model


class Agent:
    """The online and target Q-networks, the optimiser and the compiled update."""

    def __init__(self, config, observation_shape, actions):
        self.config, self.actions = config, actions
        hidden = (config.hidden,) * config.layers
        self.online = model.build_network(observation_shape, actions, hidden, config.dueling)
        self.target = model.build_network(observation_shape, actions, hidden, config.dueling, name="target")
        self.sync_target()
        self.optimizer = keras.optimizers.Adam(config.lr, clipnorm=10.0)
        # The target network's variables go in as `state`: read afresh at every call of the compiled step.
        self.update_step = backend.gradient_step(self.loss, self.online.trainable_variables, self.optimizer,
                                                 state=self.target.variables)
        self.updates = 0

    def loss(self, observations, actions, returns, discounts, next_observations):
        both = self.online(ops.concatenate([observations, next_observations], axis=0), training=True)
        q, next_online = both[: ops.shape(actions)[0]], both[ops.shape(actions)[0]:]
        targets = model.dqn_targets(returns, discounts, next_online, self.target(next_observations), self.config.double)
        return model.td_loss(q, actions, targets), {"q": ops.mean(q)}

    def update(self, batch):
        """One gradient step on a sampled batch; the target network follows on its schedule. Returns (loss, q)."""
        loss, metrics = self.update_step(*batch)
        self.updates += 1
        if self.updates % self.config.target_every == 0:
            self.sync_target()
        return loss, metrics["q"]

    def sync_target(self):
        # A copy, not the online network's array itself: under JAX a compiled call may give that array's memory away.
        for target, online in zip(self.target.variables, self.online.variables):
            target.assign(ops.copy(online.value))

    def act(self, observations, exploration, rng):
        """ε-greedy actions for a batch of observations."""
        greedy = greedy_actions(self.online, observations)
        explore = rng.random(len(observations)) < exploration
        return np.where(explore, rng.integers(0, self.actions, len(observations)), greedy)

    def variables(self):
        return {"online": self.online.variables, "target": self.target.variables, "optimizer": self.optimizer.variables}


def greedy_actions(network, observations):
    """The best action for each observation. The batch is padded to a power of two so that the games still
    running, fewer and fewer, need few compiled versions of the network (JAX compiles one per batch size)."""
    count = len(observations)
    padded = 1 << max(count - 1, 0).bit_length()
    if padded != count:
        observations = np.concatenate([observations, np.repeat(observations[-1:], padded - count, axis=0)])
    return np.argmax(network.predict_on_batch(observations)[:count], axis=1)
