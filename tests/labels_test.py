"""rasp_gen.labels: one label per set of programs with the same weights."""

from rasp_gen import functions, labels
from rasp_gen.program import (Encoding, Instruction, Linear, Operator,
                              Program, Table, canonicalize)


def test_first_equal_on_compares_outputs_with_their_types():
  by_name = functions.MAP_BY_NAME
  first = lambda name, values: functions.first_equal_on(
      functions.MAP_FUNCTIONS, by_name[name], [(x,) for x in values],
      lambda f, point: f.fn(*point)).name
  assert first("LAM_SQUARE", {0, 1}) == "LAM_MOD_2"  # x * x == x % 2 there.
  assert first("LAM_GT_0", {0, 1, 2}) == "LAM_NE_0"
  assert first("LAM_GT_0", {0, 1, 5}) == "LAM_NE_0"
  assert first("LAM_GT_4", {0, 1, 5}) == "LAM_GT_1"
  assert first("LAM_GT_4", {3, 4, 5}) == "LAM_GT_4"  # Differs from each
  # earlier entry somewhere on {3, 4, 5}.
  # (False, True) == (0, 1) in Python, but a bool output is not an int one.
  assert first("LAM_EQ_1", {0, 1}) == "LAM_EQ_1"
  predicate = functions.first_equal_on(
      tuple(functions.PREDICATES), "PRED_GEQ",
      [(k, q) for k in (5, 6) for q in (0, 1)],
      lambda name, point: functions.PREDICATES[name](*point))
  assert predicate == "PRED_GT"  # keys 5, 6 >= or > queries 0, 1: always.


def test_first_equal_function_reads_value_sets_as_tracr_infers_them():
  program = Program((
      Instruction(Operator.MAP, "LAM_MOD_2", ("tokens",), "v1"),
      Instruction(Operator.MAP, "LAM_GT_0", ("v1",), "v2")))
  values = labels.value_sets(program, (0, 1, 2, 3), 4)
  assert values["tokens"] == {0, 1, 2, 3} and values["v1"] == {0, 1}
  # x % 2 over {0..3} has no equal earlier entry; x > 0 over {0, 1} is
  # x == 1, the first of x == 1, x != 0, x > 0 in the table.
  assert [labels.first_equal_function(i, values)
          for i in program.instructions] == ["LAM_MOD_2", "LAM_EQ_1"]
  assert labels.canonical_labels(program, (0, 1, 2, 3), 4) == Program((
      program.instructions[0],
      Instruction(Operator.MAP, "LAM_EQ_1", ("v1",), "v2")))


def test_least_argument_order_is_one_label_for_every_argument_order():
  seq = lambda f, a, b, out: Instruction(Operator.SEQUENCE_MAP, f, (a, b), out)
  # (tokens max indices) < (tokens - indices), written four ways.
  variants = [
      Program((seq(f1, *args1, "v1"), seq("LAM_SUB", "tokens", "indices", "v2"),
               seq(f2, *args2, "v3")))
      for f1, args1 in (("LAM_MAX", ("tokens", "indices")),
                        ("LAM_MAX", ("indices", "tokens")))
      for f2, args2 in (("LAM_LT", ("v1", "v2")), ("LAM_GT", ("v2", "v1")))]
  forms = {labels.least_argument_order(p) for p in variants}
  assert len(forms) == 1
  (form,) = forms
  assert canonicalize(form) == form
  # x - y has no swapped form in the table: its order is kept.
  assert any(i.function == "LAM_SUB" and i.args == ("tokens", "indices")
             for i in form.instructions)
  assert len({canonicalize(p) for p in variants}) == 4


def test_tables_and_linear_factors_keep_their_label():
  table = Table(((("a",), 1), (("b",), 0)))
  map_table = Instruction(Operator.MAP, table, ("tokens",), "v1")
  linear = Instruction(Operator.SEQUENCE_MAP, Linear(0.5, 2.0), ("v2", "v3"),
                       "v4", Encoding.NUMERICAL)
  values = {"tokens": frozenset("ab"), "v2": frozenset({0, 1}),
            "v3": frozenset({0, 1})}
  assert labels.first_equal_function(map_table, values) is table
  assert labels.first_equal_function(linear, values) == Linear(0.5, 2.0)
  # Named predicates between numbers and strings: k < q raises there (no
  # match), k != q is always true and k == q never.
  mixed = {"indices": frozenset({0, 1}), "tokens": frozenset("ab")}
  select = lambda name: Instruction(Operator.SELECT, name,
                                    ("indices", "tokens"), "v5")
  assert labels.first_equal_function(select("PRED_TRUE"), mixed) == "PRED_NEQ"
  assert labels.first_equal_function(select("PRED_FALSE"), mixed) == "PRED_EQ"


def test_canonical_labels_order_tables_after_names():
  # v1 + v2 with v1 a table of tokens and v2 = indices + 1: the two argument
  # orders put the table's row or the named row first; the named one is
  # the label, whichever order is given.
  table = Table(((("a",), 1), (("b",), 2)))
  forms = set()
  for swap in (False, True):
    args = ("v2", "v1") if swap else ("v1", "v2")
    forms.add(labels.canonical_labels(Program((
        Instruction(Operator.MAP, table, ("tokens",), "v1"),
        Instruction(Operator.MAP, "LAM_ADD_1", ("indices",), "v2"),
        Instruction(Operator.SEQUENCE_MAP, "LAM_ADD", args, "v3"))),
        ("a", "b"), 4))
  (form,) = forms
  assert form == Program((
      Instruction(Operator.MAP, "LAM_ADD_1", ("indices",), "v1"),
      Instruction(Operator.MAP, table, ("tokens",), "v2"),
      Instruction(Operator.SEQUENCE_MAP, "LAM_ADD", ("v1", "v2"), "v3")))
