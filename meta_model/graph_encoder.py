"""Node states of a batch of weight graphs (encoding/graph.py).

The batch is one disjoint union of graphs (node arrays [N], edge arrays [E]).
Each round, every edge sends a message along the computation (source ->
target) and one back (target -> source), each a function of the sending
node's state and the edge's kind and weight; a node sums what it receives.
No node carries a residual index or a neuron number, and sums ignore order,
so permuting the residual stream, MLP neurons or head dimensions permutes the
node states the same way: the symmetries of tracr weights hold by
construction. Each example's summary nodes (`summary_index`) then become the
meta-model's prefix, whose attention (no positions) keeps the program it
predicts invariant.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from meta_model.layers import Mlp, symlog

Batch = Mapping[str, jax.Array]




class MessagePassing(nnx.Module):
  """One round: h += out(sum of messages in both directions); h += mlp(h)."""

  def __init__(self, d_model: int, mlp_dim: int, num_edge_features: int, *,
               dtype: jnp.dtype, rngs: nnx.Rngs):
    linear = lambda: nnx.Linear(d_model, d_model, dtype=dtype, rngs=rngs)
    edge = lambda: nnx.Linear(num_edge_features, d_model, dtype=dtype,
                              rngs=rngs)
    self.norm = nnx.LayerNorm(d_model, dtype=dtype, rngs=rngs)
    self.from_source, self.from_target = linear(), linear()
    self.edge_forward, self.edge_backward = edge(), edge()
    self.out = linear()
    self.mlp_norm = nnx.LayerNorm(d_model, dtype=dtype, rngs=rngs)
    self.mlp = Mlp(d_model, mlp_dim, d_model, dtype=dtype, rngs=rngs)

  def __call__(self, h_NxD: jax.Array, edges_ExF: jax.Array, batch: Batch,
               scale_Nx1: jax.Array) -> jax.Array:
    source_E, target_E = batch["edge_source"], batch["edge_target"]
    live_Ex1 = batch["edge_mask"][:, None].astype(h_NxD.dtype)
    x_NxD = self.norm(h_NxD)
    forward_ExD = jax.nn.gelu(self.from_source(x_NxD)[source_E]
                              + self.edge_forward(edges_ExF))
    backward_ExD = jax.nn.gelu(self.from_target(x_NxD)[target_E]
                               + self.edge_backward(edges_ExF))
    n = h_NxD.shape[0]
    received_NxD = (
        jax.ops.segment_sum(forward_ExD * live_Ex1, target_E, n)
        + jax.ops.segment_sum(backward_ExD * live_Ex1, source_E, n))
    h_NxD += self.out(received_NxD * scale_Nx1)
    return h_NxD + self.mlp(self.mlp_norm(h_NxD))


class GraphEmbedder(nnx.Module):
  """Weight graph in, one state per node out: the meta-model's prefix."""

  def __init__(self, d_model: int, mlp_dim: int, num_rounds: int,
               bounds: Mapping[str, int], *, dtype: jnp.dtype,
               rngs: nnx.Rngs):
    embed = lambda n: nnx.Embed(n, d_model, dtype=dtype, rngs=rngs)
    self.node_type = embed(bounds["node_type"])
    self.node_layer = embed(bounds["node_layer"])
    self.node_index = embed(bounds["node_index"])
    self.node_value = embed(bounds["node_value"])
    self.num_edge_kinds = bounds["edge_kind"]
    self.rounds = nnx.List([
        MessagePassing(d_model, mlp_dim, 3 * self.num_edge_kinds,
                       dtype=dtype, rngs=rngs)
        for _ in range(num_rounds)])

  def __call__(self, batch: Batch) -> jax.Array:
    """The summary nodes' states [B, S, D] (see the module docstring)."""
    h_NxD = (self.node_type(batch["node_type"])
             + self.node_layer(batch["node_layer"])
             + self.node_index(batch["node_index"])
             + self.node_value(batch["node_value"]))
    # An edge is its kind, and its weight per kind: as symlog (sign and
    # order over 0.5 .. 100) and scaled linearly (tells 1 from 2 from 100).
    # Few features, so each round reads them with a cheap [F, D] matrix.
    kind_ExK = jax.nn.one_hot(batch["edge_kind"], self.num_edge_kinds)
    value_Ex1 = batch["edge_value"].astype(jnp.float32)[:, None]
    edges_ExF = jnp.concatenate([kind_ExK, kind_ExK * symlog(value_Ex1),
                                 kind_ExK * value_Ex1 / 100], axis=1
                                ).astype(h_NxD.dtype)
    # Sums over many neighbours (the `one` direction meets every token) are
    # scaled by 1/sqrt(degree) so that no node's update dwarfs the rest.
    live_E = batch["edge_mask"].astype(jnp.float32)
    n = h_NxD.shape[0]
    degree_N = (jax.ops.segment_sum(live_E, batch["edge_source"], n)
                + jax.ops.segment_sum(live_E, batch["edge_target"], n))
    scale_Nx1 = jax.lax.rsqrt(1.0 + degree_N)[:, None].astype(h_NxD.dtype)
    for layer in self.rounds:
      h_NxD = layer(h_NxD, edges_ExF, batch, scale_Nx1)
    return h_NxD[batch["summary_index"]]
