"""Compiled weights as a padded sequence of fixed-size blocks.

Every parameter matrix is first oriented as [d_model, features]: the residual
stream on the first axis, and on the second whatever the matrix mixes it
with (token ids, positions, head dimensions, MLP hidden units). A block is
then one slice along one of the two axes (`config.block_axis`):

  "feature"  (default) one feature as a vector over the residual stream: a
             token's or position's embedding, a query/key/value/output head
             dimension, an MLP neuron's input or output weights.
  "residual" one residual dimension's row: what that dimension does in the
             matrix, over tokens, positions, head dimensions or neurons.

The default gives the shortest sequences (on the data config's programs
about 3x fewer blocks than "residual"; attention cost grows with the square)
and puts every block in one coordinate system, the model's residual basis,
so one learned block embedding reads every kind of matrix. "residual" makes
a residual permutation a permutation of blocks within each matrix instead.

Attention appears in one of two forms (`config.attention_form`):

  "raw"      (default) W_Q, W_K, W_V and W_O (transposed), heads side by side,
             exactly as stored. Needs no head count.
  "products" per head W_QK = W_Q W_Kᵀ [d×d] (which residual directions a
             query position matches to which key directions; logits are
             x W_QK yᵀ / sqrt(key_size)) and
             W_OV = W_V W_O [d×d] (what moves where), heads side by side. It
             shows what a Select and an Aggregate do directly and ignores the
             arbitrary basis inside each head, but needs `num_heads`, which
             tracr params do not store (see `params.py`).

Layer structure is kept: unused (all-zero) attention and MLP modules are
encoded like the others. Biases are dropped because tracr's are always zero;
a nonzero bias is an error, not silently lost. Nothing is truncated: a model
over any limit in the config raises LimitExceeded (a ValueError) naming
the limit.
"""

import dataclasses
from typing import Optional

import ml_collections
import numpy as np

from compiled import params as params_lib
from compiled.params import Params
from encoding.limits import LimitExceeded

# Block kinds; 0 marks padding blocks.
KINDS = ("PAD", "TOKEN_EMBED", "POS_EMBED", "QUERY", "KEY", "VALUE", "OUTPUT",
         "QK", "OV", "MLP_IN", "MLP_OUT")
KIND_IDS = {kind: i for i, kind in enumerate(KINDS)}
ATTENTION_FORMS = ("raw", "products")
BLOCK_AXES = ("feature", "residual")


def default_blocks_config() -> ml_collections.ConfigDict:
  """The block encoder's settings: configs include this as their `blocks`
  group, read and checked only when `input.encoder` is "blocks"."""
  config = ml_collections.ConfigDict()
  config.attention_form = "raw"  # "raw" or "products"; see encoding/weights.py.
  config.block_axis = "feature"  # "feature" or "residual"; see weights.py.
  config.max_d_model = 128  # Widest residual stream accepted.
  config.max_layers = 8  # Most transformer layers (attention + MLP) accepted.
  # Widest second axis of an oriented matrix: vocab, max_seq_len + 1,
  # heads * key_size ("raw"), heads * d_model ("products"), MLP hidden.
  config.max_features = 256
  # Floats per block: >= max_d_model for "feature", >= the widest matrix's
  # features for "residual". Shorter slices are zero-padded.
  config.block_size = 128
  config.max_blocks = 2048  # Blocks per model, padding included.
  # Block counts a batch is padded to; the last must be max_blocks.
  config.buckets = (512, 1024, 2048)
  # Random residual basis per training example: "none", "permute" or
  # "rotate" (encoding/augment.py); the blocks see tracr's residual order,
  # the graph encoder is invariant to it and never augments.
  config.augment = "none"
  return config


def feature_bounds(config: ml_collections.ConfigDict) -> dict[str, int]:
  """Exclusive upper bounds of the int block features under `config`.

  Size the meta-model's embedding tables from these: JAX does not fail on an
  out-of-range embedding id, it silently reads a wrong row.
  """
  return {
      "block_layer": config.max_layers + 1,
      "block_kind": len(KINDS),
      "block_position": (config.max_features if config.block_axis == "feature"
                         else config.max_d_model),
      "block_is_last": 2,
  }


@dataclasses.dataclass(frozen=True)
class Matrix:
  """One parameter matrix oriented as [d_model, features].

  `layer` is 0 for the embeddings and l + 1 for transformer layer l.
  """

  layer: int
  kind: str
  values_DxF: np.ndarray


@dataclasses.dataclass(frozen=True)
class WeightBlocks:
  """A model as `max_blocks` blocks; field names are the batch keys.

  Attributes:
    blocks: float32 [N, block_size], zero beyond each slice and for padding.
    block_layer: int32 [N], the Matrix layer (0 embeddings, l + 1 layer l).
    block_kind: int32 [N], index into KINDS (0 for padding).
    block_position: int32 [N], index of the slice within its matrix.
    block_is_last: int32 [N], 1 on the last block of each matrix.
    block_shape: int32 [N, 2], the oriented matrix's [d_model, features].
    block_mask: bool [N], True for real blocks (a prefix).
  """

  blocks: np.ndarray
  block_layer: np.ndarray
  block_kind: np.ndarray
  block_position: np.ndarray
  block_is_last: np.ndarray
  block_shape: np.ndarray
  block_mask: np.ndarray


