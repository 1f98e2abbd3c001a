"""What compiled weights compute: a numpy forward pass and tracr's decoding.

The forward pass is tracr's compiled model (no layer norm, ReLU MLPs, logits
scaled by 1/sqrt(key_size), residual connections, attention optionally
causal) in float64 numpy, batched over inputs (padded). `outputs` runs
it on input sequences (one padded batch) and decodes the result with a model's
`compiler.OutputDecoding`, as tracr does (`compiled.compare` sets those
outputs next to a program's). The sampler uses them to keep only programs
that tracr compiles faithfully, `compiled.verify` to verify candidates.

This module checks only what it reads; `compiled.params.check_params`
validates a whole params dict first where the input is untrusted.
"""

import re
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from compiled import inputs as inputs_lib
from compiled.compiler import OutputDecoding

Params = Mapping[str, Mapping[str, np.ndarray]]

# A categorical output position whose output directions are all below this
# holds no value (see `decode`).
UNSET_BELOW = 0.5

_QUERY_KEY = re.compile(r"transformer/layer_(\d+)/attn/query")


def input_tokens(vocab: Iterable, compiler_bos: str,
                 compiler_pad: str) -> list[Any]:
  """Token values in token-embedding row order, as tracr builds it.

  tracr sorts the token space's basis (vocab, BOS and PAD) by value
  (`compiled.inputs.tracr_order`); this is `compiler.CompiledModel.
  input_tokens` for weights compiled with `vocab`. Raises ValueError where
  that order is not defined (e.g. {True, 2}: 2 < "BOS" < True < 2), so only
  the model itself can say it (`compiled.saved` keeps it).
  """
  tokens = set(vocab) | {compiler_bos, compiler_pad}
  order = inputs_lib.tracr_order(tokens)
  if order is None:
    raise ValueError(
        f"tracr's token order of vocab {inputs_lib.sorted_vocab(set(vocab))} "
        f"with {compiler_bos!r} and {compiler_pad!r} is not defined: its "
        "comparison (numbers as numbers, a number and a string as text) "
        "is not an order on these tokens, so the token-embedding rows "
        "follow set iteration order; take the order from the model's input "
        "encoder")
  return order


def token_ids(tokens: Sequence[Any], inputs: Sequence[Sequence],
              compiler_bos: str) -> np.ndarray:
  """[B, 1 + n] token-embedding rows of `[BOS, *xs]`, n the longest input.

  Shorter inputs are padded with BOS (see `forward`'s `lengths_B`). Raises
  ValueError for a token outside `tokens` (BOS counts as outside).
  """
  index = {token: i for i, token in enumerate(tokens)}
  bos = index[compiler_bos]
  width = 1 + max(len(xs) for xs in inputs)
  rows = np.full((len(inputs), width), bos, dtype=np.int64)
  for row, xs in zip(rows, inputs):
    unknown = [x for x in xs if x not in index or x == compiler_bos]
    if unknown:
      raise ValueError(f"input {list(xs)} has tokens {unknown} outside the "
                       f"vocab {list(tokens)}")
    row[1:1 + len(xs)] = [index[x] for x in xs]
  return rows


def _float64(params: Params) -> dict[str, dict[str, np.ndarray]]:
  return {module: {name: np.asarray(value, np.float64)
                   for name, value in module_params.items()}
          for module, module_params in params.items()}


def _is_float64(params: Params) -> bool:
  return all(isinstance(v, np.ndarray) and v.dtype == np.float64
             for module in params.values() for v in module.values())


