"""Saved models round-trip a real tracr model, output decoding included;
malformed files name the fault."""

import json

import numpy as np
import pytest
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

from compiled import compiler, saved
from compiled.compiler import OutputDecoding
from compiled.saved import META_KEY


@pytest.fixture(scope="module")
def hist_model():
  return compiling.compile_rasp_to_model(lib.make_hist(), {1, 2, 3, 4}, 5,
                                         compiler_bos="BOS")


NUMERICAL = rasp.numerical(rasp.Map(lambda x: x + 1, rasp.tokens))


@pytest.fixture(scope="module")
def numerical_model():
  return _stock(NUMERICAL, {1, 2, 3})


def _same_params(got, want):
  assert set(got) == set(want)
  for module, module_params in want.items():
    assert set(got[module]) == set(module_params)
    for name, array in module_params.items():
      assert got[module][name].dtype == np.float32
      np.testing.assert_array_equal(got[module][name], np.asarray(array))


def test_round_trip_of_a_stock_tracr_model(tmp_path, hist_model):
  model = hist_model
  path = tmp_path / "hist.npz"
  saved.save_compiled(path, model)
  loaded = saved.load_compiled(path)
  assert loaded.vocab == (1, 2, 3, 4)
  assert (loaded.max_seq_len, loaded.compiler_bos, loaded.compiler_pad) == (
      5, "BOS", "compiler_pad")
  assert loaded.num_heads == model.model_config.num_heads
  assert loaded.causal is False
  _same_params(loaded.params, model.params)
  # hist's output: values 0..5, the first directions of the residual.
  assert loaded.output == OutputDecoding(tuple(range(6)), tuple(range(6)),
                                         False)
  labels = [model.residual_labels[d] for d in loaded.output.dims]
  assert [label.rpartition(":")[2] for label in labels] == [
      str(v) for v in range(6)]
  assert len({label.rpartition(":")[0] for label in labels}) == 1
  assert loaded.input_tokens == list(model.input_encoder.encoding_map)


def _stock(program, vocab, max_seq_len=4):
  return compiling.compile_rasp_to_model(program, vocab, max_seq_len,
                                         compiler_bos="BOS")


def test_bool_and_int_outputs_differ_only_in_their_values(tmp_path):
  # Same weights, different functions: only the typed values tell them apart.
  models = [_stock(rasp.Map(f, rasp.tokens), {0, 1, 2, 3})
            for f in (lambda x: x < 2, lambda x: int(x < 2))]
  _same_params(*[{m: {k: np.asarray(v) for k, v in p.items()}
                  for m, p in model.params.items()} for model in models])
  outputs = []
  for model in models:
    saved.save_compiled(tmp_path / "model.npz", model)
    outputs.append(saved.load_compiled(tmp_path / "model.npz").output)
  assert outputs[0].values == outputs[1].values == (0, 1)  # As Python ==.
  assert [type(v) for v in outputs[0].values] == [bool, bool]
  assert [type(v) for v in outputs[1].values] == [int, int]
  assert outputs[0] != outputs[1]  # OutputDecoding equality is typed.


def test_numerical_output_round_trips(tmp_path, numerical_model):
  saved.save_compiled(tmp_path / "model.npz", numerical_model)
  output = saved.load_compiled(tmp_path / "model.npz").output
  assert output.numerical and output.values == () and len(output.dims) == 1
  assert output == compiler.compile_rasp_to_model_numpy(
      NUMERICAL, {1, 2, 3}, 4, compiler_bos="BOS").output_decoding


@pytest.mark.parametrize("program, vocab, values", [
    (rasp.Map(lambda x: x / 2, rasp.tokens), {1, 2, 3}, (0.5, 1.0, 1.5)),
    (rasp.Map(lambda x: "ab"[x % 2], rasp.tokens), {1, 2, 3}, ("a", "b")),
    (rasp.Map(lambda x: x == 1, rasp.tokens), {1, 2, 3}, (False, True)),
], ids=["float", "str", "bool"])
def test_typed_output_values_round_trip(tmp_path, program, vocab, values):
  compiled = compiler.compile_rasp_to_model_numpy(program, vocab, 4)
  path = tmp_path / "model.npz"
  saved.save_compiled(path, compiled.params, vocab, 4,
                      output=compiled.output_decoding)
  output = saved.load_compiled(path).output
  assert output == compiled.output_decoding and output.values == values
  assert [type(v) for v in output.values] == [type(v) for v in values]