def _heads_side_by_side(left_DxW: np.ndarray, right_DxW: np.ndarray,
                        num_heads: int) -> np.ndarray:
  """[d, heads * d]: per head, left_h @ right_hᵀ, in float64."""
  lefts = np.split(left_DxW.astype(np.float64), num_heads, axis=1)
  rights = np.split(right_DxW.astype(np.float64), num_heads, axis=1)
  return np.concatenate([l @ r.T for l, r in zip(lefts, rights)], axis=1)


def oriented_matrices(params: Params, attention_form: str,
                      num_heads: Optional[int] = None) -> list[Matrix]:
  """The model's matrices in block order, each [d_model, features].

  Order: token and position embeddings, then per layer the attention
  matrices (QUERY, KEY, VALUE, OUTPUT or QK, OV) and MLP_IN, MLP_OUT.
  """
  if attention_form not in ATTENTION_FORMS:
    raise ValueError(f"attention_form must be one of {ATTENTION_FORMS}, got "
                     f"{attention_form!r}")
  layout = params_lib.check_params(params)
  if attention_form == "products":
    if num_heads is None:
      raise ValueError("attention_form='products' needs num_heads (tracr "
                       "params do not store it)")
    params_lib.check_num_heads(layout, num_heads)
  for key, module in params.items():
    if "b" in module and np.any(module["b"] != 0):
      raise ValueError(f"params[{key!r}]['b'] is nonzero; the weight "
                       "encoding drops biases because tracr's are zero")

  def w(key: str, name: str = "w") -> np.ndarray:
    return np.asarray(params[key][name])

  matrices = [
      Matrix(0, "TOKEN_EMBED", w(params_lib.TOKEN_EMBED, "embeddings").T),
      Matrix(0, "POS_EMBED", w(params_lib.POS_EMBED, "embeddings").T)]
  for layer in range(layout.num_layers):
    attn = lambda name, l=layer: w(params_lib.attn_key(l, name))
    if attention_form == "raw":
      matrices += [Matrix(layer + 1, "QUERY", attn("query")),
                   Matrix(layer + 1, "KEY", attn("key")),
                   Matrix(layer + 1, "VALUE", attn("value")),
                   Matrix(layer + 1, "OUTPUT", attn("linear").T)]
    else:
      matrices += [
          Matrix(layer + 1, "QK", _heads_side_by_side(
              attn("query"), attn("key"), num_heads)),
          Matrix(layer + 1, "OV", _heads_side_by_side(
              attn("value"), attn("linear").T, num_heads))]
    matrices += [
        Matrix(layer + 1, "MLP_IN", w(params_lib.mlp_key(layer, "linear_1"))),
        Matrix(layer + 1, "MLP_OUT",
               w(params_lib.mlp_key(layer, "linear_2")).T)]
  return matrices


def _check_limits(matrices: list[Matrix], config: ml_collections.ConfigDict
                  ) -> None:
  """LimitExceeded naming the first config limit the model exceeds."""
  if config.block_axis not in BLOCK_AXES:
    raise ValueError(f"block_axis must be one of {BLOCK_AXES}, got "
                     f"{config.block_axis!r}")
  d_model = matrices[0].values_DxF.shape[0]
  if d_model > config.max_d_model:
    raise LimitExceeded(f"d_model {d_model} exceeds max_d_model="
                     f"{config.max_d_model}")
  num_layers = matrices[-1].layer
  if num_layers > config.max_layers:
    raise LimitExceeded(f"{num_layers} layers exceed max_layers="
                     f"{config.max_layers}")
  num_blocks = 0
  for m in matrices:
    rows, features = m.values_DxF.shape
    if features > config.max_features:
      raise LimitExceeded(f"{m.kind} of layer {m.layer} has {features} "
                          f"features, over max_features="
                          f"{config.max_features}")
    length, count = ((rows, features) if config.block_axis == "feature"
                     else (features, rows))
    if length > config.block_size:
      raise LimitExceeded(f"{m.kind} of layer {m.layer} has "
                          f"{config.block_axis} slices of {length} floats, "
                          f"over block_size={config.block_size}")
    num_blocks += count
  if num_blocks > config.max_blocks:
    raise LimitExceeded(f"{num_blocks} blocks exceed max_blocks="
                     f"{config.max_blocks}")


def encode_weights(params: Params, config: ml_collections.ConfigDict,
                   num_heads: Optional[int] = None) -> WeightBlocks:
  """The blocks of a tracr params dict, padded to `config.max_blocks`.

  Args:
    params: a tracr params dict (checked; see `params.check_params`).
    config: `default_blocks_config()` or a config's `blocks` group.
    num_heads: heads per attention layer; needed for "products" only.

  Raises:
    LimitExceeded: naming the config limit a valid model is over.
    ValueError: naming the key of a params dict that is not tracr's.
  """
  matrices = oriented_matrices(params, config.attention_form, num_heads)
  _check_limits(matrices, config)
  n, size = config.max_blocks, config.block_size
  blocks = np.zeros((n, size), np.float32)
  layer, kind, position, is_last = (np.zeros(n, np.int32) for _ in range(4))
  shape = np.zeros((n, 2), np.int32)
  start = 0
  for m in matrices:
    slices = m.values_DxF.T if config.block_axis == "feature" else m.values_DxF
    end = start + slices.shape[0]
    blocks[start:end, :slices.shape[1]] = slices
    layer[start:end] = m.layer
    kind[start:end] = KIND_IDS[m.kind]
    position[start:end] = np.arange(slices.shape[0])
    is_last[end - 1] = 1
    shape[start:end] = m.values_DxF.shape
    start = end
  return WeightBlocks(blocks, layer, kind, position, is_last, shape,
                      np.arange(n) < start)
