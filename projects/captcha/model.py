"""The captcha reader: a small convnet, two bidirectional GRUs and CTC.

The convnet turns a grey captcha into a row of feature columns, one every 8 pixels
across; the GRUs read that row left to right and right to left; a dense layer scores
every column for each character of the alphabet plus a "blank". CTC (Graves et al.,
2006) trains this without knowing where each character sits: the loss sums over all
ways of spreading the label across the columns (repeats and blanks in between), and
decoding takes the best column-by-column reading, merges repeats and drops blanks
(greedy), or keeps the few best partial readings (beam search). Nothing assumes a
fixed number of characters, so captchas of 4 to 6 characters train the same way.

Where the time goes on a CPU is the first layers, which see the most pixels; so the
first convolution has stride 2 and few filters, and the width sits in the later
layers and the GRUs. Index 0 is the CTC blank, and 0 also pads short labels (Keras'
CTC loss counts a label's length as its non-zero entries); character i of the
alphabet is class i + 1. Everything is `keras.ops`, so it runs on TensorFlow and JAX.
"""

import functools

import keras
from keras import layers, ops

from common import runs, training
from common.errors import UserError
from common.layers import batch_norm
from projects.captcha import PROJECT

# Three halvings of the width (a stride-2 convolution and two poolings): one time step per 8 pixels.
WIDTH_PER_STEP = 8


def time_steps(input_width):
    return input_width // WIDTH_PER_STEP


def check_fits(input_size, max_length):
    """CTC needs a time step per character and a blank between repeats: 2 * length - 1 steps."""
    if time_steps(input_size[0]) < 2 * max_length - 1:
        raise UserError(
            f"labels of {max_length} characters need an input at least {(2 * max_length - 1) * WIDTH_PER_STEP} pixels wide, "
            f"the captchas scale to {input_size[0]}; raise --input-height"
        )


@keras.saving.register_keras_serializable(package="captcha")
class CharacterLogits(layers.Dense):
    """Scores for the CTC blank (class 0) and each character; it keeps the alphabet, so a saved model knows what it reads."""

    def __init__(self, alphabet, **kwargs):
        kwargs.setdefault("units", len(alphabet) + 1)
        super().__init__(**kwargs)
        self.alphabet = alphabet

    def get_config(self):
        return {**super().get_config(), "alphabet": self.alphabet}


def decode(logits, beam_width=0):
    """Logits (batch, steps, classes) to class indices (batch, steps), -1 after the end, and a confidence.

    `beam_width` 0 decodes greedily; otherwise a beam search keeps that many readings.
    The confidence is the probability of the reading's best alignment (greedy) or of
    the reading itself as far as the beam saw it (beam search).
    """
    logits = ops.cast(logits, "float32")
    lengths = ops.cast(ops.ones_like(logits[:, 0, 0]), "int32") * ops.shape(logits)[1]
    if beam_width > 0:
        decoded, log_probability = ops.ctc_decode(
            logits, lengths, strategy="beam_search", beam_width=beam_width, top_paths=1, mask_index=0
        )
        return ops.cast(decoded[0], "int32"), ops.exp(log_probability[:, 0])
    decoded, _ = ops.ctc_decode(logits, lengths, strategy="greedy", mask_index=0)
    best = ops.max(ops.log_softmax(logits, axis=-1), axis=-1)
    return ops.cast(decoded[0], "int32"), ops.exp(ops.sum(best, axis=-1))


@keras.saving.register_keras_serializable(package="captcha")
class CTCDecoder(layers.Layer):
    """`decode` as the last layer of the inference model, so that an exported model reads captchas by itself."""

    def __init__(self, beam_width=0, **kwargs):
        super().__init__(**kwargs)
        self.beam_width = int(beam_width)

    def call(self, logits):
        return decode(logits, self.beam_width)

    def compute_output_spec(self, logits):
        batch, steps = logits.shape[0], logits.shape[1]
        return keras.KerasTensor((batch, steps), "int32"), keras.KerasTensor((batch,), "float32")

    def get_config(self):
        return {**super().get_config(), "beam_width": self.beam_width}


@keras.saving.register_keras_serializable(package="captcha")
def sequence_accuracy(y_true, y_pred):
    """1 where the greedy reading of the logits is exactly the label (0-padded), else 0."""
    labels = ops.maximum(decode(y_pred)[0], 0)
    y_true = ops.cast(y_true, "int32")
    y_true = ops.pad(y_true, [[0, 0], [0, ops.shape(labels)[1] - ops.shape(y_true)[1]]])
    return ops.cast(ops.all(ops.equal(labels, y_true), axis=-1), "float32")


def conv_block(filters, size=3, strides=1, synchronized=False):
    return [layers.Conv2D(filters, size, strides=strides, padding="same", use_bias=False), batch_norm(synchronized), layers.ReLU()]


def build_model(config, input_shape, alphabet):
    """The trainable reader: uint8 grey images (height, width, 1) to logits (batch, width // 8, len(alphabet) + 1).

    Under `--distribute` batch normalisation takes the whole global batch's statistics (`common.layers.batch_norm`).
    """
    synchronized = getattr(config, "distribute", False)
    block = functools.partial(conv_block, synchronized=synchronized)
    features = [
        layers.Rescaling(1.0 / 255),
        *block(16, 5, strides=2),
        *block(32),
        layers.MaxPooling2D(),
        *block(64),
        *block(64),
        layers.MaxPooling2D(),
        *block(128),
        *block(128),
    ]
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for layer in features:
        x = layer(x)
    # Columns become time steps: (batch, rows, columns, channels) -> (batch, columns, rows * channels).
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
    x = layers.Dense(config.rnn_units, use_bias=False)(x)
    x = batch_norm(synchronized)(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(config.dropout)(x)
    for _ in range(2):
        x = layers.Bidirectional(layers.GRU(config.rnn_units, return_sequences=True))(x)
    logits = CharacterLogits(alphabet, dtype="float32", name="characters")(x)  # float32 under mixed precision
    return keras.Model(inputs, logits, name="captcha_reader")


def load(path):
    """A trained or exported reader, in safe mode; another project's model is refused in one line, and so is
    one that says nothing of its project but has no `characters` layer to read the alphabet from."""
    model = runs.load_model(path, PROJECT)
    if "characters" not in {layer.name for layer in model.layers}:
        raise UserError(f"{path} is not a captcha reader (it has no 'characters' layer)")
    return model


def alphabet_of(model):
    return model.get_layer("characters").alphabet


def model_input_size(model):
    """(width, height) the model reads."""
    height, width = model.input_shape[1:3]
    return width, height


def reader(model, beam_width=None):
    """The inference model: image to (class indices, confidence), built on a trained (or exported) model's layers.

    `beam_width` None keeps an exported model's decoding (greedy for a trained model).
    """
    if beam_width is None:
        beam_width = next((layer.beam_width for layer in model.layers if isinstance(layer, CTCDecoder)), 0)
    logits = model.get_layer("characters").output
    decoded = CTCDecoder(beam_width, name="decoder")(logits)
    return keras.Model(model.inputs, decoded, name="captcha_inference")


def compile_model(model, config, total_steps):
    return training.compiled(
        model,
        optimizer=training.build_optimizer(config, total_steps),
        loss=keras.losses.CTC(),
        metrics=[keras.metrics.MeanMetricWrapper(sequence_accuracy, name="sequence_accuracy")],
    )
