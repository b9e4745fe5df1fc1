"""The course's network: characters -> embedding -> LSTM layers -> softmax over the vocabulary.

Trained with `model.fit` on whole poems (teacher forcing: the target at each step is
the next token). For writing, `Stepper` runs the same weights one token at a time in
NumPy for a whole batch of poems, carrying each LSTM layer's state (h, c) from step
to step, so a poem is never re-read from its start; on a CPU that is also far faster
than calling Keras once per character.
"""

import keras
import numpy as np
from keras import layers


def build_model(vocabulary_size, config):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocabulary_size, config.embedding_dim, name="embedding")(tokens)
    for index in range(config.layers):
        x = layers.LSTM(config.units, return_sequences=True, name=f"lstm_{index}")(x)
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"dropout_{index}")(x)
    probabilities = layers.Dense(vocabulary_size, activation="softmax", name="next_token")(x)
    return keras.Model(tokens, probabilities, name="tang_poetry_lstm")


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class Stepper:
    """The trained network as a NumPy recurrence: `step(tokens)` feeds one token per poem and returns P(next)."""

    def __init__(self, model):
        self.embedding = keras.ops.convert_to_numpy(model.get_layer("embedding").embeddings).astype(np.float64)
        self.cells = []
        for layer in model.layers:
            if isinstance(layer, layers.LSTM):
                kernel, recurrent, bias = (keras.ops.convert_to_numpy(w).astype(np.float64) for w in layer.get_weights())
                self.cells.append((kernel, recurrent, bias))
        dense = model.get_layer("next_token")
        self.kernel, self.bias = (np.asarray(w, np.float64) for w in dense.get_weights())
        self.state = None

    def reset(self, batch):
        units = [recurrent.shape[0] for _, recurrent, _ in self.cells]
        self.state = [(np.zeros((batch, u)), np.zeros((batch, u))) for u in units]

    def step(self, tokens):
        """Feed token ids (batch,), advance every poem's state; the probabilities of the next token (batch, vocabulary)."""
        x = self.embedding[tokens]
        for index, (kernel, recurrent, bias) in enumerate(self.cells):
            h, c = self.state[index]
            z = x @ kernel + h @ recurrent + bias
            i, f, g, o = np.split(z, 4, axis=1)  # Keras' gate order: input, forget, cell, output
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            self.state[index] = (h, c)
            x = h
        logits = x @ self.kernel + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


def character_log_probabilities(model, x, y, batch=256):
    """ln P(target) at each position whose target is a character (not padding, punctuation or END)."""
    from projects.tang_poetry.data import FORCED, PAD

    found = []
    for start in range(0, len(x), batch):
        p = keras.ops.convert_to_numpy(model.predict_on_batch(x[start : start + batch]))
        targets = y[start : start + batch]
        chosen = np.take_along_axis(p, targets[..., None], axis=-1)[..., 0]
        keep = (targets != PAD) & ~np.isin(targets, FORCED)
        found.append(np.log(np.maximum(chosen[keep].astype(np.float64), 1e-30)))
    return np.concatenate(found) if found else np.zeros(0)


def perplexity(model, x, y):
    """Perplexity per character: exp of the mean negative log-probability of the characters."""
    logs = character_log_probabilities(model, x, y)
    return float(np.exp(-logs.mean())) if len(logs) else float("nan")


@keras.saving.register_keras_serializable(package="tang_poetry")
class CharacterPerplexity(keras.metrics.Metric):
    """Perplexity per character, as `perplexity` computes it, over every batch since the last reset.

    A metric rather than a callback that predicts: Keras computes it in the training and
    evaluation steps and sums it over devices and processes like the loss, so a group
    trained with `--distribute` reports it too (as `val_perplexity` on validation data).
    """

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", name="negative_log_likelihood")
        self.count = self.add_variable((), initializer="zeros", name="characters")

    def update_state(self, y_true, y_pred, sample_weight=None):
        from projects.tang_poetry.data import FORCED, PAD

        ops = keras.ops
        targets = ops.cast(y_true, "int32")
        chosen = ops.cast(ops.take_along_axis(y_pred, targets[..., None], axis=-1)[..., 0], "float32")
        keep = ops.not_equal(targets, PAD)
        for token in FORCED:
            keep = ops.logical_and(keep, ops.not_equal(targets, token))
        keep = ops.cast(keep, "float32")
        self.total.assign_add(ops.sum(-ops.log(ops.maximum(chosen, 1e-30)) * keep))
        self.count.assign_add(ops.sum(keep))

    def result(self):
        return keras.ops.exp(self.total / keras.ops.maximum(self.count, 1.0))
