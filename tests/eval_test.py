"""eval.py: metrics on hand-made predictions, the CLI paths end to end."""

import json
import os

import ml_collections
import numpy as np
import pytest
from tracr.compiler import compiling, lib

import eval as evaluation
import train
from configs import tiny
from encoding import tokens
from encoding.vocabulary import NA, PAD, PROGRAM_END, PROGRAM_START
from rasp_gen import compiler, convert, records, saved
from rasp_gen.program import Encoding, Instruction, Operator, Program

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
                        "test", compiled.num_heads)


def test_metrics_on_hand_made_predictions():
  record = _record()
  weights = saved.SavedModel(record.params, record.vocab, record.max_seq_len,
                             record.compiler_bos, record.compiler_pad, None,
                             False)
  inputs = evaluation.check_inputs(weights, 0, ml_collections.ConfigDict(
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
    chosen = evaluation.choose_verified(rows[None], weights, inputs)
    results.append(evaluation.score(record, rows, chosen, inputs, 3, 4))
  assert [r["exact"] for r in results] == [True, True, False, False, False]
  assert [r["functional"] for r in results] == [True, True, True, False,
                                                False]
  assert [r["invalid"] for r in results] == [False] * 4 + [True]
  # Only the true program (in either order) reproduces the weights.
  assert [r["verified"] for r in results] == [True, True, False, False, False]

  summary = evaluation.summarize(results)["overall"]
  assert summary["programs"] == 5
  assert summary["exact_accuracy"] == pytest.approx(2 / 5)
  assert summary["functional_accuracy"] == pytest.approx(3 / 5)
  assert summary["invalid"] == pytest.approx(1 / 5)
  assert summary["token_accuracy"] == pytest.approx(15 / 20)
  by_operator = evaluation.summarize(results)["by_operator"]
  assert set(by_operator) == {"MAP", "SEQUENCE_MAP"}


def test_verification_picks_the_candidate_that_reproduces_the_weights():
  record = _record()
  weights = saved.SavedModel(record.params, record.vocab, record.max_seq_len,
                             record.compiler_bos, record.compiler_pad, None,
                             False)
  wrong = _rows(_map("LAM_ADD_2", "indices", "v1"),
                Instruction(Operator.SEQUENCE_MAP, "LAM_GT", ("v1", "tokens"),
                            "v2"))
  beam = np.stack([wrong, _rows(*TRUE.instructions)])
  chosen = evaluation.choose_verified(beam, weights, [[0, 1, 2], [4, 3]])
  assert chosen.verified and chosen.program == TRUE


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("workdir"))
  train.train_and_evaluate(tiny.get_config(), path)
  return path


def _options(**overrides):
  options = dict(split="test", num_examples=4, beam_size=2,
                 num_check_inputs=8, exhaustive_limit=0, json_out=None)
  return ml_collections.ConfigDict(dict(options, **overrides))


def test_evaluate_writes_metrics_and_plot(workdir):
  metrics = evaluation.evaluate(workdir, _options())
  on_disk = json.load(open(os.path.join(workdir, "eval", "metrics.json")))
  assert on_disk["as compiled"]["overall"]["programs"] == (
      metrics["as compiled"]["overall"]["programs"]) > 0
  assert set(on_disk) >= {"as compiled", "permuted residual", "step"}
  assert os.path.getsize(os.path.join(workdir, "eval",
                                      "accuracy_by_length.png")) > 0


def test_decompile_a_tracr_library_model(workdir, tmp_path):
  model = compiling.compile_rasp_to_model(lib.make_hist(), {1, 2, 3}, 5,
                                          compiler_bos="BOS")
  path = str(tmp_path / "hist.npz")
  saved.save_compiled(path, model.params, [1, 2, 3], 5, compiler_bos="BOS")
  out = str(tmp_path / "out.json")
  result = evaluation.decompile(workdir, path, _options(json_out=out))
  assert json.load(open(out)) == json.loads(json.dumps(result))
  assert result["rows"][0][0] == PROGRAM_START
  assert 0.0 <= result["agreement"] <= 1.0


def test_decompile_too_wide_a_model_names_the_limit(workdir, tmp_path):
  vocab = list(range(200))
  params = compiler.compile_rasp_to_params(lib.make_hist(), set(vocab), 5)
  path = str(tmp_path / "wide.npz")
  saved.save_compiled(path, params, vocab, 5)
  with pytest.raises(ValueError, match="max_d_model"):
    evaluation.decompile(workdir, path, _options())
