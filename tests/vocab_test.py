"""Vocabularies people write (ints, strings, bools, floats, mixed) with stock
tracr: token order, forward pass, verification, saved files, the graph."""

import json

import numpy as np
import pytest
from tracr.compiler import compiling
from tracr.craft import bases
from tracr.rasp import rasp

from compiled import forward, inputs, saved, verify
from configs import tiny
from encoding import graph, pipeline
from encoding.limits import LimitExceeded

BOS, PAD = "BOS", "compiler_pad"
MAX_SEQ_LEN = 2


def _program(function) -> rasp.SOp:
  """A custom Map of the tokens, and an Aggregate that hands every position
  the Map's value at position 0."""
  mapped = rasp.categorical(rasp.Map(function, rasp.tokens))
  first = rasp.Select(rasp.indices, rasp.Map(lambda i: 0, rasp.indices),
                      rasp.Comparison.EQ)
  return rasp.categorical(rasp.Aggregate(first, mapped))


# name: (vocab, the Map's function, tracr's token-embedding row order).
KINDS = {
    "int": ({3, 1, 2}, lambda x: x + 1, [1, 2, 3, BOS, PAD]),
    "str": ({"b", "a"}, lambda x: x.upper(), [BOS, "a", "b", PAD]),
    "bool": ({True, False}, lambda x: not x, [BOS, False, True, PAD]),
    "float": ({1.0, -1.0, 0.0}, lambda x: x / 2, [-1.0, 0.0, 1.0, BOS, PAD]),
    "int_float": ({0, 0.5, 1}, lambda x: x > 0.25, [0, 0.5, 1, BOS, PAD]),
    "int_str": ({"a", 1}, lambda x: isinstance(x, str), [1, BOS, "a", PAD]),
}


def _typed(values) -> list:
  return [(type(v), v) for v in values]


def _all_inputs(vocab) -> list[list]:
  return inputs.check_inputs(np.random.default_rng(0),
                             inputs.sorted_vocab(vocab), MAX_SEQ_LEN)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_stock_tracr_models_of_every_vocab_kind(tmp_path, name):
  vocab, function, rows = KINDS[name]
  program = _program(function)
  model = compiling.compile_rasp_to_model(program, vocab, MAX_SEQ_LEN,
                                          compiler_bos=BOS)
  # The order tracr's embedding rows and input encoder use, typed.
  assert _typed(model.input_encoder.encoding_map) == _typed(rows)
  assert _typed(forward.input_tokens(vocab, BOS, PAD)) == _typed(rows)
  assert _typed(inputs.sorted_vocab(vocab)) == _typed(
      [t for t in rows if t not in (BOS, PAD)])

  xs = _all_inputs(vocab)
  weights = saved.from_tracr(model)
  assert weights.token_order is None
  ours = forward.outputs(weights.params, weights.num_heads,
                         weights.input_tokens, weights.output, xs, BOS)
  theirs = [model.apply([BOS, *x]).decoded[1:] for x in xs]
  assert [_typed(o) for o in ours] == [_typed(o) for o in theirs]
  assert ours == [rasp.evaluate(program, x) for x in xs]
  result = verify.verify(program, model)
  assert result.verified and result.exhaustive, verify.describe(result)
  assert result.num_inputs == len(xs)

  path = tmp_path / f"{name}.npz"
  saved.save_compiled(path, model)
  loaded = saved.load_compiled(path)
  assert _typed(loaded.vocab) == _typed(inputs.sorted_vocab(vocab))
  assert _typed(loaded.input_tokens) == _typed(rows)
  assert loaded.output == weights.output  # Typed values.
  assert verify.verify(program, path).verified
  # The decompiler's encoder reads the file: one TOKEN node per row, each
  # with its value's id.
  example = pipeline.encode_weights_of(loaded, tiny.get_config())
  token = example["node_type"] == graph.NODE_TYPE_IDS["TOKEN"]
  assert list(example["node_value"][token]) == [
      graph.value_id(t, BOS, PAD) for t in rows]


