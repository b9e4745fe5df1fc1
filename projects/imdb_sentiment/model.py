"""The sentiment model: word vectors, a bidirectional LSTM, pooling over time, a sigmoid.

Word ids become vectors (word2vec's, or random ones learned from scratch); padding
(id 0) is masked, so the LSTMs skip it and the pooling ignores it, and a review
scores the same however much its batch pads it. A bidirectional LSTM reads the
review both ways and gives every word a state that knows its context; the maximum
and the mean of those states over the review's words (a few decisive phrases, and
the overall tone) feed a small classifier. Taking the LSTM's last state instead
would ask it to carry a 500-word review's verdict to its final word.

The LSTM keeps Keras' defaults (tanh, sigmoid, no recurrent dropout, not unrolled,
with biases), so on a GPU under TensorFlow it runs on cuDNN, which needs the
right-padded masks `data.ReviewBatches` makes. Everything is `keras` and
`keras.ops`, so the model trains on TensorFlow and JAX alike.
"""

import keras
from keras import layers, ops

from common import runs, training
from projects.imdb_sentiment import PROJECT


@keras.saving.register_keras_serializable(package="imdb_lstm")
class MaskedGlobalMaxPooling1D(layers.Layer):
    """Maximum over the time steps the mask keeps (Keras' GlobalMaxPooling1D ignores masks)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            # A masked step takes the row's smallest value, which can never be its maximum.
            keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
            inputs = ops.where(keep, inputs, ops.min(inputs, axis=1, keepdims=True))
        return ops.max(inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def build_model(vocabulary_size, embedding_dim, config):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name="embedding")(tokens)
    x = layers.SpatialDropout1D(config.embedding_dropout)(x)
    x = layers.Bidirectional(layers.LSTM(config.units, return_sequences=True), name="bilstm")(x)
    x = layers.Concatenate()(
        [MaskedGlobalMaxPooling1D(name="max_over_time")(x), layers.GlobalAveragePooling1D(name="mean_over_time")(x)]
    )
    x = layers.Dropout(config.dropout)(x)
    x = layers.Dense(config.units, activation="relu")(x)
    probability = layers.Dense(1, activation="sigmoid", dtype="float32", name="positive")(x)  # float32 under mixed precision
    return keras.Model(tokens, probability, name="imdb_lstm")


def set_embeddings(model, matrix, trainable):
    layer = model.get_layer("embedding")
    layer.embeddings.assign(matrix)
    layer.trainable = trainable


def compile_model(model, config, steps_per_epoch):
    return training.compiled(
        model,
        optimizer=training.build_optimizer(config, config.epochs * steps_per_epoch),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )


def load(path):
    """A saved model, in safe mode: the custom pooling layer it needs is registered by this module."""
    return runs.load_model(path, PROJECT)
