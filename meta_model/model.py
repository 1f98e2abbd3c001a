"""The meta model: reads compiled weights, predicts the RASP program.

One decoder-only transformer sees the sequence [weights | program rows]:
  * the weights are a prefix without positions: the summary nodes of the
    weight graph after message passing (meta_model/graph_encoder.py), or,
    with the block encoder, one token per weight block (a projection of its
    values plus embeddings of where it sits); the prefix is NOT causal:
    every prefix token sees every valid prefix token;
  * each program row is one token (the sum of per-column token embeddings plus
    a learned row position), decoded causally: row r sees the valid prefix and
    rows <= r;
  * the hidden state of row r predicts row r + 1 with one head per column;
    head c also sees embeddings of the row's columns < c (the targets when
    teacher-forced, its own choices when decoding), since an instruction's
    arguments depend on its operator. Illegal tokens of a column get NEG_INF.

Training, with the model state split out so the step is a pure jitted function
(`train.py` may shard `params` and `batch` with NamedSharding as usual):

  model = MetaModel(config, vocab_size, column_masks, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss_fn(params, rest, batch, key):
    model = nnx.merge(graphdef, params, rest)
    logits = model(batch, deterministic=False, rngs=nnx.Rngs(dropout=key))
    return loss_and_metrics(logits, batch, pad_id=..., na_id=...)

  jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params, rest, batch, key)

`rest` holds non-trained state: the column masks and the stored RNG streams.

Passing `rngs` gives each step its own dropout key. Without it, dropout draws
from the RNG streams stored in `rest`; a pure step must then return
`nnx.state(model, nnx.RngState)` and feed it to the next step, or the masks
repeat. `nnx.jit` on `model(batch, deterministic=False)` does that for free.

Decoding (meta_model/decode.py) uses `encode_prefix` once and `decode_step`
per row, which match the full forward pass on the same tokens.
"""

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from meta_model.graph_encoder import GraphEmbedder
from meta_model.layers import Block, KVCache, Mlp, symlog

NUM_COLUMNS = 5  # Tokens per program row.
NEG_INF = -1e9  # Logit of a token that is illegal in its column.

Batch = Mapping[str, jax.Array]


def default_model_config() -> ml_collections.ConfigDict:
  """The `model` group of the training config."""
  config = ml_collections.ConfigDict()
  config.num_layers = 6  # Transformer blocks.
  config.num_heads = 8  # Attention heads per block.
  config.d_model = 256  # Residual stream width.
  config.mlp_dim = 1024  # Hidden width of every MLP.
  config.dropout_rate = 0.1  # Embedding and residual dropout.
  config.dtype = "float32"  # Compute dtype, "float32" or "bfloat16";
  # parameters are always float32.
  config.graph_rounds = 3  # Message-passing rounds of the graph encoder.
  # The input sizes (max_rows, and the block encoder's max_blocks,
  # block_size, max_layers, num_block_kinds, max_block_positions) are derived
  # from the encoder's settings by `meta_model.build.model_config`.
  return config


class ColumnMask(nnx.Variable):
  """Which tokens are legal in each column: a constant, never trained."""


class DecodeCache(NamedTuple):
  """Per-layer keys/values for [prefix | rows], and which slots are valid."""
  layers: tuple[KVCache, ...]
  key_mask_BxT: jax.Array


