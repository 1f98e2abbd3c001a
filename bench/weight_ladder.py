r"""The decompiler on the weight ladder: tracr's weights moved by maps that
leave the function unchanged (and by noise), rung by rung.

  python bench/weight_ladder.py [--sets=lib,realistic,sampled] [--rungs=R0,R1,...]
      [--num_sampled=40] [--seed=0] [--workdir=DIR] [--out=FILE.md]
      [--json_out=FILE.json]

Sets: tracr's lib.py programs (bench/lib_programs.py, compiled by stock
tracr), the held-out realistic programs (bench/realistic_programs.py,
stock tracr) and --num_sampled programs drawn by `rasp_gen.sampler` with
configs/data.py's sampler from seed `SAMPLED_SEED` (no dataset uses that
seed; nothing is tuned on these). Each model is moved to each rung by
`ladder.rungs.rung(model, rung, seed)` with a seed derived from --seed
and the program's set and name (`case_seed`), so every number here is
reproducible, also for one program picked by --programs.

Decompilers: the read-out alone (`decompile(model)`); with --workdir (a
train.py run) also its meta-model alone (beam search and verify,
`read_weights=False`) and the decompiler (the read-out, then the
meta-model where it does not verify), each on the same moved weights.

Per (set, rung, decompiler), over the programs stock tracr compiles:

  kept        the moved weights agree with the program on >= 99 % of the
              check inputs (R0-R2 always: they compute the same function);
  read        the decompiler returns a program (no refusal);
  functional  that program gives the original program's outputs on every
              check input;
  verified    it equals the moved weights' output on every check input
              (`compiled.verify`);
  agreement   mean share of check inputs where the decompiled program and
              the weights agree (0 for a refusal);
  wrong       verified, not functional, and the weights themselves compute
              the program on every check input: must stay 0;
  weights-only  verified, not functional, and the weights differ from the
              program somewhere (the decompiler is right about the weights);
  s/model     mean seconds of one decompile (read + verify);
  gen s       mean seconds to make one moved model (R4/R5 train one),
              over all programs, kept or not.

Check inputs: every input when there are at most --exhaustive_limit, else
--num_check_inputs random ones from seed 0 plus the constant sequences.
"""

import dataclasses
import importlib.util
import json
import os
import sys
import time
import zlib
from typing import Any, Optional, Sequence

import numpy as np
from absl import app, flags, logging
from tracr.compiler import compiling

from compiled import compare, forward, saved
from compiled import inputs as inputs_lib
from compiled.compiler import COMPILER_BOS, COMPILER_PAD
from ladder import rungs
from meta_model import decompiler as decompiler_lib
from meta_model.errors import UserError
from rasp_gen import functional, sampler
from configs import data as data_config


def _load_bench_script(name: str):
  """A sibling bench script (bench/ is not a package), imported once."""
  if name not in sys.modules:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[name])
  return sys.modules[name]


realistic_programs = _load_bench_script("realistic_programs")
lib_programs = realistic_programs.lib_programs

SAMPLED_SEED = 20261202  # Used by no dataset.
KEEP_AGREEMENT = 0.99


@dataclasses.dataclass(frozen=True)
class Case:
  """One program's R0 weights and what they are checked against."""

  set_name: str
  name: str
  sop: Any  # The original tracr.rasp program.
  model: saved.SavedModel
  inputs: tuple[tuple, ...]


@dataclasses.dataclass
class Result:
  set_name: str
  name: str
  rung: str
  decompiler: str
  kept: bool
  weights_exact: bool = False
  read: bool = False
  functional: bool = False
  verified: bool = False
  agreement: float = 0.0
  seconds: float = 0.0
  generation_seconds: float = 0.0
  message: str = ""


def _check_inputs(vocab: Sequence, max_seq_len: int, options) -> tuple:
  return tuple(tuple(xs) for xs in inputs_lib.check_inputs(
      np.random.default_rng(0), inputs_lib.sorted_vocab(vocab), max_seq_len,
      options.num_check_inputs, options.exhaustive_limit))


def stock_cases(set_name: str, programs: Sequence[Any], options) -> list[Case]:
  """The programs stock tracr compiles, as models."""
  cases = []
  for entry in programs:
    try:
      sop = entry.build()
      model = saved.from_tracr(compiling.compile_rasp_to_model(
          sop, set(entry.vocab), entry.max_seq_len, compiler_bos="BOS"))
    except Exception:  # pylint: disable=broad-except
      continue  # Stock tracr raises many kinds of error.
    cases.append(Case(set_name, entry.name, sop, model,
                      _check_inputs(entry.vocab, entry.max_seq_len, options)))
  return cases


