r"""Decompiles tracr's own library programs, compiled by stock tracr.

  python bench/lib_programs.py [--workdir=DIR] [--beam_size=32] [--out=FILE.md]

Every program in `LIB_PROGRAMS` (tracr.compiler.lib, each with its own
vocabulary and max_seq_len) is compiled by stock
`compiling.compile_rasp_to_model(..., compiler_bos="BOS")` and the
AssembledTransformerModel is decompiled by the meta-model in DIR, restored
once (`meta_model.decompiler.load(DIR).decompile(model)`). Two questions per
program:

  verified    `Decompilation.verified` (`compiled.verify`): the decompiled
              program computes what the weights compute;
  functional  the decompiled program gives the library program's outputs
              (tracr's RASP evaluator) on every check input: all inputs when
              there are at most --exhaustive_limit, else --num_check_inputs
              random ones. Inputs the library program itself fails on are
              skipped.

A program stock tracr cannot compile, or whose weights the meta-model cannot
read (over its limits, or tokens a saved model cannot hold) is a row with
the message, not a crash. The
markdown table goes to stdout and, with --out, to a file. `seconds` is the
decompile (beam search, search-and-verify) plus both checks, not tracr's
compile; it includes jax compiling the decoder the first time a weight-shape
bucket is seen, so early rows can be slower.
"""

import dataclasses
import time
from typing import Any, Callable, Optional, Sequence

import ml_collections
import numpy as np
from absl import app, flags, logging
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

from compiled import inputs as inputs_lib
from encoding.vocabulary import NA, PAD, PROGRAM_END, PROGRAM_START
from meta_model import decompiler as decompiler_lib
from meta_model import search
from meta_model.errors import UserError
from rasp_gen import functional

_T = rasp.tokens
_INDICES = rasp.indices


@dataclasses.dataclass(frozen=True)
class LibProgram:
  """A library program as a user would compile it."""

  name: str  # How it is written, e.g. "make_hist()".
  build: Callable[[], rasp.SOp]
  vocab: tuple
  max_seq_len: int

  @property
  def function(self) -> str:
    """The lib function's name: what --programs selects by."""
    return self.name.split("(")[0]


_LETTERS = ("a", "b", "c")
_PARENS = ("(", ")")

# Each library program once, with its natural vocabulary. The last entry is
# one stock tracr refuses (tokens must be categorical), kept to show it.
LIB_PROGRAMS: tuple[LibProgram, ...] = (
    LibProgram("make_length()", lib.make_length, _LETTERS, 5),
    LibProgram("make_hist()", lib.make_hist, (1, 2, 3, 4), 5),
    LibProgram("make_reverse(tokens)", lambda: lib.make_reverse(_T), _LETTERS,
               5),
    LibProgram("make_sort_unique(tokens, tokens)",
               lambda: lib.make_sort_unique(_T, _T), (1, 2, 3, 4, 5), 5),
    LibProgram("make_sort(tokens, tokens, max_seq_len=5, min_key=1)",
               lambda: lib.make_sort(_T, _T, max_seq_len=5, min_key=1),
               (1, 2, 3, 4), 5),
    LibProgram("make_sort_freq(max_seq_len=5)",
               lambda: lib.make_sort_freq(5), (1, 2, 3), 5),
    LibProgram("make_frac_prevs(tokens == 'x')",
               lambda: lib.make_frac_prevs(_T == "x"), ("x", "y"), 5),
    LibProgram("shift_by(1, tokens)", lambda: lib.shift_by(1, _T), (1, 2, 3),
               5),
    LibProgram("make_pair_balance(tokens, '(', ')')",
               lambda: lib.make_pair_balance(_T, "(", ")"), _PARENS, 6),
    LibProgram("make_shuffle_dyck(['()'])",
               lambda: lib.make_shuffle_dyck(["()"]), _PARENS, 6),
    LibProgram("make_shuffle_dyck2()", lib.make_shuffle_dyck2,
               ("(", ")", "{", "}"), 4),
    LibProgram("detect_pattern(tokens, 'abc')",
               lambda: lib.detect_pattern(_T, "abc"), _LETTERS, 5),
    LibProgram("make_count_less_freq(2)", lambda: lib.make_count_less_freq(2),
               _LETTERS, 5),
    LibProgram("make_count(tokens, 'a')", lambda: lib.make_count(_T, "a"),
               _LETTERS, 5),
    LibProgram("make_nary_sequencemap(lambda x, y, z: x + y - z, tokens, "
               "tokens, indices)",
               lambda: lib.make_nary_sequencemap(lambda x, y, z: x + y - z,
                                                 _T, _T, _INDICES),
               (1, 2, 3), 4),
    LibProgram("make_frac_prevs(tokens)", lambda: lib.make_frac_prevs(_T),
               (False, True), 5),
)


