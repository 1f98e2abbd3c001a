r"""How many of a dataset's function labels the weights cannot pin down.

  python bench/label_ambiguity.py --data_dir=DIR [--split=test] \
      [--num_examples=300]

For each function slot (Map, categorical SequenceMap, Select) of the split's
first N records: does an earlier entry of the function table give the same
typed outputs on the slot's argument value sets (tracr's basis inference)?
Such a pair compiles to the same weights, so the label is a coin flip; with
`sampler.canonical_labels=True` the sampler names the first entry
(`rasp_gen.functions.first_equal_on`). Prints the counts per operator.
"""

import collections
import itertools

from absl import app, flags
from tracr.compiler import basis_inference, nodes, rasp_to_graph

from meta_model import heldout
from rasp_gen import convert, functions, records
from rasp_gen.program import Encoding, Instruction, Operator

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory.",
                                required=True)
_SPLIT = flags.DEFINE_string("split", "test", "Dataset split.")
_NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", 300, "The split's first N records; 0 means all.")


def value_sets(record: records.Record) -> dict[str, frozenset]:
  """Each variable's value set as tracr infers it when compiling."""
  extracted = rasp_to_graph.extract_rasp_graph(
      convert.to_rasp(record.program))
  basis_inference.infer_bases(extracted.graph, extracted.sink,
                              set(record.vocab), record.max_seq_len)
  return {node[nodes.EXPR].name: frozenset(node[nodes.VALUE_SET])
          for node in extracted.graph.nodes.values()
          if nodes.VALUE_SET in node}


def first_equal(instruction: Instruction, values: dict[str, frozenset]
                ) -> str:
  """The first table entry equal to the instruction's function on its
  arguments' values (the function itself when none comes before it)."""
  domains = [values[a] for a in instruction.args]
  if instruction.operator == Operator.SELECT:
    return functions.first_equal_on(
        tuple(functions.PREDICATES), instruction.function,
        itertools.product(*domains),
        lambda name, point: functions.PREDICATES[name](*point))
  table = (functions.MAP_FUNCTIONS if instruction.operator == Operator.MAP
           else functions.SEQUENCE_MAP_FUNCTIONS)
  by_name = {f.name: f for f in table}
  accepted = [f for f in table
              if all(functions.accepts(f, d) for d in domains)]
  return functions.first_equal_on(
      accepted, by_name[instruction.function], itertools.product(*domains),
      lambda f, point: f.fn(*point)).name


def main(argv):
  del argv
  slots, renamed, programs, total = (collections.Counter(),
                                     collections.Counter(), 0, 0)
  for record in heldout.read_records(_DATA_DIR.value, _SPLIT.value,
                                     _NUM_EXAMPLES.value):
    values = value_sets(record)
    total += 1
    any_renamed = False
    for instruction in record.program.instructions:
      if instruction.function is None or (
          instruction.operator == Operator.SEQUENCE_MAP
          and instruction.encoding == Encoding.NUMERICAL):
        continue
      operator = instruction.operator.value
      slots[operator] += 1
      if first_equal(instruction, values) != instruction.function:
        renamed[operator] += 1
        any_renamed = True
    programs += any_renamed
  for operator in sorted(slots):
    print(f"{operator:14} {renamed[operator]:5d} of {slots[operator]:5d} "
          "function slots have an equal earlier table entry")
  print(f"{'all':14} {sum(renamed.values()):5d} of {sum(slots.values()):5d}"
        f" slots, in {programs} of {total} programs")


if __name__ == "__main__":
  app.run(main)
