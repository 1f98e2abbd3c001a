"""TransformerLens models in and out (compiled/transformer_lens.py,
compiled/restricted_pickle.py), on fixtures TransformerLens itself wrote
(tests/fixtures/make_transformer_lens_fixtures.py); no torch needed."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
from tracr.compiler import lib
from tracr.rasp import rasp

from compiled import restricted_pickle, saved, verify
from compiled import transformer_lens as tl
from meta_model import decompiler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
MARKER = "/tmp/inverse_tracr_evil_fixture_ran"

CASES = {  # model file, encoders, the program it was compiled from
    "hist_module.pt": ("hist_encoders.pkl", lib.make_hist),
    "frac_prevs_state_dict.pt": (
        "frac_prevs_encoders.pkl",
        lambda: lib.make_frac_prevs(rasp.tokens == "x")),
    "sort_unique.safetensors": (
        "sort_unique_encoders.pkl",
        lambda: lib.make_sort_unique(rasp.tokens, rasp.tokens)),
}


def fixture(name):
  return os.path.join(FIXTURES, name)


def load(name):
  return tl.load(fixture(name), fixture(CASES[name][0]))


def test_no_torch_in_project_code():
  for module in ("compiled/restricted_pickle.py", "compiled/transformer_lens.py"):
    with open(os.path.join(ROOT, module)) as f:
      assert "import torch" not in f.read()


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_verifies_its_program(name):
  model = load(name)
  result = verify.verify(CASES[name][1](), model)
  assert result.verified, verify.describe(result)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_decompiles_verified(name):
  result = decompiler.Decompiler().decompile(load(name))
  assert result.verified, result.report()


def test_hist_records_mlp_exactness_1000_and_verify_uses_it(monkeypatch):
  model = load("hist_module.pt")
  assert model.mlp_exactness == 1000
  assert any("mlp_exactness: 1000" in note for note in model.inferred)
  from compiled import compiler  # pylint: disable=g-import-not-at-top
  seen, compile_numpy = [], compiler.compile_rasp_to_model_numpy

  def spy(*args, **kwargs):
    seen.append(args[6] if len(args) > 6 else kwargs.get("mlp_exactness"))
    return compile_numpy(*args, **kwargs)

  monkeypatch.setattr(compiler, "compile_rasp_to_model_numpy", spy)
  # Non-exhaustive checking recompiles the program, at the model's setting.
  strict = verify.verify(lib.make_hist(), model, exhaustive_limit=0)
  assert strict.verified, verify.describe(strict)
  assert seen == [1000]


def test_output_dims_inferred_where_w_u_is_the_identity():
  model = load("sort_unique.safetensors")
  assert model.output.dims == (6, 7, 8, 9, 10)
  assert model.output.values == (1, 2, 3, 4, 5)
  assert any(note.startswith("output dims [6, 7, 8, 9, 10]: inferred")
             for note in model.inferred)


def test_state_dict_alone_is_not_causal_and_says_so():
  model = load("frac_prevs_state_dict.pt")
  assert not model.causal and model.output.numerical
  assert any("causal: assumed false" in note for note in model.inferred)


def test_causal_read_from_attention_dir():
  model = tl.load(fixture("length_causal_module.pt"),
                  fixture("length_causal_encoders.pkl"))
  assert model.causal
  assert verify._run(model, [["a", "b", "c"]]) == [[1, 2, 3]]  # pylint: disable=protected-access


def test_plain_vocab_and_output_values():
  model = tl.load(fixture("hist_module.pt"), vocab=[1, 2, 3, 4],
                  output_values=[0, 1, 2, 3, 4, 5])
  assert model.compiler_bos == "BOS"
  assert verify.verify(lib.make_hist(), model).verified


def test_needs_output_values():
  with pytest.raises(ValueError, match="pass the tracr encoders"):
    tl.load(fixture("hist_module.pt"))


def test_hooked_transformer_like_object():
  state = restricted_pickle.load(fixture("frac_prevs_state_dict.pt"))

  class FakeHookedTransformer:
    cfg = {"attention_dir": "bidirectional"}

    def state_dict(self):
      return state

  model = verify.load_model(FakeHookedTransformer(),
                            fixture("frac_prevs_encoders.pkl"))
  assert model.inferred == ("mlp_exactness: 100, tracr's default (no "
                            "numerical MLP to read it from)",)
  assert verify.verify(lib.make_frac_prevs(rasp.tokens == "x"),
                       model).verified


@pytest.mark.parametrize("name", ["evil.pt", "evil.pkl"])
def test_foreign_global_refused_with_nothing_run(name):
  if os.path.exists(MARKER):
    os.remove(MARKER)
  with pytest.raises(ValueError, match=r"refused global os\.system") as error:
    restricted_pickle.load(fixture(name))
  assert "\n" not in str(error.value)
  with pytest.raises(ValueError, match=r"refused global os\.system"):
    tl.load(fixture("hist_module.pt"), fixture(name))
  assert not os.path.exists(MARKER)


def test_not_a_pickle():
  with pytest.raises(ValueError, match="neither"):
    restricted_pickle.load(fixture("sort_unique.json"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_save_transformer_lens_round_trip(name, tmp_path):
  model = load(name)
  path = str(tmp_path / "model.safetensors")
  config_path = tl.save_transformer_lens(path, model)
  assert config_path == str(tmp_path / "model.json")
  state, _ = tl._read_safetensors(path)  # pylint: disable=protected-access
  assert state["blocks.0.attn.W_Q"].shape[0] == model.num_heads
  assert np.array_equal(state["unembed.W_U"].argmax(0),
                        np.array(model.output.dims))
  back = tl.load(path)
  assert back.inferred == ()  # W_U decodes; the metadata says the rest.
  assert back.output == model.output and back.causal == model.causal
  assert back.mlp_exactness == model.mlp_exactness
  for module, params in model.params.items():
    for key, value in params.items():
      np.testing.assert_allclose(back.params[module][key], value, atol=1e-6)
  assert verify.verify(CASES[name][1](), back).verified


def test_save_transformer_lens_of_a_tracr_model(tmp_path):
  from tracr.compiler import compiling  # pylint: disable=g-import-not-at-top
  model = compiling.compile_rasp_to_model(lib.make_length(), {"a", "b"}, 4,
                                          compiler_bos="BOS")
  path = str(tmp_path / "length.safetensors")
  tl.save_transformer_lens(path, model)
  assert verify.verify(lib.make_length(), tl.load(path)).verified
  assert saved.from_tracr(model).output == tl.load(path).output


def test_cli_decompiles_with_encoders(tmp_path):
  out = tmp_path / "o.json"
  run = subprocess.run(
      [sys.executable, os.path.join(ROOT, "eval.py"),
       f"--decompile={fixture('hist_module.pt')}",
       f"--encoders={fixture('hist_encoders.pkl')}", f"--json_out={out}"],
      capture_output=True, text=True, cwd=ROOT, check=False)
  assert run.returncode == 0, run.stderr
  assert "inferred: mlp_exactness: 1000" in run.stdout
  assert '"verified": true' in out.read_text()
  refused = subprocess.run(
      [sys.executable, os.path.join(ROOT, "eval.py"),
       f"--decompile={fixture('evil.pt')}",
       f"--encoders={fixture('hist_encoders.pkl')}"],
      capture_output=True, text=True, cwd=ROOT, check=False)
  assert refused.returncode == 1
  assert "refused global os.system" in refused.stderr
