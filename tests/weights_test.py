"""Weight blocks: layout, both block axes and attention forms, and limits."""

import chex
import numpy as np
import pytest

from configs import data
from encoding import synthetic, weights
from encoding.limits import LimitExceeded


@pytest.fixture(scope="module")
def models():
  """A dozen sampled models and one with two heads per layer."""
  sampled = [s.compiled for s in synthetic.samples(
      3, 12, data.get_config().sampler)]
  return sampled + [synthetic.two_heads_model()]


def config(**overrides):
  result = weights.default_blocks_config()
  result.update(overrides)
  return result


def _matrices_from_blocks(blocks: weights.WeightBlocks, axis: str):
  """Rebuilds each oriented matrix from its blocks (inverse of encoding)."""
  matrices, start = [], 0
  ends = np.flatnonzero(blocks.block_is_last) + 1
  for end in ends:
    rows, features = blocks.block_shape[start]
    length = rows if axis == "feature" else features
    slices = blocks.blocks[start:end, :length]
    matrices.append(slices.T if axis == "feature" else slices)
    start = end
  return matrices


@pytest.mark.parametrize("axis", weights.BLOCK_AXES)
@pytest.mark.parametrize("form", weights.ATTENTION_FORMS)
def test_blocks_hold_exactly_the_oriented_matrices(models, axis, form):
  cfg = config(block_axis=axis, attention_form=form, block_size=256,
               max_blocks=4096)
  for model in models:
    blocks = weights.encode_weights(model.params, cfg, model.num_heads)
    n = cfg.max_blocks
    chex.assert_shape(blocks.blocks, (n, cfg.block_size))
    chex.assert_type(blocks.blocks, np.float32)
    for name in ("block_layer", "block_kind", "block_position",
                 "block_is_last"):
      chex.assert_shape(getattr(blocks, name), (n,))
      chex.assert_type(getattr(blocks, name), np.int32)
    chex.assert_shape(blocks.block_shape, (n, 2))
    chex.assert_type(blocks.block_mask, bool)

    expected = weights.oriented_matrices(model.params, form, model.num_heads)
    count = int(blocks.block_mask.sum())
    np.testing.assert_array_equal(blocks.block_mask, np.arange(n) < count)
    np.testing.assert_array_equal(blocks.block_kind > 0, blocks.block_mask)
    assert not blocks.blocks[count:].any()
    assert blocks.block_is_last.sum() == len(expected)
    rebuilt = _matrices_from_blocks(blocks, axis)
    for want, got in zip(expected, rebuilt, strict=True):
      np.testing.assert_array_equal(got, want.values_DxF.astype(np.float32))
    for feature, bound in weights.feature_bounds(cfg).items():
      assert 0 <= getattr(blocks, feature).min()
      assert getattr(blocks, feature).max() < bound, feature
    kinds = [weights.KINDS[k] for k in blocks.block_kind[
        np.flatnonzero(blocks.block_is_last)]]
    assert kinds == [m.kind for m in expected]
    assert blocks.block_layer[count - 1] == model.num_layers


def test_matrices_are_oriented_residual_first(models):
  model = models[0]
  d = model.params["token_embed"]["embeddings"].shape[1]
  for form in weights.ATTENTION_FORMS:
    for m in weights.oriented_matrices(model.params, form, model.num_heads):
      assert m.values_DxF.shape[0] == d, (form, m.kind)


def test_products_are_per_head_qk_and_ov(models):
  model = models[-1]
  assert model.num_heads == 2
  matrices = weights.oriented_matrices(model.params, "products",
                                       model.num_heads)
  qk = next(m for m in matrices if m.kind == "QK" and m.layer == 1)
  ov = next(m for m in matrices if m.kind == "OV" and m.layer == 1)
  attn = "transformer/layer_0/attn/"
  w = lambda name: model.params[attn + name]["w"].astype(np.float64)
  d, k = w("query").shape[0], model.key_size
  for h in range(model.num_heads):
    cols = slice(h * k, (h + 1) * k)
    np.testing.assert_allclose(qk.values_DxF[:, h * d:(h + 1) * d],
                               w("query")[:, cols] @ w("key")[:, cols].T)
    np.testing.assert_allclose(ov.values_DxF[:, h * d:(h + 1) * d],
                               w("value")[:, cols] @ w("linear")[cols, :])


def test_products_need_num_heads_and_raw_does_not(models):
  model = models[0]
  weights.encode_weights(model.params, config())
  with pytest.raises(ValueError, match="needs num_heads"):
    weights.encode_weights(model.params, config(attention_form="products"))
  width = model.params["transformer/layer_0/attn/query"]["w"].shape[1]
  with pytest.raises(ValueError, match="not divisible by num_heads"):
    weights.encode_weights(model.params, config(attention_form="products"),
                           num_heads=width + 1)


@pytest.mark.parametrize("overrides, message", [
    (dict(max_d_model=4), "exceeds max_d_model=4"),
    (dict(max_layers=0), "exceed max_layers=0"),
    (dict(max_features=2), "over max_features=2"),
    (dict(block_size=4), "over block_size=4"),
    (dict(block_axis="residual", block_size=4), "over block_size=4"),
    (dict(max_blocks=8), "exceed max_blocks=8"),
])
def test_limits_raise_naming_the_limit(models, overrides, message):
  with pytest.raises(LimitExceeded, match=message):
    weights.encode_weights(models[0].params, config(**overrides))


def _copy(params):
  return {k: dict(v) for k, v in params.items()}


def test_non_tracr_params_raise_naming_the_key(models):
  params = models[0].params
  key = "transformer/layer_0/mlp/linear_1"

  missing = _copy(params)
  del missing[key]
  with pytest.raises(ValueError, match=f"no '{key}'"):
    weights.encode_weights(missing, config())

  unknown = _copy(params)
  unknown["transformer/layer_0/attn/extra"] = params[key]
  with pytest.raises(ValueError, match="unknown module .*attn/extra"):
    weights.encode_weights(unknown, config())

  narrow = _copy(params)
  narrow[key]["w"] = params[key]["w"][1:]
  with pytest.raises(ValueError, match=f"{key}.*'w'.* has shape"):
    weights.encode_weights(narrow, config())

  infinite = _copy(params)
  infinite[key]["w"] = np.full_like(params[key]["w"], np.inf)
  with pytest.raises(ValueError, match=f"{key}.*non-finite"):
    weights.encode_weights(infinite, config())

  biased = _copy(params)
  biased[key]["b"] = np.ones_like(params[key]["b"])
  with pytest.raises(ValueError, match=f"{key}.*'b'.* is nonzero"):
    weights.encode_weights(biased, config())

  gap = {k.replace("layer_0/", "layer_9/"): v for k, v in params.items()}
  with pytest.raises(ValueError, match="layers .*9"):
    weights.encode_weights(gap, config())


def test_bad_config_values_raise(models):
  with pytest.raises(ValueError, match="block_axis"):
    weights.encode_weights(models[0].params, config(block_axis="diagonal"))
  with pytest.raises(ValueError, match="attention_form"):
    weights.encode_weights(models[0].params, config(attention_form="qkv"))
