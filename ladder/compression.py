"""The ladder's R4: tracr's weights read through a narrower residual stream.

tracr's §5 and InterpBench compress a compiled model the same way: keep its
weights, learn a projection P [d, d'] of the residual stream and fold it in
(writers times P, readers times Pᵀ: `symmetries.fold`), trained so the
narrow model behaves like tracr's. Here P starts at the residuals' top d'
principal directions and Adam fits, on the check inputs, the residual after
every module (read back through Pᵀ) and the output read-out, as tracr's
§5 adds per-layer residual terms to the output loss. Whether the result
still computes the program is for its user to judge (by behaviour): exact
SelectorWidth counts and numerical means often break.
"""

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from compiled import forward, saved
from compiled import params as params_lib
from ladder import fitting, symmetries

NUM_STEPS = 400
LEARNING_RATE = 3e-3


def compressed_width(model: saved.SavedModel, share: float) -> int:
  """⌈share · d_model⌉, as the ladder's R4 rungs name it."""
  return math.ceil(share * model.params["token_embed"]["embeddings"].shape[1])


def _principal_directions(streams_LxBxTxD: np.ndarray, mask_BxT: np.ndarray,
                          width: int) -> np.ndarray:
  rows_NxD = streams_LxBxTxD[:, mask_BxT].reshape(
      -1, streams_LxBxTxD.shape[-1])
  _, _, right_DxD = np.linalg.svd(rows_NxD, full_matrices=False)
  return right_DxD[:width].T


def compress(model: saved.SavedModel, width: int,
             inputs: Sequence[Sequence], seed: int,
             num_steps: int = NUM_STEPS) -> saved.SavedModel:
  """`model` folded through a trained projection to `width` residual dims.

  Args:
    model: any model of the ladder (tracr's output dims become an
      unembedding first).
    width: d' < d_model.
    inputs: the input sequences the projection is fitted on.
    seed: perturbs the principal-direction start, so that seeds differ.
    num_steps: Adam steps (full batch).
  """
  model = symmetries.with_unembedding(model)
  params = symmetries.float64_params(model)
  token_ids_BxT, allowed_BxTxT, mask_BxT = forward.padded_batch(
      model.input_tokens, inputs, model.compiler_bos, model.causal)
  target_LxBxTxD = np.stack(forward.residual_streams(
      params, token_ids_BxT, model.num_heads, allowed_BxTxT))
  unembed = params[params_lib.UNEMBED]
  target_BxTxO = target_LxBxTxD[-1] @ unembed["w"]
  start_DxE = _principal_directions(target_LxBxTxD, mask_BxT, width)
  start_DxE = start_DxE + 1e-3 * np.random.default_rng(seed).normal(
      size=start_DxE.shape)
  weights_BxT = jnp.asarray(mask_BxT / mask_BxT.sum(), jnp.float32)
  as_jax = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)

  def loss(projection_DxE):
    folded = symmetries.fold(as_jax, projection_DxE, projection_DxE.T)
    streams = forward.residual_streams(folded, token_ids_BxT, model.num_heads,
                                       allowed_BxTxT, jnp)
    error = lambda got, want: jnp.sum(
        weights_BxT * jnp.mean((got - want) ** 2, axis=-1))
    residual = sum(error(stream @ projection_DxE.T, target)
                   for stream, target in zip(streams, target_LxBxTxD))
    read = streams[-1] @ folded[params_lib.UNEMBED]["w"]
    return residual / len(streams) + error(read, target_BxTxO)

  projection = np.asarray(fitting.minimize(
      loss, jnp.asarray(start_DxE, jnp.float32), optax.adam(LEARNING_RATE),
      num_steps), np.float64)
  return symmetries.with_params(
      model, symmetries.fold(params, projection, projection.T), model.output)