def residual_streams(params: Params, token_ids_BxT, num_heads: int,
                     allowed_BxTxT, xp: Any = np) -> list:
  """The residual stream [B, T, d_model] after the embeddings and after
  every module, in order: tracr's forward pass written once for numpy
  (`forward`) and for jax.numpy (`xp=jnp`, differentiable: the ladder trains
  compressions through it). `allowed_BxTxT` says which keys each query may
  attend to."""
  batch, seq_len = token_ids_BxT.shape
  residual_BxTxD = (params["token_embed"]["embeddings"][token_ids_BxT]
                    + params["pos_embed"]["embeddings"][:seq_len])
  streams = [residual_BxTxD]
  num_layers = sum(bool(_QUERY_KEY.fullmatch(k)) for k in params)

  def linear(key: str, x):
    # As one 2-D product: numpy's stacked matmul does not use BLAS.
    flat = x.reshape(-1, x.shape[-1]) @ params[key]["w"] + params[key]["b"]
    return flat.reshape(x.shape[:-1] + flat.shape[-1:])

  for layer in range(num_layers):
    attn = lambda name, x, l=layer: linear(
        f"transformer/layer_{l}/attn/{name}", x)
    width = params[f"transformer/layer_{layer}/attn/query"]["w"].shape[1]
    key_size = width // num_heads
    # [B, H, T, K]
    split = lambda x: x.reshape(batch, seq_len, num_heads, key_size
                                ).transpose(0, 2, 1, 3)
    query_BxHxTxK = split(attn("query", residual_BxTxD))
    key_BxHxTxK = split(attn("key", residual_BxTxD))
    value_BxHxTxK = split(attn("value", residual_BxTxD))
    logits_BxHxTxT = (query_BxHxTxK @ key_BxHxTxK.transpose(0, 1, 3, 2)
                      / np.sqrt(key_size))
    logits_BxHxTxT = xp.where(allowed_BxTxT[:, None], logits_BxHxTxT, -1e30)
    shifted = xp.exp(logits_BxHxTxT
                     - logits_BxHxTxT.max(axis=-1, keepdims=True))
    weights_BxHxTxT = shifted / shifted.sum(axis=-1, keepdims=True)
    heads_BxTxW = (weights_BxHxTxT @ value_BxHxTxK).transpose(
        0, 2, 1, 3).reshape(batch, seq_len, width)
    residual_BxTxD = residual_BxTxD + attn("linear", heads_BxTxW)
    streams.append(residual_BxTxD)

    mlp = lambda name, x, l=layer: linear(
        f"transformer/layer_{l}/mlp/{name}", x)
    hidden_BxTxM = xp.maximum(mlp("linear_1", residual_BxTxD), 0.0)
    residual_BxTxD = residual_BxTxD + mlp("linear_2", hidden_BxTxM)
    streams.append(residual_BxTxD)
  return streams


def allowed_keys(seq_len: int, causal: bool = False,
                 lengths_B: Optional[np.ndarray] = None) -> np.ndarray:
  """[B or 1, T, T]: which keys each query attends to (`forward`)."""
  allowed_BxTxT = np.ones((1, seq_len, seq_len), bool)
  if causal:
    allowed_BxTxT = allowed_BxTxT & np.tril(allowed_BxTxT[0])
  if lengths_B is not None:
    allowed_BxTxT = allowed_BxTxT & (
        np.arange(seq_len) < np.asarray(lengths_B)[:, None])[:, None, :]
  return allowed_BxTxT


