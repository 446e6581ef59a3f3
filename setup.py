"""Build the one optional C extension; everything else is in pyproject.toml.

``modelsign.hashing._sha256mb`` (two-lane SHA-256 on the x86 SHA extensions, decision 0012) is
``optional``: where it cannot be compiled (no compiler, another architecture) the install still
succeeds and the engine uses hashlib, with the same digests.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "modelsign.hashing._sha256mb",
            ["modelsign/hashing/_sha256mb.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
            optional=True,
        )
    ]
)
