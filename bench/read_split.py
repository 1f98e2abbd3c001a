r"""The read-out decompiler (no meta-model) on a dataset split.

  python bench/read_split.py --data_dir=DIR [--split=test] [--num_examples=300]

For each of the split's first N records, as compiled and with the residual
stream randomly permuted (the permutation eval.py uses), reads the program
off the weights (`readout`) and asks three questions:

  read        it reads (no `ReadoutError`) and is a valid program;
  verified    `compiled.verify` confirms it against the weights;
  functional  it gives the record's true program's outputs on the check
              inputs (`rasp_gen.functional`, eval.py's judge and inputs);
  wrong       verified but not functional: must stay 0.

Prints a table per residual layout, the mean seconds per program (read +
verify) and the most common reasons a read fails, then writes them as JSON
with --json_out. Works for any dataset, also one whose programs use tables
(configs/wide_data.py) that the meta-model's tokens cannot express.
"""

import collections
import json
import time
from typing import Any

import ml_collections
import numpy as np
from absl import app, flags

from compiled import inputs as inputs_lib
from compiled import verify
import readout
from meta_model import heldout
from rasp_gen import functional, records


def read_one(record: records.Record, options: ml_collections.ConfigDict
             ) -> dict[str, Any]:
  """One record's flags, seconds and, when it does not read, why."""
  weights = heldout.weights_of(record)
  inputs = heldout.check_inputs(weights, record.index, options)
  start = time.perf_counter()
  reference = verify.reference(weights, inputs)
  try:
    program, verification = readout.read_and_verify(reference)
  except ValueError as error:
    return {"read": False, "verified": False, "functional": False,
            "wrong": False, "seconds": time.perf_counter() - start,
            "reason": str(error)[:100]}
  seconds = time.perf_counter() - start
  works = functional.same_function(program, record.program, inputs)
  verified = verification.verified
  return {"read": True, "verified": verified, "functional": works,
          "wrong": verified and not works, "seconds": seconds, "reason": ""}


def run(data_dir: str, options: ml_collections.ConfigDict) -> dict[str, Any]:
  """Per residual layout: the share of each flag, seconds and reasons."""
  report = {}
  split_records = list(heldout.read_records(data_dir, options.split,
                                            options.num_examples))
  for name, permute in heldout.SPLITS:
    results = [read_one(heldout.permuted(r) if permute else r, options)
               for r in split_records]
    report[name] = {
        "programs": len(results),
        **{flag: float(np.mean([r[flag] for r in results])) if results
           else 0.0 for flag in ("read", "verified", "functional", "wrong")},
        "seconds_per_program": float(np.mean([r["seconds"] for r in results]))
                               if results else 0.0,
        "reasons": collections.Counter(
            r["reason"] for r in results if r["reason"]).most_common(5)}
  return report


def format_table(report: dict[str, Any]) -> str:
  lines = ["| residual | programs | read | verified | functional | wrong | "
           "s/program |", "|---|---|---|---|---|---|---|"]
  for name, row in report.items():
    lines.append(f"| {name} | {row['programs']} | {row['read']:.1%} | "
                 f"{row['verified']:.1%} | {row['functional']:.1%} | "
                 f"{row['wrong']:.1%} | {row['seconds_per_program']:.2f} |")
  for name, row in report.items():
    for reason, count in row["reasons"]:
      lines.append(f"{name}: {count} not read: {reason}")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  options = heldout.default_options()
  options.update(split=flags.FLAGS.split,
                 num_examples=flags.FLAGS.num_examples,
                 num_check_inputs=flags.FLAGS.num_check_inputs,
                 exhaustive_limit=flags.FLAGS.exhaustive_limit)
  report = run(flags.FLAGS.data_dir, options)
  print(f"{flags.FLAGS.data_dir}, {options.split} split\n")
  print(format_table(report))
  if flags.FLAGS.json_out:
    with open(flags.FLAGS.json_out, "w") as f:
      json.dump(report, f, indent=2)


if __name__ == "__main__":
  flags.DEFINE_string("data_dir", None, "A dataset written by "
                      "rasp_gen.generate (its manifest and shards).")
  flags.DEFINE_string("split", "test", "train, validation or test.")
  flags.DEFINE_integer("num_examples", 300, "The split's first N records; "
                       "0 means all.")
  flags.DEFINE_integer("num_check_inputs", inputs_lib.NUM_CHECK_INPUTS,
                       "Random check inputs when there are more than "
                       "--exhaustive_limit input sequences.")
  flags.DEFINE_integer("exhaustive_limit", inputs_lib.EXHAUSTIVE_LIMIT,
                       "Check every input sequence when there are at most "
                       "this many.")
  flags.DEFINE_string("json_out", None, "Also write the report as JSON.")
  flags.mark_flags_as_required(["data_dir"])
  app.run(main)
