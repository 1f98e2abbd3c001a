r"""Held-out metrics of a trained meta-model (what `eval.py` runs).

Metrics on a split's first N programs (table on stdout, WORKDIR/eval/
metrics.json and a PNG by program length), each overall, by program length
and by operator, on the weights as compiled and on the same programs with a
randomly permuted residual stream (encoding/augment.py):
  token_accuracy      teacher-forced, over slots whose target is not PAD/NA;
  exact_accuracy      greedy program == true program (canonical forms);
  functional_accuracy greedy program gives the true program's outputs on
                      every check input (all inputs where there are few);
  invalid             greedy rows that are not a program (counted wrong);
  verified_*          the same for search-and-verify decoding
                      (`meta_model.search`): of the beam's candidates, the
                      best-scoring one that computes what the given weights
                      compute (`compiled.verify`); the top candidate when
                      none verifies.
  verified_wrong      verified, yet not functionally right: verification
                      is meant to be sound, so this should always be 0.
  read_verified       the program read straight off the weights
                      (`readout`, no meta-model) verifies;
  decompiled_*        what `Decompiler.decompile` answers: the read-out
                      when it verifies, else search-and-verify's choice
                      (functional accuracy, and verified-but-wrong).
Beside them, per split: token accuracy by row column (operator, arg1-arg3,
return variable) and, for the function slot (arg1 of MAP, SEQUENCE_MAP and
SELECT rows), accuracy by the target function's family (`FUNCTION_FAMILIES`)
and how often the predicted function is at least in the right family. Every
accuracy is a sum of hits over a sum of counted slots or programs.

Records are read, encoded and evaluated a batch at a time: only the first
`num_examples` records are decoded, and memory holds one batch. Every batch
is padded to the configured batch size, so the model compiles once per
bucket of the encoder for the whole evaluation. Records over
the encoder's size limits are dropped, counted, and the count is printed
beside the table ("evaluated 79 of 100 programs; 21 over the size limits").
"""

import collections
import dataclasses
import functools
import json
import os
from typing import Any, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from compiled import inputs as inputs_lib
from compiled import saved, verify
import readout
from encoding import graph, pipeline, tokens
from encoding.limits import LimitExceeded
from meta_model import build, checkpoints, decode, quiet, search
from meta_model import loss as loss_lib
from meta_model.errors import UserError
from rasp_gen import dataset, functional, functions, records
from rasp_gen.program import Program, canonicalize

# Example i's check inputs come from rng([CHECK_SEED, i]) and its residual
# permutation from rng([PERMUTE_SEED, i]): independent draws.
CHECK_SEED = 1234
PERMUTE_SEED = 4321
SPLITS = (("as compiled", False), ("permuted residual", True))


def default_options() -> ml_collections.ConfigDict:
  """What `evaluate` and `evaluate_examples` take (eval.py's flags)."""
  return ml_collections.ConfigDict(dict(
      split="test",  # Dataset split.
      data_dir="",  # Dataset; "" means the run's (its config's data_dir).
      num_examples=0,  # The split's first N records; 0 means all.
      # Candidates for search-and-verify (bench/beam_widths.py).
      beam_size=search.BEAM_SIZE,
      # Random check inputs when there are more than exhaustive_limit input
      # sequences; else every input (compiled.inputs).
      num_check_inputs=inputs_lib.NUM_CHECK_INPUTS,
      exhaustive_limit=inputs_lib.EXHAUSTIVE_LIMIT,
      # Also read each program off the weights (the decompiled_* metrics).
      read_weights=True))


def check_inputs(weights: saved.SavedModel, index: int,
                 options: ml_collections.ConfigDict) -> list[list]:
  """The inputs example `index` is checked on: the same in every run."""
  return inputs_lib.check_inputs(
      np.random.default_rng([CHECK_SEED, index]),
      inputs_lib.sorted_vocab(weights.vocab), weights.max_seq_len,
      options.num_check_inputs, options.exhaustive_limit)


def read_verified(reference: verify.Reference) -> Optional[Program]:
  """The program read off the weights when it verifies, else None."""
  try:
    program, verification = readout.read_and_verify(reference)
  except ValueError:  # Not tracr's recipes.
    return None
  return program if verification.verified else None


def weights_of(record: records.Record) -> saved.SavedModel:
  return saved.SavedModel(
      record.params, record.vocab, record.max_seq_len, record.compiler_bos,
      record.compiler_pad, record.num_heads, causal=False,
      output=record.output)


