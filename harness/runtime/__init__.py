"""The framework-free runtime: training loop over a declared Engine, records, checkpoints, faults,
launch commands and hostfiles.

Imports numpy, the standard library and :mod:`harness`'s core only; backends, benchmarks and the CLI
import it, never the other way round (``tests/runtime/test_layers.py``).
"""
