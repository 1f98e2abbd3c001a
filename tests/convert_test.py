"""to_rasp / from_rasp / to_python round trips, and errors for what tracr
does not compile."""

import itertools

import numpy as np
import pytest
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

from compiled import inputs as inputs_lib
from configs import data
from encoding import tokens
from rasp_gen import convert, functions, sampler
from rasp_gen.program import (Instruction, Linear, Operator, Program,
                              Table, canonicalize)


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
  with pytest.raises(ValueError, match="Map 'mine'.*not in the Map table.*"
                     "pass vocab and max_seq_len"):
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


def _typed(outputs: list) -> list:
  return [(type(v), v) for v in outputs]


def _python_program(program) -> rasp.SOp:
  namespace = {}
  exec(convert.to_python(program), namespace)  # pylint: disable=exec-used
  return namespace["program"]


def _assert_same_outputs(sops: list[rasp.SOp], vocab, max_seq_len: int,
                         count: int = 40) -> None:
  """Typed-equal outputs (or the same error) of every SOp on random inputs."""
  for xs in inputs_lib.random_inputs(np.random.default_rng(0), sorted(vocab),
                                     max_seq_len, count):
    results = []
    for sop in sops:
      try:
        results.append(_typed(rasp.evaluate(sop, xs)))
      except (KeyError, TypeError, ValueError) as error:
        results.append(type(error))
    assert all(r == results[0] for r in results), (xs, results)


def _typed_values_program() -> rasp.SOp:
  """Custom functions with str, bool, float and tuple values, a custom
  predicate, linear factors and a Map of a numerical input."""
  letters = rasp.Map(lambda x: "abc"[x - 1], rasp.tokens)
  odd = rasp.Map(lambda c: c != "b", letters, simplify=False)
  pairs = rasp.SequenceMap(lambda x, i: (x, i), rasp.tokens, rasp.indices)
  ratio = rasp.Map(lambda p: p[0] / (p[1] + 1), pairs, simplify=False)
  previous = rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices,
                                        lambda k, q: k == q - 1), ratio)
  count = rasp.SelectorWidth(rasp.Select(letters, odd,
                                         lambda k, q: (k == "a") == q))
  ones = rasp.numerical(rasp.Map(lambda b: 1 if b else 0, odd, simplify=False))
  frac = rasp.numerical(rasp.Aggregate(
      rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ), ones,
      default=0))
  mixed = rasp.numerical(rasp.LinearSequenceMap(frac, ones, 0.5, -2.0))
  low = rasp.Map(lambda v: v < -0.5, mixed, simplify=False)
  both = rasp.SequenceMap(lambda c, s: (c, s), count, low)
  return rasp.SequenceMap(lambda p, b: f"{p}|{b}", previous, both)


def test_tables_round_trip_through_rasp_and_python():
  vocab, max_seq_len = {1, 2, 3}, 4
  sop = _typed_values_program()
  program = canonicalize(convert.from_rasp(sop, vocab, max_seq_len))
  value_types = {type(value) for i in program.instructions
                 if isinstance(i.function, Table)
                 for _, value in i.function.entries}
  assert {str, bool, float, tuple, int} <= value_types
  assert Linear(0.5, -2.0) in [i.function for i in program.instructions]
  assert canonicalize(convert.from_rasp(convert.to_rasp(program), vocab,
                                        max_seq_len)) == program
  assert canonicalize(convert.from_rasp(_python_program(program), vocab,
                                        max_seq_len)) == program
  _assert_same_outputs([sop, convert.to_rasp(program), _python_program(program)],
                       vocab, max_seq_len)


def test_python_source_writes_empty_relations_and_odd_floats():
  odd = Table.from_function(lambda x: {1: float("inf"), 2: -0.0}[x], [[1, 2]])
  nothing = Table.from_function(lambda k, q: False,
                                [[float("inf"), -0.0], [1, 2]])
  program = Program((
      Instruction(Operator.MAP, odd, ("tokens",), "v1"),
      Instruction(Operator.SELECT, nothing, ("v1", "tokens"), "v2"),
      Instruction(Operator.SELECTOR_WIDTH, None, ("v2",), "v3")))
  source = convert.to_python(program)
  assert "in set()" in source and "float('inf')" in source
  _assert_same_outputs([convert.to_rasp(program), _python_program(program)],
                       {1, 2}, 3, count=10)
  assert convert.to_rasp(program)([1, 2]) == [0, 0]


@pytest.mark.parametrize("make, vocab, max_seq_len", [
    (lambda: lib.make_shuffle_dyck(["()", "{}"]), set("(){}"), 6),
    (lambda: lib.shift_by(2, rasp.tokens), {1, 2, 3}, 5),
    (lambda: lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5,
                           min_key=1), {1, 2, 3, 4}, 5),
    (lambda: lib.make_frac_prevs(rasp.tokens == "x"), {"x", "y"}, 5),
    (lambda: lib.make_count_less_freq(2), {"a", "b", "c"}, 5),
    (lambda: lib.detect_pattern(rasp.tokens, "ab"), {"a", "b"}, 5),
    (lambda: lib.make_nary_sequencemap(lambda a, b, c: a + b * c, rasp.tokens,
                                       rasp.indices, rasp.tokens), {1, 2}, 4),
])
def test_library_programs_with_their_own_lambdas_convert(make, vocab,
                                                         max_seq_len):
  sop = make()
  program = canonicalize(convert.from_rasp(sop, vocab, max_seq_len))
  assert any(isinstance(i.function, Table) for i in program.instructions)
  _assert_same_outputs([sop, convert.to_rasp(program), _python_program(program)],
                       vocab, max_seq_len)


