"""inverse-tracr: learn to read tracr-compiled transformer weights back into RASP.

Installs the packages only; train.py and eval.py are scripts run from a
checkout (`python train.py ...`), never installed as top-level modules.
Floors are the releases that added the APIs the code calls (see each
comment); the versions tested are in the README.
"""

import setuptools

setuptools.setup(
    name="inverse-tracr",
    version="0.1.0",
    description="Decompile tracr transformer weights into RASP programs.",
    python_requires=">=3.10",
    packages=setuptools.find_packages(
        include=["compiled*", "rasp_gen*", "encoding*", "readout*", "ladder*", "meta_model*", "configs*"]),
    install_requires=[
        "tracr-pypi>=1.0.0",
        "jax>=0.6.0",  # jax.sharding.AxisType, jax.make_mesh(axis_types=).
        "flax>=0.12.0",  # nnx.List.
        "optax>=0.2.5",  # optax.tree.norm.
        "orbax-checkpoint>=0.11.0",  # ocp.args.Composite with grain's args.
        "numpy>=1.26",
        "ml-collections>=1.0.0",
        "absl-py>=2.0",
        # Dataset records and the input pipeline (see README, "Data"):
        # `import grain`, grain.experimental.ThreadPrefetchIterDataset,
        # grain.checkpoint.CheckpointSave/Restore.
        "grain>=0.2.12",
        "array-record>=0.5",
        "tqdm",
        "matplotlib",
        "tensorboardX",  # TensorBoard event files without TensorFlow.
        # TransformerLens state dicts in and out (compiled/transformer_lens.py)
        # through its numpy API: no torch.
        "safetensors>=0.4",
    ],
    extras_require={"test": ["pytest", "pytest-xdist", "chex"]},
)
