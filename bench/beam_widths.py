r"""Verified accuracy and seconds per program for several beam sizes.

  python bench/beam_widths.py --workdir=DIR [--beam_sizes=8,32,128] \
      [--num_examples=N] [--split=test] [--out=FILE.md]

Restores the meta-model in DIR once, encodes the split's first N records once
(as compiled and with a permuted residual stream, as eval.py does), then for
each beam size runs eval.py's own held-out evaluation
(`meta_model.heldout.evaluate_examples` and `summarize`) and prints a
markdown table:
verified functional and verified exact accuracy on both splits, the share of
programs with a verified candidate, and seconds per program.

Seconds per program is the wall time of `evaluate_examples` over both
splits divided by the programs in them: teacher-forced pass, greedy decode,
beam search and search-and-verify, measured in this run. It includes jax's
compilation of each new beam size (once per bucket of the encoder: batches
are padded to one size), which dominates when N is small. Greedy accuracy
does not depend on the beam and is printed once above the table. Nothing is
written to DIR.
"""

import time
from typing import Any, Sequence

import ml_collections
from absl import app, flags, logging

from compiled import inputs as inputs_lib
from meta_model import checkpoints, heldout

SPLITS = heldout.SPLITS


def run(workdir: str, beam_sizes: Sequence[int],
        options: ml_collections.ConfigDict) -> dict[str, Any]:
  """Per beam size and split: eval.summarize's `overall` and the seconds.

  `options`: split, num_examples, num_check_inputs, exhaustive_limit,
  read_weights (as eval.py takes them; beam_size is set per run). Returns {"step", "beam_sizes",
  "dropped_for_size": {split: n}, "programs": {split: n},
  "beams": {beam: {split: overall}}, "seconds": {beam: total seconds},
  "errors": {beam: message}} where a beam size the decoder refuses (a
  ValueError, e.g. larger than the token vocabulary) is only in "errors".
  """
  config = checkpoints.load_config(workdir)
  model, step = checkpoints.restore_model(config, workdir)
  records = list(heldout.read_records(
      checkpoints.data_dir(config, workdir), options.split,
      options.num_examples))
  examples, dropped = {}, {}
  for name, permute in SPLITS:
    examples[name], dropped[name] = heldout.encode_examples(
        records, config, permute)
  report = {"step": step, "beam_sizes": list(beam_sizes),
            "dropped_for_size": dropped,
            "programs": {name: len(e) for name, e in examples.items()},
            "beams": {}, "seconds": {}, "errors": {}}
  for beam_size in beam_sizes:
    beam_options = ml_collections.ConfigDict(dict(options.to_dict(),
                                                  beam_size=beam_size))
    by_split, seconds = {}, 0.0
    try:
      for name, split_examples in examples.items():
        start = time.perf_counter()
        results = heldout.evaluate_examples(model, split_examples, config,
                                             beam_options)
        seconds += time.perf_counter() - start
        by_split[name] = heldout.summarize(results)["overall"]
    except ValueError as e:  # A beam size the decoder refuses.
      report["errors"][beam_size] = str(e)
      continue
    report["beams"][beam_size], report["seconds"][beam_size] = by_split, seconds
  return report


def _percent(summary: dict[str, Any], key: str) -> str:
  return f"{100 * summary[key]:.1f} %" if summary else "—"


def format_table(report: dict[str, Any]) -> str:
  """Greedy accuracy once, then a markdown row per beam size."""
  compiled, permuted = (name for name, _ in SPLITS)
  programs = report["programs"]
  first = next(iter(report["beams"].values()), {})
  lines = [f"{programs[compiled]} programs per split (step {report['step']}; "
           f"dropped for size: {report['dropped_for_size'][compiled]}); "
           "greedy functional "
           f"{_percent(first.get(compiled), 'functional_accuracy')} as "
           f"compiled, {_percent(first.get(permuted), 'functional_accuracy')}"
           " permuted.", "",
           "| beam | verified functional (compiled) | verified functional "
           "(permuted) | verified exact (compiled) | verified exact "
           "(permuted) | verified (compiled) | s/program |",
           "|---|---|---|---|---|---|---|"]
  total = sum(programs.values())
  for beam_size in report["beam_sizes"]:
    if beam_size in report["errors"]:
      lines.append(f"| {beam_size} | not run: {report['errors'][beam_size]} "
                   "| | | | | |")
      continue
    c, p = (report["beams"][beam_size][name] for name in (compiled, permuted))
    seconds = report["seconds"][beam_size] / max(total, 1)
    lines.append(
        f"| {beam_size} | {_percent(c, 'verified_functional_accuracy')} | "
        f"{_percent(p, 'verified_functional_accuracy')} | "
        f"{_percent(c, 'verified_exact_accuracy')} | "
        f"{_percent(p, 'verified_exact_accuracy')} | "
        f"{_percent(c, 'verified')} | {seconds:.2f} |")
  return "\n".join(lines)


def _define_flags() -> None:
  flags.DEFINE_string("workdir", None, "A train.py workdir: its config.json, "
                      "latest checkpoint and dataset are used.")
  flags.DEFINE_list("beam_sizes", ["8", "32", "128"], "Beam sizes to "
                    "compare, comma-separated, each run on the same programs.")
  flags.DEFINE_integer("num_examples", 0, "Evaluate the first N records of "
                       "the split; 0 means all.")
  flags.DEFINE_string("split", "test", "Dataset split to evaluate.")
  flags.DEFINE_integer("num_check_inputs", inputs_lib.NUM_CHECK_INPUTS, "Random inputs for functional "
                       "accuracy and verification when the input space is "
                       "larger than --exhaustive_limit (as in eval.py).")
  flags.DEFINE_integer("exhaustive_limit", inputs_lib.EXHAUSTIVE_LIMIT, "Use every input sequence "
                       "when there are at most this many (as in eval.py).")
  flags.DEFINE_string("out", None, "Also write the table to this markdown "
                      "file.")
  flags.mark_flags_as_required(["workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  try:
    beam_sizes = [int(b) for b in flags.FLAGS.beam_sizes]
  except ValueError as e:
    raise app.UsageError(f"--beam_sizes must be integers: {e}") from e
  if not beam_sizes or min(beam_sizes) < 1:
    raise app.UsageError("--beam_sizes needs at least one size >= 1")
  options = ml_collections.ConfigDict({
      name: flags.FLAGS[name].value for name in (
          "split", "num_examples", "num_check_inputs", "exhaustive_limit")})
  options.read_weights = False  # Beam widths are the meta-model's question.
  table = format_table(run(flags.FLAGS.workdir, beam_sizes, options))
  print(table)
  if flags.FLAGS.out:
    with open(flags.FLAGS.out, "w") as f:
      f.write(table + "\n")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
