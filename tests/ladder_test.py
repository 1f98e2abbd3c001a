"""The weight ladder keeps the function, and the read-out reads through it."""

import chex
import numpy as np
import pytest
from tracr.compiler import lib
from tracr.rasp import rasp

import readout_helpers
from compiled import forward, verify
from compiled import inputs as inputs_lib
from compiled import params as params_lib
from ladder import symmetries
from rasp_gen import convert
from readout import program as program_pass

PROGRAMS = {
    "hist": (lib.make_hist, {1, 2, 3}, 4),
    "sort_unique": (lambda: lib.make_sort_unique(rasp.tokens, rasp.tokens),
                    {1, 2, 3, 4}, 4),
    "frac_prevs": (lambda: lib.make_frac_prevs(rasp.tokens == "a"),
                   {"a", "b"}, 4),
}
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
  moved = symmetries.rung(model, rung, seed=3)
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
  a, b = (symmetries.rung(model, "R2-invertible", seed=7) for _ in range(2))
  c = symmetries.rung(model, "R2-invertible", seed=8)
  embed = lambda m: m.params["token_embed"]["embeddings"]
  np.testing.assert_array_equal(embed(a), embed(b))
  assert not np.allclose(embed(a), embed(c))
  with pytest.raises(ValueError, match="unknown rung"):
    symmetries.rung(model, "R9", seed=0)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_the_read_program_does_not_depend_on_the_basis(name):
  _, model = _model(name)
  expected = str(program_pass.read_program(model))
  for seed, rung in enumerate(EXACT_RUNGS):
    moved = symmetries.rung(model, rung, seed=seed)
    assert str(program_pass.read_program(moved)) == expected, rung


def test_verification_in_another_basis_is_by_behaviour_and_linear_structure():
  sop, model = _model("sort_unique")
  moved = symmetries.rung(model, "R2-invertible", seed=1)
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
