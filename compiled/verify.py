"""Does a program compute what given tracr weights compute?

One public entry point:

    verify(program, model) -> Verification

`program` is any `tracr.rasp` SOp (`rasp_gen.convert.to_rasp` makes one of a
`Program`), `model` a tracr `AssembledTransformerModel`, a
`compiled.saved.SavedModel` or a saved file's path. The program is verified iff, on every check input, its output
(tracr's `rasp.evaluate`; raising counts as disagreeing) equals what the
WEIGHTS compute, read with the model's output decoding: typed for a
categorical output (`[0, 1]` is not `[False, True]`; a position where the
weights set no output direction reads as None, see `compiled.forward`),
within `compare.NUMERICAL_TOLERANCE` for a numerical one (`compare`), and with the same
encoding (a categorical program does not verify numerical weights).

Check inputs: every input sequence when there are at most `exhaustive_limit`
(then verified means equal on the whole input space); otherwise seeded
random ones plus each constant full-length sequence, and since those do not
cover the space, also structural evidence: the program compiles, and either
recompiles to the same params and output decoding, or its compiled residual
stream equals the given weights' on every check input up to a relabeling of
residual directions (tracr never overwrites a variable, so the final
residual holds every variable's value; equal multisets of per-position
columns mean the same variables, whatever their names). For a model in
another basis (an `unembed` matrix: rotated, mapped, noisy) the evidence is
that one linear map takes the compiled residual to the given one on every
check input.

Weights alone do not fix the function (`Map(x + 1)` and `Map(x + 2)` of the
same input compile to identical params); weights plus the typed output
decoding do, which is why the output values travel with every saved model
and record.

To check many candidates against one model (eval.py's search-and-verify),
build the weights' side once with `reference(model, inputs)` and call
`verify_against(reference, program)` per candidate.

As a command, a hypothesis check that needs no meta-model:

  python -m compiled.verify --model=MODEL.npz --program=prog.py

where prog.py binds `program` to a tracr.rasp SOp (the form `eval.py
--decompile` prints). It prints `describe`'s verdict and exits 0 when the
program is verified, 1 when it is not, 2 for an unreadable model or program.
"""

import dataclasses
import os
import sys
from typing import Any, Optional, Sequence, Union

import numpy as np
from tracr.rasp import rasp

from compiled import compare, compiler, forward
from compiled import inputs as inputs_lib
from compiled import params as params_lib
from compiled import saved
from compiled.inputs import EXHAUSTIVE_LIMIT, NUM_CHECK_INPUTS
# Residual values are compared after rounding to this many decimals: the two
# models add the same terms in a different order.
DECIMALS = 4
# A model in another basis (with an unembedding) must have a residual stream
# that one linear map of the compiled program's explains to this relative
# error: an exact basis change leaves ~1e-7, tracr's weights with N(0, σ·rms)
# noise about σ/5 (measured at σ = 1e-3 and 1e-2); a program of another
# structure misses whole directions (order 1).
LINEAR_IMAGE_TOLERANCE = 2e-2

ModelLike = Union[saved.SavedModel, str, os.PathLike, Any]


@dataclasses.dataclass(frozen=True)
class Verification:
  """The outcome of checking a program against weights.

  Attributes:
    verified: the program computes what the weights compute (module doc).
    num_inputs: check inputs looked at (with early stopping, up to and
      including the first difference).
    num_agreeing: those on which the program's output equals the weights'.
    exhaustive: the check inputs are the whole input space.
    first_difference: None, or (input, output from the weights, output from
      the program; the error's text if it raised).
    reason: why it is not verified; "" when verified.
  """

  verified: bool
  num_inputs: int
  num_agreeing: int
  exhaustive: bool
  first_difference: Optional[tuple[list, list, Any]]
  reason: str = ""


@dataclasses.dataclass(frozen=True)
class Reference:
  """What the given weights compute on the check inputs, computed once.

  Attributes:
    model: the weights and how to run and read them.
    inputs: the check inputs.
    outputs: the weights' decoded output on each input.
    exhaustive: `inputs` is the whole input space.
    columns: when not exhaustive, each input's final residual as a sorted
      multiset of columns (for residual agreement); else empty.
    residuals: when not exhaustive and the model has an unembedding (any
      basis), each input's final residual; else empty.
  """

  model: saved.SavedModel
  inputs: tuple[tuple, ...]
  outputs: tuple[list, ...]
  exhaustive: bool
  columns: tuple[np.ndarray, ...] = dataclasses.field(repr=False)
  residuals: tuple[np.ndarray, ...] = dataclasses.field(default=(),
                                                        repr=False)


