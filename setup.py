"""The one thing pyproject.toml cannot say: puppets' optional C parser (puppets/_codec.c).

optional=True: without a compiler (or Python headers) the build warns and goes on, and
puppets uses its pure-Python parser, which behaves identically (tests/test_codec_accel.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("puppets._codec", ["puppets/_codec.c"], optional=True)])
