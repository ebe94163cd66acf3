"""Framework backends: thin ports of the numpy core (:mod:`harness`) plus Horovod wiring."""