def _without_weights(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """An example like `example` with no weights and no rows: batch padding."""
  graph_keys = {f.name for f in dataclasses.fields(graph.WeightGraph)}
  return {k: v[:0] if k in graph_keys else np.zeros_like(v)
          for k, v in example.items()}


def _batch(examples: Sequence[dict], config: ml_collections.ConfigDict
           ) -> dict[str, jax.Array]:
  """The examples as one batch of `config.input.batch_size`, padded with
  examples without weights (not decoded, no slot counted): every batch has
  one of the encoder's few bucket shapes, and each shape compiles once."""
  padding = [_without_weights(examples[0])] * (
      config.input.batch_size - len(examples))
  stacked = pipeline.batch_examples(list(examples) + padding, config)
  return {k: jnp.asarray(v) for k, v in stacked.items()}


def _commit(model: nnx.Module) -> None:
  """Commits the model's variables to their device, as a jitted call leaves
  them: a restored model's RNG state is uncommitted, and the first jitted
  function called would compile again on its second call."""
  nnx.update(model, jax.device_put(nnx.state(model), jax.devices()[0]))


@functools.partial(nnx.jit, static_argnames=("pad_id", "na_id"))
def _token_hits(model: nnx.Module, batch: dict[str, jax.Array], *,
                pad_id: int, na_id: int) -> loss_lib.TokenHits:
  """Teacher-forced hits, compiled per batch shape rather than run op by op
  (a few hundred small compilations per shape)."""
  return loss_lib.token_hits(model(batch, deterministic=True), batch,
                             pad_id=pad_id, na_id=na_id)


COLUMNS = ("operator", "arg1", "arg2", "arg3", "return_var")


def _function_families() -> dict[str, str]:
  """Function token -> family, derived from the rasp_gen.functions tables.

  Map and SequenceMap functions split by what they return on a value of
  their domain: `*_boolean` (comparisons, NOT/AND/OR) or `*_arithmetic`.
  """
  families = {}
  for kind, table, arity in (("map", functions.MAP_FUNCTIONS, 1),
                             ("sequence_map", functions.SEQUENCE_MAP_FUNCTIONS,
                              2)):
    for f in table:
      value = f.fn(*[True if f.domain == "bool" else 1] * arity)
      families[f.name] = (f"{kind}_boolean" if isinstance(value, bool)
                          else f"{kind}_arithmetic")
  families.update({f.name: "linear_sequence_map"
                   for f in functions.LINEAR_FUNCTIONS})
  families.update({name: "predicate" for name in functions.PREDICATES})
  return families


FUNCTION_FAMILIES: dict[str, str] = _function_families()
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(FUNCTION_FAMILIES.values()))


def slot_counts(hits: loss_lib.TokenHits, index: int, max_rows: int
                ) -> dict[str, Any]:
  """Example `index`'s teacher-forced hits, as counts to be summed.

  token_right/token_counted: slots whose target is not PAD/NA;
  column_right/column_counted: the same per column (`COLUMNS`);
  function_counted/function_right/function_family_right: per family of the
  target function, function slots (arg1 holding a function token), those
  predicted exactly, and those whose predicted token is a function of the
  same family.
  """
  predicted, target, counted = (np.asarray(a[index]) for a in
                                (hits.predicted, hits.target, hits.counted))
  right = counted & (predicted == target)
  names = tokens.vocabulary_for_rows(max_rows).tokens

  def family_of(token_id: int) -> Optional[str]:
    return (FUNCTION_FAMILIES.get(names[token_id])
            if 0 <= token_id < len(names) else None)

  function_counted = collections.Counter()
  function_right = collections.Counter()
  function_family_right = collections.Counter()
  for r in np.flatnonzero(counted[:, 1]):
    family = family_of(target[r, 1])
    if family is None:  # A selector variable (AGGREGATE, SELECTOR_WIDTH).
      continue
    function_counted[family] += 1
    function_right[family] += int(predicted[r, 1] == target[r, 1])
    function_family_right[family] += int(family_of(predicted[r, 1]) == family)
  return {"token_right": int(right.sum()), "token_counted": int(counted.sum()),
          "column_right": right.sum(0).tolist(),
          "column_counted": counted.sum(0).tolist(),
          "function_counted": dict(function_counted),
          "function_right": dict(function_right),
          "function_family_right": dict(function_family_right)}


