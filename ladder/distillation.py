"""The ladder's R5: a transformer of tracr's shape trained from random init.

tracr's weights are one of many that compute a program; a trained model is
what a researcher gets from gradient descent instead (InterpBench's SIIT
models, Huang et al.'s GPT-2-style models). The student has the compiled
model's shape exactly (layers, heads, key size, MLP width, d_model; ReLU,
no layer norm, an unembedding with bias) and random weights, and Adam fits
its read-out, on the fit inputs' positions, to the compiled model's: one
per output value and 0 elsewhere for a categorical output (squared error,
plus cross-entropy where a value is set; RASP's None, where tracr writes
nothing, stays "every output below 0.5", `forward.UNSET_BELOW`), the value
for a numerical one (squared error). No intermediate
variable is a target. Whether the result computes the program is for its
user to judge by behaviour, as for every rung above R2.
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from compiled import forward, saved
from compiled import params as params_lib
from ladder import fitting, symmetries

NUM_STEPS = 1500
LEARNING_RATE = 1e-2
SHARPNESS = 10.0  # Read-out levels 0 and 1 as logits 0 and 10.
Params = dict[str, dict[str, np.ndarray]]


def random_params(shapes: Params, rng: np.random.Generator) -> Params:
  """Params of the same shapes: embeddings N(0, 1), weights N(0, 1/fan-in),
  biases 0."""
  result: Params = {}
  for module, leaves in shapes.items():
    result[module] = {}
    for name, value in leaves.items():
      if name == "b":
        result[module][name] = np.zeros(value.shape)
      elif name == "embeddings":
        result[module][name] = rng.normal(size=value.shape)
      else:
        result[module][name] = rng.normal(size=value.shape) / np.sqrt(
            value.shape[0])
  return result


def distill(model: saved.SavedModel, inputs: Sequence[Sequence], seed: int,
            num_steps: int = NUM_STEPS) -> saved.SavedModel:
  """A model of `model`'s shape trained from seed `seed` to read out what
  `model` reads out on `inputs` (full batch, Adam with a cosine decay)."""
  model = symmetries.with_unembedding(model)
  teacher = symmetries.float64_params(model)
  token_ids_BxT, allowed_BxTxT, mask_BxT = forward.padded_batch(
      model.input_tokens, inputs, model.compiler_bos, model.causal)
  unembed = teacher[params_lib.UNEMBED]
  target_BxTxO = (forward.residual_streams(
      teacher, token_ids_BxT, model.num_heads, allowed_BxTxT)[-1]
                  @ unembed["w"] + unembed["b"])
  mask_BxT[:, 0] = False  # BOS has no output.
  weights_BxT = jnp.asarray(mask_BxT / mask_BxT.sum(), jnp.float32)
  target = jnp.asarray(target_BxTxO, jnp.float32)
  defined_BxT = jnp.asarray(target_BxTxO.max(-1) >= forward.UNSET_BELOW,
                            jnp.float32)

  def loss(params):
    final = forward.residual_streams(params, token_ids_BxT, model.num_heads,
                                     allowed_BxTxT, jnp)[-1]
    read = final @ params[params_lib.UNEMBED]["w"] + params[
        params_lib.UNEMBED]["b"]
    squared = jnp.mean((read - target) ** 2, axis=-1)
    if model.output.numerical:
      return jnp.sum(weights_BxT * squared)
    # Which value, by cross-entropy where the target sets one; the read-out's
    # levels (1 set, 0 unset) by the squared error.
    entropy = optax.softmax_cross_entropy(read * SHARPNESS, target)
    return jnp.sum(weights_BxT * (squared + defined_BxT * entropy))

  params = fitting.minimize(
      loss, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32),
                         random_params(teacher, np.random.default_rng(seed))),
      optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, num_steps)),
      num_steps)
  trained = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
  return symmetries.with_params(model, trained, model.output)