class BlockEmbedder(nnx.Module):
  """Embeds weight blocks: their values plus where they come from."""

  def __init__(self, config: ml_collections.ConfigDict, *, dtype: jnp.dtype,
               rngs: nnx.Rngs):
    d = config.d_model
    embed = lambda n: nnx.Embed(n, d, dtype=dtype, rngs=rngs)
    self.values = nnx.Linear(config.block_size, d, dtype=dtype, rngs=rngs)
    self.layer = embed(config.max_layers + 2)
    self.kind = embed(config.num_block_kinds)
    self.position = embed(config.max_block_positions)
    self.is_last = embed(2)
    # An MLP of log sizes, so unseen matrix sizes land near similar ones.
    self.matrix_shape = Mlp(2, d, d, dtype=dtype, rngs=rngs)

  def __call__(self, batch: Batch) -> jax.Array:
    log_shape_BxNx2 = jnp.log1p(batch["block_shape"].astype(jnp.float32))
    return (self.values(symlog(batch["blocks"]))
            + self.layer(batch["block_layer"])
            + self.kind(batch["block_kind"])
            + self.position(batch["block_position"])
            + self.is_last(batch["block_is_last"])
            + self.matrix_shape(log_shape_BxNx2))


class RowEmbedder(nnx.Module):
  """Embeds a row as the sum of its column tokens' embeddings and position."""

  def __init__(self, vocab_size: int, max_rows: int, d_model: int, *,
               dtype: jnp.dtype, rngs: nnx.Rngs):
    self.vocab_size = vocab_size
    # One table per column: a token means different things in different
    # columns (e.g. a variable as argument vs as output).
    self.tokens = nnx.Embed(NUM_COLUMNS * vocab_size, d_model, dtype=dtype,
                            rngs=rngs)
    self.position = nnx.Embed(max_rows, d_model, dtype=dtype, rngs=rngs)

  def __call__(self, rows_BxLx5: jax.Array,
               positions_L: jax.Array) -> jax.Array:
    offsets_5 = self.vocab_size * jnp.arange(NUM_COLUMNS)
    tokens_BxLxD = self.tokens(rows_BxLx5 + offsets_5).sum(axis=-2)
    return tokens_BxLxD + self.position(positions_L)


class RowHead(nnx.Module):
  """Predicts the next row's tokens, column c conditioned on columns < c."""

  def __init__(self, d_model: int, mlp_dim: int, vocab_size: int,
               column_masks_5xV: np.ndarray, *, dtype: jnp.dtype,
               rngs: nnx.Rngs):
    self.vocab_size = vocab_size
    self.dtype = dtype
    self.choices = nnx.Embed(NUM_COLUMNS * vocab_size, d_model, dtype=dtype,
                             rngs=rngs)
    self.column = nnx.Embed(NUM_COLUMNS, d_model, dtype=dtype, rngs=rngs)
    self.norm = nnx.LayerNorm(d_model, dtype=dtype, rngs=rngs)
    self.mlp = Mlp(d_model, mlp_dim, d_model, dtype=dtype, rngs=rngs)
    self.out_norm = nnx.LayerNorm(d_model, dtype=dtype, rngs=rngs)
    init = nnx.initializers.lecun_normal(batch_axis=0)
    self.unembed_5xDxV = nnx.Param(
        init(rngs.params(), (NUM_COLUMNS, d_model, vocab_size)))
    self.bias_5xV = nnx.Param(jnp.zeros((NUM_COLUMNS, vocab_size)))
    self.column_masks_5xV = ColumnMask(jnp.asarray(column_masks_5xV, bool))

  def _features(self, z_XxD: jax.Array) -> jax.Array:
    return self.out_norm(z_XxD + self.mlp(self.norm(z_XxD)))

  def column_logits(self, h_XxD: jax.Array, chosen_XxD: jax.Array,
                    column: int) -> jax.Array:
    """Float32 logits [X, V] of `column` given the embedded earlier choices."""
    z_XxD = h_XxD + chosen_XxD + self.column(jnp.asarray(column))
    y_XxD = self._features(z_XxD)
    w_DxV = self.unembed_5xDxV[column].astype(self.dtype)
    logits_XxV = (y_XxD @ w_DxV).astype(jnp.float32) + self.bias_5xV[column]
    return jnp.where(self.column_masks_5xV[column], logits_XxV, NEG_INF)

  def choice_embedding(self, tokens_X: jax.Array, column: int) -> jax.Array:
    """What later columns of the row see of `tokens_X` chosen in `column`."""
    return self.choices(tokens_X + column * self.vocab_size)

  def __call__(self, h_XxD: jax.Array, next_Xx5: jax.Array) -> jax.Array:
    """Teacher-forced logits [X, 5, V] for the rows `next_Xx5`.

    All columns at once; equals `column_logits` with the target tokens chosen.
    """
    offsets_5 = self.vocab_size * jnp.arange(NUM_COLUMNS)
    choices_Xx5xD = self.choices(next_Xx5 + offsets_5)
    chosen_Xx5xD = jnp.concatenate([
        jnp.zeros_like(choices_Xx5xD[..., :1, :]),
        jnp.cumsum(choices_Xx5xD[..., :-1, :], axis=-2)], axis=-2)
    y_Xx5xD = self._features(h_XxD[..., None, :] + chosen_Xx5xD
                             + self.column(jnp.arange(NUM_COLUMNS)))
    logits_Xx5xV = jnp.einsum("...cd,cdv->...cv", y_Xx5xD,
                              self.unembed_5xDxV[...].astype(self.dtype))
    logits_Xx5xV = logits_Xx5xV.astype(jnp.float32) + self.bias_5xV[...]
    return jnp.where(self.column_masks_5xV[...], logits_Xx5xV, NEG_INF)


