"""tests/tiny_model.py's fixtures look like the data they stand in for."""

import numpy as np

from encoding import tokens
from encoding.vocabulary import NA, PROGRAM_END, PROGRAM_START
import tiny_model as testing
from rasp_gen.program import Instruction, Operator, Program


def test_fixture_rows_are_framed_like_real_programs():
  program = Program((Instruction(Operator.SELECT, "PRED_EQ",
                                 ("tokens", "tokens"), "v1"),
                     Instruction(Operator.SELECTOR_WIDTH, None, ("v1",),
                                 "v2")))
  vocab = tokens.vocabulary_for_rows(6)
  rows = tokens.encode_program(program, 6)
  real = {vocab.tokens[r[0]]: [vocab.tokens[t] for t in r[1:]] for r in rows}
  assert real[PROGRAM_START] == real[PROGRAM_END] == [NA] * 4
  fixture = {"start": testing.START_ROW, "end": testing.END_ROW}
  assert all(np.all(row[1:] == testing.NA) for row in fixture.values())
  batch = testing.random_batch(testing.tiny_config(),
                               testing.column_masks(20, np.random.default_rng(0)),
                               4, np.random.default_rng(1))
  for program_Rx5 in batch["program"]:
    end = np.flatnonzero(program_Rx5[:, 0] == testing.END)[0]
    np.testing.assert_array_equal(program_Rx5[end], testing.END_ROW)
