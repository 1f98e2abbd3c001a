"""meta_model.heldout: metrics on hand-made predictions, evaluate() end to end."""

import json
import logging
import os
import shutil
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from absl import logging as absl_logging
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

from compiled import compiler, saved, verify
from configs import tiny
from encoding import tokens
from encoding.vocabulary import NA, PAD, PROGRAM_END, PROGRAM_START
from meta_model import decode, fit, heldout, quiet, search
from meta_model import loss as loss_lib
from meta_model.errors import UserError
from rasp_gen import convert, functions, records
from rasp_gen.program import Instruction, Operator, Program

MAX_ROWS = 8


def _rows(*instructions: Instruction) -> np.ndarray:
  """Token ids of the rows in the given (not canonical) order."""
  vocab = tokens.vocabulary_for_rows(MAX_ROWS)
  names = ([(PROGRAM_START,) + (NA,) * 4]
           + [tokens.instruction_row(i) for i in instructions]
           + [(PROGRAM_END,) + (NA,) * 4])
  names += [(PAD,) * 5] * (MAX_ROWS - len(names))
  return np.array([[vocab.ids[t] for t in row] for row in names], np.int32)


def _map(function, arg, output):
  return Instruction(Operator.MAP, function, (arg,), output)


# The true program: (indices + 1) == tokens, written with two Maps feeding a
# SequenceMap, so independent rows can be reordered.
TRUE = Program((_map("LAM_ADD_1", "indices", "v1"),
                _map("LAM_SUB_1", "tokens", "v2"),
                Instruction(Operator.SEQUENCE_MAP, "LAM_LT", ("v1", "v2"),
                            "v3")))


def _record() -> records.Record:
  vocab, max_seq_len = (0, 1, 2, 3, 4), 5
  compiled = compiler.compile_rasp_to_model_numpy(
      convert.to_rasp(TRUE), set(vocab), max_seq_len)
  return records.Record(TRUE, compiled.params, vocab, max_seq_len,
                        compiler.COMPILER_BOS, compiler.COMPILER_PAD, 0,
                        "test", compiled.num_heads, compiled.output_decoding)


def test_metrics_on_hand_made_predictions():
  record = _record()
  weights = saved.SavedModel(record.params, record.vocab, record.max_seq_len,
                             record.compiler_bos, record.compiler_pad,
                             record.num_heads, False, record.output)
  inputs = heldout.check_inputs(weights, 0, ml_collections.ConfigDict(
      dict(num_check_inputs=32, exhaustive_limit=5000)))
  correct = _rows(*TRUE.instructions)
  reordered = _rows(TRUE.instructions[1], TRUE.instructions[0],
                    TRUE.instructions[2])
  # x + 1 < t - 1  <=>  x + 2 < t: same function, different program.
  equivalent = _rows(_map("LAM_ADD_2", "indices", "v1"),
                     Instruction(Operator.SEQUENCE_MAP, "LAM_LT",
                                 ("v1", "tokens"), "v2"))
  wrong = _rows(_map("LAM_ADD_1", "indices", "v1"),
                Instruction(Operator.SEQUENCE_MAP, "LAM_GT", ("v1", "tokens"),
                            "v2"))
  invalid = correct.copy()
  invalid[2, 2] = invalid[3, 4]  # v2 used before it is defined.
  predictions = [correct, reordered, equivalent, wrong, invalid]
  results = []
  for rows in predictions:
    chosen = search.choose(rows[None], verify.reference(weights, inputs))
    results.append(heldout.score(record, rows, chosen, None, inputs, SLOTS))
  assert [r["exact"] for r in results] == [True, True, False, False, False]
  assert [r["functional"] for r in results] == [True, True, True, False,
                                                False]
  assert [r["invalid"] for r in results] == [False] * 4 + [True]
  # Only the true program, in either order, has its dataflow; `wrong` has
  # the equivalent program's structure, not the true one's.
  assert [r["structure"] for r in results] == [True, True, False, False,
                                               False]
  # The true program (in either order) and the equivalent one compute what
  # the weights compute on every input.
  assert [r["verified"] for r in results] == [True, True, True, False, False]
  assert not any(r["verified_wrong"] for r in results)
  # A verified choice that the functional judge rejects is counted as such
  # (verification is meant to make this impossible; the count watches it).
  unsound = search.Choice(tokens.decode_program(wrong), wrong,
                          verify.Verification(True, 1, 1, False, None))
  flagged = heldout.score(record, wrong, unsound, None, inputs, SLOTS)
  assert flagged["verified"] and flagged["verified_wrong"]
  assert heldout.summarize(results + [flagged])["overall"][
      "verified_wrong"] == pytest.approx(1 / 6)

  summary = heldout.summarize(results)["overall"]
  assert summary["programs"] == 5
  assert summary["exact_accuracy"] == pytest.approx(2 / 5)
  assert summary["functional_accuracy"] == pytest.approx(3 / 5)
  assert summary["invalid"] == pytest.approx(1 / 5)
  assert summary["structure_accuracy"] == pytest.approx(2 / 5)
  assert summary["token_accuracy"] == pytest.approx(15 / 20)
  by_operator = heldout.summarize(results)["by_operator"]
  assert set(by_operator) == {"MAP", "SEQUENCE_MAP"}


