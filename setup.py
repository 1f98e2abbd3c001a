"""inverse-tracr: learn to read tracr-compiled transformer weights back into RASP."""

import setuptools

setuptools.setup(
    name="inverse-tracr",
    version="0.1.0",
    description="Decompile tracr transformer weights into RASP programs.",
    python_requires=">=3.10",
    packages=setuptools.find_packages(
        include=["rasp_gen*", "encoding*", "meta_model*", "configs*"]),
    py_modules=["train", "eval"],
    install_requires=[
        "tracr-pypi>=1.0.0",
        "jax>=0.4.30",
        "flax>=0.10",
        "optax",
        "orbax-checkpoint",
        "numpy",
        "chex",
        "ml-collections",
        "absl-py",
        # Dataset records and the input pipeline (see README, "Data").
        "grain",
        "array-record",
        "tqdm",
        "matplotlib",
        "tensorboardX",  # TensorBoard event files without TensorFlow.
    ],
    extras_require={"test": ["pytest", "pytest-xdist"]},
)
