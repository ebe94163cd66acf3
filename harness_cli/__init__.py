"""The ``harness`` command line: launches, benchmarks and reports around the numpy core.

Kept outside :mod:`harness` so that importing the core never pulls in a framework.
"""
