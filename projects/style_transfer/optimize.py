"""Style transfer by optimisation (Gatys et al., 2016): change the pixels until the image has the
photo's content and the painting's style.

The image itself is the only trainable variable. It starts as the photo (or as noise,
`--init noise`), and every iteration takes one Adam step on its pixel values along the
gradient of the perceptual loss, through the frozen VGG, then clips them to [0, 255].
Adam on pixels gets to a good picture in a few hundred steps; its step size is in pixel
values, so `--lr 4` means no pixel moves by much more than 4 per step. Several paintings
blend by mixing their Gram matrices. The iterations run through the shared training
loop (`common.loop`), in epochs of `--save-every` iterations, for its progress bar, its
stop on a NaN loss and its TensorBoard logs (no checkpoints: a few hundred steps on one
picture are not worth resuming). After each epoch the current image is kept, so a user
can watch it converge, and every iteration's losses are logged for the curve.

`--preserve-color` does luminance-only transfer: the photo and the painting are reduced
to their luminance (the painting's matched to the photo's mean and spread), the
transfer runs on those, and the result's luminance is put under the photo's colours.
The `stylize --content --style` command (`stylize.py`) runs it and saves what it made.
"""

import time
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from common import backend
from common.loop import Phase, TrainingLoop
from projects.style_transfer import data


@dataclass
class History:
    """What an optimisation run leaves behind besides the image: losses per iteration, snapshots, speed."""

    losses: list = field(default_factory=list)  # dicts: iteration, loss, content, style, tv
    snapshots: list = field(default_factory=list)  # (iteration, float RGB array)
    seconds_per_iteration: float = 0.0
    compile_seconds: float = 0.0


class Recorder(keras.callbacks.Callback):
    """Each iteration's losses into a History, and its speed: the first iteration (which compiles) apart from the rest."""

    def __init__(self, history):
        super().__init__()
        self.history = history

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        iteration, now = self.params["loop"].step, time.perf_counter()
        self.history.losses.append({"iteration": iteration, **logs})
        if iteration == 1:
            self.history.compile_seconds, self.first = now - self.started, now
        else:
            self.history.seconds_per_iteration = (now - self.first) / (iteration - 1)


def optimise(photo, paintings, blend, loss, iterations, lr, out, init="content", save_every=0, preserve_color=False, seed=0):
    """Repaint `photo` (float RGB (H, W, 3)) in the style of `paintings` (each (h, w, 3)).

    `loss` is a PerceptualLoss; `blend` the share of each painting. `out` is the folder
    the training loop writes its metrics.csv and TensorBoard logs to. Returns (image, History).
    """
    original = photo
    if preserve_color:
        photo = data.luminance(photo)
        paintings = [data.match_luminance(painting, photo) for painting in paintings]
    batch = ops.convert_to_tensor(photo[None], "float32")
    content_targets = loss.content_targets(batch)
    style_targets = loss.style_targets(paintings, blend)

    if init == "noise":
        start = np.random.default_rng(seed).uniform(0, 255, photo.shape).astype(np.float32)
    else:
        start = photo.astype(np.float32)
    image = keras.Variable(start[None], name="image")
    optimizer = keras.optimizers.Adam(learning_rate=float(lr))

    def loss_fn(content_targets, style_targets):
        return loss(image.value, content_targets, style_targets)

    update = backend.gradient_step(loss_fn, [image], optimizer)
    history = History()
    loop = TrainingLoop(out, {"image": [image], "optimizer": optimizer.variables}, seed, unit="iterations",
                        checkpoint_steps=None, callbacks=[Recorder(history)])

    def step(at):
        total, terms = update(content_targets, style_targets)
        image.assign(ops.clip(image.value, 0.0, 255.0))
        return {"loss": total, **terms}

    def keep():
        snapshot = keras.ops.convert_to_numpy(image.value)[0]
        history.snapshots.append((loop.step, data.keep_colours(snapshot, original) if preserve_color else snapshot))

    if save_every:
        keep()
    every = save_every or max(1, iterations // 10)  # without snapshots, ten epochs still show the progress
    end_epoch = (lambda epoch, logs: keep()) if save_every else None
    loop.run([Phase("optimise", step, every, iterations // every, end_epoch=end_epoch),
              Phase("optimise", step, iterations % every, end_epoch=end_epoch)])  # the iterations left over
    result = keras.ops.convert_to_numpy(image.value)[0]
    if preserve_color:
        result = data.keep_colours(result, original)
    return result, history
