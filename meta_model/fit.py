"""Training the meta-model: run -> mesh -> state -> data -> restore -> loop.

`train_and_evaluate(config, workdir)` is all `train.py` calls; it reads top
to bottom as those steps (`prepare_run`, `make_mesh`, `init_state`,
`train_iterator`, `restore_latest`, `make_steps`, `train_loop`) and ends with
the `showcase`: the first test program within the encoder's limits,
decompiled from its weights by search and verify, printed beside the true
program with the verdict.

The data come from `config.data_dir` (default WORKDIR/data) and are
generated there first if missing. Rerunning with the same workdir resumes
from the latest checkpoint (`meta_model.checkpoints`), input iterator
included, so a resumed run ends with the parameters an uninterrupted one
would have; it says so and from which step.

Before the loop a size check encodes the first `size_check_records` training
records: the share over the encoder's limits (which the input pipeline
drops) is printed and written to TensorBoard (`data/dropped_share`); if every
record is over, or the share is above `max_dropped_share`, training stops
with the counts instead of training on a biased set (or waiting forever for
a batch).

Validation metrics are sums over the validation batches divided once
(loss per slot, token accuracy per counted slot, sequence and greedy program
accuracy per program), never means of per-batch ratios.
"""

import copy
import dataclasses
import math
import os
import time
from typing import Any, Callable, Optional

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from compiled import verify
from encoding import pipeline, tokens
from meta_model import build, checkpoints, decode, decompiler, heldout, search
from meta_model import loss as loss_lib
from meta_model import optimizer as optimizer_lib
from meta_model.errors import UserError
from rasp_gen import convert, dataset, generate
from rasp_gen.program import canonicalize

State = dict[str, Any]


def ensure_dataset(config: ml_collections.ConfigDict, workdir: str) -> str:
  """The dataset directory, generating (or finishing) the dataset if needed.

  Each process generates its share of the chunks; then every process waits
  for the manifest, at most `config.data_wait_timeout_s` seconds.
  """
  path = checkpoints.data_dir(config, workdir)
  manifest = os.path.join(path, dataset.MANIFEST)
  if not os.path.exists(manifest):
    logging.info("generating %d programs into %s", config.data.num_programs,
                 path)
    generate.generate(config.data, path, shard_index=jax.process_index(),
                      num_shards=jax.process_count())
  timeout = config.get("data_wait_timeout_s", 3600.0)
  deadline = time.monotonic() + timeout
  while not os.path.exists(manifest):  # Other hosts are still generating.
    if time.monotonic() > deadline:
      raise TimeoutError(
          f"process {jax.process_index()} waited {timeout:g} s for "
          f"{manifest}, which the other processes write when they finish "
          "generating; did one of them die? Rerun the same command on every "
          "host to resume generation.")
    time.sleep(min(5.0, max(timeout / 10, 0.01)))
  try:
    dataset.check_shards(path)
  except ValueError as error:
    raise UserError(str(error)) from error
  return path


def make_mesh() -> jax.sharding.Mesh:
  """One `data` axis over every device (of every host).

  Auto axes: the compiler propagates shardings from the step's in/out
  shardings, so the model code carries no sharding annotations.
  """
  return jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))


def check_config(config: ml_collections.ConfigDict) -> None:
  """UserError naming the first setting training cannot run with."""
  try:
    pipeline.check_config(config)
    build.model_config(config)
    optimizer_lib.check_schedule(config)
  except ValueError as error:
    raise UserError(f"config: {error}") from error
  if config.input.batch_size * jax.process_count() % jax.device_count():
    raise UserError(f"config: input.batch_size={config.input.batch_size} per "
                    f"process x {jax.process_count()} processes is not "
                    f"divisible by the {jax.device_count()} devices")
  share = config.get("max_dropped_share", 1.0)
  if not 0 <= share <= 1:
    raise UserError(f"config: max_dropped_share={share} must be in [0, 1]")


