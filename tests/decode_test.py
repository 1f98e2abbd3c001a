"""Tests of cached decoding: it must agree with the full forward pass."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import tiny_model as testing
from meta_model import decode as decode_lib
from meta_model.decode import beam_search, greedy_decode
from meta_model.model import NEG_INF, MetaModel

VOCAB = 24
BATCH = 3
ROWS = testing.tiny_config().max_rows
DECODE = dict(start_row=testing.START_ROW, end_id=testing.END,
              pad_id=testing.PAD)


def _setup(model_masks_5xV=None, **overrides):
  """A model (legal tokens `model_masks_5xV` if given) and a random batch."""
  rng = np.random.default_rng(0)
  config = testing.tiny_config(**overrides)
  masks_5xV = testing.column_masks(VOCAB, rng)
  if model_masks_5xV is None:
    model_masks_5xV = masks_5xV
  model = MetaModel(config, VOCAB, model_masks_5xV, rngs=nnx.Rngs(0))
  batch = testing.random_batch(config, masks_5xV, BATCH, rng)
  return model, model_masks_5xV, batch


@pytest.fixture(scope="module")
def setup():
  return _setup()


@nnx.jit
def _forward(model: MetaModel, batch: dict) -> jax.Array:
  return model(batch, deterministic=True)


def _with_program(batch: dict, program_BxRx5: jax.Array) -> dict:
  """`batch` with a decoded program; rows count up to and including END."""
  is_end_BxR = program_BxRx5[:, :, 0] == testing.END
  ended_before_BxR = jnp.cumsum(is_end_BxR, axis=1) - is_end_BxR > 0
  mask_BxR = (jnp.arange(ROWS) > 0) & ~ended_before_BxR
  return dict(batch, program=program_BxRx5, program_mask=mask_BxR)


def _teacher_forced(model: MetaModel, batch: dict, program_BxRx5: jax.Array):
  """Argmax tokens [B, R-1, 5] and summed log-prob [B] of a decoded program."""
  batch = _with_program(batch, program_BxRx5)
  logp_BxRx5xV = jax.nn.log_softmax(_forward(model, batch))[:, :-1]
  target_BxRx5 = program_BxRx5[:, 1:]
  logp_BxRx5 = jnp.take_along_axis(
      logp_BxRx5xV, target_BxRx5[..., None], axis=-1)[..., 0]
  score_B = jnp.sum(logp_BxRx5 * batch["program_mask"][:, 1:, None],
                    axis=(1, 2))
  return jnp.argmax(logp_BxRx5xV, axis=-1), score_B, batch["program_mask"]


@nnx.jit
def _cached_logits(model: MetaModel, batch: dict) -> jax.Array:
  """Teacher-forced logits computed one row at a time through the cache."""
  program_BxRx5 = batch["program"]
  next_BxRx5 = jnp.pad(program_BxRx5[:, 1:], ((0, 0), (0, 1), (0, 0)))

  def step(cache, r):
    h_BxD, cache = model.decode_step(cache, program_BxRx5[:, r], r)
    return cache, model.head(h_BxD, next_BxRx5[:, r])

  _, logits_RxBx5xV = jax.lax.scan(step, model.encode_prefix(batch),
                                   jnp.arange(ROWS))
  return jnp.swapaxes(logits_RxBx5xV, 0, 1)


def test_cached_steps_match_full_forward(setup):
  model, _, batch = setup
  np.testing.assert_allclose(_cached_logits(model, batch),
                             _forward(model, batch), atol=1e-5, rtol=1e-5)


def test_greedy_is_argmax_of_teacher_forced_own_output(setup):
  model, masks_5xV, batch = setup
  tokens, scores = greedy_decode(model, batch, **DECODE)
  chex.assert_shape(tokens, (BATCH, 1, ROWS, 5))
  chex.assert_shape(scores, (BATCH, 1))
  argmax_BxRx5, score_B, mask_BxR = _teacher_forced(model, batch, tokens[:, 0])
  row_mask_BxR = mask_BxR[:, 1:]
  np.testing.assert_array_equal(
      np.where(row_mask_BxR[..., None], argmax_BxRx5, -1),
      np.where(row_mask_BxR[..., None], tokens[:, 0, 1:], -1))
  np.testing.assert_allclose(scores[:, 0], score_B, rtol=1e-5)
  legal = np.take_along_axis(masks_5xV.T, tokens[:, 0].reshape(-1, 5), 0)
  assert np.all(legal.reshape(BATCH, ROWS, 5)[mask_BxR])


def test_beam_of_one_equals_greedy(setup):
  model, _, batch = setup
  greedy = greedy_decode(model, batch, **DECODE)
  beam = beam_search(model, batch, beam_size=1, **DECODE)
  np.testing.assert_array_equal(greedy[0], beam[0])
  np.testing.assert_allclose(greedy[1], beam[1], rtol=1e-6)


def test_beam_scores_are_sorted_teacher_forced_log_probs(setup):
  model, _, batch = setup
  k = 3
  tokens, scores = beam_search(model, batch, beam_size=k, **DECODE)
  chex.assert_shape(tokens, (BATCH, k, ROWS, 5))
  chex.assert_shape(scores, (BATCH, k))
  assert np.all(np.diff(scores, axis=1) <= 0)
  for beam in range(k):
    _, score_B, _ = _teacher_forced(model, batch, tokens[:, beam])
    np.testing.assert_allclose(scores[:, beam], score_B, rtol=1e-5)
  for b in range(BATCH):
    assert len({t.tobytes() for t in np.asarray(tokens[b])}) == k


def test_beam_wider_than_the_vocabulary(setup):
  model, _, batch = setup
  k = VOCAB + 3
  tokens, scores = beam_search(model, batch, beam_size=k, **DECODE)
  chex.assert_shape(tokens, (BATCH, k, ROWS, 5))
  assert np.all(np.diff(scores, axis=1) <= 0)
  live = np.asarray(scores) > NEG_INF / 2
  assert live.all(), "more than `vocabulary` whole programs exist"
  for beam in (0, k - 1):
    _, score_B, _ = _teacher_forced(model, batch, tokens[:, beam])
    np.testing.assert_allclose(scores[:, beam], score_B, rtol=1e-5)


def test_stops_after_end_row():
  """With END the only legal operator, programs are START, an END row, PADs."""
  masks_5xV = testing.column_masks(VOCAB, np.random.default_rng(0))
  masks_5xV[0] = np.arange(VOCAB) == testing.END
  model, _, batch = _setup(masks_5xV)
  for tokens, scores in (greedy_decode(model, batch, **DECODE),
                         beam_search(model, batch, beam_size=3, **DECODE)):
    np.testing.assert_array_equal(tokens[:, :, 0], np.broadcast_to(
        testing.START_ROW, tokens[:, :, 0].shape))
    assert np.all(tokens[:, :, 1, 0] == testing.END)
    assert np.all(tokens[:, :, 2:] == testing.PAD)
    assert np.all(scores > NEG_INF / 2)


def test_bfloat16_decoding_runs():
  model, _, batch = _setup(dtype="bfloat16")
  tokens, scores = beam_search(model, batch, beam_size=3, **DECODE)
  chex.assert_shape(tokens, (BATCH, 3, ROWS, 5))
  chex.assert_tree_all_finite(scores)


def test_examples_without_weights_are_padding(setup):
  """Batch padding (no weights) is not decoded and changes no other example."""
  model, _, batch = setup
  padded = {k: np.concatenate([v, np.zeros_like(v[:2])])
            for k, v in batch.items()}
  for decode in (greedy_decode, functools.partial(beam_search, beam_size=3)):
    tokens, scores = decode(model, batch, **DECODE)
    padded_tokens, padded_scores = decode(model, padded, **DECODE)
    np.testing.assert_array_equal(padded_tokens[:BATCH], tokens)
    np.testing.assert_allclose(padded_scores[:BATCH], scores, rtol=1e-5)
    np.testing.assert_array_equal(padded_tokens[BATCH:, :, 0],
                                  np.broadcast_to(testing.START_ROW,
                                                  (2, tokens.shape[1], 5)))
    assert np.all(padded_tokens[BATCH:, :, 1:] == testing.PAD)


def test_live_beams_expanded_a_few_at_a_time_decode_the_same(setup,
                                                             monkeypatch):
  model, _, batch = setup
  whole = beam_search(model, batch, beam_size=3, **DECODE)
  monkeypatch.setattr(decode_lib, "LIVE_CHUNK", 2)  # 9 beams: 5 chunks.
  chunked = nnx.jit(beam_search.fun, static_argnames=(
      "beam_size", "end_id", "pad_id"))(model, batch, beam_size=3, **DECODE)
  np.testing.assert_array_equal(chunked[0], whole[0])
  np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-5)