# Teacher-forced counts for score(): 3 of 4 slots right (operator, arg1, return
# var counted; the arg1 slot is a Map function, predicted in its family).
SLOTS = {"token_right": 3, "token_counted": 4,
         "column_right": [1, 1, 0, 0, 1], "column_counted": [1, 1, 0, 0, 2],
         "function_counted": {"map_arithmetic": 1},
         "function_right": {"map_arithmetic": 1},
         "function_family_right": {"map_arithmetic": 1}}


def test_function_families_come_from_the_tables():
  assert set(heldout.FUNCTION_FAMILIES) == set(functions.ALL_FUNCTION_NAMES)
  families = heldout.FUNCTION_FAMILIES
  assert {n for n, f in families.items() if f == "map_boolean"} == {
      "LAM_EQ_0", "LAM_EQ_1", "LAM_EQ_2", "LAM_NE_0", "LAM_NE_1", "LAM_LT_1",
      "LAM_LT_2", "LAM_LT_3", "LAM_LT_5", "LAM_GT_0", "LAM_GT_1", "LAM_GT_2",
      "LAM_GT_4", "LAM_NOT"}
  assert families["LAM_ABS"] == families["LAM_DIV_2"] == "map_arithmetic"
  assert families["LAM_MAX"] == "sequence_map_arithmetic"
  assert families["LAM_AND"] == families["LAM_LT"] == "sequence_map_boolean"
  assert families["LAM_LINEAR_SUB"] == "linear_sequence_map"
  assert families["PRED_TRUE"] == "predicate"
  assert heldout.FAMILIES == (
      "map_arithmetic", "map_boolean", "sequence_map_arithmetic",
      "sequence_map_boolean", "linear_sequence_map", "predicate")


def _logits(predicted_RxC: np.ndarray) -> np.ndarray:
  """Logits whose argmax at row r is predicted row r + 1 (teacher forcing)."""
  vocab_size = tokens.vocabulary_for_rows(MAX_ROWS).size
  return 5.0 * np.asarray(jax.nn.one_hot(np.roll(predicted_RxC, -1, axis=0),
                                         vocab_size))


