"""Pass 1: the embeddings give `one`, BOS, the token and the index directions.

tracr's token embedding writes `one` (1 for every token, where a module needs
it) plus one direction per token; its position embedding one direction per
index (none for BOS's position 0). Where no module needs `one`, an extra
direction that nothing reads stands in for it (`with_one`), so every probe
can set it all the same.
"""

import dataclasses

import numpy as np

from compiled import saved
from readout.errors import ReadoutError
from readout.state import ZERO, Params


@dataclasses.dataclass(frozen=True)
class Embeddings:
  """What the embeddings say.

  Attributes:
    one: the direction that is 1 for every token.
    bos: the BOS token's direction.
    token_dims, token_values: the vocabulary's directions and tokens (BOS
      and PAD left out), in embedding-row order.
    index_dims, index_values: each index's direction (positions after BOS).
  """

  one: int
  bos: int
  token_dims: tuple[int, ...]
  token_values: tuple
  index_dims: tuple[int, ...]
  index_values: tuple[int, ...]


def as_float_params(model: saved.SavedModel) -> Params:
  """`model`'s params as float64 numpy arrays, with a `one` direction."""
  return with_one({m: {k: np.asarray(v, np.float64) for k, v in p.items()}
                   for m, p in model.params.items()})


def with_one(params: Params) -> Params:
  """The params with a direction that is 1 for every token: as they are when
  tracr wrote one, else widened by a direction nothing reads."""
  token_VxD = params["token_embed"]["embeddings"]
  if np.all(np.abs(token_VxD - 1) < ZERO, axis=0).any():
    return params
  widened = {}
  for module, leaves in params.items():
    widened[module] = {}
    for name, array in leaves.items():
      if module == "token_embed":
        array = np.concatenate([array, np.ones((len(array), 1))], axis=1)
      elif module == "pos_embed" or module.endswith(("/linear", "linear_2")):
        array = np.concatenate([array, np.zeros(array.shape[:-1] + (1,))],
                               axis=-1)
      elif name == "w":  # query, key, value, linear_1: rows are directions.
        array = np.concatenate([array, np.zeros((1, array.shape[1]))])
      widened[module][name] = array
  return widened


def read_embeddings(params: Params, model: saved.SavedModel) -> Embeddings:
  """`one`, BOS, tokens and indices from `params` (with `one`, see
  `with_one`); ReadoutError where a token is not one categorical direction."""
  token_DxV = params["token_embed"]["embeddings"].T
  position_DxN = params["pos_embed"]["embeddings"].T
  tokens = model.input_tokens
  constant = np.all(np.abs(token_DxV - 1) < ZERO, axis=1)
  if constant.sum() != 1:
    raise ReadoutError("no single direction is 1 for every token ('one')")
  one = int(np.argmax(constant))
  token_dims: list[int] = []
  for row, token in enumerate(tokens):
    dims = [d for d in np.flatnonzero(np.abs(token_DxV[:, row]) > ZERO)
            if d != one]
    if len(dims) != 1:
      raise ReadoutError(f"token {token!r} writes {len(dims)} directions "
                         "besides 'one'; only categorical tokens are read")
    token_dims.append(int(dims[0]))
  vocab_rows = [r for r, t in enumerate(tokens)
                if t not in (model.compiler_bos, model.compiler_pad)]
  # Positions 1.. (after BOS) are indices 0..; tracr writes none for BOS.
  index_dims, index_values = [], []
  for row in range(1, position_DxN.shape[1]):
    dims = np.flatnonzero(np.abs(position_DxN[:, row]) > ZERO)
    if len(dims) == 1:
      index_dims.append(int(dims[0]))
      index_values.append(row - 1)
  return Embeddings(
      one=one, bos=token_dims[tokens.index(model.compiler_bos)],
      token_dims=tuple(token_dims[r] for r in vocab_rows),
      token_values=tuple(tokens[r] for r in vocab_rows),
      index_dims=tuple(index_dims), index_values=tuple(index_values))