def sampled_cases(count: int, options) -> list[Case]:
  """`count` programs of configs/data.py's sampler from `SAMPLED_SEED`."""
  from rasp_gen import convert  # pylint: disable=g-import-not-at-top
  config = data_config.get_config().sampler
  cases = []
  for index in range(count):
    sample = sampler.sample_program(sampler.sampler_rng(SAMPLED_SEED, index),
                                    config)
    compiled = sample.compiled
    model = saved.SavedModel(
        compiled.params, tuple(sorted(sample.vocab)), sample.max_seq_len,
        COMPILER_BOS, COMPILER_PAD, compiled.num_heads, False,
        compiled.output_decoding)
    cases.append(Case("sampled", f"sampled[{index}]",
                      convert.to_rasp(sample.program), model,
                      _check_inputs(sample.vocab, sample.max_seq_len,
                                    options)))
  return cases


def _outputs(model: saved.SavedModel, inputs: Sequence[tuple]) -> list:
  return forward.outputs(model.params, model.num_heads, model.input_tokens,
                         model.output, inputs, model.compiler_bos,
                         model.causal)


def _agreement(sop, inputs, outputs, numerical: bool) -> float:
  checked, agreeing, _ = compare.compare(sop, inputs, outputs, numerical,
                                         stop_early=False)
  return agreeing / max(checked, 1)


def case_seed(case: Case, seed: int) -> int:
  """The ladder seed of one program: from --seed and its set and name."""
  return seed * 2**32 + zlib.crc32(f"{case.set_name}/{case.name}".encode())


READ_OUT, META_MODEL, DECOMPILER = "read-out", "meta-model", "decompiler"


def run_case(case: Case, rung: str, seed: int,
             decompilers: dict[str, Any]) -> list[Result]:
  """Moves `case` to `rung` and decompiles it with each of `decompilers`
  (name -> a function of the moved weights), checking every answer."""
  start = time.perf_counter()
  moved = rungs.rung(case.model, rung, seed)
  generation_seconds = time.perf_counter() - start
  numerical = case.model.output.numerical
  weights_outputs = _outputs(moved, case.inputs)
  program_agreement = _agreement(case.sop, case.inputs, weights_outputs,
                                 numerical)
  results = []
  for name, decompile in decompilers.items():
    result = Result(case.set_name, case.name, rung, name,
                    kept=program_agreement >= KEEP_AGREEMENT,
                    weights_exact=program_agreement == 1.0,
                    generation_seconds=generation_seconds)
    results.append(result)
    if not result.kept:
      continue
    start = time.perf_counter()
    try:
      decompiled = decompile(moved)
    except UserError as error:
      result.seconds = time.perf_counter() - start
      result.message = str(error)[:160]
      continue
    result.seconds = time.perf_counter() - start
    result.read = decompiled.program is not None
    result.verified = decompiled.verified
    if result.read:
      result.agreement = _agreement(decompiled.program, case.inputs,
                                    weights_outputs, numerical)
      result.functional = functional.same_function(
          decompiled.program, case.sop, [list(xs) for xs in case.inputs])
  return results


def make_decompilers(options) -> dict[str, Any]:
  """The decompilers to compare: the read-out; with --workdir also the
  meta-model alone and the two combined."""
  check = dict(exhaustive_limit=options.exhaustive_limit,
               num_check_inputs=options.num_check_inputs)
  read_out = decompiler_lib.Decompiler()
  decompilers = {READ_OUT: lambda model: read_out.decompile(model, **check)}
  if options.workdir:
    meta = decompiler_lib.load(options.workdir)
    decompilers[META_MODEL] = lambda model: meta.decompile(
        model, read_weights=False, beam_size=options.beam_size, **check)
    decompilers[DECOMPILER] = lambda model: meta.decompile(
        model, beam_size=options.beam_size, **check)
  return decompilers


def summarize(results: Sequence[Result]) -> dict[str, Any]:
  kept = [r for r in results if r.kept]
  count = lambda test: sum(1 for r in kept if test(r))
  return {
      "programs": len(results), "kept": len(kept),
      "read": count(lambda r: r.read),
      "functional": count(lambda r: r.functional),
      "verified": count(lambda r: r.verified),
      "agreement": float(np.mean([r.agreement for r in kept])) if kept
                   else 0.0,
      "wrong": count(lambda r: r.verified and not r.functional
                     and r.weights_exact),
      "weights_only": count(lambda r: r.verified and not r.functional
                            and not r.weights_exact),
      "seconds": float(np.mean([r.seconds for r in kept])) if kept else 0.0,
      "generation_seconds": float(np.mean(
          [r.generation_seconds for r in results])) if results else 0.0,
  }