def _dataflow(program: Program) -> tuple:
  """What a program is without its functions: operators, arguments, outputs
  and encodings, the part the weights' wiring shows."""
  return tuple((i.operator, i.args, i.output, i.encoding)
               for i in program.instructions)


def score(record: records.Record, greedy_Rx5: np.ndarray, chosen: search.Choice,
          read: Optional[Program], inputs: list[list],
          slots: dict[str, Any]) -> dict[str, Any]:
  """One example's results; a prediction that does not decode is wrong.

  `structure`: the greedy program is the true one up to its functions (so a
  greedy error with the right structure is a wrong function). `slots` are the
  example's teacher-forced counts (`slot_counts`).
  """
  predicted = search.decode_or_none(greedy_Rx5)
  same = lambda p: p is not None and canonicalize(p) == record.program
  works = lambda p: p is not None and functional.same_function(
      p, record.program, inputs)
  chosen_works = works(chosen.program)
  # What Decompiler.decompile answers: the read-out when it verifies.
  decompiled_works = works(read) if read is not None else chosen_works
  return {
      "length": len(record.program),
      "operators": sorted({i.operator.value
                           for i in record.program.instructions}),
      **slots,
      "invalid": predicted is None,
      "exact": same(predicted),
      "functional": works(predicted),
      "structure": (predicted is not None and _dataflow(canonicalize(
          predicted)) == _dataflow(record.program)),
      "verified": chosen.verified,
      "verified_exact": same(chosen.program),
      "verified_functional": chosen_works,
      "verified_wrong": chosen.verified and not chosen_works,
      "read_verified": read is not None,
      "decompiled_functional": decompiled_works,
      "decompiled_wrong": ((read is not None or chosen.verified)
                           and not decompiled_works),
  }


def evaluate_examples(model, examples: list[tuple[records.Record, dict]],
                      config: ml_collections.ConfigDict,
                      options: ml_collections.ConfigDict
                      ) -> list[dict[str, Any]]:
  """Per-example results: token hits, exact/functional/verified flags."""
  _commit(model)
  ids = build.special_ids(config)
  results = []
  size = config.input.batch_size
  for start in range(0, len(examples), size):
    chunk = examples[start:start + size]
    batch = _batch([e for _, e in chunk], config)
    hits = _token_hits(model, batch, pad_id=ids["pad_id"],
                       na_id=ids["na_id"])
    greedy, _ = decode.greedy_decode(model, batch, ids["start_row"],
                                     end_id=ids["end_id"],
                                     pad_id=ids["pad_id"])
    beams, _ = decode.beam_search(model, batch, ids["start_row"],
                                  beam_size=options.beam_size,
                                  end_id=ids["end_id"], pad_id=ids["pad_id"])
    greedy, beams = np.asarray(greedy[:, 0]), np.asarray(beams)
    with quiet.candidate_programs():
      for i, (record, _) in enumerate(chunk):
        weights = weights_of(record)
        inputs = check_inputs(weights, record.index, options)
        reference = verify.reference(weights, inputs)
        chosen = search.choose(beams[i], reference)
        read = read_verified(reference) if options.read_weights else None
        results.append(score(record, greedy[i], chosen, read, inputs,
                             slot_counts(hits, i, config.input.max_rows)))
  return results


_FLAGS_SUMMED = ("invalid", "exact", "functional", "structure", "verified",
                 "verified_exact", "verified_functional", "verified_wrong",
                 "read_verified", "decompiled_functional", "decompiled_wrong")
# Flags summarised under their own name; the others as f"{flag}_accuracy".
_SHARES = ("invalid", "verified", "verified_wrong", "read_verified",
           "decompiled_wrong")


