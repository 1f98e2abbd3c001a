"""to_rasp / from_rasp round trips, and errors for programs outside the tables."""

import numpy as np
import pytest
from tracr.compiler import lib
from tracr.rasp import rasp

from compiled import inputs as inputs_lib
from configs import data
from rasp_gen import convert, functions, sampler
from rasp_gen.program import canonicalize


def test_round_trip_over_sampled_programs():
  config = data.get_config().sampler
  for index in range(200):
    sample = sampler.sample_program(sampler.sampler_rng(1, index), config)
    sop = convert.to_rasp(sample.program)
    assert canonicalize(convert.from_rasp(sop)) == sample.program


def test_to_rasp_computes_the_named_functions():
  add_one = functions.MAP_BY_NAME["LAM_ADD_1"].fn
  tokens_plus_index = functions.SEQUENCE_MAP_BY_NAME["LAM_ADD"].fn
  shifted = rasp.Map(add_one, rasp.indices, simplify=False)
  total = rasp.SequenceMap(tokens_plus_index, rasp.tokens, shifted)
  program = canonicalize(convert.from_rasp(total))
  assert str(program) == ("MAP LAM_ADD_1 indices -> v1\n"
                          "SEQUENCE_MAP LAM_ADD tokens v1 -> v2")
  assert convert.to_rasp(program)([3, 5, 7]) == [4, 7, 10]


def test_library_program_with_table_functions_converts():
  hist = lib.make_hist()  # Select(tokens, tokens, EQ) + SelectorWidth.
  program = canonicalize(convert.from_rasp(hist))
  assert [i.operator.value for i in program.instructions] == [
      "SELECT", "SELECTOR_WIDTH"]
  assert convert.to_rasp(program)([1, 2, 2, 3]) == hist([1, 2, 2, 3])


def test_unknown_lambda_is_named_in_the_error():
  own = rasp.Map(lambda x: x + 100, rasp.tokens).named("mine")
  with pytest.raises(ValueError, match="Map 'mine'.*not in the Map table"):
    convert.from_rasp(own)


def test_composite_selector_is_rejected():
  both = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ) & rasp.Select(
      rasp.indices, rasp.indices, rasp.Comparison.LT)
  with pytest.raises(ValueError, match="not one of"):
    convert.from_rasp(rasp.SelectorWidth(both))


def test_python_source_builds_the_same_program():
  config = data.get_config().sampler
  for index in range(60):
    sample = sampler.sample_program(sampler.sampler_rng(2, index), config)
    namespace = {}
    exec(convert.to_python(sample.program), namespace)  # pylint: disable=exec-used
    built = namespace["program"]
    expected = convert.to_rasp(sample.program)
    for xs in inputs_lib.random_inputs(np.random.default_rng(index), sample.vocab,
                                    sample.max_seq_len, 4):
      assert built(xs) == expected(xs)
    assert rasp.is_numerical(built) == rasp.is_numerical(expected)
