"""The layout of a tracr params dict, checked before anything reads it.

tracr (and `compiled.compiler`) produce haiku-style dicts:

  token_embed/embeddings                 [vocab, d_model]
  pos_embed/embeddings                   [max_seq_len + 1, d_model]
  transformer/layer_{l}/attn/{query,key,value}/w  [d_model, heads * key_size]
  transformer/layer_{l}/attn/{query,key,value}/b  [heads * key_size]
  transformer/layer_{l}/attn/linear/w    [heads * key_size, d_model]
  transformer/layer_{l}/attn/linear/b    [d_model]
  transformer/layer_{l}/mlp/linear_1/w   [d_model, hidden]
  transformer/layer_{l}/mlp/linear_1/b   [hidden]
  transformer/layer_{l}/mlp/linear_2/w   [hidden, d_model]
  transformer/layer_{l}/mlp/linear_2/b   [d_model]
  unembed/w, unembed/b (optional)        [d_model, outputs], [outputs]

Every layer has both an attention and an MLP module (unused ones are zero).
The number of heads is not stored: it cannot be read off the weights, so
whoever needs it (the forward pass, the `products` weight encoding) takes it
as an argument.

`unembed` is the general output read-out (`logits = residual @ w + b`) of a
model in any residual basis; tracr's own models leave it out and read their
output directions (`OutputDecoding.dims`), the special case where `w`
selects residual dimensions and `b` is 0.
"""

import dataclasses
import re
from typing import Mapping

import numpy as np

Params = Mapping[str, Mapping[str, np.ndarray]]

TOKEN_EMBED = "token_embed"
POS_EMBED = "pos_embed"
UNEMBED = "unembed"
ATTN = ("query", "key", "value", "linear")
MLP = ("linear_1", "linear_2")
_LAYER_KEY = re.compile(r"transformer/layer_(\d+)/(attn|mlp)/(\w+)")


def attn_key(layer: int, name: str) -> str:
  return f"transformer/layer_{layer}/attn/{name}"


def mlp_key(layer: int, name: str) -> str:
  return f"transformer/layer_{layer}/mlp/{name}"


@dataclasses.dataclass(frozen=True)
class Layout:
  """Sizes of a checked params dict.

  Attributes:
    d_model: residual stream width.
    num_layers: transformer layers (each an attention and an MLP module).
    attn_width: per layer, heads * key_size.
    mlp_hidden: per layer, the MLP hidden width.
  """

  d_model: int
  num_layers: int
  attn_width: tuple[int, ...]
  mlp_hidden: tuple[int, ...]


def _leaves(params: Params, key: str, names: tuple[str, ...]) -> dict:
  module = params[key]
  if not isinstance(module, Mapping) or set(module) != set(names):
    got = sorted(module) if isinstance(module, Mapping) else type(module)
    raise ValueError(f"params[{key!r}] must hold exactly {sorted(names)}, "
                     f"got {got}")
  leaves = {}
  for name in names:
    array = np.asarray(module[name])
    if not np.issubdtype(array.dtype, np.floating):
      raise ValueError(f"params[{key!r}][{name!r}] must be floating point, "
                       f"got {array.dtype}")
    if not np.all(np.isfinite(array)):
      raise ValueError(f"params[{key!r}][{name!r}] has non-finite values")
    leaves[name] = array
  return leaves


def _expect(key: str, name: str, array: np.ndarray,
            shape: tuple[int | None, ...]) -> None:
  """Raises unless `array` has `shape` (None matches any size)."""
  if array.ndim != len(shape) or any(
      want is not None and got != want
      for got, want in zip(array.shape, shape)):
    raise ValueError(f"params[{key!r}][{name!r}] has shape {array.shape}, "
                     f"expected {tuple('*' if s is None else s for s in shape)}"
                     " (d_model from token_embed)")


def check_params(params: Params) -> Layout:
  """The layout of a tracr params dict; ValueError naming the bad key.

  Rejects missing or unknown keys, layers that are not 0..L-1, shapes that
  disagree on the residual width, non-float and non-finite values.
  """
  if not isinstance(params, Mapping):
    raise ValueError(f"params must be a mapping, got {type(params)}")
  for key in (TOKEN_EMBED, POS_EMBED):
    if key not in params:
      raise ValueError(f"params has no {key!r} module")
  layers: set[int] = set()
  for key in params:
    if key in (TOKEN_EMBED, POS_EMBED, UNEMBED):
      continue
    match = _LAYER_KEY.fullmatch(key)
    if not match or match[3] not in (ATTN if match[2] == "attn" else MLP):
      raise ValueError(f"params has unknown module {key!r}")
    layers.add(int(match[1]))
  num_layers = len(layers)
  if layers != set(range(num_layers)):
    raise ValueError(f"params has layers {sorted(layers)}; expected "
                     f"0..{num_layers - 1} with none missing")

  token_embed = _leaves(params, TOKEN_EMBED, ("embeddings",))["embeddings"]
  _expect(TOKEN_EMBED, "embeddings", token_embed, (None, None))
  d_model = token_embed.shape[1]
  _expect(POS_EMBED, "embeddings",
          _leaves(params, POS_EMBED, ("embeddings",))["embeddings"],
          (None, d_model))

  attn_width, mlp_hidden = [], []
  for layer in range(num_layers):
    for key in [attn_key(layer, n) for n in ATTN] + [
        mlp_key(layer, n) for n in MLP]:
      if key not in params:
        raise ValueError(f"params has no {key!r} module")
    key = attn_key(layer, "query")
    query = _leaves(params, key, ("w", "b"))["w"]
    _expect(key, "w", query, (d_model, None))
    width = query.shape[1]
    for name in ATTN[:3]:
      key = attn_key(layer, name)
      leaves = _leaves(params, key, ("w", "b"))
      _expect(key, "w", leaves["w"], (d_model, width))
      _expect(key, "b", leaves["b"], (width,))
    key = attn_key(layer, "linear")
    leaves = _leaves(params, key, ("w", "b"))
    _expect(key, "w", leaves["w"], (width, d_model))
    _expect(key, "b", leaves["b"], (d_model,))
    attn_width.append(width)

    key = mlp_key(layer, "linear_1")
    leaves = _leaves(params, key, ("w", "b"))
    _expect(key, "w", leaves["w"], (d_model, None))
    hidden = leaves["w"].shape[1]
    _expect(key, "b", leaves["b"], (hidden,))
    key = mlp_key(layer, "linear_2")
    leaves = _leaves(params, key, ("w", "b"))
    _expect(key, "w", leaves["w"], (hidden, d_model))
    _expect(key, "b", leaves["b"], (d_model,))
    mlp_hidden.append(hidden)
  if UNEMBED in params:
    leaves = _leaves(params, UNEMBED, ("w", "b"))
    _expect(UNEMBED, "w", leaves["w"], (d_model, None))
    _expect(UNEMBED, "b", leaves["b"], (leaves["w"].shape[1],))
  return Layout(d_model, num_layers, tuple(attn_width), tuple(mlp_hidden))


def check_num_heads(layout: Layout, num_heads: int) -> None:
  """ValueError unless every layer's attention splits into `num_heads`."""
  if not isinstance(num_heads, (int, np.integer)) or num_heads < 1:
    raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
  for layer, width in enumerate(layout.attn_width):
    if width % num_heads:
      raise ValueError(f"{attn_key(layer, 'query')} has width {width}, not "
                       f"divisible by num_heads={num_heads}")
