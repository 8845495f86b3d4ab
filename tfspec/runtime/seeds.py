"""Seeded epochs: the training data's order and augmentation as functions of
(seed, epoch, batch), so that a resumed run sees the data an uninterrupted one does.

A program with a data seed holds one `Epoch` (its `EPOCH`); the data pipeline reads
it when an iteration starts (`data.Pipeline(…, epoch=EPOCH)`) and numbers its epochs
from there, and the `DataEpoch` callback sets it as training moves from epoch to
epoch. `BatchSeeds` makes random augmentation layers draw their seeds from (seed,
layer, draw, epoch, batch number).
"""

from __future__ import annotations

import functools
from typing import Any

import keras
import tensorflow as tf


class Epoch:
    """The epoch being trained, as a tf.Variable that tf.data functions read when an
    iteration of the training data starts: its first epoch.

    The variable is made on first use, not with the object: a program makes its
    `Epoch` at import, before its distribution strategy, which must come before any
    TensorFlow op.
    """

    def __init__(self) -> None:
        self._variable: tf.Variable | None = None

    @property
    def variable(self) -> tf.Variable:
        """The int64 variable, made the first time it is needed."""
        if self._variable is None:
            self._variable = tf.Variable(0, dtype=tf.int64, trainable=False)
        return self._variable

    def assign(self, epoch: int) -> Any:
        """Set the epoch (what `DataEpoch` does at each epoch's start and end)."""
        return self.variable.assign(epoch)


class DataEpoch(keras.callbacks.Callback):
    """Tells the data pipeline which epoch it is (see `Epoch`)."""

    def __init__(self, epoch: Epoch) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.assign(epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch.assign(epoch + 1)  # Keras may open the next epoch's data now


class BatchSeeds:
    """`augment(features)` that every run repeats.

    Its random layers draw their seeds from (seed, layer, draw, epoch, batch number)
    instead of from their seed generators, whose state the batches augmented in
    parallel would share and race for: the same batch of the same epoch is augmented
    the same way in every run, resumed or not, however many batches are augmented at
    once.
    """

    def __init__(self, augment: keras.Layer, seed: int) -> None:
        self.augment, self.epoch, self.batch, self.draws = augment, None, None, 0
        # every layer, those inside RandAugment, AugMix or Pipeline too
        for number, layer in enumerate(augment._flatten_layers(include_self=False)):
            stream = (seed if getattr(layer, "seed", None) is None else layer.seed, number)
            for generator in list(vars(layer).values()):
                if isinstance(generator, keras.random.SeedGenerator):
                    generator.next = functools.partial(self.draw, stream, generator.state.dtype)

    def __call__(self, epoch: tf.Tensor, batch: tf.Tensor, features: Any) -> Any:
        """The augmented `features` of batch number `batch` of `epoch` (tensors: traced
        once by `Dataset.map`)."""
        self.epoch, self.batch, self.draws = epoch, batch, 0
        return self.augment(features, training=True)

    def draw(self, stream: tuple[int, int], dtype: Any, ordered: bool = True) -> tf.Tensor:
        """The next seed of a layer's `stream`, in place of its SeedGenerator's."""
        del ordered  # SeedGenerator.next's argument; each draw is numbered anyway
        seed = tf.constant(stream, tf.int64)
        for data in (self.draws, self.epoch, self.batch):
            seed = tf.random.experimental.stateless_fold_in(seed, data)
        self.draws += 1
        return tf.cast(seed, dtype)
