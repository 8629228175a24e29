"""Custom Keras layers of the voice model, for training, export and evaluation only.

They live in one module so every script that reloads a saved ``.keras`` file deserialises the
exact classes the training run used. Importing this module imports Keras, so it lives in
``model_training/``: the web application serves the exported ONNX graph and never imports it.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="moodlens")
class FrameMask(keras.layers.Layer):
    """Which time steps hold real frames after ``pool_size`` max-pooling (padding is all zeros).

    Standardised MFCC frames are never exactly zero, so zero frames mark batch padding (and
    SpecAugment's dropped frames), which the recurrent layers and the attention then skip.
    """

    def __init__(self, pool_size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)

    def call(self, inputs: Any) -> Any:
        valid = ops.any(ops.not_equal(inputs, 0.0), axis=-1)
        steps = ops.shape(inputs)[1] // self.pool_size
        valid = valid[:, : steps * self.pool_size]
        valid = ops.reshape(valid, (-1, steps, self.pool_size))
        return ops.any(valid, axis=-1)

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        steps = None if input_shape[1] is None else input_shape[1] // self.pool_size
        return (input_shape[0], steps)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="moodlens")
class AttentionPooling(keras.layers.Layer):
    """Additive self-attention over time: a weighted mean of the steps plus the weights.

    The weights are returned as a second output so the UI can show which moments of the
    recording drove the decision.
    """

    def __init__(self, units: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.supports_masking = True

    def build(self, input_shape: tuple[Any, ...]) -> None:
        features = int(input_shape[-1])
        self.projection = self.add_weight(name="projection", shape=(features, self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.score = self.add_weight(name="score", shape=(self.units, 1), initializer="glorot_uniform")

    def call(self, inputs: Any, mask: Any = None) -> tuple[Any, Any]:
        hidden = ops.tanh(ops.matmul(inputs, self.projection) + self.bias)
        scores = ops.squeeze(ops.matmul(hidden, self.score), axis=-1)
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1)
        context = ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)
        return context, weights

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return (input_shape[0], input_shape[-1]), (input_shape[0], input_shape[1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


CUSTOM_OBJECTS = {"FrameMask": FrameMask, "AttentionPooling": AttentionPooling}