class MetaModel(nnx.Module):
  """Weights in, logits of the program's rows out (module docstring).

  The weights come as a weight graph (encoding/graph.py) when
  `graph_bounds` (that module's `feature_bounds`) is given, the prefix then
  being one token per summary node after message passing; without it as
  weight blocks (encoding/weights.py; `config` then has the block sizes that
  `meta_model.build.model_config` derives).
  """

  def __init__(self, config: ml_collections.ConfigDict, vocab_size: int,
               column_masks: np.ndarray, *,
               graph_bounds: Mapping[str, int] | None = None,
               rngs: nnx.Rngs):
    if config.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"model dtype {config.dtype!r}: expected 'float32' or "
                       "'bfloat16'")
    if np.shape(column_masks) != (NUM_COLUMNS, vocab_size):
      raise ValueError(f"column_masks has shape {np.shape(column_masks)}, "
                       f"expected {(NUM_COLUMNS, vocab_size)}")
    if not np.all(np.any(column_masks, axis=1)):
      raise ValueError("every column needs at least one legal token, got "
                       f"{np.sum(column_masks, axis=1)} per column")
    dtype = jnp.dtype(config.dtype)
    self.max_blocks = config.get("max_blocks")
    self.max_rows = config.max_rows
    if graph_bounds is None:
      self.prefix_embedder = BlockEmbedder(config, dtype=dtype, rngs=rngs)
      self.prefix_mask_key = "block_mask"
    else:
      self.prefix_embedder = GraphEmbedder(
          config.d_model, config.mlp_dim, config.graph_rounds, graph_bounds,
          dtype=dtype, rngs=rngs)
      self.prefix_mask_key = "summary_mask"
    self.row_embedder = RowEmbedder(vocab_size, config.max_rows,
                                    config.d_model, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)
    self.layers = nnx.List([
        Block(config.d_model, config.num_heads, config.mlp_dim,
              config.dropout_rate, dtype=dtype, rngs=rngs)
        for _ in range(config.num_layers)])
    self.final_norm = nnx.LayerNorm(config.d_model, dtype=dtype, rngs=rngs)
    self.head = RowHead(config.d_model, config.mlp_dim, vocab_size,
                        column_masks, dtype=dtype, rngs=rngs)

  def _check_lengths(self, num_prefix: int, num_rows: int):
    if num_rows > self.max_rows:
      raise ValueError(f"batch has {num_rows} rows; the model takes at most "
                       f"{self.max_rows}")
    if self.max_blocks is not None and num_prefix > self.max_blocks:
      raise ValueError(f"batch has {num_prefix} blocks; the model takes at "
                       f"most {self.max_blocks}")

  def __call__(self, batch: Batch, deterministic: bool,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Float32 logits [B, R, 5, V]; logits[:, r] predict program[:, r + 1].

    Row r's head is teacher-forced with program[:, r + 1]'s earlier columns.
    `rngs` (a "dropout" stream) overrides the dropout RNGs stored in the model.
    """
    program_BxRx5 = batch["program"]
    prefix_mask_BxN = batch[self.prefix_mask_key]
    (b, n), r = prefix_mask_BxN.shape, program_BxRx5.shape[1]
    self._check_lengths(n, r)
    x_BxTxD = jnp.concatenate([
        self.prefix_embedder(batch),
        self.row_embedder(program_BxRx5, jnp.arange(r))], axis=1)
    x_BxTxD = self.dropout(x_BxTxD, deterministic=deterministic, rngs=rngs)
    # Key j is visible to query i if it is a valid prefix token, or a row
    # j <= i.
    slot_T = jnp.arange(n + r)
    visible_TxT = (slot_T[None, :] < n) | (slot_T[None, :] <= slot_T[:, None])
    keymask_BxT = jnp.concatenate([prefix_mask_BxN, jnp.ones((b, r), bool)],
                                  axis=1)
    mask_BxTxT = visible_TxT[None] & keymask_BxT[:, None, :]
    for layer in self.layers:
      x_BxTxD, _ = layer(x_BxTxD, mask_BxTxT, deterministic=deterministic,
                         rngs=rngs)
    h_BxRxD = self.final_norm(x_BxTxD[:, n:])
    # The last row has no next row; its unused logits see token 0 instead.
    next_BxRx5 = jnp.pad(program_BxRx5[:, 1:], ((0, 0), (0, 1), (0, 0)))
    return self.head(h_BxRxD, next_BxRx5)

  def encode_prefix(self, batch: Batch) -> DecodeCache:
    """Runs the weights once; the cache has room for max_rows rows."""
    prefix_mask_BxN = batch[self.prefix_mask_key]
    b, n = prefix_mask_BxN.shape
    self._check_lengths(n, 0)
    x_BxNxD = self.prefix_embedder(batch)
    mask_BxNxN = jnp.broadcast_to(prefix_mask_BxN[:, None, :], (b, n, n))
    grow = lambda a: jnp.pad(a, ((0, 0), (0, self.max_rows), (0, 0), (0, 0)))
    layers = []
    for layer in self.layers:
      x_BxNxD, kv = layer(x_BxNxD, mask_BxNxN, deterministic=True)
      layers.append(KVCache(*map(grow, kv)))
    keymask_BxT = jnp.concatenate(
        [prefix_mask_BxN, jnp.ones((b, self.max_rows), bool)], axis=1)
    return DecodeCache(tuple(layers), keymask_BxT)

  def decode_step(self, cache: DecodeCache, rows_Bx5: jax.Array,
                  row: jax.Array | int) -> tuple[jax.Array, DecodeCache]:
    """Feeds program row number `row`; returns its final hidden state [B, D].

    Matches the full forward pass: head(h, next_row) == model(...)[:, row].
    """
    slot = cache.key_mask_BxT.shape[1] - self.max_rows + row
    x_Bx1xD = self.row_embedder(rows_Bx5[:, None], jnp.asarray(row)[None])
    visible_T = jnp.arange(cache.key_mask_BxT.shape[1]) <= slot
    mask_Bx1xT = (cache.key_mask_BxT & visible_T)[:, None, :]
    layers = []
    for layer, kv in zip(self.layers, cache.layers):
      x_Bx1xD, kv = layer(x_Bx1xD, mask_Bx1xT, deterministic=True, cache=kv,
                          index=slot)
      layers.append(kv)
    return (self.final_norm(x_Bx1xD[:, 0]),
            DecodeCache(tuple(layers), cache.key_mask_BxT))