def load_model(model: ModelLike, encoders: Any = None) -> saved.SavedModel:
  """A SavedModel from a tracr model, a SavedModel, a saved file's path, or
  a TransformerLens model: a HookedTransformer (anything with `.cfg` and
  `.state_dict()`), a `.pt`/`.pth` or `.safetensors` file; these need
  tracr's `encoders` (`compiled.transformer_lens.read_encoders`: a pickle
  path, the encoder objects, a dict) unless the file holds them."""
  from compiled import transformer_lens  # pylint: disable=g-import-not-at-top
  if isinstance(model, saved.SavedModel):
    return model
  if transformer_lens.is_transformer_lens_path(model):
    return transformer_lens.load(model, encoders)
  if isinstance(model, (str, os.PathLike)):
    return saved.load_compiled(model)
  if hasattr(model, "input_encoder") and hasattr(model, "params"):
    return saved.from_tracr(model)
  if hasattr(model, "cfg") and hasattr(model, "state_dict"):
    return transformer_lens.from_hooked_transformer(model, encoders)
  raise TypeError(f"cannot verify against a {type(model).__name__}: pass a "
                  "tracr AssembledTransformerModel, a compiled.saved."
                  "SavedModel, a TransformerLens HookedTransformer or the "
                  "path of a saved model (.npz, .pt, .pth, .safetensors)")


def _column_multiset(residual_TxD: np.ndarray) -> np.ndarray:
  """The residual's columns, rounded and sorted: invariant to their order."""
  rounded_TxD = np.round(residual_TxD, DECIMALS) + 0.0  # -0.0 becomes 0.0.
  order_D = np.lexsort(rounded_TxD[::-1])
  return rounded_TxD[:, order_D]


def _run(model: saved.SavedModel, inputs: Sequence[Sequence],
         residuals: Optional[list] = None) -> list[list]:
  return forward.outputs(model.params, model.num_heads, model.input_tokens,
                         model.output, inputs, model.compiler_bos,
                         model.causal, residuals)


def reference(model: ModelLike, inputs: Optional[Sequence[Sequence]] = None,
              *, exhaustive_limit: int = EXHAUSTIVE_LIMIT,
              num_random: int = NUM_CHECK_INPUTS, seed: int = 0) -> Reference:
  """Runs the weights once on the check inputs.

  `inputs` default to `inputs.check_inputs` (all inputs when at most
  `exhaustive_limit`, else `num_random` random ones from `seed` and the
  constant sequences); given inputs count as exhaustive when they cover
  every sequence of length 1..max_seq_len.

  Raises ValueError for malformed params, an unknown head count, no inputs,
  or inputs with tokens outside the vocab or longer than max_seq_len.
  """
  model = load_model(model)
  layout = params_lib.check_params(model.params)
  if model.num_heads is None:
    raise ValueError("the model does not say its number of attention heads "
                     "(tracr params do not hold it); save it with "
                     "save_compiled(path, tracr_model) or num_heads=...")
  params_lib.check_num_heads(layout, model.num_heads)
  if inputs is None:
    inputs = inputs_lib.check_inputs(np.random.default_rng(seed),
                                     list(model.vocab), model.max_seq_len,
                                     num_random, exhaustive_limit)
  inputs = tuple(tuple(xs) for xs in inputs)
  if not inputs or min(map(len, inputs)) < 1:
    raise ValueError("verification needs at least one non-empty input")
  if max(map(len, inputs)) > model.max_seq_len:
    raise ValueError(f"an input is longer than max_seq_len "
                     f"{model.max_seq_len}")
  exhaustive = len(set(inputs)) == inputs_lib.num_sequences(
      len(model.vocab), model.max_seq_len)
  residuals = []
  outputs = _run(model, inputs, residuals)
  columns = () if exhaustive else tuple(map(_column_multiset, residuals))
  any_basis = () if exhaustive or params_lib.UNEMBED not in model.params else (
      tuple(residuals))
  return Reference(model, inputs, tuple(outputs), exhaustive, columns,
                   any_basis)