def test_column_and_family_accuracy_of_hand_made_logits():
  ids = tokens.vocabulary_for_rows(MAX_ROWS).ids
  select = Instruction(Operator.SELECT, "PRED_EQ", ("tokens", "tokens"), "v1")
  first = _rows(*TRUE.instructions)  # MAP, MAP, SEQUENCE_MAP: 14 slots.
  second = _rows(  # 17 slots.
      select,
      Instruction(Operator.AGGREGATE, None, ("v1", "tokens"), "v2"),
      _map("LAM_EQ_0", "v2", "v3"),
      Instruction(Operator.SELECTOR_WIDTH, None, ("v1",), "v4"))
  wrong_first, wrong_second = first.copy(), second.copy()
  wrong_first[1, 1] = ids["LAM_ADD_2"]  # Function wrong, family right.
  wrong_first[2, 1] = ids["LAM_EQ_0"]  # map_arithmetic -> map_boolean.
  wrong_first[3, 1] = ids["NA"]  # Not a function: family wrong.
  wrong_first[3, 2] = ids["tokens"]  # arg2.
  wrong_first[1, 3] = ids["v1"]  # Target NA: not counted.
  wrong_first[6, 0] = ids["MAP"]  # PAD row: not counted.
  wrong_second[1, 1] = ids["PRED_LT"]  # Function wrong, family right.
  wrong_second[3, 4] = ids["v2"]  # Return variable.
  wrong_second[5, 0] = ids["MAP"]  # The PROGRAM_END row's operator.
  pad_id, na_id = ids[PAD], ids[NA]

  results = []
  for target, predicted in ((first, wrong_first), (second, wrong_second)):
    batch = {"program": target[None],
             "program_mask": (target != pad_id).any(axis=1)[None]}
    hits = loss_lib.token_hits(_logits(predicted)[None], batch,
                               pad_id=pad_id, na_id=na_id)
    results.append(dict(length=3, operators=["MAP"], invalid=False,
                        exact=False, functional=False, structure=False,
                        verified=False,
                        verified_exact=False, verified_functional=False,
                        verified_wrong=False, read_verified=False,
                        decompiled_functional=False, decompiled_wrong=False,
                        **heldout.slot_counts(hits, 0, MAX_ROWS)))
  assert [(r["token_right"], r["token_counted"]) for r in results] == [
      (10, 14), (14, 17)]
  summary = heldout.summarize(results)
  # One denominator: 24 / 31, not the mean of 10/14 and 14/17.
  assert summary["overall"]["token_accuracy"] == pytest.approx(24 / 31)
  assert {c: (v["slots"], v["token_accuracy"])
          for c, v in summary["by_column"].items()} == {
              "operator": (9, pytest.approx(8 / 9)),
              "arg1": (7, pytest.approx(3 / 7)),
              "arg2": (6, pytest.approx(5 / 6)),
              "arg3": (2, 1.0),
              "return_var": (7, pytest.approx(6 / 7))}
  families = {f: (v["slots"], v["function_accuracy"], v["family_accuracy"])
              for f, v in summary["by_function_family"].items()}
  assert families == {
      "map_arithmetic": (2, 0.0, 0.5), "map_boolean": (1, 1.0, 1.0),
      "sequence_map_arithmetic": (0, 0.0, 0.0),
      "sequence_map_boolean": (1, 0.0, 0.0),
      "linear_sequence_map": (0, 0.0, 0.0), "predicate": (1, 0.0, 1.0),
      "all": (5, 0.2, 0.6)}

  # The training metric is the same computation over one batch.
  both = {"program": np.stack([first, second]),
          "program_mask": np.stack([first, second])[..., 0] != pad_id}
  _, metrics = loss_lib.loss_and_metrics(
      np.stack([_logits(wrong_first), _logits(wrong_second)]), both,
      pad_id=pad_id, na_id=na_id)
  assert float(metrics["token_accuracy"]) == pytest.approx(24 / 31)

  table = heldout.format_table("t", summary)
  assert "arg1                           7     0.429" in table
  assert "map_arithmetic                 2     0.000     0.500" in table
  assert "linear_sequence_map" not in table  # No slots: left out.


def test_verification_picks_the_candidate_that_reproduces_the_weights():
  record = _record()
  weights = saved.SavedModel(record.params, record.vocab, record.max_seq_len,
                             record.compiler_bos, record.compiler_pad,
                             record.num_heads, False, record.output)
  wrong = _rows(_map("LAM_ADD_2", "indices", "v1"),
                Instruction(Operator.SEQUENCE_MAP, "LAM_GT", ("v1", "tokens"),
                            "v2"))
  # Same params as TRUE, other output values: x + 1 < t - 1 as ints.
  same_params = _rows(_map("LAM_ADD_1", "indices", "v1"),
                      _map("LAM_SUB_1", "tokens", "v2"),
                      Instruction(Operator.SEQUENCE_MAP, "LAM_SUB",
                                  ("v1", "v2"), "v3"))
  inputs = [[0, 1, 2], [4, 3]]
  beam = np.stack([wrong, _rows(*TRUE.instructions)])
  reference = verify.reference(weights, inputs)
  chosen = search.choose(beam, reference)
  assert chosen.verified and chosen.program == TRUE
  assert chosen.agreement == 1.0
  # None verifies: the top decodable candidate, with its agreement.
  chosen = search.choose(beam[:1], reference)
  assert not chosen.verified and chosen.agreement == 0.0
  assert not search.choose(np.stack([same_params]), reference).verified


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("workdir"))
  fit.train_and_evaluate(tiny.get_config(), path)
  return path


