"""An exponential moving average of a generator's weights, the network GANs sample from.

GAN training oscillates: the generator of the last step is one point on a circle
around a good one. Averaging its weights over the recent steps (batch-norm
statistics included) lands nearer the centre, and costs one copy of the network
(Yazici et al., 2019). Early on a plain average would mostly remember where it
started, so the effective decay grows with the number of updates, spanning at most
the last half of them, until it reaches `decay` (about the last 1 / (1 - decay)).
"""

from keras import ops


class WeightAverage:
    """`average` (a second copy of `model`'s architecture) follows `model`'s weights."""

    def __init__(self, model, average, decay):
        self.model, self.average, self.decay = model, average, float(decay)
        self.restart()

    def restart(self):
        """Start the average over from the model's current weights."""
        for kept, current in zip(self.average.variables, self.model.variables):
            kept.assign(ops.copy(current))  # a copy: under JAX the two would otherwise share (and lose) one buffer

    def update(self, updates):
        """After the model's `updates`-th update: average <- d * average + (1 - d) * model."""
        decay = min(self.decay, updates / (updates + 2))
        for kept, current in zip(self.average.variables, self.model.variables):
            kept.assign(decay * kept + (1 - decay) * ops.cast(current, kept.dtype))