def _check_sop(program: rasp.SOp) -> None:
  if not isinstance(program, rasp.SOp):
    raise TypeError(f"cannot verify a {type(program).__name__}: pass a "
                    "tracr.rasp SOp (rasp_gen.convert.to_rasp converts a "
                    "Program)")


def _same_params(got: saved.Params, expected: saved.Params) -> bool:
  if set(got) != set(expected):
    return False
  for module, module_params in expected.items():
    if set(got[module]) != set(module_params):
      return False
    for name, array in module_params.items():
      got_array = np.asarray(got[module][name])
      if got_array.shape != array.shape or not np.array_equal(got_array,
                                                              array):
        return False
  return True


def _structure_differs(ref: Reference, sop: rasp.SOp) -> Optional[str]:
  """Why the program's compiled weights do not match the given ones on the
  (non-exhaustive) check inputs, or None when they do."""
  model = ref.model
  try:
    compiled = compiler.compile_rasp_to_model_numpy(
        sop, set(model.vocab), model.max_seq_len, model.causal,
        model.compiler_bos, model.compiler_pad, model.mlp_exactness)
  except Exception:  # pylint: disable=broad-except
    return "does not compile"  # tracr raises many kinds of error.
  if compiled.output_decoding == model.output and _same_params(
      compiled.params, model.params):
    return None
  residuals = []
  forward.outputs(compiled.params, compiled.num_heads, compiled.input_tokens,
                  compiled.output_decoding, ref.inputs, model.compiler_bos,
                  model.causal, residuals)
  if params_lib.UNEMBED in model.params:
    return _not_a_linear_image(residuals, ref.residuals)
  if (compiled.params["token_embed"]["embeddings"].shape
      != model.params["token_embed"]["embeddings"].shape):
    return "compiled residual stream differs (another width)"
  for residual_TxD, expected in zip(residuals, ref.columns):
    if not np.array_equal(_column_multiset(residual_TxD), expected):
      return "compiled residual stream differs"
  return None


def _not_a_linear_image(compiled_residuals: list,
                        given_residuals: Sequence[np.ndarray]
                        ) -> Optional[str]:
  """Why the given residual stream (in any basis: the model has an
  unembedding) and the compiled program's are not linear images of each
  other on the check inputs, or None when they are: a basis change of
  tracr's residual maps every position's residual by one matrix."""
  compiled_NxC = np.concatenate(compiled_residuals).astype(np.float64)
  given_NxD = np.concatenate(given_residuals).astype(np.float64)
  for source, target in ((compiled_NxC, given_NxD), (given_NxD,
                                                     compiled_NxC)):
    # The normal equations: many positions, few dimensions (a pseudo-inverse
    # of the small Gram matrix for a rank-deficient stream).
    solution = np.linalg.pinv(source.T @ source) @ (source.T @ target)
    error = np.linalg.norm(source @ solution - target)
    if error > LINEAR_IMAGE_TOLERANCE * max(np.linalg.norm(target), 1e-30):
      return ("compiled residual stream differs (no linear map takes one "
              "to the other)")
  return None


def verify_against(ref: Reference, program: rasp.SOp,
                   stop_early: bool = True) -> Verification:
  """Checks `program` against the weights' outputs in `ref` (module doc).

  With `stop_early` the comparison ends at the first difference (the
  counts then cover the inputs looked at); otherwise every input is run.
  """
  fail = lambda reason, checked=0, agreeing=0, first=None: Verification(
      False, checked, agreeing, ref.exhaustive, first, reason)
  _check_sop(program)
  numerical = ref.model.output.numerical
  if rasp.is_numerical(program) != numerical:
    return fail("output encoding differs: the weights' output is "
                f"{'numerical' if numerical else 'categorical'}")
  checked, agreeing, first = compare.compare(
      program, ref.inputs, ref.outputs, numerical, stop_early)
  if first is not None:
    reason = ("program fails on an input" if isinstance(first[2], str)
              else "output values differ")
    return fail(reason, checked, agreeing, first)
  if not ref.exhaustive:
    reason = _structure_differs(ref, program)
    if reason is not None:
      return fail(reason, checked, agreeing)
  return Verification(True, checked, agreeing, ref.exhaustive, None)