def format_table(summaries: dict[tuple[str, str, str], dict[str, Any]]
                 ) -> str:
  lines = ["| set | rung | decompiler | kept | read | functional | verified "
           "| agreement | wrong | weights-only | s/model | gen s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for (set_name, rung, decompiler), s in summaries.items():
    lines.append(
        f"| {set_name} | {rung} | {decompiler} | {s['kept']}/{s['programs']} "
        f"| {s['read']} "
        f"| {s['functional']} | {s['verified']} | {s['agreement']:.3f} "
        f"| {s['wrong']} | {s['weights_only']} | {s['seconds']:.2f} "
        f"| {s['generation_seconds']:.2f} |")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  options = flags.FLAGS
  unknown = set(options.rungs) - set(rungs.RUNGS)
  if unknown:
    raise app.UsageError(f"unknown rungs {sorted(unknown)}; known: "
                         f"{rungs.RUNGS}")
  cases: list[Case] = []
  for set_name in options.sets:
    if set_name == "lib":
      cases += stock_cases("lib", lib_programs.LIB_PROGRAMS, options)
    elif set_name == "realistic":
      cases += stock_cases("realistic", realistic_programs.REALISTIC_PROGRAMS,
                           options)
    elif set_name == "sampled":
      cases += sampled_cases(options.num_sampled, options)
    else:
      raise app.UsageError(f"unknown set {set_name!r}")
  if options.programs:
    cases = [c for c in cases if c.name.split("(")[0] in options.programs]
  decompilers = make_decompilers(options)
  results: list[Result] = []
  for case in cases:
    for rung in options.rungs:
      for result in run_case(case, rung, case_seed(case, options.seed),
                             decompilers):
        results.append(result)
        print(f"{case.set_name:9} {rung:13} {result.decompiler:10} "
              f"{case.name[:36]:36} kept={result.kept:d} "
              f"read={result.read:d} functional={result.functional:d} "
              f"verified={result.verified:d} "
              f"agreement={result.agreement:.3f} {result.seconds:5.2f}s "
              f"{result.message[:70]}", flush=True)
  summaries = {}
  for set_name in options.sets:
    for rung in options.rungs:
      for name in decompilers:
        summaries[(set_name, rung, name)] = summarize(
            [r for r in results if (r.set_name, r.rung, r.decompiler)
             == (set_name, rung, name)])
  table = format_table(summaries)
  print("\n" + table)
  if options.out:
    with open(options.out, "w") as f:
      f.write(table + "\n")
  if options.json_out:
    with open(options.json_out, "w") as f:
      json.dump({"results": [dataclasses.asdict(r) for r in results],
                 "summaries": {f"{s} {r} {d}": v
                               for (s, r, d), v in summaries.items()}},
                f, indent=1)


if __name__ == "__main__":
  flags.DEFINE_list("sets", ["lib", "realistic", "sampled"], "Program sets: "
                    "lib (tracr's lib.py), realistic (the held-out set), "
                    "sampled (--num_sampled drawn by the sampler).")
  flags.DEFINE_list("rungs", list(rungs.RUNGS), "Ladder rungs "
                    "(ladder.rungs.RUNGS).")
  flags.DEFINE_list("programs", [], "Only these programs (lib function or "
                    "realistic name, or sampled[i]); default all.")
  flags.DEFINE_integer("num_sampled", 40, "Programs drawn for the sampled "
                       "set.")
  flags.DEFINE_integer("seed", 0, "Seed of the ladder's maps and noise.")
  flags.DEFINE_integer("num_check_inputs", inputs_lib.NUM_CHECK_INPUTS,
                       "Random check inputs when there are more than "
                       "--exhaustive_limit.")
  flags.DEFINE_integer("exhaustive_limit", inputs_lib.EXHAUSTIVE_LIMIT,
                       "Check every input when there are at most this many.")
  flags.DEFINE_string("workdir", None, "A train.py run: also compare its "
                      "meta-model alone and the decompiler (read-out, then "
                      "meta-model).")
  flags.DEFINE_integer("beam_size", 32, "The meta-model's beam width.")
  flags.DEFINE_string("out", None, "Also write the markdown table here.")
  flags.DEFINE_string("json_out", None, "Write every result and the "
                      "summaries as JSON here.")
  app.run(main)