def padded_batch(tokens: Sequence[Any], inputs: Sequence[Sequence],
                 compiler_bos: str, causal: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The inputs as one padded batch for `residual_streams`: token ids
  [B, T] (`token_ids`), the keys each query may attend to [B, T, T]
  (`allowed_keys`) and which positions hold the sequence [B, T] (BOS
  included, padding not)."""
  lengths_B = np.array([1 + len(xs) for xs in inputs])
  token_ids_BxT = token_ids(tokens, inputs, compiler_bos)
  seq_len = token_ids_BxT.shape[1]
  return (token_ids_BxT, allowed_keys(seq_len, causal, lengths_B),
          np.arange(seq_len) < lengths_B[:, None])


def forward(params: Params, token_ids_BxT: np.ndarray, num_heads: int,
            causal: bool = False,
            lengths_B: Optional[np.ndarray] = None) -> np.ndarray:
  """The final residual stream [B, T, d_model] of a batch of sequences.

  Args:
    params: a tracr params dict (haiku layout, jax or numpy arrays).
    token_ids_BxT: rows of token_embed, BOS included.
    num_heads: heads per attention layer; tracr params do not store it.
    causal: mask attention to earlier positions, as a causal tracr model.
    lengths_B: each sequence's length (BOS included) when the batch is
      padded to T: no position attends to a key at or after it, so every
      position before it gets exactly the residual of the unpadded sequence
      (positions after it hold garbage). None: every sequence has length T.

  Raises:
    ValueError: if T exceeds the positional embedding's rows.
  """
  p = params if _is_float64(params) else _float64(params)
  token_ids_BxT = np.asarray(token_ids_BxT)
  seq_len = token_ids_BxT.shape[1]
  if seq_len > len(p["pos_embed"]["embeddings"]):
    raise ValueError(f"{seq_len} positions, but pos_embed has "
                     f"{len(p['pos_embed']['embeddings'])} rows")
  return residual_streams(p, token_ids_BxT, num_heads,
                          allowed_keys(seq_len, causal, lengths_B))[-1]


def decode(residual_BxTxD: np.ndarray, output: OutputDecoding,
           unembed: Optional[dict] = None) -> list[list]:
  """Each sequence's output without the BOS position, as tracr reads it:
  categorical, the value of the largest output direction (ties: the first);
  numerical, the output dimension as a float. With `unembed` (params'
  `unembed` module: `w` [d_model, outputs], `b`), the output directions are
  `residual @ w + b` instead of the residual's `output.dims`.

  One addition to tracr's argmax: a categorical position where no output
  direction is set (all below UNSET_BELOW; a set one is 1) decodes to None.
  That is how the weights carry RASP's None: an Aggregate that selects
  nothing writes nothing, and Maps and SequenceMaps of nothing write nothing.
  tracr's own decoder would read the first value there.
  """
  if unembed is not None:
    read_BxTxO = (residual_BxTxD[:, 1:] @ np.asarray(unembed["w"], np.float64)
                  + np.asarray(unembed["b"], np.float64))
  elif max(output.dims) >= residual_BxTxD.shape[-1]:
    raise ValueError(f"output dims {output.dims} are outside a residual "
                     f"stream of width {residual_BxTxD.shape[-1]}")
  else:
    read_BxTxO = residual_BxTxD[:, 1:, list(output.dims)]
  if output.numerical:
    return [[float(v) for v in row] for row in read_BxTxO[..., 0]]
  unset_BxT = read_BxTxO.max(axis=-1) < UNSET_BELOW
  return [[None if unset else output.values[i]
           for i, unset in zip(row, unset_row)]
          for row, unset_row in zip(read_BxTxO.argmax(axis=-1), unset_BxT)]


def outputs(params: Params, num_heads: int, tokens: Sequence[Any],
            output: OutputDecoding, inputs: Sequence[Sequence],
            compiler_bos: str, causal: bool = False,
            residuals: Optional[list] = None) -> list[list]:
  """The decoded output of the weights on each input, in input order.

  One padded batch (see `forward`). `tokens` is the token-embedding row
  order (`input_tokens`). If `residuals` is a list, each input's final
  residual stream [1 + n, d_model] is appended to it, in input order.
  """
  if not inputs:
    return []
  lengths_B = np.array([1 + len(xs) for xs in inputs])
  residual_BxTxD = forward(params, token_ids(tokens, inputs, compiler_bos),
                           num_heads, causal, lengths_B)
  decoded = decode(residual_BxTxD, output, params.get("unembed"))
  if residuals is not None:
    residuals.extend(r[:n] for r, n in zip(residual_BxTxD, lengths_B))
  return [row[:n - 1] for row, n in zip(decoded, lengths_B)]
