"""Program validation and canonical form."""

import pytest

from rasp_gen.program import (Encoding, Instruction, Linear, Operator,
                              Program, Table, canonicalize, validate)

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


def test_table_entries_are_sorted_and_looked_up_by_argument_tuple():
  table = Table.from_function(lambda x: f"<{x}>", [[10, 2, "b", (1, 2), True]])
  assert [args for args, _ in table.entries] == [
      (True,), (2,), (10,), ("b",), ((1, 2),)]
  assert table(10) == "<10>" and table((1, 2)) == "<(1, 2)>"
  assert table.arity == 1
  with pytest.raises(KeyError, match=r"\(3,\)"):
    table(3)
  reordered = Table(tuple(reversed(table.entries)))
  assert reordered == table and hash(reordered) == hash(table)
  assert "_values" not in repr(table)


def test_table_from_function_leaves_out_arithmetic_errors():
  table = Table.from_function(lambda x, y: x // y, [[1, 2], [0, 1]])
  assert table.entries == (((1, 1), 1), ((2, 1), 2))
  assert table.arity == 2


@pytest.mark.parametrize("entries, message", [
    ((), "at least one entry"),
    ((((1,), 2), ((1, 2), 3)), "one length"),
    ((((1,), 2), ((1,), 3)), "two values"),
])
def test_malformed_tables_raise(entries, message):
  with pytest.raises(ValueError, match=message):
    Table(entries)


def test_tables_print_on_one_line():
  shift = Table.from_function(lambda x: x + 10, [[1, 2]])
  pairs = Table.from_function(lambda k, q: k == q, [["a", "b"], ["a", "b"]])
  none = Table.from_function(lambda k, q: False, [[1], [1]])
  p = program((M, shift, ("tokens",), "a"),
              (SEL, pairs, ("tokens", "tokens"), "s"),
              (SEL, none, ("a", "a"), "n"),
              (AGG, None, ("s", "a"), "out"))
  assert str(p) == ("MAP {1:11, 2:12} tokens -> a\n"
                    "SELECT {('a', 'a'), ('b', 'b')} tokens tokens -> s\n"
                    "SELECT set() a a -> n\n"
                    "AGGREGATE s a -> out")
  linear = program((M, "LAM_EQ_0", ("tokens",), "a", NUM),
                   (SM, Linear(2.0, -0.5), ("a", "a"), "b", NUM))
  assert str(linear).splitlines()[1] == (
      "SEQUENCE_MAP linear(2.0, -0.5) a a -> b (numerical)")


def test_tables_are_valid_where_tracr_compiles_them():
  square = Table.from_function(lambda x: x * x, [[0, 0.5, 1]])
  p = program((M, "LAM_EQ_0", ("tokens",), "a", NUM),
              (M, square, ("a",), "b", NUM),  # Numerical -> numerical.
              (M, Table((((0,), "zero"),)), ("b",), "c"),  # -> categorical.
              (SM, Linear(2.0, 1.0), ("a", "b"), "d", NUM),
              (SM, Table.from_function(lambda x, y: (x, y), [[0], ["zero"]]),
               ("tokens", "c"), "e"),
              (SEL, Table.from_function(lambda k, q: k == q, [[0], [0]]),
               ("e", "e"), "s"),
              (SW, None, ("s",), "out"))
  validate(p)
  assert canonicalize(p).instructions[1].function == square


_TABLE_1 = Table(((((1,), 2),)))
_TABLE_2 = Table(((((1, 1), 2),)))
_RELATION = Table(((((1, 1), True),)))


@pytest.mark.parametrize("rows, message", [
    (((M, _TABLE_2, ("tokens",), "a"),), "MAP table takes 1 arguments, not 2"),
    (((SM, _TABLE_1, ("tokens", "indices"), "a"),), "takes 2 arguments, not 1"),
    (((SEL, Table(((((1, 1), 1),))), ("tokens", "tokens"), "s"),
      (SW, None, ("s",), "w")), "values must be bool"),
    (((M, Table(((((1,), "one"),))), ("tokens",), "a", NUM),),
     "numerical Map's table must give numbers"),
    (((M, Table(((((1,), None),))), ("tokens",), "a", NUM),),
     "numerical Map's table must give numbers"),
    (((SM, Linear(1.0, 1.0), ("tokens", "indices"), "a"),),
     "only for a numerical SEQUENCE_MAP"),
    (((M, Linear(1.0, 1.0), ("tokens",), "a", NUM),),
     "only for a numerical SEQUENCE_MAP"),
    (((M, "LAM_EQ_0", ("tokens",), "a", NUM),
      (SM, _TABLE_2, ("a", "a"), "b", NUM)), "only when it is linear"),
    (((M, "LAM_EQ_0", ("tokens",), "a", NUM),
      (SM, _TABLE_2, ("a", "tokens"), "b")), "needs categorical inputs"),
    (((M, "LAM_EQ_0", ("tokens",), "a", NUM),
      (SEL, _RELATION, ("a", "tokens"), "s"), (SW, None, ("s",), "w")),
     "'a' is numerical"),
    (((M, "LAM_EQ_0", ("tokens",), "a", NUM), (M, "LAM_NOT", ("a",), "b")),
     "only a table"),
    (((M, lambda x: x, ("tokens",), "a"),), "not a name, a Table or Linear"),
])
def test_invalid_tables_raise_naming_the_instruction(rows, message):
  with pytest.raises(ValueError, match=f"instruction .*{message}"):
    validate(program(*rows))
