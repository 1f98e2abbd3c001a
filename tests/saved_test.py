"""Saved models round-trip a real tracr model; malformed files name the fault."""

import json

import numpy as np
import pytest
from tracr.compiler import compiling, lib

from rasp_gen import saved
from rasp_gen.saved import META_KEY


@pytest.fixture(scope="module")
def hist_model():
  return compiling.compile_rasp_to_model(lib.make_hist(), {1, 2, 3}, 5,
                                         compiler_bos="BOS")


def test_round_trip_of_a_stock_tracr_model(tmp_path, hist_model):
  path = tmp_path / "hist.npz"
  saved.save_compiled(path, hist_model.params, {3, 1, 2}, 5,
                      compiler_bos="BOS",
                      num_heads=hist_model.model_config.num_heads)
  model = saved.load_compiled(path)
  assert model.vocab == (1, 2, 3)
  assert (model.max_seq_len, model.compiler_bos, model.compiler_pad) == (
      5, "BOS", "compiler_pad")
  assert model.num_heads == hist_model.model_config.num_heads
  assert model.causal is False
  assert set(model.params) == set(hist_model.params)
  for module, module_params in hist_model.params.items():
    assert set(model.params[module]) == set(module_params)
    for name, array in module_params.items():
      assert model.params[module][name].dtype == np.float32
      np.testing.assert_array_equal(model.params[module][name],
                                    np.asarray(array))


def test_string_vocab_numpy_ints_and_defaults(tmp_path, hist_model):
  # The weights only need the right row counts; 3 tokens like {1, 2, 3}.
  path = tmp_path / "no_extension"
  saved.save_compiled(path, hist_model.params, ["b", "a", "c"],
                      np.int64(5), causal=True)
  model = saved.load_compiled(path)
  assert model.vocab == ("a", "b", "c")
  assert model.num_heads is None and model.causal is True


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


_META = {"vocab": [1, 2, 3], "max_seq_len": 5, "compiler_bos": "BOS",
         "compiler_pad": "compiler_pad"}


@pytest.mark.parametrize("meta, extra, message", [
    (None, {}, "no '__meta__' array"),
    ("{vocab: [1", {}, "'__meta__' is not JSON"),
    ([1, 2], {}, "must be a JSON object"),
    ({k: v for k, v in _META.items() if k != "max_seq_len"}, {},
     r"missing \['max_seq_len'\]"),
    ({**_META, "heads": 2}, {}, r"unknown fields \['heads'\]"),
    ({**_META, "vocab": [1, 2.5, 3]}, {}, "list of ints and strings"),
    ({**_META, "num_heads": 0}, {}, "num_heads must be a positive int"),
    ({**_META, "causal": "yes"}, {}, "causal must be true or false"),
    ({**_META, "vocab": [1, 2]}, {}, r"token_embed/embeddings' has shape "
     r"\(5, \d+\); expected 4 rows"),
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
    ({1.5, 2, 3}, "vocab token 1.5 is a float"),
    ({True, 2, 3}, "vocab token True is a bool"),
    ({1, 2, "BOS"}, "special token 'BOS'"),
    ([1, 1, 2], "repeated tokens"),
    ({1, 2}, "expected 4 rows"),
])
def test_save_rejects_what_would_not_load(tmp_path, hist_model, vocab,
                                          message):
  with pytest.raises(ValueError, match=message):
    saved.save_compiled(tmp_path / "bad.npz", hist_model.params, vocab, 5,
                        compiler_bos="BOS")


def test_save_rejects_parameter_names_with_slashes(tmp_path, hist_model):
  params = {**hist_model.params, "extra": {"w/b": np.zeros(2)}}
  with pytest.raises(ValueError, match=r"params\['extra'\]\['w/b'\]"):
    saved.save_compiled(tmp_path / "bad.npz", params, {1, 2, 3}, 5,
                        compiler_bos="BOS")
