"""The optional C extension (ext/): built when a compiler and OpenSSL's
headers are there, skipped cleanly when not (merkle then runs its pure
Python twins, with identical results).  Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "merkle._merkle",
            sources=["ext/_merkle.c"],
            depends=["ext/blake3.h"],
            libraries=["crypto"],
            extra_compile_args=["-O3", "-Wno-deprecated-declarations"],
            optional=True,
        )
    ]
)
