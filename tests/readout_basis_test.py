"""readout.basis: tracr's residual directions found again in another basis.

Small hand-built vectors here; whole models on the weight ladder in
ladder_test.py.
"""

import chex
import numpy as np
import pytest
from tracr.compiler import lib
from tracr.rasp import rasp

from compiled import forward
from ladder import rungs, symmetries
from readout import basis
from readout import program as readout_program
from readout.errors import ReadoutError
from readout_helpers import compile_model

TOLERANCE = 1e-6


def _unit(size: int, *dims: int) -> np.ndarray:
  vector = np.zeros(size)
  vector[list(dims)] = 1.0
  return vector


def test_matroid_components_join_rows_held_together_by_a_dependence():
  rows = np.stack([_unit(4, 0), _unit(4, 1), _unit(4, 0, 1), _unit(4, 2),
                   -_unit(4, 3), 2 * _unit(4, 3)])
  components = sorted(sorted(c) for c in basis.matroid_components(
      rows, TOLERANCE))
  assert components == [[0, 1, 2], [3], [4, 5]]


def test_distinct_rows_come_as_means_most_members_first():
  rows = np.stack([_unit(3, 1), _unit(3, 0), _unit(3, 1) + 1e-9,
                   np.zeros(3), _unit(3, 1)])
  means, sizes = basis._distinct(rows, 1e-3)
  chex.assert_shape(means, (2, 3))
  np.testing.assert_allclose(means, [_unit(3, 1), _unit(3, 0)], atol=1e-8)
  assert sizes.tolist() == [3, 1]  # The zero row is no value.


def test_a_head_writes_a_copy_a_numerical_mean_or_is_refused():
  atoms = basis.Atoms(np.eye(4)[:3], tokens=2)
  copy_DxD = np.zeros((4, 4))
  copy_DxD[0, 3] = copy_DxD[1, 2] = 1.0  # atom 0 -> e3, atom 1 -> e2
  copies, sources = basis.head_atoms(copy_DxD, atoms, TOLERANCE)
  np.testing.assert_allclose(copies, [_unit(4, 3), _unit(4, 2)])
  assert sources.tolist() == [0, 1]
  mean_DxD = np.zeros((4, 4))
  mean_DxD[1, 3], mean_DxD[2, 3] = 2.0, 5.0  # Parallel images: a numerical
  # mean, one direction at unit norm.
  mean, sources = basis.head_atoms(mean_DxD, atoms, TOLERANCE)
  np.testing.assert_allclose(mean, [_unit(4, 3)])
  assert sources.tolist() == [-1]
  mixed_DxD = copy_DxD.copy()
  mixed_DxD[2, 2] = mixed_DxD[2, 3] = 1.0  # Three images spanning two.
  with pytest.raises(ReadoutError, match="neither a copy"):
    basis.head_atoms(mixed_DxD, atoms, TOLERANCE)


