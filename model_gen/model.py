"""Keras models: an int8-friendly backbone producing a D-float embedding, and a float head.

Only ops the C backbone (backbone_ref) and the generated TFLM resolver support are used:
CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE, MEAN,
with fused RELU/RELU6. Batch normalization folds into the convolutions at conversion;
dropout and augmentation vanish. IMU windows are (1, T, C) so 1-D convolutions are Conv2D
with (1, k) kernels and convert without EXPAND_DIMS.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

EMBED_LAYER = "embedding"
HEAD_LAYER = "head"


@dataclass(frozen=True)
class ModelSpec:
    embed_dim: int
    dropout: float = 0.3


SPECS = {"watch": ModelSpec(embed_dim=48), "kws": ModelSpec(embed_dim=48)}


def _conv_block(x: keras.KerasTensor, filters: int, kernel: tuple[int, int]) -> keras.KerasTensor:
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def imu_backbone(input_shape: tuple[int, ...], spec: ModelSpec) -> keras.Model:
    """1-D conv stack over time for (1, T, C) IMU windows."""
    inputs = keras.Input(shape=input_shape, name="window")
    x = inputs
    for filters in (16, 32):
        x = _conv_block(x, filters, (1, 5))
        x = layers.MaxPooling2D((1, 2))(x)
    x = _conv_block(x, 48, (1, 5))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(spec.embed_dim, activation="relu", name=EMBED_LAYER)(x)
    return keras.Model(inputs, x, name="backbone")


def audio_backbone(input_shape: tuple[int, ...], spec: ModelSpec) -> keras.Model:
    """Small 2-D conv net (DS-CNN style) for (frames, bins, 1) log-mel features."""
    inputs = keras.Input(shape=input_shape, name="window")
    x = layers.Conv2D(24, (5, 3), strides=(2, 2), padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for filters in (32, 48):
        x = layers.DepthwiseConv2D((3, 3), strides=(2, 2), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = _conv_block(x, filters, (1, 1))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(spec.embed_dim, activation="relu", name=EMBED_LAYER)(x)
    return keras.Model(inputs, x, name="backbone")


def build_classifier(
    task_kind: str, input_shape: tuple[int, ...], num_classes: int, spec: ModelSpec
) -> tuple[keras.Model, keras.Model]:
    """(classifier, backbone): the classifier is backbone -> dropout -> Dense(C) head."""
    builder = audio_backbone if task_kind == "audio" else imu_backbone
    backbone = builder(input_shape, spec)
    inputs = keras.Input(shape=input_shape, name="window")
    x = backbone(inputs)
    x = layers.Dropout(spec.dropout)(x)
    logits = layers.Dense(num_classes, name=HEAD_LAYER)(x)
    return keras.Model(inputs, logits, name="classifier"), backbone