def test_json_keeps_bool_int_float_and_str_tokens_apart(tmp_path):
  vocab, function, _ = KINDS["int"]
  model = compiling.compile_rasp_to_model(_program(function), vocab,
                                          MAX_SEQ_LEN, compiler_bos=BOS)
  output = saved.output_decoding(model)
  path = tmp_path / "mixed.npz"
  # Same number of rows as {1, 2, 3}; the weights need only the row count.
  for tokens in ([7, 0.0, "a"], [-3.5, 1e20, "x y"], [False, "1", "b"]):
    saved.save_compiled(path, model.params, tokens, MAX_SEQ_LEN,
                        compiler_bos=BOS, output=output)
    loaded = saved.load_compiled(path)
    assert _typed(loaded.vocab) == _typed(inputs.sorted_vocab(tokens))
    assert _typed(loaded.input_tokens) == _typed(
        inputs.tracr_order([*tokens, BOS, PAD]))
    assert "token_order" not in json.loads(str(np.load(path)["__meta__"]))
  # 2.5 < BOS < True < 2.5: the rows' order has to be given, and is kept.
  tokens = [True, 2.5, "1"]
  with pytest.raises(ValueError, match="token order of vocab .* is not "
                     "defined .* no token_order"):
    saved.save_compiled(path, model.params, tokens, MAX_SEQ_LEN,
                        compiler_bos=BOS, output=output)
  rows = [2.5, BOS, "1", PAD, True]
  saved.save_compiled(path, model.params, tokens, MAX_SEQ_LEN,
                      compiler_bos=BOS, output=output, token_order=rows)
  loaded = saved.load_compiled(path)
  assert _typed(loaded.input_tokens) == _typed(rows)
  assert sorted(map(repr, loaded.vocab)) == sorted(map(repr, tokens))
  with pytest.raises(ValueError, match="must list the vocab, compiler_bos "
                     "and compiler_pad, each once"):
    saved.save_compiled(path, model.params, tokens, MAX_SEQ_LEN,
                        compiler_bos=BOS, output=output,
                        token_order=[2.5, BOS, "1", PAD, 1])  # 1 is no True.


# Where tracr's comparison is not an order on vocab + BOS + PAD.
UNDEFINED = {
    "bool_int": ({True, 2}, lambda x: x * 3),  # 2 < BOS < True < 2.
    "digit_str": ({9, 10, "5"}, str),  # 10 < "5" < 9 < 10.
}


