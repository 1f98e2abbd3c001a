"""Greedy decoding and beam search over whole program rows, with a KV cache.

The weights' prefix is encoded once (`MetaModel.encode_prefix`); each new
row then costs one `decode_step`. Rows are emitted whole: the five column
tokens are chosen one after the other, each conditioned on the earlier ones.

Beam search keeps `beam_size` programs scored by the sum of their tokens'
log-probabilities (no length normalisation). Within a row the columns are
expanded by a small beam of the same width: for column c every partial row
is extended by every token and the best `beam_size` partial rows survive, so
each program proposes its `beam_size` best rows (approximately, since the
column beam prunes), and the best `beam_size` of all proposals are kept.
Where a column has fewer legal tokens than `beam_size`, the extra proposals
use illegal tokens and score about NEG_INF, so they rank last; a beam wider
than the vocabulary keeps every candidate of a column.

A program stops after the row whose column 0 is `end_id`; its later rows are
PAD rows and its score stays fixed. Decoding stops early once all have ended.
Beam search expands only the live beams, `LIVE_CHUNK` at a time: an ended
program costs a decoder step per row but no row expansion, and at the first
row only beam 0 is live (the others start ended, with score NEG_INF, so the
beams do not begin as copies). An example without weights (an all-False
prefix mask: padding that fills a batch to a fixed size, so that every batch
has one of a few shapes and compiles once) starts ended and comes back as its
START row and PAD rows.

Outputs follow the dataset's `program` layout: R = the model's max_rows rows,
row 0 is `start_row` (the PROGRAM_START row's 5 ids). `batch` needs only the
weight entries (blocks or graph). Both functions are `nnx.jit`-compiled and take the model
itself; from split state, pass `nnx.merge(graphdef, state)`.
"""

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from meta_model.model import NEG_INF, NUM_COLUMNS, Batch, MetaModel, RowHead

# Beams a row expansion takes at a time: a beam-search step costs the live
# beams rounded up to this. At beam 32 on 2 CPU cores 64 is 20 % faster than
# 128 (less rounding); the head's smaller matrix products then round scores
# differently, by ~1e-6.
LIVE_CHUNK = 64


def _expand_row(head: RowHead, h_XxD: jax.Array,
                width: int) -> tuple[jax.Array, jax.Array]:
  """The `width` best rows [X, W, 5] after h, with their log-probs [X, W].

  A column keeps at most (partial rows so far) x (vocabulary) candidates, so
  a width above the vocabulary size works; were there fewer than `width`
  whole rows, the rest score NEG_INF.
  """
  lead = h_XxD.shape[:-1]
  rows_XxPxC = jnp.zeros((*lead, 1, 0), jnp.int32)
  logp_XxP = jnp.zeros((*lead, 1))
  chosen_XxPxD = jnp.zeros((*lead, 1, h_XxD.shape[-1]), h_XxD.dtype)
  for c in range(NUM_COLUMNS):
    logits_XxPxV = head.column_logits(h_XxD[..., None, :], chosen_XxPxD, c)
    vocab = logits_XxPxV.shape[-1]
    cand_XxPxV = logp_XxP[..., None] + jax.nn.log_softmax(logits_XxPxV)
    logp_XxP, flat_XxP = jax.lax.top_k(
        cand_XxPxV.reshape(*lead, -1), min(width, cand_XxPxV.shape[-2] * vocab))
    parent_XxP, token_XxP = flat_XxP // vocab, flat_XxP % vocab
    rows_XxPxC = jnp.concatenate([
        jnp.take_along_axis(rows_XxPxC, parent_XxP[..., None], axis=-2),
        token_XxP[..., None]], axis=-1)
    chosen_XxPxD = (
        jnp.take_along_axis(chosen_XxPxD, parent_XxP[..., None], axis=-2)
        + head.choice_embedding(token_XxP, c))
  missing = width - logp_XxP.shape[-1]
  if missing:
    logp_XxP = jnp.pad(logp_XxP, [(0, 0)] * len(lead) + [(0, missing)],
                       constant_values=NEG_INF)
    rows_XxPxC = jnp.pad(rows_XxPxC,
                         [(0, 0)] * len(lead) + [(0, missing), (0, 0)])
  return rows_XxPxC, logp_XxP


def _expand_live(head: RowHead, h_XxD: jax.Array, live_X: jax.Array,
                 width: int) -> tuple[jax.Array, jax.Array]:
  """`_expand_row` of the live rows of h only, `LIVE_CHUNK` at a time.

  Rows not live hold zeros and NEG_INF, or their own expansion where the
  last chunk reaches them: the caller overwrites them.
  """
  x = h_XxD.shape[0]
  chunk = min(LIVE_CHUNK, x)
  live_first_X = jnp.argsort(~live_X, stable=True)

  def expand(i, out):
    rows_XxWx5, logp_XxW = out
    # The last chunk's start is clamped to x - chunk: it ends at row x.
    pick_C = jax.lax.dynamic_slice_in_dim(live_first_X, i * chunk, chunk)
    rows_CxWx5, logp_CxW = _expand_row(head, h_XxD[pick_C], width)
    return (rows_XxWx5.at[pick_C].set(rows_CxWx5),
            logp_XxW.at[pick_C].set(logp_CxW))

  empty = (jnp.zeros((x, width, NUM_COLUMNS), jnp.int32),
           jnp.full((x, width), NEG_INF))
  num_chunks = (jnp.sum(live_X) + chunk - 1) // chunk
  return jax.lax.fori_loop(0, num_chunks, expand, empty)