def _by_column(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
  right = np.sum([r["column_right"] for r in results], axis=0, dtype=int)
  counted = np.sum([r["column_counted"] for r in results], axis=0, dtype=int)
  return {column: {"slots": int(counted[c]),
                   "token_accuracy": float(right[c] / max(counted[c], 1))}
          for c, column in enumerate(COLUMNS)}


def _by_function_family(results: list[dict[str, Any]]
                        ) -> dict[str, dict[str, Any]]:
  """Function-slot accuracy per target family, and "all" families together."""
  counted, right, in_family = (
      sum((collections.Counter(r[key]) for r in results), collections.Counter())
      for key in ("function_counted", "function_right",
                  "function_family_right"))
  summary = {}
  for family in FAMILIES + ("all",):
    pick = (lambda c: sum(c.values())) if family == "all" else (
        lambda c: c[family])  # pylint: disable=cell-var-from-loop
    n = pick(counted)
    summary[family] = {"slots": n,
                       "function_accuracy": pick(right) / max(n, 1),
                       "family_accuracy": pick(in_family) / max(n, 1)}
  return summary


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
  """Accuracies overall, by length, by operator, by column, by function family.

  Every accuracy sums hits over the group and divides once: by the group's
  programs, counted slots (token accuracy, `by_column`) or function slots
  (`by_function_family`, whose "all" row is every function slot).
  """

  def accuracies(group: list[dict[str, Any]]) -> dict[str, float]:
    counted = sum(r["token_counted"] for r in group)
    summary = {"programs": len(group),
               "token_accuracy": sum(r["token_right"] for r in group)
                                 / max(counted, 1)}
    for key in _FLAGS_SUMMED:
      summary[key if key in _SHARES else f"{key}_accuracy"] = float(np.mean([r[key] for r in group]))
    return summary

  by_length = collections.defaultdict(list)
  by_operator = collections.defaultdict(list)
  for r in results:
    by_length[r["length"]].append(r)
    for operator in r["operators"]:
      by_operator[operator].append(r)
  return {
      "overall": accuracies(results) if results else {},
      "by_length": {str(k): accuracies(v) for k, v in sorted(by_length.items())},
      "by_operator": {k: accuracies(v) for k, v in sorted(by_operator.items())},
      "by_column": _by_column(results) if results else {},
      "by_function_family": (_by_function_family(results) if results
                             else {}),
  }


def format_table(name: str, summary: dict[str, Any]) -> str:
  columns = ("programs", "token_accuracy", "exact_accuracy",
             "functional_accuracy", "structure_accuracy", "invalid",
             "verified_exact_accuracy", "verified_functional_accuracy",
             "verified_wrong", "read_verified", "decompiled_functional_accuracy",
             "decompiled_wrong")
  short = ("n", "token", "exact", "functional", "structure", "invalid",
           "v.exact", "v.functional", "v.wrong", "read", "decompiled",
           "dec.wrong")
  lines = [f"== {name}", f"{'':14}" + "".join(f"{s:>14}" for s in short)]
  rows = [("overall", summary["overall"])]
  rows += [(f"length {k}", v) for k, v in summary["by_length"].items()]
  rows += [(k.lower(), v) for k, v in summary["by_operator"].items()]
  for label, values in rows:
    if values:
      lines.append(f"{label:14}" + "".join(
          f"{values[c]:>14d}" if c == "programs" else f"{values[c]:>14.3f}"
          for c in columns))
  if summary.get("by_column"):
    lines.append(f"-- token accuracy by column (teacher-forced)\n{'':22}"
                 f"{'slots':>10}{'token':>10}")
    lines += [f"{column:22}{v['slots']:>10d}{v['token_accuracy']:>10.3f}"
              for column, v in summary["by_column"].items()]
  if summary.get("by_function_family"):
    lines.append(f"-- function slot by family of the true function\n{'':22}"
                 f"{'slots':>10}{'function':>10}{'family':>10}")
    lines += [f"{family:22}{v['slots']:>10d}{v['function_accuracy']:>10.3f}"
              f"{v['family_accuracy']:>10.3f}"
              for family, v in summary["by_function_family"].items()
              if v["slots"] or family == "all"]
  return "\n".join(lines)


def plot_by_length(summaries: dict[str, dict[str, Any]], path: str) -> None:
  """Token, exact and functional accuracy by program length, per split."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  figure, axes = pyplot.subplots(1, len(summaries), squeeze=False,
                                 figsize=(5 * len(summaries), 4))
  for axis, (name, summary) in zip(axes[0], summaries.items()):
    lengths = [int(k) for k in summary["by_length"]]
    for metric in ("token_accuracy", "exact_accuracy", "functional_accuracy",
                   "verified_functional_accuracy"):
      axis.plot(lengths, [v[metric] for v in summary["by_length"].values()],
                marker="o", label=metric.replace("_accuracy", ""))
    axis.set(title=name, xlabel="program length (instructions)",
             ylabel="accuracy", ylim=(0, 1.05))
    axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  pyplot.close(figure)


def permuted(record: records.Record) -> records.Record:
  """The record with its residual stream permuted, the same way every run."""
  rng = np.random.default_rng([PERMUTE_SEED, record.index])
  return pipeline.augment_record(record, rng, "permute")


def encode_examples(split_records: Sequence[records.Record],
                    config: ml_collections.ConfigDict, permute: bool
                    ) -> tuple[list[tuple[records.Record, dict]], int]:
  """Encoded examples (with a permuted residual stream if `permute`), and
  how many records exceeded the size limits (dropped)."""
  examples, dropped = [], 0
  for record in split_records:
    record = permuted(record) if permute else record
    try:
      examples.append((record, pipeline.encode_record(record, config)))
    except LimitExceeded:
      dropped += 1
  return examples, dropped


def read_records(path: str, split: str, num_examples: int = 0
                 ) -> Iterator[records.Record]:
  """The split's first `num_examples` records (all for 0), one at a time."""
  if not dataset.split_paths(path, split):
    return
  source = dataset.data_source(path, split)
  for i in range(min(len(source), num_examples or len(source))):
    yield records.record_from_bytes(source[i])


def evaluate_records(model, split_records: Iterator[records.Record],
                     config: ml_collections.ConfigDict,
                     options: ml_collections.ConfigDict, permute: bool
                     ) -> tuple[list[dict[str, Any]], int, int]:
  """Streams records through `evaluate_examples` a batch at a time.

  Returns the per-example results, the records read and those dropped for
  size.
  """
  results, chunk, read, dropped = [], [], 0, 0

  def flush():
    results.extend(evaluate_examples(model, chunk, config, options))
    chunk.clear()

  for record in split_records:
    read += 1
    examples, over = encode_examples([record], config, permute)
    dropped += over
    chunk.extend(examples)
    if len(chunk) == config.input.batch_size:
      flush()
  if chunk:
    flush()
  return results, read, dropped


def evaluate(workdir: str, options: ml_collections.ConfigDict
             ) -> dict[str, Any]:
  """Runs the metrics on a split; writes WORKDIR/eval/metrics.json and the
  plot; returns the metrics."""
  if options.split not in dataset.SPLITS:
    raise UserError(f"split {options.split!r} is not one of "
                    f"{dataset.SPLITS}")
  if options.num_examples < 0 or options.beam_size < 1:
    raise UserError(f"num_examples={options.num_examples} must be >= 0 and "
                    f"beam_size={options.beam_size} >= 1")
  config = checkpoints.load_config(workdir)
  path = options.data_dir or checkpoints.data_dir(config, workdir)
  if not os.path.exists(os.path.join(path, dataset.MANIFEST)):
    raise UserError(f"no dataset at {path} (--data_dir, else the run's "
                    "data_dir): evaluation reads its split from there")
  model, step = checkpoints.restore_model(config, workdir)
  summaries, dropped, counts = {}, {}, {}
  for name, permute in SPLITS:
    results, read, dropped[name] = evaluate_records(
        model, read_records(path, options.split, options.num_examples),
        config, options, permute)
    counts[name] = {"requested": options.num_examples or read, "read": read,
                    "evaluated": len(results), "dropped_for_size":
                        dropped[name]}
    summaries[name] = summarize(results)
    print(format_table(f"{options.split}, {name}, step {step}, "
                       f"beam {options.beam_size}", summaries[name]))
    print(_count_line(counts[name], options.split))
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  metrics = {"step": step, "data_dir": path, "split": options.split,
             "beam_size": options.beam_size,
             "dropped_for_size": dropped, "counts": counts, **summaries}
  with open(os.path.join(out_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f, indent=2)
  plot_by_length(summaries, os.path.join(out_dir, "accuracy_by_length.png"))
  print(f"wrote {out_dir}/metrics.json and {out_dir}/accuracy_by_length.png")
  return metrics


def _count_line(counts: dict[str, int], split: str) -> str:
  line = (f"evaluated {counts['evaluated']} of {counts['requested']} "
          f"programs")
  if counts["read"] < counts["requested"]:
    line += f" (the {split} split has only {counts['read']})"
  if counts["dropped_for_size"]:
    line += (f"; {counts['dropped_for_size']} over the encoder's size "
             "limits, dropped")
  return line
