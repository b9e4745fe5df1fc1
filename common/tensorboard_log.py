"""TensorBoard event files written without TensorFlow, for the runs that do not use it.

`TensorBoardWriter` writes scalars and pictures with the `tensorboard` package's
protocol buffers alone. The shared training loop logs through it on both backends;
`EpochScalars` gives `model.fit` runs under JAX the epoch curves Keras' `TensorBoard`
callback draws (`train/` and `validation/`, tags `epoch_<metric>`), because that
callback writes through `tensorflow.summary` and so fails on a machine that has JAX
but no TensorFlow (a GPU machine with JAX's CUDA build, say).
"""

import os
import socket
import time
from pathlib import Path

import keras

from common.errors import warn


class TensorBoardWriter:
    """TensorBoard event files written with the `tensorboard` package's protocol buffers, without TensorFlow.

    (TensorBoard's own `EventFileWriter` reaches for TensorFlow's file system when
    TensorFlow is installed; a JAX run should not pay for importing it.)
    """

    def __init__(self, folder, purge_step=None):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self.event_pb2, self.summary_pb2 = event_pb2, summary_pb2
        folder.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}"
        self.file = open(folder / name, "wb")
        self.records = RecordWriter(self.file)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:  # TensorBoard drops what earlier files logged from this step on
            self._write(event_pb2.Event(wall_time=time.time(), step=purge_step,
                                        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
        self.flush()

    @classmethod
    def open(cls, folder, purge_step=None):
        try:
            return cls(folder, purge_step)
        except ImportError:
            warn("the tensorboard package is not installed: this run writes no TensorBoard logs")
            return None

    def _write(self, event):
        self.records.write(event.SerializeToString())

    def scalars(self, values, step):
        summary = self.summary_pb2.Summary(
            value=[self.summary_pb2.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in values.items()]
        )
        self._write(self.event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def image(self, tag, path, step):
        """A saved picture file (PNG or JPEG), as it is."""
        from PIL import Image

        with Image.open(path) as picture:
            width, height = picture.size
            channels = len(picture.getbands())
        encoded = self.summary_pb2.Summary.Image(height=height, width=width, colorspace=channels,
                                                 encoded_image_string=Path(path).read_bytes())
        summary = self.summary_pb2.Summary(value=[self.summary_pb2.Summary.Value(tag=tag, image=encoded)])
        self._write(self.event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        self.flush()

    def flush(self):
        self.records.flush()

    def close(self):
        self.records.close()


class EpochScalars(keras.callbacks.Callback):
    """Each epoch's training and validation figures, against the epoch, as Keras' TensorBoard callback lays them out."""

    def __init__(self, folder):
        super().__init__()
        self.folder = Path(folder)
        self.writers = {}

    def on_epoch_end(self, epoch, logs=None):
        split = {"train": {}, "validation": {}}
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) or getattr(value, "shape", None) == ():
                side, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                split[side][f"epoch_{name}"] = float(value)
        for side, values in split.items():
            if values:
                if side not in self.writers:
                    self.writers[side] = TensorBoardWriter.open(self.folder / side)
                if self.writers[side] is not None:
                    self.writers[side].scalars(values, epoch)
                    self.writers[side].flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            if writer is not None:
                writer.close()
        self.writers = {}
