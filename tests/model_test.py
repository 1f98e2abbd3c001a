"""Tests of the meta model's forward pass, masks and loss, on a tiny config."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import tiny_model as testing
from meta_model.loss import loss_and_metrics
from meta_model.model import NEG_INF, MetaModel

VOCAB = 24
BATCH = 3


def _setup(seed: int = 0, **overrides):
  rng = np.random.default_rng(seed)
  config = testing.tiny_config(**overrides)
  masks_5xV = testing.column_masks(VOCAB, rng)
  model = MetaModel(config, VOCAB, masks_5xV, rngs=nnx.Rngs(seed))
  batch = testing.random_batch(config, masks_5xV, BATCH, rng)
  return model, masks_5xV, batch


@nnx.jit
def _forward(model: MetaModel, batch: dict) -> jax.Array:
  return model(batch, deterministic=True)


@pytest.fixture(scope="module")
def setup():
  return _setup()


def test_logits_shape_and_dtype(setup):
  model, _, batch = setup
  logits = _forward(model, batch)
  chex.assert_shape(logits, (BATCH, 6, 5, VOCAB))
  chex.assert_type(logits, jnp.float32)
  chex.assert_tree_all_finite(logits)


@pytest.mark.parametrize("row,column", [(1, 0), (2, 3), (4, 1)])
def test_logits_see_only_earlier_rows_and_columns(setup, row, column):
  """logits[:, r, c] depend on rows <= r and program[:, r + 1, :c] only."""
  model, _, batch = setup
  changed = dict(batch, program=batch["program"].copy())
  changed["program"][:, row, column:] = (
      changed["program"][:, row, column:] + 5) % VOCAB
  logits, changed_logits = (_forward(model, b) for b in (batch, changed))
  np.testing.assert_array_equal(logits[:, :row - 1],
                                changed_logits[:, :row - 1])
  np.testing.assert_array_equal(logits[:, row - 1, :column + 1],
                                changed_logits[:, row - 1, :column + 1])
  assert not np.allclose(logits[:, row:], changed_logits[:, row:])


def test_masked_blocks_are_ignored(setup):
  model, masks_5xV, batch = setup
  other = testing.random_batch(testing.tiny_config(), masks_5xV, BATCH,
                               np.random.default_rng(1))
  masked_BxN = ~batch["block_mask"]
  assert masked_BxN.any()
  changed = dict(batch)
  for key in ("blocks", "block_layer", "block_kind", "block_position",
              "block_is_last", "block_shape"):
    where = masked_BxN.reshape(masked_BxN.shape + (1,) * (batch[key].ndim - 2))
    changed[key] = np.where(where, other[key], batch[key])
  np.testing.assert_allclose(_forward(model, batch), _forward(model, changed),
                             atol=1e-6)


def test_illegal_tokens_are_never_predicted(setup):
  model, masks_5xV, batch = setup
  logits = _forward(model, batch)
  assert np.all(np.where(masks_5xV, True, logits == NEG_INF))
  predicted = np.argmax(logits, axis=-1)
  assert np.all(np.take_along_axis(masks_5xV.T, predicted.reshape(-1, 5), 0))


def test_bfloat16_compute_keeps_float32_params():
  model, _, batch = _setup(dtype="bfloat16")
  logits = _forward(model, batch)
  chex.assert_type(logits, jnp.float32)
  chex.assert_tree_all_finite(logits)
  params = nnx.state(model, nnx.Param)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  assert not np.allclose(logits, _forward(_setup()[0], batch), atol=1e-4)


def test_dropout_follows_deterministic_and_rngs(setup):
  model, _, batch = setup
  train_with_key = nnx.jit(lambda model, batch, key: model(
      batch, deterministic=False, rngs=nnx.Rngs(dropout=key)))
  train = nnx.jit(lambda model, batch: model(batch, deterministic=False))
  logits = _forward(model, batch)
  np.testing.assert_array_equal(logits, _forward(model, batch))
  key1, key2 = jax.random.split(jax.random.key(0))
  np.testing.assert_array_equal(train_with_key(model, batch, key1),
                                train_with_key(model, batch, key1))
  assert not np.allclose(train_with_key(model, batch, key1),
                         train_with_key(model, batch, key2))
  assert not np.allclose(logits, train_with_key(model, batch, key1))
  # Without `rngs` the stored streams advance, so masks differ per call.
  assert not np.allclose(train(model, batch), train(model, batch))


def test_rejects_column_masks_of_wrong_shape():
  with pytest.raises(ValueError, match="column_masks"):
    MetaModel(testing.tiny_config(), VOCAB, np.ones((4, VOCAB), bool),
              rngs=nnx.Rngs(0))


def test_loss_and_metrics_of_known_logits(setup):
  _, _, batch = setup
  program = batch["program"]
  logits = 30.0 * jax.nn.one_hot(np.roll(program, -1, axis=1), VOCAB)
  loss, metrics = loss_and_metrics(logits, batch, pad_id=testing.PAD,
                                   na_id=testing.NA)
  assert loss < 1e-6
  assert metrics["token_accuracy"] == metrics["sequence_accuracy"] == 1.0

  # Wrong in an END row's NA slot (program 0) and in program 1's first
  # operator: token accuracy skips NA, sequence accuracy does not.
  end_row = np.flatnonzero(program[0, :, 0] == testing.END)[0]
  wrong = np.array(logits)
  wrong[0, end_row - 1, 1] = jax.nn.one_hot(testing.PAD, VOCAB) * 30.0
  wrong[1, 0, 0] = jax.nn.one_hot(program[1, 1, 0] + 1, VOCAB) * 30.0
  slots = 5 * batch["program_mask"][:, 1:].sum()
  counted = batch["program_mask"][:, 1:, None] & (program[:, 1:] > testing.NA)
  loss, metrics = loss_and_metrics(wrong, batch, pad_id=testing.PAD,
                                   na_id=testing.NA)
  np.testing.assert_allclose(loss, 2 * 30.0 / slots, rtol=1e-4)
  np.testing.assert_allclose(metrics["token_accuracy"],
                             1.0 - 1.0 / counted.sum(), rtol=1e-6)
  np.testing.assert_allclose(metrics["sequence_accuracy"], 1.0 / BATCH)


def test_overfits_two_examples_with_split_merge_jit():
  """The train.py pattern: nnx.split, a pure jitted step, nnx.merge."""
  model, _, batch = _setup(num_layers=1)
  batch = {k: v[:2] for k, v in batch.items()}
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adam(1e-2)

  def loss_fn(params, rest, batch, key):
    model = nnx.merge(graphdef, params, rest)
    logits = model(batch, deterministic=False, rngs=nnx.Rngs(dropout=key))
    return loss_and_metrics(logits, batch, pad_id=testing.PAD,
                            na_id=testing.NA)[0]

  @jax.jit
  def step(params, opt_state, rest, batch, key):
    loss, grads = jax.value_and_grad(loss_fn)(params, rest, batch, key)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = tx.init(params)
  losses = []
  for key in jax.random.split(jax.random.key(0), 30):
    params, opt_state, loss = step(params, opt_state, rest, batch, key)
    losses.append(loss)
  assert losses[-1] < 0.2 * losses[0]