def test_output_found_by_labels_when_the_unembedding_cannot_run(
    monkeypatch, hist_model, numerical_model):
  expected = saved.output_decoding(hist_model)

  def fail(*args):
    raise RuntimeError("no haiku here")

  monkeypatch.setattr(saved, "_unembedding", fail)
  assert saved.output_decoding(hist_model) == expected
  # Three variables hold exactly {0, 1}: the labels cannot tell which.
  parity = rasp.Map(lambda x: x % 2, rasp.tokens)
  other = rasp.Map(lambda x: (x + 1) % 2, rasp.tokens)
  ambiguous = _stock(rasp.SequenceMap(lambda x, y: x, parity, other),
                     {1, 2, 3})
  with pytest.raises(ValueError, match="3 residual variables have exactly"):
    saved.output_decoding(ambiguous)
  with pytest.raises(ValueError, match="cannot find the numerical output"):
    saved.output_decoding(numerical_model)


def test_explicit_form_needs_the_output_decoding(tmp_path, hist_model):
  path = tmp_path / "explicit"  # No extension: written as given.
  output = saved.output_decoding(hist_model)
  saved.save_compiled(path, hist_model.params, {3, 1, 4, 2}, np.int64(5),
                      compiler_bos="BOS", causal=True, output=output)
  loaded = saved.load_compiled(path)
  assert loaded.vocab == (1, 2, 3, 4) and loaded.output == output
  assert loaded.num_heads is None and loaded.causal is True
  with pytest.raises(ValueError, match="needs output=.*OutputDecoding"):
    saved.save_compiled(path, hist_model.params, {1, 2, 3, 4}, 5,
                        compiler_bos="BOS")
  with pytest.raises(ValueError, match="takes vocab, max_seq_len"):
    saved.save_compiled(path, hist_model, {1, 2, 3, 4}, 5)


def test_string_vocab(tmp_path, hist_model):
  # The weights only need the right row counts: 4 tokens like {1, 2, 3, 4}.
  path = tmp_path / "strings.npz"
  saved.save_compiled(path, hist_model.params, ["b", "a", "d", "c"], 5,
                      output=saved.output_decoding(hist_model))
  assert saved.load_compiled(path).vocab == ("a", "b", "c", "d")


@pytest.mark.parametrize("vocab, plain", [
    ([np.int64(3), np.float64(2.5), np.str_("a"), np.int32(-1)],
     [-1, 2.5, 3, "a"]),
    # tracr compares a bool and a string by text: "BOS" < "True" < "a".
    ([np.bool_(True), np.str_("b"), np.str_("a"), np.str_("Z")],
     [True, "Z", "a", "b"]),
])
def test_numpy_tokens_are_saved_as_the_python_values(tmp_path, hist_model,
                                                     vocab, plain):
  path = tmp_path / "numpy.npz"
  saved.save_compiled(path, hist_model.params, vocab, 5, compiler_bos="BOS",
                      output=saved.output_decoding(hist_model))
  loaded = saved.load_compiled(path)
  assert [(type(t), t) for t in loaded.vocab] == [(type(t), t) for t in plain]


@pytest.mark.parametrize("content", [
    b"", np.random.default_rng(0).bytes(300),
    b"PK\x03\x04" + bytes(100),  # A broken zip.
])
def test_a_file_that_is_not_a_saved_model(tmp_path, content):
  path = tmp_path / "random.npz"
  path.write_bytes(content)
  with pytest.raises(ValueError, match=f"{path}: not a saved model") as error:
    saved.load_compiled(path)
  assert "pickle" not in str(error.value)  # numpy's guess misleads.


def test_a_single_array_is_not_a_saved_model(tmp_path):
  path = tmp_path / "array.npy"
  np.save(path, np.zeros(3))
  with pytest.raises(ValueError, match="not a saved model"):
    saved.load_compiled(path)


def _write(path, meta, arrays):
  """An .npz by hand; `meta` None leaves __meta__ out, a str is stored raw."""
  if meta is not None:
    raw = meta if isinstance(meta, str) else json.dumps(meta)
    arrays = {**arrays, META_KEY: np.array(raw)}
  with open(path, "wb") as file:
    np.savez(file, **arrays)


def _arrays(model) -> dict:
  return {f"{module}/{name}": np.asarray(array)
          for module, params in model.params.items()
          for name, array in params.items()}


_OUTPUT = {"dims": [0, 1, 2, 3, 4, 5], "values": [0, 1, 2, 3, 4, 5],
           "numerical": False}
_META = {"vocab": [1, 2, 3, 4], "max_seq_len": 5, "compiler_bos": "BOS",
         "compiler_pad": "compiler_pad", "output": _OUTPUT}


