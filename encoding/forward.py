"""A numpy forward pass of a tracr params dict, for checking transformations.

Same computation as tracr's compiled model (no layer norm, ReLU MLPs, logits
scaled by 1/sqrt(key_size), residual connections), without haiku. It lets
tests confirm that an augmentation or re-encoding of the weights leaves the
function unchanged, on any params dict, in float64.
"""

import numpy as np

from encoding import params as params_lib
from encoding.params import Params


def _softmax(logits: np.ndarray) -> np.ndarray:
  shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return shifted / shifted.sum(axis=-1, keepdims=True)


def forward(params: Params, token_ids_T: np.ndarray, num_heads: int,
            causal: bool = False) -> np.ndarray:
  """The final residual stream [T, d_model] for one input sequence.

  Args:
    params: a tracr params dict.
    token_ids_T: rows of token_embed, BOS included (tracr's input encoder
      maps a sequence [bos, x1, ...] to these ids).
    num_heads: heads per attention layer; tracr params do not store it.
    causal: mask attention to earlier positions, as a causal tracr model.
  """
  layout = params_lib.check_params(params)
  params_lib.check_num_heads(layout, num_heads)
  token_ids_T = np.asarray(token_ids_T)
  embed = lambda key: np.asarray(params[key]["embeddings"], np.float64)
  token_embed, pos_embed = embed(params_lib.TOKEN_EMBED), embed(
      params_lib.POS_EMBED)
  seq_len = len(token_ids_T)
  if seq_len > len(pos_embed):
    raise ValueError(f"{seq_len} positions, but pos_embed has "
                     f"{len(pos_embed)} rows")
  residual_TxD = token_embed[token_ids_T] + pos_embed[:seq_len]
  allowed_TxT = (np.tril(np.ones((seq_len, seq_len), bool)) if causal
                 else np.ones((seq_len, seq_len), bool))

  def linear(key: str, x: np.ndarray) -> np.ndarray:
    return (x @ np.asarray(params[key]["w"], np.float64)
            + np.asarray(params[key]["b"], np.float64))

  for layer in range(layout.num_layers):
    attn = lambda name, x, l=layer: linear(params_lib.attn_key(l, name), x)
    key_size = layout.attn_width[layer] // num_heads
    split = lambda x_TxW: x_TxW.reshape(seq_len, num_heads, key_size)
    query_TxHxK = split(attn("query", residual_TxD))
    key_TxHxK = split(attn("key", residual_TxD))
    value_TxHxK = split(attn("value", residual_TxD))
    logits_HxTxT = np.einsum("thk,Thk->htT", query_TxHxK,
                             key_TxHxK) / np.sqrt(key_size)
    weights_HxTxT = _softmax(np.where(allowed_TxT, logits_HxTxT, -1e30))
    heads_TxHxK = np.einsum("htT,Thk->thk", weights_HxTxT, value_TxHxK)
    residual_TxD = residual_TxD + attn(
        "linear", heads_TxHxK.reshape(seq_len, -1))

    mlp = lambda name, x, l=layer: linear(params_lib.mlp_key(l, name), x)
    hidden_TxM = np.maximum(mlp("linear_1", residual_TxD), 0.0)
    residual_TxD = residual_TxD + mlp("linear_2", hidden_TxM)
  return residual_TxD
