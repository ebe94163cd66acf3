"""The one compiled piece: harness.runtime._jpegwindow, libjpeg-turbo's region decode (see its source).

Optional: where libjpeg's headers are missing the install still succeeds and the image pipeline decodes
with Pillow instead (slower; ``harness bench input`` names the decoder it measured). Metadata lives in
pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("harness.runtime._jpegwindow", ["harness/runtime/_jpegwindow.c"],
                             libraries=["jpeg"], py_limited_api=True, optional=True)])
