"""The weight ladder keeps the function, and the read-out reads through it."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tracr.compiler import lib
from tracr.rasp import rasp

import readout_helpers
from compiled import forward, verify
from compiled import inputs as inputs_lib
from compiled import params as params_lib
from ladder import compression, distillation, rungs, symmetries
from rasp_gen import convert, functional
from readout import program as program_pass

PROGRAMS = {
    "hist": (lib.make_hist, {1, 2, 3}, 4),
    "sort_unique": (lambda: lib.make_sort_unique(rasp.tokens, rasp.tokens),
                    {1, 2, 3, 4}, 4),
    "frac_prevs": (lambda: lib.make_frac_prevs(rasp.tokens == "a"),
                   {"a", "b"}, 4),
    # Directions no input produces (an index past the length), which later
    # modules read all the same.
    "reverse": (lambda: lib.make_reverse(rasp.tokens), {1, 2, 3}, 4),
    # Two numerical-to-categorical Maps of one input in one layer, each
    # with its own always-on neuron.
    "shuffle_dyck": (lambda: lib.make_shuffle_dyck(["()"]), {"(", ")"}, 4),
    # Twelve values through three MLPs: float32 rounding under a map of
    # condition number 100 comes to ~1e-5 of a weight, which is no value.
    "indexed_table": (lambda: _indexed_table(), {1, 2, 3, 4}, 8),
    # Width 8 no input has, and tracr's MLP writes it mixed with width 7's
    # direction (1/9 too close to 1/8): the unembedding says the values.
    "width_no_input_has": (lambda: rasp.categorical(rasp.SelectorWidth(
        rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.LT))),
                           {1, 2, 3}, 8),
}


def _indexed_table():
  first = rasp.categorical(rasp.Map(lambda x: {1: 0, 2: 1, 3: 2, 4: 0}[x],
                                    rasp.tokens))
  index = rasp.categorical(rasp.Map(abs, rasp.indices))
  table = rasp.categorical(rasp.SequenceMap(
      lambda a, b: [b, min(2 * b, b + 4), 0][a], first, index))
  copied = rasp.categorical(rasp.Aggregate(rasp.Select(
      rasp.indices, table, lambda k, q: k == 0 and q == 0), table))
  return rasp.categorical(rasp.Map(
      lambda x: -(x + 2) if x <= 8 else -(2 * x - 6), copied))
EXACT_RUNGS = ("R1", "R2-orthogonal", "R2-invertible")


def _model(name):
  build, vocab, max_seq_len = PROGRAMS[name]
  return build(), readout_helpers.compile_model(build(), vocab, max_seq_len)


def _outputs(model, inputs):
  return forward.outputs(model.params, model.num_heads, model.input_tokens,
                         model.output, inputs, model.compiler_bos,
                         model.causal)


@pytest.mark.parametrize("rung", EXACT_RUNGS)
def test_exact_rungs_keep_the_function_and_the_shapes(rung):
  _, model = _model("hist")
  moved = rungs.rung(model, rung, seed=3)
  inputs = inputs_lib.check_inputs(np.random.default_rng(0),
                                   list(model.vocab), model.max_seq_len,
                                   50, 200)
  assert _outputs(moved, inputs) == _outputs(model, inputs)
  d_model = model.params["token_embed"]["embeddings"].shape[1]
  chex.assert_shape(moved.params[params_lib.UNEMBED]["w"],
                    (d_model, len(model.output.values)))
  for key, leaves in model.params.items():
    for leaf, value in leaves.items():
      chex.assert_equal_shape([moved.params[key][leaf], value])
  # The map is dense: nothing of tracr's zeros is left to read.
  assert np.mean(moved.params["token_embed"]["embeddings"] == 0) < (
      0.1 if rung != "R1" else 1.0)


def test_rungs_are_reproducible_from_their_seed():
  _, model = _model("hist")
  a, b = (rungs.rung(model, "R2-invertible", seed=7) for _ in range(2))
  c = rungs.rung(model, "R2-invertible", seed=8)
  embed = lambda m: m.params["token_embed"]["embeddings"]
  np.testing.assert_array_equal(embed(a), embed(b))
  assert not np.allclose(embed(a), embed(c))
  with pytest.raises(ValueError, match="unknown rung"):
    rungs.rung(model, "R9", seed=0)


# What the weights cannot fix, the program read is the same up to: under a
# general invertible map an intermediate numerical variable's scale (the
# variable times c, its readers over c); under any map of the residual the
# labels of an intermediate categorical variable that only tables carry
# (here a SequenceMap's values, which a Select compares with 0 and a Map
# names again), which the read takes in its directions' order.
SAME_UP_TO_SCALE = {"shuffle_dyck"}
SAME_UP_TO_LABELS = {"indexed_table"}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_the_read_program_does_not_depend_on_the_basis(name):
  sop, model = _model(name)
  expected = str(program_pass.read_program(model))
  inputs = inputs_lib.check_inputs(np.random.default_rng(0),
                                   list(model.vocab), model.max_seq_len,
                                   100, 200)
  for seed, rung in enumerate(EXACT_RUNGS):
    read = program_pass.read_program(rungs.rung(model, rung, seed=seed))
    if name in SAME_UP_TO_LABELS or (rung == "R2-invertible"
                                     and name in SAME_UP_TO_SCALE):
      assert functional.same_function(read, sop, [list(xs) for xs in inputs])
    else:
      assert str(read) == expected, rung


NOISY = {
    "shift": (lambda: lib.shift_by(1, rasp.tokens), {"a", "b", "c"}, 4),
    "length": (lib.make_length, {"a", "b"}, 4),
    # An MLP writing two atoms: most of its own coefficients are signal.
    "two_maps": (lambda: rasp.categorical(rasp.Map(
        lambda x: x == 0, rasp.categorical(rasp.Map(
            lambda x: 1 if x == 2 else 0, rasp.tokens)))), set(range(7)), 6),
}


@pytest.mark.parametrize("name", sorted(NOISY))
def test_noisy_rotated_weights_read_as_the_program(name):
  build, vocab, max_seq_len = NOISY[name]
  model = readout_helpers.compile_model(build(), vocab, max_seq_len)
  inputs = [list(xs) for xs in inputs_lib.check_inputs(
      np.random.default_rng(0), sorted(vocab), max_seq_len, 200, 400)]
  noisy = rungs.rung(model, "R3-0.001", seed=0)
  assert functional.same_function(program_pass.read_program(noisy), build(),
                                  inputs)


def test_verification_in_another_basis_is_by_behaviour_and_linear_structure():
  sop, model = _model("sort_unique")
  moved = rungs.rung(model, "R2-invertible", seed=1)
  reference = verify.reference(moved, exhaustive_limit=10, num_random=40)
  assert not reference.exhaustive
  assert verify.verify_against(reference, sop).verified
  read, verification = program_pass.read_and_verify(reference)
  assert verification.verified
  assert convert.to_rasp(read) is not None
  # A program that differs somewhere is refused, by behaviour.
  shifted = rasp.categorical(rasp.Map(lambda x: x + 1, sop))
  result = verify.verify_against(reference, shifted)
  assert not result.verified and result.first_difference is not None


def test_a_projection_onto_the_whole_stream_changes_nothing():
  _, model = _model("hist")
  params = symmetries.float64_params(symmetries.with_unembedding(model))
  d_model = params["token_embed"]["embeddings"].shape[1]
  rotation_DxD = symmetries.random_orthogonal(np.random.default_rng(0),
                                              d_model)
  folded = symmetries.with_params(
      model, symmetries.fold(params, rotation_DxD, rotation_DxD.T),
      symmetries.with_unembedding(model).output)
  inputs = [(1, 2, 3), (3, 3), (2,)]
  assert _outputs(folded, inputs) == _outputs(model, inputs)


def test_compression_narrows_the_stream_and_keeps_a_simple_map():
  program = rasp.categorical(rasp.Map(lambda x: x % 3, rasp.tokens))
  model = readout_helpers.compile_model(program, {0, 1, 2, 3, 4, 5}, 3)
  d_model = model.params["token_embed"]["embeddings"].shape[1]
  compressed = rungs.rung(model, "R4-0.5", seed=0)
  width = compression.compressed_width(model, 0.5)
  assert width == -(-d_model // 2)
  chex.assert_shape(compressed.params["token_embed"]["embeddings"],
                    (model.params["token_embed"]["embeddings"].shape[0],
                     width))
  chex.assert_shape(compressed.params["unembed"]["w"], (width, 3))
  inputs = inputs_lib.check_inputs(np.random.default_rng(0), list(range(6)),
                                   3, 200, 400)
  assert _outputs(compressed, inputs) == [[x % 3 for x in xs]
                                          for xs in inputs]


def test_the_forward_pass_is_the_same_in_jax():
  _, model = _model("frac_prevs")
  token_ids = forward.token_ids(model.input_tokens, [("a", "b", "a")],
                                model.compiler_bos)
  allowed = forward.allowed_keys(token_ids.shape[1])
  params = symmetries.float64_params(model)
  as_jax = jax.tree.map(jnp.asarray, params)
  for numpy_stream, jax_stream in zip(
      forward.residual_streams(params, token_ids, model.num_heads, allowed),
      forward.residual_streams(as_jax, token_ids, model.num_heads, allowed,
                               jnp)):
    np.testing.assert_allclose(numpy_stream, jax_stream, atol=1e-5)


def test_distillation_trains_a_model_of_tracrs_shape_to_the_program():
  program = rasp.categorical(rasp.Map(lambda x: x % 3, rasp.tokens))
  model = readout_helpers.compile_model(program, {0, 1, 2, 3, 4, 5}, 3)
  inputs = inputs_lib.check_inputs(np.random.default_rng(0), list(range(6)),
                                   3, 200, 400)
  distilled = distillation.distill(model, inputs, seed=0, num_steps=300)
  teacher = symmetries.with_unembedding(model).params
  chex.assert_trees_all_equal_shapes(distilled.params, teacher)
  assert not np.allclose(distilled.params["token_embed"]["embeddings"],
                         teacher["token_embed"]["embeddings"])
  assert _outputs(distilled, inputs) == [[x % 3 for x in xs]
                                         for xs in inputs]