def _options(**overrides):
  options = dict(split="test", data_dir="", num_examples=4, beam_size=2,
                 num_check_inputs=8, exhaustive_limit=0, read_weights=True,
                 json_out=None)
  return ml_collections.ConfigDict(dict(options, **overrides))


def test_evaluate_writes_metrics_and_plot(workdir):
  metrics = heldout.evaluate(workdir, _options())
  on_disk = json.load(open(os.path.join(workdir, "eval", "metrics.json")))
  assert on_disk["as compiled"]["overall"]["programs"] == (
      metrics["as compiled"]["overall"]["programs"]) > 0
  assert set(on_disk) >= {"as compiled", "permuted residual", "step"}
  compiled = on_disk["as compiled"]
  # Every test program is stock tracr's recipes: the read-out verifies it.
  assert compiled["overall"]["read_verified"] == 1.0
  assert compiled["overall"]["decompiled_functional_accuracy"] == 1.0
  assert compiled["overall"]["decompiled_wrong"] == 0.0
  assert list(compiled["by_column"]) == list(heldout.COLUMNS)
  assert set(compiled["by_function_family"]) == set(heldout.FAMILIES) | {
      "all"}
  # Every counted slot is in exactly one column.
  columns = compiled["by_column"].values()
  assert sum(v["slots"] * v["token_accuracy"] for v in columns) / sum(
      v["slots"] for v in columns) == pytest.approx(
          compiled["overall"]["token_accuracy"])
  assert os.path.getsize(os.path.join(workdir, "eval",
                                      "accuracy_by_length.png")) > 0


def test_evaluate_streams_the_first_records_and_says_how_many(
    workdir, monkeypatch, capsys):
  decoded = []
  real = heldout.records.record_from_bytes
  monkeypatch.setattr(heldout.records, "record_from_bytes",
                      lambda data: decoded.append(1) or real(data))
  heldout.evaluate(workdir, _options(num_examples=3))
  assert len(decoded) == 2 * 3  # Three records per split, not the split.
  assert "evaluated 3 of 3 programs" in capsys.readouterr().out
  metrics = heldout.evaluate(workdir, _options(num_examples=100))
  counts = metrics["counts"]["as compiled"]
  assert counts["requested"] == 100 and counts["read"] < 100
  assert (f"evaluated {counts['evaluated']} of 100 programs (the test split "
          f"has only {counts['read']})") in capsys.readouterr().out


def test_evaluate_reads_another_dataset_when_asked(workdir, tmp_path):
  other = str(tmp_path / "other")
  shutil.copytree(os.path.join(workdir, "data"), other)
  metrics = heldout.evaluate(workdir, _options(data_dir=other))
  assert metrics["data_dir"] == other
  assert heldout.evaluate(workdir, _options())["data_dir"] == os.path.join(
      workdir, "data")
  with pytest.raises(UserError, match="no dataset at /nowhere"):
    heldout.evaluate(workdir, _options(data_dir="/nowhere"))


def test_evaluation_compiles_the_model_once(workdir):
  """A full and a padded partial batch, on both splits: one shape, and one
  compilation of each jitted function."""
  jitted = [f.jitted_fn for f in (heldout._token_hits, decode.greedy_decode,
                                  decode.beam_search)]
  for f in jitted:
    f.clear_cache()
  metrics = heldout.evaluate(workdir, _options(num_examples=0))
  size = tiny.get_config().input.batch_size
  evaluated = metrics["counts"]["as compiled"]["evaluated"]
  assert evaluated > size and evaluated % size
  assert [f._cache_size() for f in jitted] == [1, 1, 1]


