"""meta_model.decompiler, compiled.verify and their command lines, on stock
tracr models and the tiny config's trained meta-model."""

import dataclasses
import json
import os
import subprocess
import sys

import chex
import numpy as np
import pytest
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

from compiled import verify
from compiled import compiler, saved
from configs import tiny
from encoding import tokens
from encoding.vocabulary import PROGRAM_END, PROGRAM_START
from ladder import rungs
from meta_model import decompiler, fit
from meta_model.errors import UserError
from rasp_gen import convert
from rasp_gen.program import Instruction, Operator, Program

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, program, vocab, max_seq_len, a wrong program): make_length reads a
# string vocabulary, make_hist an int one.
LIB = {
    "make_hist": (lib.make_hist, {1, 2, 3, 4}, 5,
                  lambda: rasp.SelectorWidth(rasp.Select(
                      rasp.tokens, rasp.tokens, rasp.Comparison.LT))),
    "make_length": (lib.make_length, {"a", "b", "c"}, 5, lib.make_hist),
}


def _stock(name: str):
  build, vocab, max_seq_len, _ = LIB[name]
  return compiling.compile_rasp_to_model(build(), vocab, max_seq_len,
                                         compiler_bos="BOS")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("workdir"))
  fit.train_and_evaluate(tiny.get_config(), path)
  return path


@pytest.fixture(scope="module")
def loaded(workdir):
  return decompiler.load(workdir)


@pytest.mark.parametrize("name", sorted(LIB))
def test_decompiles_a_stock_tracr_model_object(loaded, name):
  model = _stock(name)
  result = loaded.decompile(model, beam_size=2, read_weights=False)
  assert isinstance(result, decompiler.Decompilation)
  assert result.source == "meta-model"
  assert result.rows[0][0] == PROGRAM_START
  assert isinstance(result.verified, bool)
  report = result.report()
  assert ("verified: the program's output" in report) == result.verified
  assert verify.describe(result.evidence) in report
  # Six steps of training may leave no candidate that decodes: whichever it
  # is, the result says so consistently (programs: the test below).
  assert (result.program is None) == (result.python == "")
  assert result.verified <= (result.program is not None)
  json.dumps(result.to_json())
  # The beam search compiled once: a second model of the same bucket reuses
  # it. (The cache is the function's, shared with training's showcase.)
  cache_size = loaded._beam._cache_size  # pylint: disable=protected-access
  compiled = cache_size()
  loaded.decompile(model, beam_size=2, read_weights=False)
  assert cache_size() == compiled


# Each LIB model's predicate in `_hist_program` form, and a wrong one.
PREDICATES = {"make_hist": ("PRED_EQ", "PRED_LT"),
              "make_length": ("PRED_TRUE", "PRED_EQ")}


@pytest.mark.parametrize("name", sorted(LIB))
def test_decompile_returns_the_candidate_the_weights_confirm(
    loaded, name, monkeypatch):
  """A beam of rows that do not decode, a wrong program and the true one."""
  right, wrong = PREDICATES[name]
  encode = lambda p: tokens.encode_program(p, loaded.config.input.max_rows)
  true_rows = encode(_hist_program(right))
  swapped = true_rows.copy()
  swapped[[1, 2]] = true_rows[[2, 1]]  # v1 read before it is set.
  beam = np.stack([swapped, encode(_hist_program(wrong)), true_rows])
  monkeypatch.setattr(loaded, "candidates", lambda weights, beam_size: beam)
  model = _stock(name)
  result = loaded.decompile(model, beam_size=len(beam), read_weights=False)
  assert result.verified and result.others == ()
  assert result.rows[0][0] == PROGRAM_START
  assert result.rows[-1][0] == PROGRAM_END
  assert isinstance(result.program, rasp.SOp)
  assert result.python == convert.to_python(_hist_program(right))
  namespace = {}
  exec(result.python, namespace)  # pylint: disable=exec-used
  assert isinstance(namespace["program"], rasp.SOp)
  # The evidence is verify's, on the same check inputs.
  again = verify.verify(result.program, model)
  assert again.verified and again.num_inputs == result.evidence.num_inputs


@pytest.mark.parametrize("name", sorted(LIB))
def test_the_program_read_off_the_weights_comes_first(loaded, name,
                                                      monkeypatch):
  def no_beam(weights, beam_size):
    raise AssertionError("the meta-model ran although the read-out verified")
  monkeypatch.setattr(loaded, "candidates", no_beam)
  result = loaded.decompile(_stock(name))
  assert result.verified and result.source == "weights"
  assert result.rows[-1][0] == "SELECTOR_WIDTH"
  namespace = {}
  exec(result.python, namespace)  # pylint: disable=exec-used
  assert verify.verify(namespace["program"], _stock(name)).verified
  assert json.loads(json.dumps(result.to_json()))["source"] == "weights"