def check_sizes(source, config: ml_collections.ConfigDict) -> dict[str, Any]:
  """How many of the first `size_check_records` records are over the size
  limits; UserError when all are, or more than `max_dropped_share`."""
  n = min(len(source), config.get("size_check_records", 256))
  by_length = pipeline.drops_by_length(source, config, max_records=n)
  dropped = sum(d for d, _ in by_length.values())
  share = dropped / max(n, 1)
  counts = {"checked": n, "dropped": dropped, "share": share,
            "by_length": {str(k): list(v) for k, v in by_length.items()}}
  detail = (f"{dropped} of the first {n} training records are over the "
            f"encoder's size limits (dropped; by program length, dropped/"
            f"records: " + ", ".join(f"{k}: {d}/{t}" for k, (d, t) in
                                     by_length.items()) + ")")
  limit = config.get("max_dropped_share", 1.0)
  if n and dropped == n:
    raise UserError(f"{detail}: nothing left to train on; raise the limits "
                    "(graph.buckets, or blocks.max_blocks, ...)")
  if share > limit:
    raise UserError(f"{detail}: a share of {share:.1%} is above "
                    f"max_dropped_share={limit}; raise the limits or "
                    "--config.max_dropped_share")
  if dropped and jax.process_index() == 0:
    tqdm.tqdm.write(f"size check: {detail}")
  return counts


