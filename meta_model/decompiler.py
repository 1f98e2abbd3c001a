"""From tracr weights to a verified, runnable RASP program.

  from meta_model.decompiler import decompile
  result = decompile(tracr_model)                 # or a saved .npz path
  result.verified, result.program, print(result.python)
  print(result.report())                          # rows, source, evidence

`decompile` (and `Decompiler()`, no arguments) reads the program straight
off the weights (`readout`: tracr's recipes fix the dataflow and every
function's table) and verifies it; no training, no checkpoint (15 of 15
tracr lib programs, 97-100 % of sampled ones: README).

A trained meta-model is an optional addition, used only when the read-out
does not verify:

  d = decompiler.load("/tmp/inverse_tracr")      # restore + build, once
  result = d.decompile(tracr_model, beam_size=8)

`load` rebuilds the meta-model from a train.py workdir's config.json and
latest checkpoint. The beam search is jitted once per beam size and
weight-shape bucket and reused by every later `decompile` call. When the
read-out does not verify, it encodes the weights (in any residual basis,
as the read-out's basis pass sees them in tracr's: `Decompiler.encode`),
runs the beam search and checks the candidates best first with
`compiled.verify` (the same check inputs as `verify.verify(program,
model)` with the same options), returning
the best verified candidate (and the other verified ones), or, when none
verifies, the best one with the evidence against it.

Weights that cannot be read raise `errors.UserError` (a ValueError) with one
line naming the problem: not a saved model, not tracr params, weights the
read-out cannot read (without a meta-model), and with a meta-model a causal
model or a size over the trained limits (the limit and the value).
"""

import dataclasses
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tracr.rasp import rasp

from compiled import inputs
from compiled import params as params_lib
from compiled import saved, verify
import readout
from encoding import pipeline, tokens
from encoding.limits import LimitExceeded
from encoding.vocabulary import PAD
from meta_model import build, checkpoints, decode, quiet, search
from meta_model.errors import UserError
from rasp_gen import convert
from rasp_gen.program import function_text


@dataclasses.dataclass(frozen=True)
class Decompilation:
  """A decompiled program and the evidence for it.

  Attributes:
    program: the chosen program as a `tracr.rasp` SOp (variables v1, v2,
      ...); None when no beam candidate decodes to a program.
    rows: its rows as token names (operator, arg1, arg2, arg3, return var),
      PROGRAM_START to PROGRAM_END.
    python: runnable tracr.rasp source binding `program` ("" if none).
    verified: the program computes what the weights compute
      (`compiled.verify`).
    evidence: the verification: `num_inputs`, `num_agreeing`, `exhaustive`,
      `first_difference` (input, from the weights, from the program) and
      `reason` (when no candidate decodes: nothing checked, and the reason
      says so).
    others: the beam's other verified programs, best first, as SOps.
    others_python: their sources.
    source: "weights" (read off the weights, `readout`; rows are
      then the instructions, tables printed in full) or "meta-model".
  """

  program: Optional[rasp.SOp]
  rows: tuple[tuple[str, ...], ...]
  python: str
  verified: bool
  evidence: verify.Verification
  others: tuple[rasp.SOp, ...] = ()
  others_python: tuple[str, ...] = ()
  source: str = "meta-model"

  @property
  def agreement(self) -> float:
    """Share of the check inputs on which the output is the weights'."""
    e = self.evidence
    return e.num_agreeing / e.num_inputs if e.num_inputs else 0.0

  def report(self) -> str:
    """Rows, source and verdict, as `eval.py --decompile` prints them."""
    if self.source == "weights":  # Instructions, tables in full.
      lines = [" ".join(row) for row in self.rows]
    else:  # Token rows, as columns.
      width = max(len(name) for row in self.rows for name in row)
      lines = [" ".join(f"{name:{width}}" for name in row).rstrip()
               for row in self.rows]
    if self.python:
      lines += ["", self.python.rstrip()]
    lines.append("")
    lines.append(verify.describe(self.evidence))
    for source in self.others_python:
      lines += ["", "another verified candidate:", source.rstrip()]
    return "\n".join(lines)

  def to_json(self) -> dict[str, Any]:
    """The result as JSON-ready values."""
    e = self.evidence
    plain = lambda xs: [x.item() if isinstance(x, np.generic) else x
                        for x in xs]
    first = None if e.first_difference is None else {
        "input": plain(e.first_difference[0]),
        "weights": plain(e.first_difference[1]),
        "program": (e.first_difference[2] if isinstance(
            e.first_difference[2], str) else plain(e.first_difference[2]))}
    return {"rows": [list(r) for r in self.rows], "python": self.python,
            "verified": self.verified, "agreement": self.agreement,
            "num_inputs": e.num_inputs, "num_agreeing": e.num_agreeing,
            "exhaustive": e.exhaustive, "reason": e.reason,
            "first_difference": first, "source": self.source,
            "others_python": list(self.others_python)}