def test_weights_over_the_meta_models_limits_are_still_read(loaded):
  """A vocabulary whose ranks the graph encoder cannot embed."""
  vocab = set(range(100))
  model = compiling.compile_rasp_to_model(
      rasp.categorical(rasp.Map(lambda x: x % 7, rasp.tokens)), vocab, 2,
      compiler_bos="BOS")
  with pytest.raises(UserError):
    loaded.decompile(model, read_weights=False)
  result = loaded.decompile(model)
  assert result.verified and result.source == "weights"


def test_the_meta_models_beam_does_not_depend_on_the_residual_basis(loaded):
  """Moved weights are encoded as the read-out's basis pass sees them, so a
  permutation with head and neuron maps, a rotation and a general map of
  the residual stream give the meta-model one graph and one beam."""
  model = saved.from_tracr(_stock("make_hist"))
  beams = [loaded.candidates(rungs.rung(model, rung, seed=3), beam_size=4)
           for rung in ("R1", "R2-orthogonal", "R2-invertible")]
  chex.assert_shape(beams[0], (4, tiny.get_config().input.max_rows, 5))
  for beam in beams[1:]:
    np.testing.assert_array_equal(beam, beams[0])
  # The graph itself is tracr's (one edge per weight tracr writes), whatever
  # the per-head maps did to the factors.
  edge_values = lambda batch: sorted(np.asarray(batch["edge_value"])[
      np.asarray(batch["edge_mask"])].round(3).tolist())
  own = edge_values(loaded.encode(model))
  for seed in (3, 4):
    assert edge_values(loaded.encode(rungs.rung(model, "R2-invertible",
                                                seed=seed))) == own


def test_a_heads_factors_are_rebuilt_from_its_product_as_tracr_builds_them():
  """tracr's key (output) factor selects the directions the product reads;
  a per-head map M (W_Q M, W_K M^-T) moves the factors, not these."""
  rng = np.random.default_rng(0)
  query_DxW = np.zeros((5, 3))
  query_DxW[[0, 2], 0], query_DxW[4, 1] = 1.0, 2.0
  key_DxW = np.zeros((5, 3))
  key_DxW[1, 0], key_DxW[3, 1] = 1.0, 1.0
  mixing_WxW = rng.normal(size=(3, 3)) + 3 * np.eye(3)
  product = query_DxW @ key_DxW.T
  moved = (query_DxW @ mixing_WxW) @ (key_DxW @ np.linalg.inv(mixing_WxW).T).T
  left_DxW, right_WxD = decompiler._tracr_factors(moved, 3)
  chex.assert_shape((left_DxW, right_WxD), ((5, 3), (3, 5)))
  np.testing.assert_allclose(left_DxW @ right_WxD, product, atol=1e-9)
  np.testing.assert_array_equal(right_WxD[:2], np.eye(5)[[1, 3]])
  assert not right_WxD[2].any() and not left_DxW[:, 2].any()
  with pytest.raises(ValueError, match="reads 2 directions with 1"):
    decompiler._tracr_factors(product, 1)


def test_noisy_weights_are_encoded_without_their_noise(loaded):
  """Noise on every parameter would make every weight an edge (and the
  biases nonzero): the views drop it, and the graph has about the edges of
  tracr's own weights (a dense one would have thousands)."""
  model = saved.from_tracr(_stock("make_hist"))
  own = loaded.encode(model)
  noisy = loaded.encode(rungs.rung(model, "R3-0.001", seed=3))
  own_edges = int(np.sum(own["edge_mask"]))
  assert own_edges <= int(np.sum(noisy["edge_mask"])) <= 1.1 * own_edges


@pytest.mark.parametrize("name", sorted(LIB))
def test_verify_accepts_the_true_program_and_names_a_difference(name):
  build, _, _, wrong = LIB[name]
  model = _stock(name)
  assert verify.verify(build(), model).verified
  result = verify.verify(wrong(), model)
  assert not result.verified and result.first_difference is not None
  xs, from_weights, from_program = result.first_difference
  assert list(rasp.evaluate(build(), list(xs))) == list(from_weights)
  assert list(from_program) != list(from_weights)
  assert f"first differing input: {list(xs)}" in verify.describe(result)


def test_verify_rejects_a_same_params_program_with_other_values():
  plus = lambda k: rasp.categorical(rasp.Map(lambda x: x + k, rasp.tokens))
  model = compiling.compile_rasp_to_model(plus(1), {1, 2, 3}, 4,
                                          compiler_bos="BOS")
  same = compiler.compile_rasp_to_model_numpy(plus(3), {1, 2, 3}, 4,
                                              compiler_bos="BOS")
  for module, params in model.params.items():  # Bit-identical weights.
    for key, value in params.items():
      np.testing.assert_array_equal(value, same.params[module][key])
  assert verify.verify(plus(1), model).verified
  result = verify.verify(plus(3), model)
  assert not result.verified and result.reason == "output values differ"
  assert list(result.first_difference[0]) == [1]