def describe(result: Verification) -> str:
  """The verdict in words: verified or not, on how many inputs, and the
  first input on which the program and the weights disagree."""
  scope = ("every input" if result.exhaustive
           else "random check inputs plus the compiled structure")
  if result.verified:
    return (f"verified: the program's output equals the weights' on all "
            f"{result.num_inputs} inputs ({scope})")
  lines = [f"NOT verified: {result.reason}"]
  if result.num_inputs:
    lines.append(f"  agrees with the weights on {result.num_agreeing} of "
                 f"{result.num_inputs} check inputs ({scope})")
  if result.first_difference is not None:
    xs, expected, got = result.first_difference
    lines.append(f"  first differing input: {list(xs)}")
    lines.append(f"    the weights give:   {list(expected)}")
    lines.append(f"    the program gives:  "
                 f"{got if isinstance(got, str) else list(got)}")
  return "\n".join(lines)


def verify(program: rasp.SOp, model: ModelLike, *,
           exhaustive_limit: int = EXHAUSTIVE_LIMIT,
           num_random: int = NUM_CHECK_INPUTS, seed: int = 0) -> Verification:
  """Does `program` compute what `model`'s weights compute? (module doc)

  Runs every check input, so the counts are complete. Raises ValueError for
  a model that cannot be read or run (see `reference`), TypeError for
  arguments of other types.
  """
  return verify_against(
      reference(model, exhaustive_limit=exhaustive_limit,
                num_random=num_random, seed=seed),
      program, stop_early=False)


def load_program(path: Union[str, os.PathLike]) -> rasp.SOp:
  """The SOp bound to `program` by the Python file at `path`.

  Raises ValueError when the file does not run or binds no SOp `program`.
  """
  import runpy  # pylint: disable=g-import-not-at-top
  try:
    namespace = runpy.run_path(os.fspath(path))
  except FileNotFoundError:
    raise ValueError(f"{path}: no such file") from None
  except Exception as error:  # pylint: disable=broad-except
    raise ValueError(f"{path}: running it failed: {type(error).__name__}: "
                     f"{error}") from error
  program = namespace.get("program")
  if not isinstance(program, rasp.SOp):
    raise ValueError(f"{path} must bind `program` to a tracr.rasp SOp, got "
                     f"{type(program).__name__}")
  return program


def _main(argv: list[str]) -> None:
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    program = load_program(flags.FLAGS.program)
    model = load_model(flags.FLAGS.model, flags.FLAGS.encoders)
    for note in model.inferred:
      print(f"inferred: {note}")
    result = verify(program, model,
                    exhaustive_limit=flags.FLAGS.exhaustive_limit,
                    num_random=flags.FLAGS.num_check_inputs,
                    seed=flags.FLAGS.seed)
  except (ValueError, FileNotFoundError) as error:
    print(f"error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None
  print(describe(result))
  raise SystemExit(0 if result.verified else 1)


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("model", None, "A saved tracr model (.npz written by "
                      "compiled.saved.save_compiled), or a TransformerLens "
                      "HookedTransformer file (.pt/.pth torch.save of the "
                      "module or its state_dict, .safetensors + config "
                      "JSON) with --encoders.")
  flags.DEFINE_string("encoders", None, "With a TransformerLens model "
                      "(.pt/.pth/.safetensors): a pickle of tracr's "
                      "input_encoder and output_encoder (a dict, a pair or "
                      "one encoder), read without running code from it.")
  flags.DEFINE_string("program", None, "A Python file that binds `program` "
                      "to a tracr.rasp SOp, e.g. what eval.py --decompile "
                      "prints.")
  flags.DEFINE_integer("exhaustive_limit", EXHAUSTIVE_LIMIT, "Check every "
                       "input sequence when there are at most this many.")
  flags.DEFINE_integer("num_check_inputs", NUM_CHECK_INPUTS, "Otherwise this many "
                       "random inputs (plus the constant sequences and the "
                       "compiled structure).")
  flags.DEFINE_integer("seed", 0, "Seed of the random check inputs.")
  flags.mark_flags_as_required(["model", "program"])
  app.run(_main)
