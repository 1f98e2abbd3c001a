"""readout.attention: heads as Selects, Aggregates and SelectorWidths."""

from tracr.compiler import compiling
from tracr.rasp import rasp

from compiled import saved, verify
from rasp_gen import convert
from rasp_gen.program import TOKENS, Encoding, Operator
from readout import attention, mlps, program
from readout.state import DirectionTable
from readout_helpers import started

_T = rasp.tokens


def test_an_aggregate_reads_its_relation_and_what_it_copies():
  state = started(rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices,
                                             rasp.Comparison.LT), _T),
                  {"a", "b"}, 3)
  assert attention.read_attention(state, 0) == {}
  select, aggregate = state.instructions
  assert select.operator == Operator.SELECT
  assert select.args == ("indices", "indices")
  index_dims = state.variables["indices"].dims
  relation = select.function.table
  assert isinstance(select.function, DirectionTable)
  for key, key_dim in enumerate(index_dims):
    for query, query_dim in enumerate(index_dims):
      assert relation[(key_dim, query_dim)] == (key < query)
  assert aggregate.operator == Operator.AGGREGATE
  assert aggregate.args == (select.output, "tokens")
  assert aggregate.encoding == Encoding.CATEGORICAL
  source, copied = state.variables[aggregate.output].copies
  assert source == "tokens"
  assert sorted(copied.values()) == sorted(state.variables["tokens"].dims)


def test_a_selector_width_head_is_handed_to_the_mlp():
  state = started(rasp.SelectorWidth(rasp.Select(_T, _T, rasp.Comparison.TRUE)),
                  {"a", "b"}, 3)
  widths = attention.read_attention(state, 0)
  (hidden_dim, selector), = widths.items()
  assert state.instructions[-1].output == selector
  assert all(state.instructions[-1].function.table.values())  # TRUE.


def test_equal_selectors_are_one_select():
  select = rasp.Select(_T, _T, rasp.Comparison.EQ)
  both = rasp.SequenceMap(lambda x, y: f"{x}{y}", rasp.Aggregate(select, _T),
                          rasp.Aggregate(select, rasp.Map(lambda x: x + 1, _T)))
  state = started(both, {1, 2}, 3)
  for layer in range(state.layout.num_layers):
    widths = attention.read_attention(state, layer)
    mlps.read_mlp(state, layer, widths)
  operators = [i.operator for i in state.instructions]
  assert operators.count(Operator.SELECT) == 1
  assert operators.count(Operator.AGGREGATE) == 2


def test_a_never_true_selector_reads_over_tokens_and_compiles_with_tracr():
  # tokens only in the selector, which the weights do not show: read over
  # indices, the program would not read tokens, and tracr refuses that.
  never = rasp.SelectorWidth(
      rasp.Select(_T, rasp.indices, rasp.Comparison.FALSE))
  model = saved.from_tracr(compiling.compile_rasp_to_model(
      never, {"a", "b"}, 3, compiler_bos="BOS"))
  state = program.start(model)
  for layer in range(state.layout.num_layers):
    mlps.read_mlp(state, layer, attention.read_attention(state, layer))
  select = next(i for i in state.instructions if i.operator == Operator.SELECT)
  assert select.args == (TOKENS, TOKENS)
  assert not any(select.function.table.values())
  read = program.read_program(model)
  sop = convert.to_rasp(read)
  compiling.compile_rasp_to_model(sop, {"a", "b"}, 3, compiler_bos="BOS")
  assert verify.verify_against(verify.reference(model), sop).verified