def test_weights_it_cannot_read_raise_one_user_error(loaded, tmp_path):
  causal = compiling.compile_rasp_to_model(lib.make_hist(), {1, 2, 3}, 5,
                                           compiler_bos="BOS", causal=True)
  with pytest.raises(UserError, match="causal model"):
    loaded.decompile(causal)
  noise = tmp_path / "noise.npz"
  noise.write_bytes(np.random.default_rng(0).bytes(200))
  with pytest.raises(UserError, match="noise.npz: not a saved model"):
    loaded.decompile(str(noise))
  with pytest.raises(UserError, match="no such file"):
    loaded.decompile(str(tmp_path / "missing.npz"))
  # Params without the layers' MLPs are not tracr's.
  weights = saved.from_tracr(_stock("make_hist"))
  broken = {k: v for k, v in weights.params.items() if "mlp" not in k}
  with pytest.raises(UserError, match="not tracr params"):
    loaded.decompile(dataclasses.replace(weights, params=broken))
  vocab = list(range(1100))  # Over 2,048 graph nodes: tokens + residual.
  wide = compiler.compile_rasp_to_model_numpy(lib.make_hist(), set(vocab), 5)
  path = str(tmp_path / "wide.npz")
  saved.save_compiled(path, wide.params, vocab, 5, num_heads=wide.num_heads,
                      output=wide.output_decoding)
  with pytest.raises(UserError, match="cannot read these weights: .*2048"):
    loaded.decompile(path, read_weights=False)


def _hist_program(predicate: str) -> Program:
  return Program((
      Instruction(Operator.SELECT, predicate, ("tokens", "tokens"), "v1"),
      Instruction(Operator.SELECTOR_WIDTH, None, ("v1",), "v2")))


def _run(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True,
                        text=True, env=dict(os.environ, XLA_FLAGS=""),
                        timeout=300)


def test_decompile_edit_verify_loop_on_the_command_line(workdir, tmp_path):
  path = str(tmp_path / "hist.npz")
  saved.save_compiled(path, _stock("make_hist"))
  out = tmp_path / "out.json"
  run = _run("eval.py", f"--workdir={workdir}", f"--decompile={path}",
             "--beam_size=2", f"--json_out={out}")
  assert run.returncode == 0, run.stderr
  result = json.loads(out.read_text())
  assert result["source"] == "weights" and result["verified"]
  assert "verified: the program's output" in run.stdout
  run = _run("eval.py", f"--workdir={workdir}", f"--decompile={path}",
             "--beam_size=2", "--noread_weights", f"--json_out={out}")
  assert run.returncode == 0, run.stderr
  result = json.loads(out.read_text())
  assert result["source"] == "meta-model"
  assert result["rows"][0][0] == PROGRAM_START
  assert ("verified: the program's output" in run.stdout) == result["verified"]

  noise = tmp_path / "noise.npz"
  noise.write_bytes(np.random.default_rng(0).bytes(200))
  run = _run("eval.py", f"--workdir={workdir}", f"--decompile={noise}")
  assert run.returncode == 1
  assert run.stderr.strip() == (f"error: {noise}: not a saved model (not an "
                                ".npz file: it does not start like a zip "
                                "archive)")

  # The hypothesis check: the printed form, edited by hand.
  program = tmp_path / "prog.py"
  program.write_text(convert.to_python(_hist_program("PRED_EQ")))
  run = _run("-m", "compiled.verify", f"--model={path}",
             f"--program={program}")
  assert run.returncode == 0 and run.stdout.startswith("verified"), run
  program.write_text(convert.to_python(_hist_program("PRED_LT")))
  run = _run("-m", "compiled.verify", f"--model={path}",
             f"--program={program}")
  assert run.returncode == 1 and "first differing input: [" in run.stdout
  program.write_text("program = 3\n")
  run = _run("-m", "compiled.verify", f"--model={path}",
             f"--program={program}")
  assert run.returncode == 2
  assert run.stderr.strip().count("\n") == 0 and "SOp" in run.stderr


@pytest.mark.parametrize("args, message", [
    (("eval.py", "--workdir=/nonexistent"), "is missing"),
    (("train.py", "--config=configs/tiny.py", "--workdir=/tmp/unused",
      "--config.steps=2"), "warmup_steps=2 must be in"),
])
def test_scripts_end_user_errors_with_one_line(args, message):
  run = _run(*args)
  assert run.returncode == 1
  assert run.stderr.strip().splitlines() == [
      line for line in run.stderr.strip().splitlines() if message in line]


def test_the_readme_snippet_runs(workdir, capsys):
  readme = open(os.path.join(ROOT, "README.md")).read()
  start = readme.index("```python\nfrom tracr.compiler import compiling, lib\n"
                       "from compiled import verify")
  snippet = readme[start + len("```python\n"):readme.index("```", start + 3)]
  exec(snippet.replace("/tmp/inverse_tracr", workdir), {})  # pylint: disable=exec-used
  out = capsys.readouterr().out
  assert "verified: the program's output equals the weights' on all 1364" in out