def _beam_search(graphdef: nnx.GraphDef, state: nnx.State, batch: dict,
                 start_row: jax.Array, *, beam_size: int, end_id: int,
                 pad_id: int) -> jax.Array:
  model = nnx.merge(graphdef, state)
  beams_BxKxRx5, _ = decode.beam_search(model, batch, start_row,
                                        beam_size=beam_size, end_id=end_id,
                                        pad_id=pad_id)
  return beams_BxKxRx5


class Decompiler:
  """Decompiles tracr models: the read-out, then (when one is given and the
  read-out does not verify) a trained meta-model (module doc).

  `Decompiler()` has no meta-model; `load(workdir)` builds one with it.
  """

  def __init__(self, config: Optional[ml_collections.ConfigDict] = None,
               model: Optional[nnx.Module] = None, step: int = 0,
               name: str = "the meta-model"):
    if (config is None) != (model is None):
      raise ValueError("give both a config and a model, or neither")
    self.config = config
    self.step = step
    self.name = name if model is not None else "the read-out"
    self.has_meta_model = model is not None
    if self.has_meta_model:
      self._graphdef, self._state = nnx.split(model)
      self._ids = build.special_ids(config)
      self._beam = jax.jit(_beam_search, static_argnums=(0,),
                           static_argnames=("beam_size", "end_id", "pad_id"))

  def weights(self, model: Any) -> saved.SavedModel:
    """`model` (a tracr AssembledTransformerModel, a SavedModel or a saved
    file's path) as a SavedModel this decompiler can read; UserError if not.
    """
    where = (os.fspath(model) if isinstance(model, (str, os.PathLike))
             else "the model")
    try:
      weights = verify.load_model(model)
    except FileNotFoundError:
      raise UserError(f"{where}: no such file") from None
    except ValueError as error:
      raise UserError(str(error)) from error
    try:
      params_lib.check_params(weights.params)
    except ValueError as error:
      raise UserError(f"{where}: not tracr params: {error}") from error
    if weights.causal and self.has_meta_model:
      raise UserError(f"{where}: a causal model; {self.name} was trained on "
                      "non-causal tracr models only")
    return weights

  def encode(self, weights: saved.SavedModel) -> dict[str, jax.Array]:
    """The weights as a batch of one, seen in tracr's residual basis;
    UserError naming a limit exceeded or why no view encodes.

    The meta-model was trained on tracr's own bases. Weights in any other
    (an `unembed` matrix) are shown to it as the read-out's basis pass sees
    them (`readout.tracr_basis_views`, the first view the encoder
    accepts), so every residual map that pass undoes gives the meta-model
    the same graph: its answer does not depend on the basis.
    """
    error = None
    moved = params_lib.UNEMBED in weights.params
    try:
      for view in readout.tracr_basis_views(weights):
        try:
          example = pipeline.encode_weights_of(
              in_tracr_form(view) if moved else view, self.config)
          batch = pipeline.batch_examples([example], self.config)
          return {k: jnp.asarray(v) for k, v in batch.items()}
        except LimitExceeded as over:
          error = error or UserError(
              f"{self.name} cannot read these weights: {over}")
        except ValueError as invalid:  # Params the encoder cannot read.
          error = error or UserError(
              f"the weights cannot be encoded: {invalid}")
    except readout.ReadoutError as unseen:
      error = error or UserError(
          f"{self.name} cannot read these weights: they cannot be seen in "
          f"tracr's residual basis: {unseen}")
    raise error

  def candidates(self, weights: saved.SavedModel,
                 beam_size: int) -> np.ndarray:
    """The beam's programs, best first: token ids [K, R, 5]."""
    if not self.has_meta_model:
      raise UserError("no meta-model: load one with decompiler.load(workdir)")
    if beam_size < 1:
      raise UserError(f"beam_size={beam_size} must be at least 1")
    beams_BxKxRx5 = self._beam(
        self._graphdef, self._state, self.encode(weights),
        self._ids["start_row"], beam_size=beam_size,
        end_id=self._ids["end_id"], pad_id=self._ids["pad_id"])
    return np.asarray(beams_BxKxRx5[0])

  def decompile(self, model: Any, beam_size: int = search.BEAM_SIZE, *,
                exhaustive_limit: int = inputs.EXHAUSTIVE_LIMIT,
                num_check_inputs: int = inputs.NUM_CHECK_INPUTS,
                seed: int = 0, read_weights: bool = True) -> Decompilation:
    """Decompiles `model` (a tracr AssembledTransformerModel or a saved
    file's path) and verifies the result against its weights.

    With `read_weights`, the program read straight off the weights
    (`readout`) is the first candidate: when it verifies, it is the
    answer and the meta-model is not run; when there is no meta-model or
    it cannot read the weights (over its limits), the read-out is the
    answer either way (verified or not; UserError naming what the read-out
    cannot read, when there is no meta-model).
    The check inputs are `verify.verify`'s for the same `exhaustive_limit`,
    `num_check_inputs` and `seed`: all inputs when there are at most
    `exhaustive_limit`, else random ones plus the compiled structure.
    """
    weights = self.weights(model)
    reference = verify.reference(weights, exhaustive_limit=exhaustive_limit,
                                 num_random=num_check_inputs, seed=seed)
    if not self.has_meta_model:
      if not read_weights:
        raise UserError("no meta-model to decompile with (read_weights is "
                        "off): load one with decompiler.load(workdir)")
      return _read_out_or_raise(reference)
    read = _read_out(reference) if read_weights else None
    if read is not None and read.verified:
      return read
    try:
      beams_KxRx5 = self.candidates(weights, beam_size)
    except UserError:
      if read is None:
        raise
      return read
    with quiet.candidate_programs():
      choice = search.choose(beams_KxRx5, reference, all_verified=True)
      others = tuple(convert.to_rasp(p) for p, _ in choice.others)
      program = convert.to_rasp(choice.program) if choice.program else None
    evidence = choice.verification or verify.Verification(
        False, 0, 0, reference.exhaustive, None,
        f"none of the {beam_size} beam candidates is a valid program")
    if read is not None and not choice.verified and (
        read.agreement > evidence.num_agreeing / max(evidence.num_inputs, 1)):
      return read
    return Decompilation(
        program=program,
        rows=_row_names(choice.rows, self.config.input.max_rows),
        python=convert.to_python(choice.program) if choice.program else "",
        verified=choice.verified, evidence=evidence,
        others=others,
        others_python=tuple(convert.to_python(p) for p, _ in choice.others))