def test_tracr_advice_on_candidates_is_dropped_and_nothing_else(caplog):
  same_inputs = lambda: rasp.SequenceMap(lambda x, y: x + y, rasp.tokens,
                                         rasp.tokens)
  with caplog.at_level(logging.WARNING):
    same_inputs()
    with quiet.candidate_programs():
      same_inputs()
      absl_logging.warning("any other warning")
    same_inputs()
  messages = [r.getMessage() for r in caplog.records]
  assert sum("both inputs being the same SOp" in m for m in messages) == 2
  assert "any other warning" in messages


def test_the_permutation_and_the_check_inputs_are_independent_draws():
  record = _record()
  assert heldout.PERMUTE_SEED != heldout.CHECK_SEED
  permuted = heldout.encode_examples([record], _tiny_graph_config(),
                                     permute=True)[0][0][0]
  from encoding import pipeline  # pylint: disable=g-import-not-at-top
  expected = pipeline.augment_record(
      record, np.random.default_rng([heldout.PERMUTE_SEED, record.index]),
      "permute")
  jax.tree.map(np.testing.assert_array_equal, permuted.params,
               expected.params)
  check_rng = pipeline.augment_record(
      record, np.random.default_rng([heldout.CHECK_SEED, record.index]),
      "permute")
  assert not all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(permuted.params), jax.tree.leaves(check_rng.params)))


def _tiny_graph_config():
  config = tiny.get_config()
  config.input.max_rows = MAX_ROWS
  return config


@pytest.mark.parametrize("overrides, message", [
    (dict(split="tset"), "split 'tset' is not one of"),
    (dict(beam_size=0), "beam_size=0"),
])
def test_bad_options_are_user_errors(workdir, overrides, message):
  from meta_model.errors import UserError  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match=message):
    heldout.evaluate(workdir, _options(**overrides))


@pytest.mark.parametrize("name", ["make_sort_unique", "make_shuffle_dyck2"])
def test_decompile_needs_no_trained_model(name, tmp_path):
  """eval.py --decompile with no --workdir, on a fresh state (no trained
  run anywhere): the read-out alone prints and writes a verified program."""
  build, vocab, max_seq_len = {
      "make_sort_unique": (lambda: lib.make_sort_unique(rasp.tokens,
                                                        rasp.tokens),
                           {1, 2, 3, 4}, 5),
      "make_shuffle_dyck2": (lib.make_shuffle_dyck2, {"(", ")", "{", "}"}, 4),
  }[name]
  path = str(tmp_path / f"{name}.npz")
  saved.save_compiled(path, compiling.compile_rasp_to_model(
      build(), vocab, max_seq_len, compiler_bos="BOS"))
  out = tmp_path / "out.json"
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  # Run from an empty directory with its own HOME: nothing trained is found.
  run = subprocess.run(
      [sys.executable, os.path.join(root, "eval.py"), f"--decompile={path}",
       f"--json_out={out}"], cwd=str(tmp_path), capture_output=True,
      text=True, timeout=300,
      env=dict(os.environ, XLA_FLAGS="", HOME=str(tmp_path)))
  assert run.returncode == 0, run.stderr
  assert "verified: the program's output equals the weights'" in run.stdout
  assert "program = " in run.stdout
  result = json.loads(out.read_text())
  assert result["verified"] and result["source"] == "weights"
  assert "rasp.Aggregate" in result["python"]


def test_the_readme_first_screen_decompiles_without_training(capsys):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  readme = open(os.path.join(root, "README.md")).read()
  start = readme.index("```python\nfrom tracr.compiler import compiling, lib\n"
                       "from meta_model.decompiler import decompile")
  assert start < readme.index("train.py")  # Before anything about training.
  snippet = readme[start + len("```python\n"):readme.index("```", start + 3)]
  exec(snippet, {})  # pylint: disable=exec-used
  assert "verified: the program's output equals the weights'" in (
      capsys.readouterr().out)
