r"""How many of a dataset's labels the weights cannot pin down.

  python bench/label_ambiguity.py --data_dir=DIR [--split=test] \
      [--num_examples=300]

For the split's first N records, counts (per operator) the function slots
whose function has an equal earlier table entry on its arguments' value sets,
and the programs whose symmetric SequenceMaps have a lesser argument order:
the labels `rasp_gen.labels.canonical_labels` (the sampler's
`canonical_labels=True`) changes, since the weights are the same either way.
"""

import collections

from absl import app, flags

from meta_model import heldout
from rasp_gen import labels

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory.",
                                required=True)
_SPLIT = flags.DEFINE_string("split", "test", "Dataset split.")
_NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", 300, "The split's first N records; 0 means all.")


def main(argv):
  del argv
  slots, renamed = collections.Counter(), collections.Counter()
  programs = renamed_programs = reordered_programs = 0
  for record in heldout.read_records(_DATA_DIR.value, _SPLIT.value,
                                     _NUM_EXAMPLES.value):
    values = labels.value_sets(record.program, record.vocab,
                               record.max_seq_len)
    programs += 1
    any_renamed = False
    for instruction in record.program.instructions:
      if instruction.function is None:
        continue
      slots[instruction.operator.value] += 1
      if labels.first_equal_function(instruction, values) != (
          instruction.function):
        renamed[instruction.operator.value] += 1
        any_renamed = True
    renamed_programs += any_renamed
    reordered_programs += (labels.least_argument_order(record.program)
                           != record.program)
  for operator in sorted(slots):
    print(f"{operator:14} {renamed[operator]:5d} of {slots[operator]:5d} "
          "function slots have an equal earlier table entry")
  print(f"{'all':14} {sum(renamed.values()):5d} of {sum(slots.values()):5d}"
        f" slots, in {renamed_programs} of {programs} programs")
  print(f"argument order: {reordered_programs} of {programs} programs have "
        "a lesser order of symmetric SequenceMap arguments")


if __name__ == "__main__":
  app.run(main)
