"""Program validation and canonical form."""

import pytest

from rasp_gen.program import (Encoding, Instruction, Operator, Program,
                              canonicalize, validate)

M, SM, SEL, AGG, SW = (Operator.MAP, Operator.SEQUENCE_MAP, Operator.SELECT,
                       Operator.AGGREGATE, Operator.SELECTOR_WIDTH)
NUM = Encoding.NUMERICAL


def program(*rows) -> Program:
  return Program(tuple(Instruction(*row) for row in rows))


def test_reordered_and_renamed_programs_share_a_canonical_form():
  first = program(
      (M, "LAM_ADD_1", ("indices",), "a"),
      (M, "LAM_SUB_1", ("tokens",), "b"),
      (SEL, "PRED_EQ", ("a", "b"), "s"),
      (AGG, None, ("s", "tokens"), "out"))
  second = program(
      (M, "LAM_SUB_1", ("tokens",), "y"),
      (M, "LAM_ADD_1", ("indices",), "x"),
      (SEL, "PRED_EQ", ("x", "y"), "z"),
      (AGG, None, ("z", "tokens"), "w"))
  assert canonicalize(first) == canonicalize(second)
  assert [i.output for i in canonicalize(first).instructions] == [
      "v1", "v2", "v3", "v4"]
  assert canonicalize(first).instructions[0].function == "LAM_ADD_1"


def test_argument_order_is_kept():
  keys_first = program((M, "LAM_ADD_1", ("indices",), "a"),
                       (SEL, "PRED_LT", ("a", "tokens"), "s"),
                       (SW, None, ("s",), "out"))
  queries_first = program((M, "LAM_ADD_1", ("indices",), "a"),
                          (SEL, "PRED_LT", ("tokens", "a"), "s"),
                          (SW, None, ("s",), "out"))
  assert canonicalize(keys_first) != canonicalize(queries_first)


def test_dead_code_is_dropped_and_canonical_form_is_idempotent():
  p = program((M, "LAM_ADD_1", ("indices",), "dead"),
              (M, "LAM_SUB_1", ("tokens",), "out"))
  canonical = canonicalize(p)
  assert len(canonical) == 1
  assert canonicalize(canonical) == canonical


@pytest.mark.parametrize("rows, message", [
    (((M, "LAM_NOPE", ("tokens",), "a"),), "instruction 0 .*unknown Map"),
    (((M, "LAM_ADD_1", ("b",), "a"),), "'b' is used before it is defined"),
    (((M, "LAM_ADD_1", ("tokens",), "a"), (M, "LAM_ADD_1", ("tokens",), "a")),
     "instruction 1 .*defined twice"),
    (((M, "LAM_ADD_1", ("tokens", "indices"), "a"),), "takes 1 arguments"),
    (((SEL, "PRED_EQ", ("tokens", "tokens"), "s"),), "output 's' is a selector"),
    (((M, "LAM_EQ_0", ("tokens",), "a", NUM), (SEL, "PRED_EQ", ("a", "tokens"), "s"),
      (SW, None, ("s",), "w")), "instruction 1 .*'a' is numerical"),
    (((M, "LAM_EQ_0", ("tokens",), "a", NUM), (M, "LAM_NOT", ("a",), "b")),
     "instruction 1 .*numerical"),
    (((SEL, "PRED_EQ", ("tokens", "tokens"), "s"), (AGG, None, ("s", "tokens"), "a", NUM)),
     "encoding must match"),
    (((SEL, "PRED_EQ", ("tokens", "tokens"), "s"), (M, "LAM_ADD_1", ("s",), "a")),
     "'s' is a selector"),
    (((M, "LAM_ADD_1", ("tokens",), "a"), (AGG, None, ("a", "tokens"), "b")),
     "'a' is not a selector"),
    (((SM, "LAM_ADD", ("tokens", "indices"), "a", NUM),), "unknown numerical"),
    (((M, None, ("tokens",), "a"),), "needs function"),
])
def test_invalid_programs_raise_naming_the_instruction(rows, message):
  with pytest.raises(ValueError, match=message):
    validate(program(*rows))


def test_a_cycle_is_a_use_before_definition():
  p = program((M, "LAM_ADD_1", ("b",), "a"), (M, "LAM_ADD_1", ("a",), "b"))
  with pytest.raises(ValueError, match="instruction 0 .*'b' is used before"):
    validate(p)
