"""Programs are compared by their outputs under tracr's RASP evaluator."""

import numpy as np
import pytest

from compiled import inputs as inputs_lib
from rasp_gen import functional
from rasp_gen.program import Encoding, Instruction, Operator, Program

M, SM, SEL, AGG, SW = (Operator.MAP, Operator.SEQUENCE_MAP, Operator.SELECT,
                       Operator.AGGREGATE, Operator.SELECTOR_WIDTH)
NUM = Encoding.NUMERICAL
VOCAB = (0, 1, 2, 3)


def program(*rows) -> Program:
  return Program(tuple(Instruction(*row) for row in rows))


def _inputs():
  return inputs_lib.check_inputs(np.random.default_rng(0),
                                 inputs_lib.sorted_vocab(VOCAB), 4, 50,
                                 exhaustive_limit=1000)


# The previous position's token (None at position 0) plus the index.
SHIFT = program((M, "LAM_SUB_1", ("indices",), "q"),
                (SEL, "PRED_EQ", ("indices", "q"), "s"),
                (AGG, None, ("s", "tokens"), "prev"),
                (SM, "LAM_ADD", ("prev", "indices"), "out"))


def test_check_inputs_enumerates_all_short_sequences():
  inputs = inputs_lib.check_inputs(np.random.default_rng(0),
                                   inputs_lib.sorted_vocab({2, 1}), 3, 5,
                                   exhaustive_limit=14)
  assert len(inputs) == 2 + 4 + 8
  assert inputs[:3] == [[1], [2], [1, 1]]
  assert len({tuple(xs) for xs in inputs}) == len(inputs)


def test_check_inputs_samples_when_there_are_too_many():
  draw = lambda seed: inputs_lib.check_inputs(
      np.random.default_rng(seed), inputs_lib.sorted_vocab({2, 1}), 3, 5,
      exhaustive_limit=13)
  inputs = draw(0)
  assert len(inputs) == 5 + 2 and inputs == draw(0)
  assert all(1 <= len(xs) <= 3 and set(xs) <= {1, 2} for xs in inputs)
  assert inputs[5:] == [[1, 1, 1], [2, 2, 2]]  # Each token, full length.


def test_run_program():
  assert functional.run_program(SHIFT, [3, 1, 2]) == [None, 4, 3]


def test_identical_and_renamed_reordered_programs_agree():
  renamed = program((M, "LAM_SUB_1", ("indices",), "a"),
                    (SEL, "PRED_EQ", ("indices", "a"), "b"),
                    (AGG, None, ("b", "tokens"), "c"),
                    (SM, "LAM_ADD", ("c", "indices"), "d"))
  assert functional.same_function(SHIFT, SHIFT, _inputs())
  assert functional.same_function(renamed, SHIFT, _inputs())  # None == None.
  first = program((M, "LAM_ADD_1", ("indices",), "a"),
                  (M, "LAM_MOD_2", ("tokens",), "b"),
                  (SM, "LAM_MAX", ("a", "b"), "c"))
  reordered = program((M, "LAM_MOD_2", ("tokens",), "y"),
                      (M, "LAM_ADD_1", ("indices",), "x"),
                      (SM, "LAM_MAX", ("x", "y"), "z"))
  assert functional.same_function(reordered, first, _inputs())


def test_different_structure_same_function():
  two_steps = program((M, "LAM_SUB_1", ("tokens",), "a"),
                      (M, "LAM_EQ_0", ("a",), "b"))
  one_step = program((M, "LAM_EQ_1", ("tokens",), "b"))
  assert functional.same_function(two_steps, one_step, _inputs())
  # Numerical outputs, equal within the tolerance.
  frac = lambda pred: program((M, "LAM_EQ_1", ("tokens",), "a", NUM),
                              (SEL, pred, ("indices", "indices"), "s"),
                              (AGG, None, ("s", "a"), "f", NUM))
  assert functional.same_function(frac("PRED_LEQ"), frac("PRED_LEQ"),
                                  _inputs())
  assert not functional.same_function(frac("PRED_LT"), frac("PRED_LEQ"),
                                      _inputs())


def test_different_programs_differ():
  eq_1 = program((M, "LAM_EQ_1", ("tokens",), "b"))
  eq_2 = program((M, "LAM_EQ_2", ("tokens",), "b"))
  assert not functional.same_function(eq_2, eq_1, _inputs())
  assert not functional.same_function(eq_1, SHIFT, _inputs())


def test_candidate_that_fails_while_running_is_false():
  # The shifted value is None at position 0, and a Select rejects None.
  fails = program((M, "LAM_SUB_1", ("indices",), "q"),
                  (SEL, "PRED_EQ", ("indices", "q"), "s"),
                  (AGG, None, ("s", "tokens"), "prev"),
                  (SEL, "PRED_EQ", ("prev", "tokens"), "s2"),
                  (SW, None, ("s2",), "out"))
  hist = program((SEL, "PRED_EQ", ("tokens", "tokens"), "s"),
                 (SW, None, ("s",), "out"))
  assert not functional.same_function(fails, hist, _inputs())
  with pytest.raises(ValueError, match="key is None"):
    functional.run_program(fails, [1, 2])


def test_inputs_where_the_reference_fails_are_skipped():
  def lookup(*names):  # Fails when some token + 1 is not a position.
    q, s, prev, s2, out = names
    return program((M, "LAM_ADD_1", ("tokens",), q),
                   (SEL, "PRED_EQ", ("indices", q), s),
                   (AGG, None, (s, "tokens"), prev),
                   (SEL, "PRED_EQ", (prev, "tokens"), s2),
                   (SW, None, (s2,), out))
  reference = lookup("q", "s", "prev", "s2", "out")
  assert functional.run_program(reference, [0, 0]) == [2, 2]
  with pytest.raises(ValueError):
    functional.run_program(reference, [3, 0])
  assert functional.same_function(lookup("a", "b", "c", "d", "e"), reference,
                                   _inputs())
  hist = program((SEL, "PRED_EQ", ("tokens", "tokens"), "s"),
                 (SW, None, ("s",), "out"))
  assert not functional.same_function(hist, reference, _inputs())


def test_nothing_compared_is_not_the_same_function():
  """A reference that fails on every input compares nothing: not a match."""
  def lookup(*names):
    q, s, prev, s2, out = names
    return program((M, "LAM_ADD_1", ("tokens",), q),
                   (SEL, "PRED_EQ", ("indices", q), s),
                   (AGG, None, (s, "tokens"), prev),
                   (SEL, "PRED_EQ", (prev, "tokens"), s2),
                   (SW, None, (s2,), out))
  reference = lookup("q", "s", "prev", "s2", "out")
  failing = [[3, 0], [3, 3]]  # tokens + 1 is never a position of [?, ?]...
  for xs in failing:
    with pytest.raises(ValueError):
      functional.run_program(reference, xs)
  assert not functional.same_function(reference, reference, failing)
