"""CBOW with negative sampling as a Keras model (Mikolov et al., 2013).

Two tables of vectors: `word_vectors` (the "input" vectors, the ones exported) and
`output_vectors`. A centre word's context is the mean of its context words' input
vectors; the model scores it against the centre's output vector and against the
output vectors of negative words. The loss is word2vec's:
-log σ(score of the centre) - Σ log σ(-score of each negative), skipping a negative
that happens to be the centre itself, as word2vec.c and gensim do.

Word by word, as word2vec.c works, is hopeless for a framework that pays for every
operation, and gathering ten context vectors per centre and scattering their updates
back is what costs most. So the model takes blocks of 32 consecutive centres: their
words are looked up once, and every centre's context sum is one row of a (32 x 42)
by (42 x dim) matrix product with a 0/1 mask built from each centre's first and last
context position. By default the centres of a block also share 16 negatives, each
counted 5/16, so that each centre's expected update equals that of 5 negatives of its
own, through matrix products instead of lookups (`--shared-negatives 0` draws 5 per
centre, as word2vec.c does).

Initialisation follows word2vec.c: input vectors uniform in ±0.5 / dimensions,
output vectors zero. The loss is the mean over the centres of a step and plain SGD's
rate is word2vec's per-word rate times the centres per step, so every word gets the
update word2vec would give it, summed over the step.
"""

import keras
from keras import layers, ops

from common import backend, training
from projects.word2vec.data import BLOCK


@keras.saving.register_keras_serializable(package="word2vec")
class CBOW(keras.Model):
    """Takes blocks of consecutive centres (see `data.cbow_blocks`); returns, per centre, its score and its negatives'."""

    def __init__(self, vocab_size, dimensions, negative=5, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.dimensions = int(dimensions)
        self.negative = int(negative)
        bound = 0.5 / self.dimensions
        self.word_vectors = layers.Embedding(
            self.vocab_size,
            self.dimensions,
            embeddings_initializer=keras.initializers.RandomUniform(-bound, bound),
            name="word_vectors",
        )
        self.output_vectors = layers.Embedding(
            self.vocab_size, self.dimensions, embeddings_initializer="zeros", name="output_vectors"
        )

    def call(self, inputs):
        words, negatives = inputs["words"], inputs["negatives"]
        inside = context_mask(inputs["context"], words.shape[1])
        block = inside.shape[1]
        window = (words.shape[1] - block) // 2
        # Each centre's context sum as one matrix product per block: mask (block, span) @ vectors (span, dim).
        total = ops.einsum("bij,bjd->bid", inside, self.word_vectors(words))
        mean = total / ops.maximum(ops.sum(inside, axis=-1, keepdims=True), 1.0)
        # The forward value is the mean, but each context word receives the whole error of it,
        # not its 1/size share: what word2vec.c and gensim (cbow_mean=1) do.
        context = total + ops.stop_gradient(mean - total)
        centres = words[:, window : window + block]
        positive = ops.sum(context * self.output_vectors(centres), axis=-1, keepdims=True)
        if len(negatives.shape) == 2:  # shared by the block
            negative = ops.einsum("bid,bkd->bik", context, self.output_vectors(negatives))
        else:
            negative = ops.einsum("bid,bikd->bik", context, self.output_vectors(negatives))
        return ops.concatenate([positive, negative], axis=-1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        block = x["context"].shape[1]
        window = (x["words"].shape[1] - block) // 2
        centres = x["words"][:, window : window + block]
        negatives = x["negatives"] if len(x["negatives"].shape) == 3 else x["negatives"][:, None, :]
        has_context = x["context"][..., 1] > x["context"][..., 0]  # the stretch holds more than the centre
        return backend.scaled_for_replicas(negative_sampling_loss(y_pred, centres, negatives, has_context, self.negative))

    def vectors(self):
        """The learned word vectors, (vocab_size, dimensions)."""
        # A copy (a tensor), not the variable: NumPy 2 warns when given a Keras or TensorFlow variable, whose
        # __array__ takes no `copy` argument.
        return ops.convert_to_numpy(ops.copy(self.word_vectors.embeddings))

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dimensions": self.dimensions, "negative": self.negative}


def context_mask(bounds, span):
    """(blocks, block, span): 1 on each centre's context columns, its own column left out, else 0."""
    block = bounds.shape[1]
    window = (span - block) // 2
    columns = ops.arange(span, dtype="int32")[None, None, :]
    centre = (ops.arange(block, dtype="int32") + window)[None, :, None]
    inside = (columns >= bounds[..., :1]) & (columns <= bounds[..., 1:]) & (columns != centre)
    return ops.cast(inside, "float32")


def negative_sampling_loss(scores, centres, negatives, has_context, negative):
    """Mean over centre slots of -log σ(s_centre) - w Σ_k log σ(-s_k).

    A negative equal to its centre is skipped, as word2vec.c and gensim do. With K
    negatives shared by a block, each counts w = negative / K, so that a centre's
    expected gradient is that of `negative` negatives of its own (w = 1). Slots
    without context (no neighbours, or filler after the corpus ends) count zero.
    """
    scores = ops.cast(scores, "float32")
    weight = negative / (scores.shape[-1] - 1)
    distinct = ops.cast(ops.not_equal(negatives, centres[..., None]), "float32")
    per_centre = -ops.log_sigmoid(scores[..., 0]) - weight * ops.sum(distinct * ops.log_sigmoid(-scores[..., 1:]), axis=-1)
    return ops.mean(per_centre * ops.cast(has_context, "float32"))


def learning_rate(config, total_steps):
    """word2vec's schedule: linear from `lr` to `min_lr` per word over the run, times the centres per step (see above)."""
    centres = config.batch_size * BLOCK
    return keras.optimizers.schedules.PolynomialDecay(
        config.lr * centres, max(1, total_steps), config.min_lr * centres, power=1.0
    )


def build_model(vocab_size, config, total_steps, distributed=False):
    """The CBOW model, built and compiled; `distributed`: under a distribution strategy or in a group."""
    model = CBOW(vocab_size, config.vector_size, config.negative)
    span = BLOCK + 2 * config.window
    negatives = (1, config.shared_negatives) if config.shared_negatives else (1, BLOCK, config.negative)
    model({  # built now, so that BackupAndRestore can load a checkpoint into it
        "words": ops.zeros((1, span), "int32"),
        "context": ops.zeros((1, BLOCK, 2), "int32"),
        "negatives": ops.zeros(negatives, "int32"),
    })
    # XLA also on CPUs (Keras leaves it off there): fused, the step runs about twice as fast. Under a TensorFlow
    # distribution strategy, XLA and several steps per call each stop the first step of this model ("You must
    # feed a value for placeholder tensor", Keras 3.15, TensorFlow 2.21): there, one plain step per call.
    fast = not (distributed and keras.backend.backend() == "tensorflow")
    return training.compiled(model, optimizer=keras.optimizers.SGD(learning_rate(config, total_steps)), jit_compile=fast,
                            steps_per_execution=8 if fast else 1)
