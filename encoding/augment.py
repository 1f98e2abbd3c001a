"""Residual-stream symmetries of tracr models, as data augmentation.

tracr models have no layer norm, so for any orthogonal B [d_model, d_model]
the model whose residual stream is x B, that is, with

  writers (token/position embeddings, attention `linear`, MLP `linear_2`,
           and their biases):             W -> W B
  readers (attention query/key/value, MLP `linear_1`):  W -> Bᵀ W

computes the same function; its residual stream is the original's times B,
so a readout in the original basis (tracr's unembedding) is `new @ Bᵀ`.
Permutations are orthogonal too, and exact in floating point (every product
sums a single nonzero term), so permuting never changes a weight's value.
"""

import numpy as np

from compiled import params as params_lib
from compiled.params import Params

_READERS = tuple(f"attn/{n}" for n in ("query", "key", "value")) + (
    "mlp/linear_1",)


def random_permutation(rng: np.random.Generator, d_model: int) -> np.ndarray:
  """A uniformly random permutation matrix [d_model, d_model]."""
  return np.eye(d_model)[rng.permutation(d_model)]


def random_rotation(rng: np.random.Generator, d_model: int) -> np.ndarray:
  """A Haar-random orthogonal matrix [d_model, d_model] (QR, signs fixed)."""
  q_DxD, r_DxD = np.linalg.qr(rng.standard_normal((d_model, d_model)))
  return q_DxD * np.where(np.diag(r_DxD) < 0, -1.0, 1.0)


def change_residual_basis(params: Params, basis_DxD: np.ndarray) -> Params:
  """The same model with residual stream `x @ basis_DxD`; dtypes are kept."""
  layout = params_lib.check_params(params)
  basis_DxD = np.asarray(basis_DxD, np.float64)
  if basis_DxD.shape != (layout.d_model,) * 2 or not np.allclose(
      basis_DxD @ basis_DxD.T, np.eye(layout.d_model), atol=1e-6):
    raise ValueError(f"basis must be an orthogonal [{layout.d_model}, "
                     f"{layout.d_model}] matrix, got shape {basis_DxD.shape}")

  def transform(key: str, name: str, array: np.ndarray) -> np.ndarray:
    reads = key.endswith(_READERS)
    if name == "w" and reads:
      new = basis_DxD.T @ array
    elif name == "b" and reads:
      new = array  # Lives in head or hidden space.
    else:  # Embeddings, output weights and biases: residual on the last axis.
      new = array @ basis_DxD
    return new.astype(array.dtype)

  return {key: {name: transform(key, name, np.asarray(array))
                for name, array in module.items()}
          for key, module in params.items()}


def random_basis(rng: np.random.Generator, d_model: int,
                 rotate: bool = False) -> np.ndarray:
  """A random permutation, or rotation if `rotate`, [d_model, d_model].

  Only a permutation keeps tracr's sparse one-hot weights recognisable; a
  rotation spreads every direction over all coordinates.
  """
  return (random_rotation if rotate else random_permutation)(rng, d_model)


def augment(params: Params, rng: np.random.Generator,
            rotate: bool = False) -> Params:
  """The model in a random residual basis (see `random_basis`)."""
  d_model = params_lib.check_params(params).d_model
  return change_residual_basis(params, random_basis(rng, d_model, rotate))
