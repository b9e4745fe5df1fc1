"""Experience replay: a NumPy ring buffer of transitions, and the n-step returns that fill it.

A transition is (observation, action, R, discount, next observation): R is the
discounted sum of the next n rewards and `discount` is gamma^n, or 0 where the
episode ended within those n steps (nothing follows a crash). An episode cut short
(truncated at the score limit) keeps its discount: its last state still has a value.
`NSteps` turns each game's stream of steps into such transitions; the buffer samples
them uniformly. The buffer's arrays go into the checkpoint when they fit comfortably
(`state`/`load`).
"""

from collections import deque

import numpy as np


class ReplayBuffer:
    """The last `capacity` transitions, overwritten oldest first; uniform samples."""

    def __init__(self, capacity, observation_shape, observation_dtype=np.float32):
        self.capacity, self.size, self.next = capacity, 0, 0
        self.observations = np.zeros((capacity, *observation_shape), observation_dtype)
        self.next_observations = np.zeros((capacity, *observation_shape), observation_dtype)
        self.actions = np.zeros(capacity, np.int32)
        self.returns = np.zeros(capacity, np.float32)
        self.discounts = np.zeros(capacity, np.float32)

    @property
    def nbytes(self):
        return sum(array.nbytes for array in self._arrays().values())

    def _arrays(self):
        return {"observations": self.observations, "actions": self.actions, "returns": self.returns,
                "discounts": self.discounts, "next_observations": self.next_observations}

    def add(self, observations, actions, returns, discounts, next_observations):
        """Append a batch of transitions."""
        for i in range(len(actions)):
            at = self.next
            self.observations[at], self.actions[at], self.returns[at] = observations[i], actions[i], returns[i]
            self.discounts[at], self.next_observations[at] = discounts[i], next_observations[i]
            self.next = (self.next + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, rng, batch_size):
        """`batch_size` transitions drawn uniformly (with replacement): observations, actions, returns, discounts,
        next observations."""
        index = rng.integers(0, self.size, batch_size)
        return (self.observations[index], self.actions[index], self.returns[index], self.discounts[index],
                self.next_observations[index])

    def state(self):
        """The buffer as named arrays (only the filled part), for a checkpoint."""
        filled = {name: array[: self.size] for name, array in self._arrays().items()}
        return {**filled, "next": np.array(self.next)}

    def load(self, arrays):
        size = len(arrays["actions"])
        if size > self.capacity or arrays["observations"].shape[1:] != self.observations.shape[1:]:
            raise ValueError("the saved replay buffer does not fit this one")
        for name, array in self._arrays().items():
            array[:size] = arrays[name]
        self.size, self.next = size, int(arrays["next"])


class NSteps:
    """Per game, the last n steps; each step that has n successors (or an episode's end) becomes a transition."""

    def __init__(self, games, n, gamma):
        self.n, self.gamma = n, gamma
        self.pending = [deque() for _ in range(games)]

    def add(self, observations, actions, rewards, terminated, truncated, next_observations):
        """One step of every game; returns the transitions completed by it, as arrays (or None)."""
        done = []
        for i, pending in enumerate(self.pending):
            pending.append((observations[i], actions[i], rewards[i]))
            if terminated[i] or truncated[i]:  # every step still pending ends here
                while pending:
                    done.append(self._transition(pending, next_observations[i], terminated[i]))
                    pending.popleft()
            elif len(pending) == self.n:
                done.append(self._transition(pending, next_observations[i], False))
                pending.popleft()
        if not done:
            return None
        return tuple(np.stack(column) for column in zip(*done))

    def _transition(self, pending, next_observation, terminated):
        steps = list(pending)
        ret = sum(self.gamma**k * reward for k, (_, _, reward) in enumerate(steps))
        discount = 0.0 if terminated else self.gamma ** len(steps)
        observation, action, _ = steps[0]
        return observation, action, np.float32(ret), np.float32(discount), next_observation

    def clear(self):
        for pending in self.pending:
            pending.clear()