def test_functions_equal_to_named_ones_get_their_names():
  plus = rasp.Map(lambda x: x + 1, rasp.tokens)
  total = rasp.SequenceMap(lambda x, y: x + y, plus, rasp.indices)
  smaller = rasp.Select(total, rasp.tokens, lambda k, q: k < q)
  program = canonicalize(convert.from_rasp(rasp.SelectorWidth(smaller),
                                           {1, 2, 3}, 4))
  assert str(program) == ("MAP LAM_ADD_1 tokens -> v1\n"
                          "SEQUENCE_MAP LAM_ADD v1 indices -> v2\n"
                          "SELECT PRED_LT v2 tokens -> v3\n"
                          "SELECTOR_WIDTH v3 -> v4")


@pytest.mark.parametrize("function, vocab", [
    (lambda x: int(x > 1), {1, 2, 3, 4}),  # LAM_GT_1 gives bools.
    (lambda x: x * 2, {"a", "b"}),  # LAM_MUL_2 is defined on ints only.
    (lambda x: x + 1 if x < 3 else 0, {1, 2, 3}),  # Equal on some values.
])
def test_functions_unequal_to_named_ones_stay_tables(function, vocab):
  program = convert.from_rasp(rasp.Map(function, rasp.tokens), vocab, 3)
  table = program.instructions[0].function
  assert table == Table.from_function(function, [sorted(vocab)])


def test_a_numerical_input_table_computes_what_tracr_compiles():
  # frac_prevs takes 2/3 on "xxy", a value tracr's value sets leave out: the
  # compiled MLP reads the nearest listed value (1/2), and so does the table.
  frac = lib.make_frac_prevs(rasp.tokens == "x")
  sop = rasp.Map(lambda v: v > 0.6, frac, simplify=False)
  program = convert.from_rasp(sop, {"x", "y"}, 3)
  assert isinstance(program.instructions[-1].function, Table)
  table_sop = convert.to_rasp(program)
  assert sop(["x", "x", "y"]) == [True, True, True]
  assert table_sop(["x", "x", "y"]) == [True, True, False]
  compiled = [compiling.compile_rasp_to_model(s, {"x", "y"}, 3, compiler_bos="B")
              for s in (sop, table_sop)]
  assert [[a.shape for a in layer.values()] for layer in
          compiled[0].params.values()] == [[a.shape for a in layer.values()]
                                           for layer in compiled[1].params.values()]
  for length in (1, 2, 3):
    for xs in itertools.product("xy", repeat=length):
      decoded = [m.apply(["B", *xs]).decoded[1:] for m in compiled]
      assert decoded[0] == decoded[1] == table_sop(list(xs))
      assert _python_program(program)(list(xs)) == table_sop(list(xs))


def test_arithmetic_errors_of_a_numerical_input_are_skipped_like_tracr():
  frac = lib.make_frac_prevs(rasp.tokens == "x")
  sop = rasp.numerical(rasp.Map(lambda v: 1 / v, frac, simplify=False))
  table = convert.from_rasp(sop, {"x", "y"}, 2).instructions[-1].function
  assert table.entries == (((0,), None), ((0.5,), 2.0), ((1,), 1.0))
  assert convert.to_rasp(convert.from_rasp(sop, {"x", "y"}, 2))(["y", "x"]) == [
      None, 2.0]


@pytest.mark.parametrize("sop, message", [
    (rasp.Map(lambda x: x + 1, rasp.Full(1)), "Full 'full': not one of"),
    (rasp.Map(lambda x: x, rasp.length), "LengthType 'length': not one of"),
    (rasp.Aggregate(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ),
                    rasp.tokens, default=1).named("agg"),
     "Aggregate 'agg': default 1"),
    (rasp.numerical(rasp.Aggregate(
        rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ),
        rasp.numerical(rasp.Map(lambda x: x + 3, rasp.tokens)),
        default=0)).named("avg"), "Aggregate 'avg': tracr cannot infer"),
    (rasp.Map(lambda x: x + "a", rasp.tokens).named("typo"),
     "Map 'typo': tracr cannot infer"),
])
def test_what_tracr_does_not_compile_is_named_in_the_error(sop, message):
  with pytest.raises(ValueError, match=message):
    convert.from_rasp(sop, {1, 2}, 3)


def test_vocab_and_max_seq_len_come_together():
  with pytest.raises(ValueError, match="both vocab and max_seq_len"):
    convert.from_rasp(rasp.Map(lambda x: x, rasp.tokens), {1, 2})


def test_tables_have_no_tokens():
  program = convert.from_rasp(rasp.Map(lambda x: x * 10, rasp.tokens), {1, 2}, 3)
  with pytest.raises(ValueError, match="table .*token vocabulary cannot express"):
    tokens.encode_program(program, 8)