def make_train_step(graphdef: nnx.GraphDef, rest: nnx.State,
                    optimizer: optax.GradientTransformation,
                    config: ml_collections.ConfigDict):
  """The pure step (state, batch) -> (state, metrics)."""
  ids = build.special_ids(config)
  ids = {"pad_id": ids["pad_id"], "na_id": ids["na_id"]}

  def loss_fn(params, batch, key):
    model = nnx.merge(graphdef, params, rest)
    logits = model(batch, deterministic=False, rngs=nnx.Rngs(dropout=key))
    return loss_lib.loss_and_metrics(logits, batch, **ids)

  def train_step(state: State, batch: dict) -> tuple[State, dict]:
    key = jax.random.fold_in(jax.random.key(config.seed), state["step"])
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"], batch, key)
    updates, opt_state = optimizer.update(grads, state["opt_state"],
                                          state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return {"params": params, "opt_state": opt_state,
            "step": state["step"] + 1}, metrics

  return train_step


def make_eval_step(graphdef: nnx.GraphDef, rest: nnx.State,
                   config: ml_collections.ConfigDict):
  """(params, batch) -> sums for `validation_summary`: the loss summed over
  slots, the slots, right and counted tokens (`loss.token_hits`), programs
  all right (teacher-forced) and programs with rows."""
  ids = build.special_ids(config)

  def eval_step(params: nnx.State, batch: dict) -> dict:
    model = nnx.merge(graphdef, params, rest)
    logits = model(batch, deterministic=True)
    hits = loss_lib.token_hits(logits, batch, pad_id=ids["pad_id"],
                               na_id=ids["na_id"])
    nll_BxRx5 = optax.softmax_cross_entropy_with_integer_labels(
        logits[:, :-1].astype(jnp.float32), hits.target)
    has_rows_B = jnp.any(hits.slots, axis=(1, 2))
    right_B = has_rows_B & jnp.all(hits.correct | ~hits.slots, axis=(1, 2))
    return {"loss_sum": jnp.sum(nll_BxRx5 * hits.slots),
            "slots": jnp.sum(hits.slots),
            "token_right": jnp.sum(hits.correct & hits.counted),
            "token_counted": jnp.sum(hits.counted),
            "programs_right": jnp.sum(right_B),
            "programs": jnp.sum(has_rows_B)}

  return eval_step


def validation_summary(sums: list[dict[str, Any]]) -> dict[str, float]:
  """Validation metrics from per-batch sums: each a total over all batches
  divided once (lm1b's compute_metrics), never a mean of batch ratios."""
  total = {k: float(sum(float(s[k]) for s in sums)) for k in sums[0]}
  ratio = lambda a, b: total[a] / max(total[b], 1)
  summary = {"loss": ratio("loss_sum", "slots"),
             "token_accuracy": ratio("token_right", "token_counted"),
             "sequence_accuracy": ratio("programs_right", "programs")}
  if "greedy_right" in total:
    summary["greedy_program_accuracy"] = ratio("greedy_right",
                                               "greedy_programs")
  return summary


def greedy_decode(graphdef: nnx.GraphDef, params: nnx.State,
                  rest: nnx.State, batch: dict,
                  config: ml_collections.ConfigDict) -> np.ndarray:
  """The model's most likely program rows for each example: [B, R, 5]."""
  ids = build.special_ids(config)
  model = nnx.merge(graphdef, params, rest)
  decoded_BxKxRx5, _ = decode.greedy_decode(
      model, batch, ids["start_row"], end_id=ids["end_id"],
      pad_id=ids["pad_id"])
  return np.asarray(decoded_BxKxRx5[:, 0])


def greedy_programs_right(decoded_BxRx5: np.ndarray,
                          targets_BxRx5: np.ndarray) -> int:
  """How many greedy decodings equal their target program exactly.

  Compared in canonical form (targets are canonical); a decoded row sequence
  that is not a valid program counts as wrong.
  """
  right = 0
  for decoded, target in zip(decoded_BxRx5, targets_BxRx5):
    try:
      right += (canonicalize(tokens.decode_program(decoded))
                == tokens.decode_program(target))
    except ValueError:
      pass
  return right


def validation_batches(config: ml_collections.ConfigDict, path: str
                        ) -> list[dict]:
  """A fixed validation slice: no shuffle randomness across runs, and never
  augmented (whatever `blocks.augment` says for training). A deep copy:
  `ConfigDict(config)` would share the groups, and change training's."""
  config = copy.deepcopy(config)
  config.input.update(num_epochs=1, num_workers=0)
  config.blocks.augment = "none"
  batches = pipeline.make_dataset(dataset.data_source(path, "validation"),
                                  config)
  return [b for _, b in zip(range(config.eval_batches), batches)]


def _log_metrics(writer, step: int, metrics: dict[str, float],
                 prefix: str) -> None:
  if jax.process_index() == 0:
    tqdm.tqdm.write(f"step {step} {prefix}: " + ", ".join(
        f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
  for key, value in metrics.items():
    writer.add_scalar(f"{prefix}/{key}", value, step)


class StepProgress:
  """A progress bar of completed steps, not dispatched ones.

  JAX dispatches steps asynchronously; counting a step when it is dispatched
  makes the bar race ahead and then stall at every sync (logging,
  checkpoints), with ETAs of hours. Here a step counts once its loss is
  ready: `dispatched(loss)` blocks on the previous step's loss (one step
  stays in flight) and then advances the bar.
  """

  def __init__(self, bar: Any):
    self.bar = bar
    self._pending: Optional[jax.Array] = None

  def dispatched(self, loss: jax.Array) -> None:
    self.flush()
    self._pending = loss

  def flush(self) -> None:
    if self._pending is not None:
      jax.block_until_ready(self._pending)
      self._pending = None
      self.bar.update(1)


def prepare_run(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Checks the config, makes sure the dataset exists and records the
  config in `workdir` (eval.py rebuilds the model from it); returns the
  dataset's path."""
  check_config(config)
  path = ensure_dataset(config, workdir)
  if jax.process_index() == 0:
    checkpoints.write_config(config, workdir)
  return path


def init_state(config: ml_collections.ConfigDict,
               optimizer: optax.GradientTransformation,
               mesh: jax.sharding.Mesh
               ) -> tuple[nnx.GraphDef, nnx.State, State]:
  """A fresh train state, replicated over the mesh, with the model's graph
  and non-trained state (`checkpoints.initial_state`)."""
  graphdef, rest, state = checkpoints.initial_state(config, optimizer)
  state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
  logging.info("%s parameters on %d devices",
               f"{sum(x.size for x in jax.tree.leaves(state['params'])):,}",
               jax.device_count())
  return graphdef, rest, state


def train_iterator(path: str, config: ml_collections.ConfigDict
                   ) -> tuple[grain.DatasetIterator, dict[str, Any]]:
  """The training batches, after the size check (`check_sizes`), and its
  counts."""
  source = dataset.data_source(path, "train")
  sizes = check_sizes(source, config)
  return iter(pipeline.make_dataset(source, config)), sizes


def restore_latest(manager: ocp.CheckpointManager, state: State,
                   iterator: grain.DatasetIterator,
                   config: ml_collections.ConfigDict, workdir: str) -> State:
  """The latest checkpoint's state, with the iterator set to where that run
  had read, or `state` when there is none; says from which step it resumes."""
  if manager.latest_step() is None:
    return state
  state = checkpoints.restore(manager, state, iterator)
  if jax.process_index() == 0:
    tqdm.tqdm.write(f"resumed from step {int(state['step'])} of "
                    f"{config.steps} ({os.path.join(workdir, 'checkpoints')})")
  return state


@dataclasses.dataclass(frozen=True)
class Steps:
  """The jitted steps over the mesh.

  Attributes:
    train: (state, placed batch) -> (state, metrics); donates the state.
    validate: params -> `validation_summary` over the fixed validation
      batches (teacher-forced sums and greedy programs right); None when
      there are no validation batches.
    place: a process's batch -> its rows of the global batch on the mesh.
  """

  train: Callable[[State, dict], tuple[State, dict]]
  validate: Optional[Callable[[nnx.State], dict[str, float]]]
  place: Callable[[dict], dict]


def make_steps(graphdef: nnx.GraphDef, rest: nnx.State,
               optimizer: optax.GradientTransformation,
               config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
               path: str) -> Steps:
  """The train step and validation, jitted with the state replicated and
  batches split over the mesh's data axis."""
  replicated = NamedSharding(mesh, PartitionSpec())
  batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
  train_step = jax.jit(
      make_train_step(graphdef, rest, optimizer, config),
      in_shardings=(replicated, batch_sharding),
      out_shardings=(replicated, replicated), donate_argnums=(0,))
  eval_step = jax.jit(make_eval_step(graphdef, rest, config),
                      in_shardings=(replicated, batch_sharding),
                      out_shardings=replicated)
  validation = validation_batches(config, path)

  def place(batch: dict) -> dict:
    # Each process holds its own rows of the global batch.
    return jax.make_array_from_process_local_data(batch_sharding, batch) \
        if jax.process_count() > 1 else jax.device_put(batch, batch_sharding)

  def validate(params: nnx.State) -> dict[str, float]:
    return validation_summary([
        dict(jax.device_get(eval_step(params, place(b))),
             greedy_right=greedy_programs_right(
                 greedy_decode(graphdef, params, rest, b, config),
                 np.asarray(b["program"])),
             greedy_programs=len(b["program"]))
        for b in validation])

  return Steps(train_step, validate if validation else None, place)


def _finite(metrics: dict, step: int, last_saved: int,
            workdir: str) -> dict[str, float]:
  """The metrics as floats; FloatingPointError at a non-finite loss, naming
  the last good checkpoint (checked before any save)."""
  metrics = {k: float(v) for k, v in metrics.items()}
  if not math.isfinite(metrics["loss"]):
    raise FloatingPointError(
        f"non-finite loss {metrics['loss']} at step {step}; the last good "
        f"checkpoint is step {last_saved} in {workdir}/checkpoints")
  return metrics


def train_loop(state: State, iterator: grain.DatasetIterator, steps: Steps,
               schedule: optax.Schedule, manager: ocp.CheckpointManager,
               writer: Any, config: ml_collections.ConfigDict,
               workdir: str) -> State:
  """Steps from the state's step to `config.steps`; returns the last state.

  Logs train metrics every `log_every` steps and validation every
  `eval_every`, and checkpoints every `checkpoint_every` (state and
  iterator), each also at the last step; a non-finite loss stops the run
  before it is saved.
  """
  start_step = int(state["step"])
  last_saved = start_step
  timer, timed_steps = time.perf_counter(), 0
  with tqdm.tqdm(total=config.steps, initial=start_step, desc="train",
                 disable=jax.process_index() != 0, smoothing=0.05) as bar:
    progress = StepProgress(bar)
    for step in range(start_step + 1, config.steps + 1):
      state, metrics = steps.train(state, steps.place(next(iterator)))
      progress.dispatched(metrics["loss"])
      timed_steps += 1
      last = step == config.steps
      logging_now = step % config.log_every == 0
      saving = step % config.checkpoint_every == 0 or last
      if logging_now or saving:
        metrics = _finite(metrics, step, last_saved, workdir)
      if logging_now or last:
        metrics["learning_rate"] = float(schedule(step))
        metrics["steps_per_second"] = timed_steps / (time.perf_counter()
                                                     - timer)
        timer, timed_steps = time.perf_counter(), 0
        _log_metrics(writer, step, metrics, "train")
        bar.set_postfix(loss=f"{metrics['loss']:.3f}")
      if (step % config.eval_every == 0 or last) and steps.validate:
        _log_metrics(writer, step, steps.validate(state["params"]),
                     "validation")
      if saving:
        checkpoints.save(manager, state, iterator)
        last_saved = step
    progress.flush()
  return state


SHOWCASE_TITLE = ("A held-out test program, decompiled from its weights "
                  "alone by search and verify")


def showcase(config: ml_collections.ConfigDict, model: nnx.Module,
             step: int, path: str,
             beam_size: int = search.BEAM_SIZE) -> Optional[str]:
  """What the trained meta-model does, on the first test program within the
  encoder's limits: its weights decompiled by the meta-model alone (the
  best of `beam_size` candidates that verifies), beside the true program,
  with the verdict, and whether reading the program off the weights
  (`readout`, what `Decompiler.decompile` tries first) verifies
  too. None when the test split has no such program."""
  record = next((r for r in heldout.read_records(path, "test")
                 if heldout.encode_examples([r], config, permute=False)[0]),
                None)
  if record is None:
    return None
  weights = heldout.weights_of(record)
  result = decompiler.Decompiler(config, model, step).decompile(
      weights, beam_size, read_weights=False)
  read = heldout.read_verified(verify.reference(weights))
  return "\n".join([
      f"{SHOWCASE_TITLE} over {beam_size} beam candidates:",
      "true program:", convert.to_python(record.program).rstrip(),
      "decompiled:", result.python.rstrip() or "(no candidate is a program)",
      verify.describe(result.evidence),
      f"read off the weights (readout): "
      f"{'verified' if read else 'not verified'}"])


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> State:
  """Trains to `config.steps`, resuming from the latest checkpoint if any,
  then prints the `showcase`.

  Returns the final state (params, opt_state, step) on the host.
  """
  import tensorboardX  # pylint: disable=g-import-not-at-top

  path = prepare_run(config, workdir)
  mesh = make_mesh()
  optimizer, schedule = optimizer_lib.make_optimizer(config)
  graphdef, rest, state = init_state(config, optimizer, mesh)
  iterator, sizes = train_iterator(path, config)
  with checkpoints.manager(workdir, config) as manager:
    state = restore_latest(manager, state, iterator, config, workdir)
    steps = make_steps(graphdef, rest, optimizer, config, mesh, path)
    with tensorboardX.SummaryWriter(os.path.join(workdir,
                                                 "tensorboard")) as writer:
      writer.add_scalar("data/dropped_share", sizes["share"],
                        int(state["step"]))
      state = train_loop(state, iterator, steps, schedule, manager, writer,
                         config, workdir)
  state = jax.device_get(state)
  if jax.process_index() == 0:
    text = showcase(config, nnx.merge(graphdef, state["params"], rest),
                    int(state["step"]), path)
    if text:
      print(text, flush=True)
  return state
