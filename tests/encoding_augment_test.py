"""Residual permutations and rotations leave the computed function unchanged."""

import numpy as np
import pytest

from compiled import compiler
from configs import data
import single_sequence as forward
from encoding import augment, synthetic

BOS = compiler.COMPILER_BOS


@pytest.fixture(scope="module")
def models():
  sampled = [s.compiled for s in synthetic.samples(
      11, 6, data.get_config().sampler)]
  return sampled + [synthetic.two_heads_model()]


def _input_ids(model: compiler.CompiledModel, rng: np.random.Generator
               ) -> np.ndarray:
  """Ids of BOS and a full-length random input."""
  max_seq_len = model.params["pos_embed"]["embeddings"].shape[0] - 1
  values = [v for v in model.input_tokens
            if v not in (BOS, compiler.COMPILER_PAD)]
  ids = {v: i for i, v in enumerate(model.input_tokens)}
  return np.array([ids[BOS]] + [ids[values[j]] for j in rng.integers(
      len(values), size=max_seq_len)])


def _readout(model: compiler.CompiledModel, residual_TxD: np.ndarray):
  """tracr's decoded output: argmax over output directions, or the value.

  None where no output direction stands out (e.g. an Aggregate with nothing
  selected writes zeros), since any rounding then picks a different argmax.
  """
  columns = [model.residual_labels.index(l) for l in model.output_labels]
  output_TxO = residual_TxD[1:, columns]
  if not model.categorical_output:
    return list(np.round(output_TxO[:, 0], 3))
  top_Tx2 = np.sort(output_TxO, axis=1)[:, -2:]  # Outputs have >= 2 values.
  return [model.output_values[j] if top[1] - top[0] > 0.5 else None
          for j, top in zip(output_TxO.argmax(axis=1), top_Tx2)]


def test_permutation_moves_the_residual_and_nothing_else(models):
  rng = np.random.default_rng(0)
  for model in models:
    ids = _input_ids(model, rng)
    d = len(model.residual_labels)
    basis_DxD = augment.random_permutation(rng, d)
    permuted = augment.change_residual_basis(model.params, basis_DxD)
    before_TxD = forward.forward(model.params, ids, model.num_heads)
    after_TxD = forward.forward(permuted, ids, model.num_heads)
    np.testing.assert_allclose(after_TxD, before_TxD @ basis_DxD, atol=1e-9)
    for key, module in model.params.items():
      for name, array in module.items():
        assert permuted[key][name].dtype == array.dtype
        # Values are moved, never changed.
        np.testing.assert_array_equal(np.sort(permuted[key][name], axis=None),
                                      np.sort(array, axis=None))


def test_rotation_keeps_the_function_in_the_original_basis(models):
  rng = np.random.default_rng(1)
  compared = 0
  for model in models:
    ids = _input_ids(model, rng)
    d = len(model.residual_labels)
    basis_DxD = augment.random_rotation(rng, d)
    np.testing.assert_allclose(basis_DxD @ basis_DxD.T, np.eye(d), atol=1e-12)
    rotated = augment.change_residual_basis(model.params, basis_DxD)
    before_TxD = forward.forward(model.params, ids, model.num_heads)
    after_TxD = forward.forward(rotated, ids, model.num_heads)
    np.testing.assert_allclose(after_TxD @ basis_DxD.T, before_TxD,
                               atol=1e-3)
    expected = _readout(model, before_TxD)
    got = _readout(model, after_TxD @ basis_DxD.T)
    assert [g for g, e in zip(got, expected) if e is not None] == [
        e for e in expected if e is not None]
    compared += sum(e is not None for e in expected)
  assert compared > 10


@pytest.mark.parametrize("rotate", [False, True])
def test_augment_is_a_function_of_the_generator(models, rotate):
  model = models[-1]
  first = augment.augment(model.params, np.random.default_rng(5), rotate)
  second = augment.augment(model.params, np.random.default_rng(5), rotate)
  other = augment.augment(model.params, np.random.default_rng(6), rotate)
  same = lambda a, b: all(np.array_equal(a[k][n], b[k][n])
                          for k in a for n in a[k])
  assert same(first, second) and not same(first, other)
  ids = _input_ids(model, np.random.default_rng(0))
  before = _readout(model, forward.forward(model.params, ids, 2))
  # Read out in the augmented basis by undoing it on the final residual.
  d = len(model.residual_labels)
  basis_DxD = (augment.random_rotation if rotate else
               augment.random_permutation)(np.random.default_rng(5), d)
  after_TxD = forward.forward(first, ids, 2) @ basis_DxD.T
  assert _readout(model, after_TxD) == before


def test_non_orthogonal_basis_raises(models):
  d = len(models[0].residual_labels)
  with pytest.raises(ValueError, match="orthogonal"):
    augment.change_residual_basis(models[0].params, 2 * np.eye(d))
  with pytest.raises(ValueError, match="orthogonal"):
    augment.change_residual_basis(models[0].params, np.eye(d + 1))