@dataclasses.dataclass
class Row:
  """One table row. `verified`/`functional` are None when nothing was
  decompiled; `message` then says why (compile, save or limit failure)."""

  program: str
  vocab: tuple
  max_seq_len: int
  layers: Optional[int] = None
  d_model: Optional[int] = None
  decompiled: str = ""
  verified: Optional[bool] = None
  functional: Optional[bool] = None
  seconds: Optional[float] = None
  message: str = ""
  source: str = ""  # "weights" (read off them) or "meta-model".


def short_rows(rows: list[list[str]]) -> str:
  """`SELECT PRED_EQ tokens tokens v1; SELECTOR_WIDTH v1 v2`."""
  return "; ".join(" ".join(name for name in row if name != NA)
                   for row in rows
                   if row[0] not in (PROGRAM_START, PROGRAM_END, PAD))


def run_one(entry: LibProgram, decompiler: decompiler_lib.Decompiler,
            options: ml_collections.ConfigDict) -> Row:
  """Compiles, decompiles and checks one library program."""
  row = Row(entry.name, entry.vocab, entry.max_seq_len)
  try:
    sop = entry.build()
    model = compiling.compile_rasp_to_model(sop, set(entry.vocab),
                                            entry.max_seq_len,
                                            compiler_bos="BOS")
  except Exception as e:  # pylint: disable=broad-except
    # Stock tracr raises many types (NotImplementedError, TypeError, ...).
    row.message = f"stock tracr cannot compile it: {type(e).__name__}: {e}"
    return row
  row.layers = model.model_config.num_layers
  row.d_model = int(model.params["token_embed"]["embeddings"].shape[1])
  start = time.perf_counter()
  try:
    result = decompiler.decompile(
        model, beam_size=options.beam_size,
        exhaustive_limit=options.exhaustive_limit,
        num_check_inputs=options.num_check_inputs,
        read_weights=options.read_weights)
  except UserError as e:  # Over the meta-model's limits, unsavable tokens.
    row.message = str(e)
    return row
  row.decompiled = short_rows(result.rows)
  row.source = result.source
  if result.program is None:
    row.decompiled = f"(undecodable) {row.decompiled}"
    row.verified = row.functional = False
  else:
    row.verified = result.verified
    inputs = inputs_lib.check_inputs(
        np.random.default_rng(0), inputs_lib.sorted_vocab(entry.vocab),
        entry.max_seq_len, options.num_check_inputs, options.exhaustive_limit)
    row.functional = functional.same_function(result.program, sop, inputs)
  row.seconds = time.perf_counter() - start
  return row


def run(workdir: str, programs: Sequence[LibProgram],
        options: ml_collections.ConfigDict) -> list[Row]:
  """A row per program, in order; the meta-model is restored once.

  `options`: beam_size, num_check_inputs, exhaustive_limit, read_weights.
  """
  decompiler = (decompiler_lib.load(workdir) if workdir
                else decompiler_lib.Decompiler())
  return [run_one(entry, decompiler, options) for entry in programs]


def _yes_no(value: Optional[bool]) -> str:
  return "—" if value is None else ("yes" if value else "no")


def _shortened(text: str, limit: int = 160) -> str:
  """Tables can be long; the table shows their start."""
  return text if len(text) <= limit else text[:limit] + " …"


