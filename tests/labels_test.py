"""rasp_gen.labels: one label per set of programs with the same weights."""

from rasp_gen import functions, labels
from rasp_gen.program import Instruction, Operator, Program, canonicalize


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
