"""The weight ladder's rungs: one model moved up, reproducibly from a seed.

R0 as compiled; R1 residual permutation, per-head maps, neuron scaling; R2
R1 then an orthogonal, or a general invertible (condition number 100), map
of the residual; R3-σ R2-orthogonal plus noise of σ times each matrix's rms;
R4-s tracr's weights through a residual projection to ⌈s·d⌉ dims trained to
match them (`ladder.compression`); R5 a model of tracr's shape trained from
random init to read out what tracr's does (`ladder.distillation`). R0-R2
compute the same function; R3-R5 only approximately, so their users keep a
model by its agreement.
"""

import numpy as np

from compiled import inputs as inputs_lib
from compiled import saved
from ladder import compression, distillation
from ladder.symmetries import (add_noise, map_heads, map_residual,
                               random_invertible, random_orthogonal,
                               random_permutation, scale_neurons)

RUNGS = ("R0", "R1", "R2-orthogonal", "R2-invertible", "R3-0.001", "R3-0.01",
         "R4-0.75", "R4-0.5", "R5")
FIT_INPUTS = 1000  # Inputs a projection or a distilled model is fitted on.


def _fit_inputs(model: saved.SavedModel, seed: int) -> list[tuple]:
  return [tuple(xs) for xs in inputs_lib.check_inputs(
      np.random.default_rng(seed), list(model.vocab), model.max_seq_len,
      FIT_INPUTS, FIT_INPUTS)]


def rung(model: saved.SavedModel, name: str, seed: int) -> saved.SavedModel:
  """`model` (tracr's weights) moved to the ladder's rung `name` (`RUNGS`)."""
  if name not in RUNGS:
    raise ValueError(f"unknown rung {name!r}; expected one of {RUNGS}")
  rng = np.random.default_rng(seed)
  if name == "R0":
    return model
  if name == "R5":
    return distillation.distill(model, _fit_inputs(model, seed), seed)
  if name.startswith("R4-"):
    width = compression.compressed_width(model, float(name.split("-")[1]))
    return compression.compress(model, width, _fit_inputs(model, seed), seed)
  size = model.params["token_embed"]["embeddings"].shape[1]
  moved = map_residual(scale_neurons(map_heads(model, rng), rng),
                       random_permutation(rng, size))
  if name == "R1":
    return moved
  if name == "R2-orthogonal":
    return map_residual(moved, random_orthogonal(rng, size))
  if name == "R2-invertible":
    return map_residual(moved, random_invertible(rng, size))
  return add_noise(map_residual(moved, random_orthogonal(rng, size)),
                   float(name.split("-")[1]), rng)