@pytest.mark.parametrize("meta, extra, message", [
    (None, {}, "no '__meta__' array"),
    ("{vocab: [1", {}, "'__meta__' is not JSON"),
    ([1, 2], {}, "must be a JSON object"),
    ({k: v for k, v in _META.items() if k != "max_seq_len"}, {},
     r"missing \['max_seq_len'\]"),
    ({k: v for k, v in _META.items() if k != "output"}, {},
     "no output decoding.*save the model again"),
    ({**_META, "heads": 2}, {}, r"unknown fields \['heads'\]"),
    ({**_META, "vocab": 4}, {}, "vocab must be a list, got 4"),
    ({**_META, "vocab": [1, float("nan"), 3, 4]}, {},
     "vocab token nan is a float .JSON has no NaN or infinity"),
    ({**_META, "vocab": [1, [2], 3, 4]}, {}, r"vocab token \[2\] is a list"),
    ({**_META, "vocab": [1, None, 3, 4]}, {}, "vocab token None is a "
     "NoneType"),
    ({**_META, "vocab": [1, 1.0, 3, 4]}, {}, "repeated tokens"),
    ({**_META, "vocab": [1, 2, 3, "BOS"]}, {}, "special token 'BOS'"),
    ({**_META, "vocab": [True, 2, 3, 4]}, {},
     r"token order of vocab \[True, 2, 3, 4\] is not defined .* no "
     "token_order"),
    ({**_META, "token_order": [1, 2, 3, 4, "BOS"]}, {},
     "token_order .* must list the vocab, compiler_bos and compiler_pad"),
    ({**_META, "token_order": [1, 2, 3, [4], "BOS", "compiler_pad"]}, {},
     "token_order .* must list the vocab"),
    ({**_META, "token_order": [2, 1, 3, 4, "BOS", "compiler_pad"]}, {},
     r"token_order .* is not tracr's order of these tokens, \[1, 2, 3"),
    ({**_META, "num_heads": 0}, {}, "num_heads must be a positive int"),
    ({**_META, "causal": "yes"}, {}, "causal must be true or false"),
    ({**_META, "output": {**_OUTPUT, "values": [0, 1]}}, {},
     "output: a categorical OutputDecoding has one value per dim"),
    ({**_META, "output": {**_OUTPUT, "values": [[0]] * 6}}, {},
     "not bool, int, float or str"),
    ({**_META, "output": {**_OUTPUT, "dims": [0, 1, 2, 3, 4, 99]}}, {},
     "outside the residual stream"),
    ({**_META, "vocab": [1, 2]}, {}, r"token_embed/embeddings' has shape "
     r"\(6, \d+\); expected 4 rows"),
    ({**_META, "max_seq_len": 4}, {}, "pos_embed/embeddings' has shape"),
    (_META, {"embeddings": np.zeros(3)}, "'embeddings' is not named"),
    (_META, {"x/": np.zeros(3)}, "'x/' is not named"),
])
def test_load_names_the_problem(tmp_path, hist_model, meta, extra, message):
  path = tmp_path / "bad.npz"
  _write(path, meta, {**_arrays(hist_model), **extra})
  with pytest.raises(ValueError, match=message):
    saved.load_compiled(path)


@pytest.mark.parametrize("vocab, message", [
    ({float("inf"), 2, 3, 4}, "vocab token inf is a float .JSON has no NaN"),
    ([np.float32("nan"), 2, 3, 4], "vocab token nan is a float"),
    ({(1, 2), 2, 3, 4}, r"vocab token \(1, 2\) is a tuple .JSON would not "
     "give it back"),
    ({None, 2, 3, 4}, "vocab token None is a NoneType"),
    ({object, 2, 3, 4}, "vocab token <class 'object'> is a type"),
    ([1, True, 3, 4], "repeated tokens .Python and tracr take 1, 1.0 and "
     "True for the same token"),
    ({1, 2, 3, "BOS"}, "special token 'BOS'"),
    ([1, 1, 2, 3], "repeated tokens"),
    ({1, 2}, "expected 4 rows"),
])
def test_save_rejects_what_would_not_load(tmp_path, hist_model, vocab,
                                          message):
  with pytest.raises(ValueError, match=message):
    saved.save_compiled(tmp_path / "bad.npz", hist_model.params, vocab, 5,
                        compiler_bos="BOS",
                        output=saved.output_decoding(hist_model))


def test_save_rejects_parameter_names_with_slashes(tmp_path, hist_model):
  params = {**hist_model.params, "extra": {"w/b": np.zeros(2)}}
  with pytest.raises(ValueError, match=r"params\['extra'\]\['w/b'\]"):
    saved.save_compiled(tmp_path / "bad.npz", params, {1, 2, 3, 4}, 5,
                        compiler_bos="BOS",
                        output=saved.output_decoding(hist_model))