def _numerical_to_categorical_mlp():
  """tracr's discretising MLP of x (atom 1) onto values v0 (e2) and v1 (e3):
  an always-on neuron (reads atom 0, `one`) writes v0; two ramp neurons
  write ±(v1 - v0) above the threshold. Activations at three positions:
  x below, above and above the threshold."""
  size = 4
  step = _unit(size, 3) - _unit(size, 2)
  rows_MxD = np.stack([_unit(size, 2), step, -step])
  reads_KxM = np.array([[1.0, -0.5, -1.5], [0.0, 100.0, 100.0]])
  hidden_PxM = np.array([[1.0, 0.0, 0.0], [1.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
  return rows_MxD, reads_KxM, hidden_PxM


def test_an_always_on_neuron_joins_the_steps_it_starts_from():
  rows_MxD, reads_KxM, hidden_PxM = _numerical_to_categorical_mlp()
  atoms = basis.Atoms(np.eye(4)[:2], tokens=1)
  found = basis.mlp_atoms(rows_MxD, reads_KxM, hidden_PxM,
                          np.zeros((1, 3)), np.zeros((0, 3)), atoms,
                          TOLERANCE)
  # The values themselves, v0 and v1; not v0 and the step v1 - v0.
  assert sorted(map(tuple, found)) == sorted([tuple(_unit(4, 2)),
                                              tuple(_unit(4, 3))])


def test_a_start_joins_the_steps_without_a_start_of_their_own():
  """Two numerical-to-categorical Maps of x in one layer (tracr's
  shuffle_dyck): the first writes one direction (e4), so its always-on
  neuron lies in its steps' component; the second's start (e2) belongs to
  the other steps, the only ones without an always-on neuron."""
  rows_MxD, reads_KxM, hidden_PxM = _numerical_to_categorical_mlp()
  size = 5
  one_direction = np.stack([-_unit(size, 4), _unit(size, 4), _unit(size, 4)])
  rows_MxD = np.concatenate([one_direction, np.pad(rows_MxD, ((0, 0),
                                                              (0, 1)))])
  reads_KxM = np.concatenate([reads_KxM[:, [1, 2, 0]], reads_KxM], axis=1)
  hidden_PxM = np.concatenate([hidden_PxM[:, [1, 2, 0]], hidden_PxM], axis=1)
  atoms = basis.Atoms(np.eye(size)[:2], tokens=1)
  found = basis.mlp_atoms(rows_MxD, reads_KxM, hidden_PxM, np.zeros((1, 6)),
                          np.zeros((0, 6)), atoms, TOLERANCE)
  assert sorted(map(tuple, found)) == sorted(
      tuple(_unit(size, d)) for d in (2, 3, 4))


def test_a_value_no_input_produces_keeps_its_direction():
  """A neuron no check input fires still writes a direction later modules
  read: as it would write it (firing at its largest input weight, here 2),
  not as a rounding error at a checked position or on a probe (1e-14) would
  have it; a neuron that reads nothing at the size of the MLP's largest
  output."""
  size = 4
  rows_MxD = np.stack([_unit(size, 1), 0.5 * _unit(size, 2),
                       3 * _unit(size, 3)])
  reads_KxM = np.array([[1.0, 2.0, 0.0]])
  hidden_PxM = np.array([[1.0, 0.0, 0.0], [0.0, 1e-14, 0.0]])
  probes_BxM = np.array([[0.0, 1e-14, 0.0]])
  atoms = basis.Atoms(np.eye(size)[:1], tokens=1)
  found = basis.mlp_atoms(rows_MxD, reads_KxM, hidden_PxM, probes_BxM,
                          probes_BxM, atoms, TOLERANCE)
  np.testing.assert_allclose(found, [_unit(size, 1), _unit(size, 2),
                                     _unit(size, 3)])


def test_factored_keeps_the_product():
  rng = np.random.default_rng(0)
  product_DxE = rng.normal(size=(6, 2)) @ rng.normal(size=(2, 5))
  first, second = basis._factored(product_DxE, 3)
  chex.assert_shape((first, second), ((6, 3), (3, 5)))
  np.testing.assert_allclose(first @ second, product_DxE, atol=1e-12)


def test_noisy_cleaning_drops_noise_and_snaps_to_halves():
  matrix = np.zeros((20, 20))
  matrix[0, 0], matrix[1, 1] = 1.0, 0.5
  noisy = matrix + np.random.default_rng(0).normal(0, 1e-4, matrix.shape)
  np.testing.assert_array_equal(basis._cleaned(noisy, noisy=True), matrix)
  exact = matrix + 1e-12  # Exact weights: rounding error goes, nothing moves.
  cleaned = basis._cleaned(exact, noisy=False)
  np.testing.assert_array_equal(cleaned == 0, matrix == 0)
  np.testing.assert_array_equal(cleaned[matrix != 0], exact[matrix != 0])


def test_a_rotated_model_is_rewritten_with_tracrs_sparsity():
  model = compile_model(rasp.numerical(rasp.Aggregate(
      rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.LEQ),
      rasp.numerical(rasp.Map(lambda x: x / 4, rasp.tokens)),
      default=0)), {1, 2, 3}, 4)
  rotated = rungs.rung(model, "R2-orthogonal", seed=3)
  rewritten = next(basis.tracr_basis_views(rotated))
  token_VxD = rewritten.params["token_embed"]["embeddings"]
  # One `one` column and one direction per token, as tracr writes them.
  assert np.all(token_VxD[:, 0] == 1)
  assert np.count_nonzero(token_VxD) == 2 * len(token_VxD)
  # Already in tracr's basis: itself, the one view.
  assert list(basis.tracr_basis_views(model)) == [model]


def test_an_output_read_with_another_weight_is_rescaled_not_refused():
  """A direction's scale is a symmetry (writers times c, readers over c):
  an unembedding reading an output direction with weight c says its scale
  (a value no input produces has no written vector to take it from)."""
  program = rasp.categorical(rasp.Map(lambda x: x % 3, rasp.tokens))
  model = compile_model(program, {0, 1, 2, 3, 4, 5}, 3)
  params = basis._float64(model)
  dims = list(model.output.dims)
  unembed_DxO = np.zeros((params["token_embed"]["embeddings"].shape[1],
                          len(dims)))
  unembed_DxO[dims, np.arange(len(dims))] = [2.0, 1.0, 0.5]
  rewritten = basis._with_output(model, params, unembed_DxO,
                                 np.zeros(len(dims)), 1e-2)
  assert rewritten.output.dims == model.output.dims
  inputs = [(0, 1, 2), (5, 4), (3,)]
  run = lambda m: forward.outputs(m.params, m.num_heads, m.input_tokens,
                                  m.output, inputs, m.compiler_bos)
  assert run(rewritten) == [[x % 3 for x in xs] for xs in inputs]


def test_noise_lifting_an_atom_not_copied_is_no_copy_of_it():
  """An MLP's atom carries noise along a token's direction, so a head
  copying the tokens images it a little: the copied are above the gap."""
  atoms = basis.Atoms(np.concatenate([np.eye(5)[:2], 0.1 * np.eye(5)[:1]
                                      + np.eye(5)[2:3]]), tokens=2,
                      modules=(2,))
  copy_DxD = np.zeros((5, 5))
  copy_DxD[0, 4] = copy_DxD[1, 3] = 1.0
  copies, sources = basis.head_atoms(copy_DxD, atoms, 3e-2)
  np.testing.assert_allclose(copies, [_unit(5, 4), _unit(5, 3)])
  assert sources.tolist() == [0, 1]


def test_atoms_know_the_module_that_wrote_them():
  atoms = basis.Atoms(np.eye(6)[:3], tokens=2, positions=(1,))
  atoms = atoms.extended(np.eye(6)[3:5], 1).extended(np.eye(6)[5:], 2)
  assert atoms.writers_K().tolist() == [0, 0, 0, 1, 1, 2]


def test_an_mlps_vector_is_taken_in_its_rows_span():
  rows_MxD = np.stack([_unit(4, 0), _unit(4, 1), -_unit(4, 1)])
  noisy = _unit(4, 0) + 0.1 * _unit(4, 3)  # Noise off the rows' span.
  np.testing.assert_allclose(basis._in_row_span(noisy[None], rows_MxD, 1e-6),
                             [_unit(4, 0)], atol=1e-12)


def test_a_mixed_output_is_taken_as_the_unembedding_reads_it():
  """Noise mixes an MLP's values a little (each written with some of its
  neighbours'); the unembedding, which decides the output, defines them."""
  mixing = np.array([[0.9, 0.2], [-0.1, 1.1]])
  vectors_KxD = np.concatenate([np.eye(4)[:2], mixing @ np.eye(4)[2:]])
  atoms = basis.Atoms(vectors_KxD, tokens=2, modules=(2, 2))
  unembed_DxO = np.eye(4)[:, 2:]
  read = basis.as_the_unembedding_reads(atoms, unembed_DxO, numerical=False)
  np.testing.assert_allclose(read.vectors_KxD @ unembed_DxO,
                             [[0, 0], [0, 0], [1, 0], [0, 1]], atol=1e-12)
  assert basis.as_the_unembedding_reads(atoms, unembed_DxO,
                                         numerical=True) is atoms


def test_the_atoms_a_mixed_output_was_copied_from_are_unmixed_too():
  """A SelectorWidth writes its largest widths mixed and a head copies them
  to the output: the unembedding fixes the output's values, and the copy's
  sources are their preimages (then the head maps value to value)."""
  mixing = np.array([[0.9, 0.2], [-0.1, 1.1]])
  width_atoms = mixing @ np.eye(6)[2:4]  # Written by layer 0's MLP.
  atoms = basis.Atoms(np.eye(6)[:2], tokens=2).extended(width_atoms, 2)
  copy_DxD = np.zeros((6, 6))
  copy_DxD[2, 4] = copy_DxD[3, 5] = 1.0
  copies = atoms.vectors_KxD @ copy_DxD
  atoms = atoms.extended(copies[2:], 3, copied_from=(2, 3))
  assert atoms.sources_K().tolist() == [-1, -1, -1, -1, 2, 3]
  unembed_DxO = np.eye(6)[:, 4:]
  read = basis.as_the_unembedding_reads(atoms, unembed_DxO, numerical=False)
  np.testing.assert_allclose(read.vectors_KxD, np.eye(6), atol=1e-12)


def test_noisy_weights_are_seen_exactly_first_then_as_noisy():
  """Noise below the exact tolerance passes as an exact basis change (which
  keeps the noise, unreadable); the views go on to the noisy rewrite, with
  tracr's zeros, which reads."""
  model = compile_model(lib.shift_by(1, rasp.tokens), {"a", "b", "c"}, 4)
  noisy = symmetries.add_noise(rungs.rung(model, "R2-orthogonal", seed=0),
                               1e-5, np.random.default_rng(0))
  views = list(basis.tracr_basis_views(noisy))
  assert len(views) == 2
  values = lambda view: view.params["transformer/layer_0/attn/value"]["w"]
  assert np.count_nonzero(values(views[0])) > values(views[0]).size // 2
  assert np.count_nonzero(values(views[1])) <= 3 * len(model.vocab)
  with pytest.raises(ReadoutError):
    readout_program.read_view(views[0])
  assert str(readout_program.read_program(noisy)) == str(
      readout_program.read_program(model))
