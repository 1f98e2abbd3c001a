"""Transformer pieces shared by the training forward pass and cached decoding.

Attention takes an explicit boolean mask instead of a causal flag: the meta
model mixes a non-causal prefix (the weights) with causal program rows, and
the same layer must serve both the full forward pass and one-row decode steps
that read and write an explicit key/value cache.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx


def symlog(x: jax.Array) -> jax.Array:
  """sign(x) log(1 + |x|): tracr scales some weights by large constants
  (softmax coldness); this keeps them in range with sign, order and small
  values intact."""
  return jnp.sign(x) * jnp.log1p(jnp.abs(x))


class KVCache(NamedTuple):
  """Keys and values of one attention layer for every sequence slot."""
  k_BxTxHxK: jax.Array
  v_BxTxHxK: jax.Array


class Attention(nnx.Module):
  """Multi-head self-attention over an explicit [B, L, S] mask."""

  def __init__(self, d_model: int, num_heads: int, *, dtype: jnp.dtype,
               rngs: nnx.Rngs):
    if d_model % num_heads:
      raise ValueError(f"d_model={d_model} is not a multiple of "
                       f"num_heads={num_heads}")
    self.num_heads = num_heads
    self.qkv = nnx.Linear(d_model, 3 * d_model, dtype=dtype, rngs=rngs)
    self.out = nnx.Linear(d_model, d_model, dtype=dtype, rngs=rngs)

  def __call__(self, x_BxLxD: jax.Array, mask_BxLxS: jax.Array,
               cache: KVCache | None = None,
               index: jax.Array | int = 0) -> tuple[jax.Array, KVCache]:
    """Attends from the L inputs; returns the output and the keys/values used.

    Without `cache` the inputs attend to themselves (S = L). With `cache` the
    new keys/values are first written into it at slot `index`, and the inputs
    attend to the whole cache (S = cache length); the mask hides empty slots.
    """
    b, l, d = x_BxLxD.shape
    qkv_BxLx3xHxK = self.qkv(x_BxLxD).reshape(
        b, l, 3, self.num_heads, d // self.num_heads)
    q_BxLxHxK, k_BxSxHxK, v_BxSxHxK = (qkv_BxLx3xHxK[:, :, i] for i in range(3))
    if cache is not None:
      k_BxSxHxK = jax.lax.dynamic_update_slice_in_dim(
          cache.k_BxTxHxK, k_BxSxHxK, index, axis=1)
      v_BxSxHxK = jax.lax.dynamic_update_slice_in_dim(
          cache.v_BxTxHxK, v_BxSxHxK, index, axis=1)
    y_BxLxHxK = jax.nn.dot_product_attention(
        q_BxLxHxK, k_BxSxHxK, v_BxSxHxK, mask=mask_BxLxS[:, None])
    return self.out(y_BxLxHxK.reshape(b, l, d)), KVCache(k_BxSxHxK, v_BxSxHxK)


class Mlp(nnx.Module):
  """Two-layer GELU perceptron."""

  def __init__(self, d_in: int, hidden: int, d_out: int, *, dtype: jnp.dtype,
               rngs: nnx.Rngs):
    self.up = nnx.Linear(d_in, hidden, dtype=dtype, rngs=rngs)
    self.down = nnx.Linear(hidden, d_out, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.down(jax.nn.gelu(self.up(x)))


class Block(nnx.Module):
  """Pre-LayerNorm transformer block with residual dropout."""

  def __init__(self, d_model: int, num_heads: int, mlp_dim: int,
               dropout_rate: float, *, dtype: jnp.dtype, rngs: nnx.Rngs):
    self.attn_norm = nnx.LayerNorm(d_model, dtype=dtype, rngs=rngs)
    self.attn = Attention(d_model, num_heads, dtype=dtype, rngs=rngs)
    self.mlp_norm = nnx.LayerNorm(d_model, dtype=dtype, rngs=rngs)
    self.mlp = Mlp(d_model, mlp_dim, d_model, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

  def __call__(self, x_BxLxD: jax.Array, mask_BxLxS: jax.Array, *,
               deterministic: bool, rngs: nnx.Rngs | None = None,
               cache: KVCache | None = None,
               index: jax.Array | int = 0) -> tuple[jax.Array, KVCache]:
    """See `Attention` for `cache`/`index`; `rngs` overrides the stored ones."""
    y_BxLxD, kv = self.attn(self.attn_norm(x_BxLxD), mask_BxLxS, cache, index)
    x_BxLxD += self.dropout(y_BxLxD, deterministic=deterministic, rngs=rngs)
    y_BxLxD = self.mlp(self.mlp_norm(x_BxLxD))
    x_BxLxD += self.dropout(y_BxLxD, deterministic=deterministic, rngs=rngs)
    return x_BxLxD, kv