_ROUNDING = 1e-4  # A head's product entries under this times its largest
# are rounding error (float32 factors under a map of condition number 100
# carry ~1e-5).


def _tracr_factors(product_DxE: np.ndarray, width: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """A head's query-key (or value-output) product as tracr factors it: the
  right factor selects the directions the product reads on that side (the
  key, or output, space), the left one is the product's columns there. Any
  invertible map of the head's dimensions moves the factors, never this.
  """
  magnitude = np.abs(product_DxE)
  product_DxE = np.where(magnitude > _ROUNDING * magnitude.max(initial=0),
                         product_DxE, 0.0)
  columns = np.flatnonzero(np.any(product_DxE != 0, axis=0))
  if len(columns) > width:
    raise ValueError(f"a head's product reads {len(columns)} directions with "
                     f"{width} dimensions: not tracr's factors")
  left_DxW = np.zeros((product_DxE.shape[0], width))
  right_WxE = np.zeros((width, product_DxE.shape[1]))
  left_DxW[:, :len(columns)] = product_DxE[:, columns]
  right_WxE[np.arange(len(columns)), columns] = 1.0
  return left_DxW, right_WxE


def in_tracr_form(view: saved.SavedModel) -> saved.SavedModel:
  """A view of moved weights in tracr's basis (`readout.tracr_basis_views`)
  with its heads factored as tracr factors them and no biases: what the
  meta-model was trained on.

  The view fixes the residual basis but not each head's own (a per-head map
  of its query-key or value-output dimensions mixes the factors): those are
  taken from the products, which the map leaves alone. tracr writes no
  biases (the weight graph has no bias nodes); a view's are rounding error
  or noise. ValueError for a head whose product reads more directions than
  it has dimensions (never in tracr's weights).
  """
  params = {key: {name: (np.zeros_like(value) if name == "b"
                         else np.array(value, np.float64))
                  for name, value in module.items()}
            for key, module in view.params.items()}
  layout = params_lib.check_params(params)
  heads = view.num_heads or 1
  for layer in range(layout.num_layers):
    attn = lambda name: params[params_lib.attn_key(layer, name)]["w"]
    query, key, value, linear = map(attn, params_lib.ATTN)
    key_size = query.shape[1] // heads
    for head in range(heads):
      part = slice(head * key_size, (head + 1) * key_size)
      query[:, part], key_T = _tracr_factors(
          query[:, part] @ key[:, part].T, key_size)
      key[:, part] = key_T.T
      value[:, part], linear[part] = _tracr_factors(
          value[:, part] @ linear[part], key_size)
  return dataclasses.replace(view, params={
      key: {name: value.astype(np.float32) for name, value in module.items()}
      for key, module in params.items()})


def _read_out(reference: verify.Reference) -> Optional[Decompilation]:
  """The program read off the weights, verified; None when they leave
  tracr's recipes (`readout.ReadoutError`) or it is not a valid program."""
  try:
    return _read_out_or_raise(reference)
  except UserError:  # Not tracr's recipes.
    return None


def _read_out_or_raise(reference: verify.Reference) -> Decompilation:
  """The program read off the weights, verified; UserError naming where
  the weights leave tracr's recipes."""
  try:
    program, evidence = readout.read_and_verify(reference, stop_early=False)
  except ValueError as error:  # Not tracr's recipes.
    raise UserError(f"the read-out cannot read these weights: {error}"
                    ) from error
  return Decompilation(
      program=convert.to_rasp(program),
      rows=tuple((i.operator.value, function_text(i.operator, i.function),
                  *i.args, "->", i.output) if i.function is not None else
                 (i.operator.value, *i.args, "->", i.output)
                 for i in program.instructions),
      python=convert.to_python(program), verified=evidence.verified,
      evidence=evidence, source="weights")


def _row_names(rows_Rx5: np.ndarray,
               max_rows: int) -> tuple[tuple[str, ...], ...]:
  names = tokens.vocabulary_for_rows(max_rows).tokens
  return tuple(tuple(names[i] for i in row) for row in rows_Rx5
               if names[row[0]] != PAD)


def load(workdir: str) -> Decompiler:
  """The meta-model trained in `workdir` (its config.json and latest
  checkpoint); UserError when `workdir` holds no trained run."""
  config = checkpoints.load_config(workdir)
  model, step = checkpoints.restore_model(config, workdir)
  return Decompiler(config, model, step,
                    name=f"the meta-model in {workdir} (step {step})")


def decompile(model: Any, workdir: Optional[str] = None,
              **options: Any) -> Decompilation:
  """Decompiles `model` (a tracr AssembledTransformerModel, a SavedModel or
  a saved file's path) and verifies the result against its weights.

  The read-out alone, no training needed; with `workdir` (a train.py run),
  its meta-model decodes when the read-out does not verify. `options` as
  `Decompiler.decompile` (beam_size, exhaustive_limit, num_check_inputs,
  seed, read_weights). UserError for weights that cannot be read.
  """
  decompiler = load(workdir) if workdir else Decompiler()
  return decompiler.decompile(model, **options)
