"""Keras 3 backend (TensorFlow backend): LARS, momentum SGD, the recipe schedule, models, Horovod wiring.

Import submodules directly; importing this package does not import Keras.
"""
