"""fedhead model pipeline: datasets, training, int8 quantization, TFLM verification, C emit.

Importing this package is cheap (stdlib only): the PlatformIO extra script imports
`model_gen.emit` to decide whether to regenerate, and must not pull in TensorFlow.
"""

VERSION = "0.1.0"