def format_table(rows: Sequence[Row]) -> str:
  """The markdown table, then a line counting verified and right rows."""
  lines = ["| program | vocab | max_seq_len | layers | d_model | decompiled "
           "| by | verified | functional | seconds |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    cells = [f"`{r.program}`",
             "{" + ", ".join(str(t) for t in r.vocab) + "}",
             str(r.max_seq_len),
             "—" if r.layers is None else str(r.layers),
             "—" if r.d_model is None else str(r.d_model),
             r.message or f"`{_shortened(r.decompiled)}`", r.source or "—",
             _yes_no(r.verified), _yes_no(r.functional),
             "—" if r.seconds is None else f"{r.seconds:.1f}"]
    lines.append("| " + " | ".join(" ".join(c.split()).replace("|", "\\|")
                                   for c in cells) + " |")
  decompiled = [r for r in rows if r.verified is not None]
  lines.append(f"\n{len(decompiled)} of {len(rows)} programs decompiled; "
               f"verified {sum(r.verified for r in decompiled)}, "
               f"functionally right {sum(r.functional for r in decompiled)}.")
  return "\n".join(lines)


def select(names: Sequence[str], programs: Sequence[LibProgram] = LIB_PROGRAMS
           ) -> tuple[LibProgram, ...]:
  """The entries of `programs` whose lib function (`LibProgram.function`)
  is in `names` (all for an empty list)."""
  known = {entry.function for entry in programs}
  unknown = sorted(set(names) - known)
  if unknown:
    raise ValueError(f"unknown programs {unknown}; known: {sorted(known)}")
  return tuple(e for e in programs if not names or e.function in names)


_PROGRAMS_HELP = ("Only these lib functions (e.g. make_hist,shift_by); "
                  "default: all of LIB_PROGRAMS.")


def define_flags(programs_help: str = _PROGRAMS_HELP) -> None:
  """This script's flags; another program list's script (e.g.
  realistic_programs.py) passes its own help for --programs."""
  flags.DEFINE_string("workdir", None, "A train.py workdir: the meta-model "
                      "(config.json and latest checkpoint) that decompiles "
                      "where the read-out does not verify; none: the "
                      "read-out alone.")
  flags.DEFINE_integer("beam_size", search.BEAM_SIZE, "Beam candidates for "
                       "search-and-verify decoding (Decompiler.decompile).")
  flags.DEFINE_bool("read_weights", True, "Try the program read straight "
                    "off the weights (readout) first, as "
                    "Decompiler.decompile does; --noread_weights measures the "
                    "meta-model alone.")
  flags.DEFINE_string("out", None, "Also write the markdown table to this "
                      "file.")
  flags.DEFINE_list("programs", [], programs_help)
  flags.DEFINE_integer("num_check_inputs", inputs_lib.NUM_CHECK_INPUTS, "Random check inputs (for "
                       "the decompiler's verification and the functional "
                       "check) "
                       "when there are more than --exhaustive_limit inputs.")
  flags.DEFINE_integer("exhaustive_limit", inputs_lib.EXHAUSTIVE_LIMIT, "Check on every input "
                       "sequence when there are at most this many.")


def main_for(argv: list[str], programs: Sequence[LibProgram]) -> None:
  """The script's main for a program list: decompiles the --programs among
  `programs` with the meta-model in --workdir and prints the table (and
  writes it to --out). Needs `define_flags`."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  options = ml_collections.ConfigDict({
      "beam_size": flags.FLAGS.beam_size,
      "num_check_inputs": flags.FLAGS.num_check_inputs,
      "exhaustive_limit": flags.FLAGS.exhaustive_limit,
      "read_weights": flags.FLAGS.read_weights})
  rows = run(flags.FLAGS.workdir, select(flags.FLAGS.programs, programs),
             options)
  table = format_table(rows)
  meta_model = flags.FLAGS.workdir or "none (the read-out alone)"
  print(f"meta-model: {meta_model}, beam {options.beam_size}, "
        f"read off the weights first: {options.read_weights}\n")
  print(table)
  if flags.FLAGS.out:
    with open(flags.FLAGS.out, "w") as f:
      f.write(table + "\n")


def main(argv: list[str]) -> None:
  main_for(argv, LIB_PROGRAMS)


if __name__ == "__main__":
  define_flags()
  app.run(main)