def _without_weights(model: MetaModel, batch: Batch) -> jax.Array:
  """[B] examples with no prefix token: batch padding, not decoded."""
  return ~jnp.any(batch[model.prefix_mask_key], axis=1)


def _start_tokens(lead: tuple[int, ...], num_rows: int, start_row: jax.Array,
                  pad_id: int) -> jax.Array:
  tokens = jnp.full((*lead, num_rows, NUM_COLUMNS), pad_id, jnp.int32)
  return tokens.at[..., 0, :].set(jnp.asarray(start_row, jnp.int32))


@functools.partial(nnx.jit, static_argnames=("end_id", "pad_id"))
def greedy_decode(model: MetaModel, batch: Batch, start_row: jax.Array, *,
                  end_id: int, pad_id: int) -> tuple[jax.Array, jax.Array]:
  """Most likely token per column: tokens [B, 1, R, 5], log-probs [B, 1]."""
  cache = model.encode_prefix(batch)
  b, num_rows = cache.key_mask_BxT.shape[0], model.max_rows

  def step(state):
    r, tokens_BxRx5, score_B, done_B, cache = state
    h_BxD, cache = model.decode_step(cache, tokens_BxRx5[:, r], r)
    row_Bx1x5, logp_Bx1 = _expand_row(model.head, h_BxD, 1)
    row_Bx5 = jnp.where(done_B[:, None], pad_id, row_Bx1x5[:, 0])
    score_B += jnp.where(done_B, 0.0, logp_Bx1[:, 0])
    tokens_BxRx5 = tokens_BxRx5.at[:, r + 1].set(row_Bx5)
    done_B |= row_Bx5[:, 0] == end_id
    return r + 1, tokens_BxRx5, score_B, done_B, cache

  state = (0, _start_tokens((b,), num_rows, start_row, pad_id),
           jnp.zeros(b), _without_weights(model, batch), cache)
  _, tokens_BxRx5, score_B, _, _ = jax.lax.while_loop(
      lambda s: (s[0] < num_rows - 1) & ~jnp.all(s[3]), step, state)
  return tokens_BxRx5[:, None], score_B[:, None]


@functools.partial(nnx.jit,
                   static_argnames=("beam_size", "end_id", "pad_id"))
def beam_search(model: MetaModel, batch: Batch, start_row: jax.Array, *,
                beam_size: int, end_id: int,
                pad_id: int) -> tuple[jax.Array, jax.Array]:
  """Best programs first: tokens [B, K, R, 5], log-probs [B, K]."""
  k = beam_size
  if k < 1:
    raise ValueError(f"beam_size={k} must be at least 1")
  cache = model.encode_prefix(batch)
  (b, slots), num_rows = cache.key_mask_BxT.shape, model.max_rows
  prefix = slots - num_rows
  cache = jax.tree.map(lambda a: jnp.repeat(a, k, axis=0), cache)
  # An ended program proposes a single PAD row at no cost.
  only_first_K = jnp.full(k, NEG_INF).at[0].set(0.0)

  def step(state):
    r, tokens_BxKxRx5, score_BxK, done_BxK, cache = state
    h_BKxD, cache = model.decode_step(
        cache, tokens_BxKxRx5[:, :, r].reshape(b * k, NUM_COLUMNS), r)
    rows_BKxKx5, logp_BKxK = _expand_live(
        model.head, h_BKxD, ~done_BxK.reshape(-1), k)
    rows_BxKxKx5 = rows_BKxKx5.reshape(b, k, k, NUM_COLUMNS)
    logp_BxKxK = logp_BKxK.reshape(b, k, k)
    rows_BxKxKx5 = jnp.where(done_BxK[..., None, None], pad_id, rows_BxKxKx5)
    logp_BxKxK = jnp.where(done_BxK[..., None], only_first_K, logp_BxKxK)
    total_BxKK = (score_BxK[..., None] + logp_BxKxK).reshape(b, k * k)
    score_BxK, best_BxK = jax.lax.top_k(total_BxKK, k)
    parent_BxK = best_BxK // k
    row_BxKx5 = jnp.take_along_axis(
        rows_BxKxKx5.reshape(b, k * k, NUM_COLUMNS), best_BxK[..., None], 1)
    tokens_BxKxRx5 = jnp.take_along_axis(
        tokens_BxKxRx5, parent_BxK[..., None, None], axis=1)
    tokens_BxKxRx5 = tokens_BxKxRx5.at[:, :, r + 1].set(row_BxKx5)
    done_BxK = (jnp.take_along_axis(done_BxK, parent_BxK, axis=1)
                | (row_BxKx5[..., 0] == end_id))
    parent_BK = (jnp.arange(b)[:, None] * k + parent_BxK).reshape(-1)
    # A program's beams share its prefix's keys and values; only the rows'
    # follow the parents.
    cache = jax.tree.map(
        lambda a: a.at[:, prefix:].set(a[parent_BK, prefix:]), cache)
    return r + 1, tokens_BxKxRx5, score_BxK, done_BxK, cache

  done_BxK = _without_weights(model, batch)[:, None] | (jnp.arange(k) > 0)
  state = (0, _start_tokens((b, k), num_rows, start_row, pad_id),
           jnp.tile(only_first_K, (b, 1)), done_BxK, cache)
  _, tokens_BxKxRx5, score_BxK, _, _ = jax.lax.while_loop(
      lambda s: (s[0] < num_rows - 1) & ~jnp.all(s[3]), step, state)
  return tokens_BxKxRx5, score_BxK
