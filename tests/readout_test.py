"""The program read straight off stock tracr weights is verified, and reads
the same from a permuted residual stream."""

import dataclasses

import numpy as np
import pytest
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

from compiled import saved, verify
import readout
from rasp_gen import convert
from rasp_gen.program import Operator, Table

_T = rasp.tokens


def _compile(sop: rasp.SOp, vocab: set, max_seq_len: int) -> saved.SavedModel:
  model = compiling.compile_rasp_to_model(sop, vocab, max_seq_len,
                                          compiler_bos="BOS")
  return saved.from_tracr(model)


def _read(model: saved.SavedModel):
  reference = verify.reference(model)
  program = readout.read_program(model)
  return program, verify.verify_against(reference, convert.to_rasp(program))


def _permuted(model: saved.SavedModel, seed: int) -> saved.SavedModel:
  """The same model with its residual directions shuffled everywhere."""
  d_model = model.params["token_embed"]["embeddings"].shape[1]
  order = np.random.default_rng(seed).permutation(d_model)
  new_position = np.argsort(order)  # old dim -> new dim
  params = {}
  for module, leaves in model.params.items():
    params[module] = {}
    for name, array in leaves.items():
      array = np.asarray(array)
      if module.endswith("embed") or module.endswith(("linear", "linear_2")):
        array = array[..., order] if array.shape[-1] == d_model else array
      if module.endswith(("query", "key", "value", "linear_1")) and name == "w":
        array = array[order]
      params[module][name] = array
  output = dataclasses.replace(
      model.output, dims=tuple(int(new_position[d]) for d in model.output.dims))
  return dataclasses.replace(model, params=params, output=output)


_PROGRAMS = {
    "length": (lib.make_length, {"a", "b", "c"}, 4),
    "reverse": (lambda: lib.make_reverse(_T), {"a", "b", "c"}, 4),
    "shift_by": (lambda: lib.shift_by(2, _T), {1, 2, 3}, 5),
    "pair_balance": (lambda: lib.make_pair_balance(_T, "(", ")"),
                     {"(", ")"}, 5),
    "sort_unique": (lambda: lib.make_sort_unique(_T, _T), {1, 2, 3, 4}, 4),
    "detect_pattern": (lambda: lib.detect_pattern(_T, "ab"), {"a", "b"}, 4),
    # A numerical Map of a numerical input, a Select on a custom predicate.
    "frac_threshold": (lambda: rasp.numerical(rasp.Map(
        lambda x: 1 if x > 0.4 else 0, lib.make_frac_prevs(_T == "x"))),
                       {"x", "y"}, 4),
    # A numerical Map's values above 0.5, and one that is always 1 beside a
    # numerical input of a linear SequenceMap.
    "numerical_values": (lambda: rasp.numerical(rasp.Map(
        lambda x: 4 if x == "a" else 2, _T)), {"a", "b"}, 3),
    "linear_of_a_constant": (lambda: rasp.numerical(rasp.LinearSequenceMap(
        rasp.numerical(rasp.Map(lambda x: 1, _T)),
        lib.make_frac_prevs(_T == "a"), 3, -2)), {"a", "b"}, 4),
}


@pytest.mark.parametrize("name", sorted(_PROGRAMS))
def test_reads_a_verified_program_and_the_same_from_a_permuted_stream(name):
  build, vocab, max_seq_len = _PROGRAMS[name]
  model = _compile(build(), vocab, max_seq_len)
  program, verification = _read(model)
  assert verification.verified, (str(program), verification)
  permuted_program, permuted_verification = _read(_permuted(model, seed=1))
  assert permuted_verification.verified
  assert permuted_program == program


def test_reads_custom_functions_and_shared_selectors_as_tables():
  vowel = rasp.Map(lambda x: x in "ae", _T)
  after = rasp.Select(rasp.indices, rasp.indices, lambda k, q: q == k + 1)
  shifted = rasp.Aggregate(after, _T)
  vowel_before = rasp.Aggregate(after, vowel)
  both = rasp.SequenceMap(lambda x, y: f"{x}{y}", shifted, vowel_before)
  model = _compile(both, {"a", "b", "e"}, 4)
  program, verification = _read(model)
  assert verification.verified, (str(program), verification)
  selects = [i for i in program.instructions if i.operator == Operator.SELECT]
  assert len(selects) == 1  # One selector, used by both Aggregates.
  (pair,) = [i for i in program.instructions
             if i.operator == Operator.SEQUENCE_MAP]
  assert isinstance(pair.function, Table)
  # The output's values come from the output decoding: the strings.
  assert {value for _, value in pair.function.entries} >= {"aTrue", "bFalse"}


def test_weights_that_are_not_tracr_recipes_raise():
  model = _compile(lib.make_length(), {"a", "b"}, 3)
  rng = np.random.default_rng(0)
  params = {m: {k: rng.normal(size=np.shape(v)) for k, v in leaves.items()}
            for m, leaves in model.params.items()}
  with pytest.raises(readout.ReadoutError):
    readout.read_program(dataclasses.replace(model, params=params))


def test_two_maps_of_one_variable_in_one_layer_read_the_same_when_permuted():
  """tokens < 2 (read only as a query) and tokens - 1 (read by an MLP) are
  written by one MLP; their directions also split into other one-hot groups,
  so only what reads them tells the variables apart."""
  small = rasp.Map(lambda x: x < 2, _T)
  width = rasp.SelectorWidth(rasp.Select(rasp.indices, small,
                                         rasp.Comparison.LEQ))
  one_less = rasp.Map(lambda x: x - 1, _T)
  same = rasp.SequenceMap(lambda x, y: x == y, width, one_less)
  model = _compile(same, {0, 1, 2, 3}, 5)
  program, verification = _read(model)
  assert verification.verified, (str(program), verification)
  for seed in range(4):
    assert _read(_permuted(model, seed))[0] == program