@pytest.mark.parametrize("name", sorted(UNDEFINED))
def test_vocabs_tracr_cannot_order_keep_the_models_row_order(tmp_path, name):
  vocab, function = UNDEFINED[name]
  assert inputs.tracr_order(vocab | {BOS, PAD}) is None
  with pytest.raises(ValueError, match="token order .* is not defined"):
    forward.input_tokens(vocab, BOS, PAD)
  # Stock tracr compiles them, its rows in the order its set iteration gave
  # (which changes with PYTHONHASHSEED); the saved model keeps that order.
  program = _program(function)
  model = compiling.compile_rasp_to_model(program, vocab, MAX_SEQ_LEN,
                                          compiler_bos=BOS)
  rows = list(model.input_encoder.encoding_map)
  weights = saved.from_tracr(model)
  assert _typed(weights.token_order) == _typed(rows)
  path = tmp_path / f"{name}.npz"
  saved.save_compiled(path, model)
  loaded = saved.load_compiled(path)
  assert _typed(loaded.input_tokens) == _typed(rows)
  # The weights run with those rows compute what tracr's model computes
  # (whatever that is: tracr may build these models wrong, differently per
  # process, so the verdict is not fixed, only that it is the weights').
  xs = _all_inputs(vocab)
  for x in xs:
    expected = np.asarray(model.apply([BOS, *x]).transformer_output[0])
    ids = forward.token_ids(loaded.input_tokens, [x], BOS)
    got = forward.forward(loaded.params, ids, loaded.num_heads)[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
  result = verify.verify(program, path)
  ours = forward.outputs(loaded.params, loaded.num_heads,
                         loaded.input_tokens, loaded.output, xs, BOS)
  assert result.verified == (ours == [rasp.evaluate(program, x)
                                      for x in xs])
  assert result.num_inputs == len(xs)
  example = pipeline.encode_weights_of(loaded, tiny.get_config())
  token = example["node_type"] == graph.NODE_TYPE_IDS["TOKEN"]
  assert list(example["node_value"][token]) == [
      graph.value_id(t, BOS, PAD) for t in rows]


def test_mixed_int_str_with_text_order_compiles_when_the_map_allows_it():
  # Stock tracr compiles mixed int/str vocabs; a Map that cannot take one of
  # the tokens fails in tracr, not here.
  with pytest.raises(TypeError, match="can only concatenate str"):
    compiling.compile_rasp_to_model(
        _program(lambda x: x + 1), {1, "a"}, MAX_SEQ_LEN, compiler_bos=BOS)


@pytest.mark.parametrize("values", [
    {3, 1, 2, BOS, PAD}, {"b", "a", BOS, PAD}, {True, False, BOS, PAD},
    {0.5, -1.0, 2, BOS, PAD}, {-1, "x", 10**20, BOS, PAD},
    {1.5, "a", BOS, PAD}, {"0", "a", -5, BOS}, set(range(-150, 150)),
    {str(i) for i in range(40)} | {"BOS"},
])
def test_tracr_order_is_tracrs_sort_whatever_order_it_is_given(values):
  order = inputs.tracr_order(values)
  assert order is not None
  rng = np.random.default_rng(0)
  for _ in range(5):
    shuffled = list(values)
    rng.shuffle(shuffled)
    space = bases.VectorSpaceWithBasis.from_values(rasp.tokens.label,
                                                   shuffled)
    assert _typed(d.value for d in space.basis) == _typed(order)


@pytest.mark.parametrize("values", [
    {True, 2, BOS}, {False, 0.5, BOS}, {9, 10, "5"}, {1, "1"},
    {float("nan"), 1, 2},
])
def test_tracr_order_is_none_where_tracrs_comparison_is_no_order(values):
  assert inputs.tracr_order(values) is None
  ordered = inputs.sorted_vocab(values)  # Still a fixed order.
  assert len(ordered) == len(values)
  assert _typed(inputs.sorted_vocab(reversed(ordered))) == _typed(ordered)


def test_a_wide_vocab_is_refused_naming_the_limit_and_the_size(tmp_path):
  vocab = set(range(120))  # 122 token rows, ranks up to 121 > max_index.
  model = compiling.compile_rasp_to_model(
      rasp.categorical(rasp.Map(lambda x: x % 3, rasp.tokens)), vocab,
      MAX_SEQ_LEN, compiler_bos=BOS)
  weights = saved.from_tracr(model)
  config = tiny.get_config()
  args = (weights.params, weights.input_tokens, weights.output,
          weights.num_heads, config.graph, BOS, PAD)
  problem = graph.limit_problem(*args)
  assert problem == (
      "the model has 122 token-embedding rows (a vocab of 120, BOS and PAD);"
      " token, position and output ranks are embedded below max_index=64, "
      "so at most 64 of each")
  assert not graph.fits(*args)
  # What the decompiler's encode reports as a UserError.
  with pytest.raises(LimitExceeded) as error:
    pipeline.encode_weights_of(weights, config)
  assert str(error.value) == problem
  # A larger max_index admits it: the limit is the only obstacle.
  config.graph.max_index = 128
  assert graph.limit_problem(*args[:4], config.graph, BOS, PAD) is None
  assert graph.fits(*args[:4], config.graph, BOS, PAD)
