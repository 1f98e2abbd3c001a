r"""Trains the meta-model: mesh -> data -> state -> restore -> loop.

  python train.py --config=configs/default.py --workdir=DIR [--config.steps=100]

The data comes from `config.data_dir` (default `WORKDIR/data`) and is
generated there first if it is missing. Rerunning the same command resumes
from the latest checkpoint in `WORKDIR/checkpoints`, input iterator included,
so a resumed run ends with the parameters an uninterrupted one would have.
"""

import math
import os
import time
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from absl import app, flags, logging
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from ml_collections import config_flags

from encoding import graph, pipeline, tokens, weights
from encoding.vocabulary import NA, PAD, PROGRAM_END, PROGRAM_START
from meta_model import decode, loss as loss_lib, model as model_lib
from rasp_gen import dataset, generate
from rasp_gen.program import canonicalize

State = dict[str, Any]
CONFIG_FILE = "config.json"  # The run's config, written into the workdir.


def data_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  return config.data_dir or os.path.join(workdir, "data")


def ensure_dataset(config: ml_collections.ConfigDict, workdir: str) -> str:
  """The dataset directory, generating (or finishing) the dataset if needed."""
  path = data_dir(config, workdir)
  manifest = os.path.join(path, dataset.MANIFEST)
  if not os.path.exists(manifest):
    logging.info("generating %d programs into %s", config.data.num_programs,
                 path)
    generate.generate(config.data, path, shard_index=jax.process_index(),
                      num_shards=jax.process_count())
  while not os.path.exists(manifest):  # Other hosts are still generating.
    time.sleep(5)
  return path


def make_mesh() -> jax.sharding.Mesh:
  """One `data` axis over every device (of every host).

  Auto axes: the compiler propagates shardings from the step's in/out
  shardings, so the model code carries no sharding annotations.
  """
  return jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))


def check_config(config: ml_collections.ConfigDict) -> None:
  """The model must cover what the encoding produces; fail before training."""
  pipeline.check_config(config)
  bounds = weights.feature_bounds(config.weights)
  checks = {
      "model.block_size == weights.block_size":
          config.model.block_size == config.weights.block_size,
      "model.max_blocks >= weights.max_blocks":
          config.model.max_blocks >= config.weights.max_blocks,
      "model.max_rows == input.max_rows":
          config.model.max_rows == config.input.max_rows,
      "model.max_layers + 2 >= weights.max_layers + 1":
          config.model.max_layers + 2 >= bounds["block_layer"],
      f"model.num_block_kinds >= {bounds['block_kind']}":
          config.model.num_block_kinds >= bounds["block_kind"],
      f"model.max_block_positions >= {bounds['block_position']}":
          config.model.max_block_positions >= bounds["block_position"],
      "input.batch_size divisible by the device count":
          config.input.batch_size * jax.process_count() % jax.device_count()
          == 0,
  }
  failed = [name for name, ok in checks.items() if not ok]
  if failed:
    raise ValueError(f"inconsistent config: {'; '.join(failed)}")


def make_optimizer(config: ml_collections.ConfigDict
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW with warmup + cosine decay and global-norm clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate,
      warmup_steps=config.warmup_steps, decay_steps=config.steps,
      end_value=config.learning_rate * config.final_learning_rate_fraction)
  optimizer = optax.chain(
      optax.clip_by_global_norm(config.grad_clip_norm),
      optax.adamw(schedule, weight_decay=config.weight_decay))
  if config.grad_accumulation_steps > 1:
    optimizer = optax.MultiSteps(optimizer, config.grad_accumulation_steps)
  return optimizer, schedule


def make_model(config: ml_collections.ConfigDict) -> model_lib.MetaModel:
  vocabulary = tokens.vocabulary_for_rows(config.input.max_rows)
  graph_bounds = (graph.feature_bounds(config.graph)
                  if config.input.encoder == "graph" else None)
  return model_lib.MetaModel(config.model, vocabulary.size,
                             vocabulary.column_masks,
                             graph_bounds=graph_bounds,
                             rngs=nnx.Rngs(config.seed))


def special_ids(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The token ids the loss and the decoders need, under their arg names."""
  ids = tokens.vocabulary_for_rows(config.input.max_rows).ids
  return {"start_row": jnp.asarray([ids[PROGRAM_START]] + [ids[NA]] * 4,
                                   jnp.int32),
          "end_id": ids[PROGRAM_END], "pad_id": ids[PAD], "na_id": ids[NA]}


def _loss_ids(config: ml_collections.ConfigDict) -> dict[str, int]:
  ids = special_ids(config)
  return {"pad_id": ids["pad_id"], "na_id": ids["na_id"]}


def make_train_step(graphdef: nnx.GraphDef, rest: nnx.State,
                    optimizer: optax.GradientTransformation,
                    config: ml_collections.ConfigDict):
  """The pure step (state, batch) -> (state, metrics)."""
  ids = _loss_ids(config)

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
  ids = _loss_ids(config)

  def eval_step(params: nnx.State, batch: dict) -> dict:
    model = nnx.merge(graphdef, params, rest)
    return loss_lib.loss_and_metrics(model(batch, deterministic=True), batch,
                                     **ids)[1]

  return eval_step


def greedy_decode(graphdef: nnx.GraphDef, params: nnx.State,
                  rest: nnx.State, batch: dict,
                  config: ml_collections.ConfigDict) -> np.ndarray:
  """The model's most likely program rows for each example: [B, R, 5]."""
  ids = special_ids(config)
  model = nnx.merge(graphdef, params, rest)
  decoded_BxKxRx5, _ = decode.greedy_decode(
      model, batch, ids["start_row"], end_id=ids["end_id"],
      pad_id=ids["pad_id"])
  return np.asarray(decoded_BxKxRx5[:, 0])


def greedy_program_accuracy(decoded_BxRx5: np.ndarray,
                            targets_BxRx5: np.ndarray) -> float:
  """Share of programs whose greedy decoding equals the target exactly.

  Compared in canonical form (targets are canonical); a decoded row sequence
  that is not a valid program counts as wrong.
  """
  correct = 0
  for decoded, target in zip(decoded_BxRx5, targets_BxRx5):
    try:
      correct += (canonicalize(tokens.decode_program(decoded))
                  == tokens.decode_program(target))
    except ValueError:
      pass
  return correct / len(targets_BxRx5)


def create_state(config: ml_collections.ConfigDict
                 ) -> tuple[nnx.GraphDef, nnx.State, State]:
  """The model's graph and untrained state, and a fresh train state."""
  graphdef, params, rest = nnx.split(make_model(config), nnx.Param, ...)
  optimizer, _ = make_optimizer(config)
  return graphdef, rest, {"params": params, "opt_state": optimizer.init(params),
                          "step": jnp.zeros((), jnp.int32)}


def restore_model(config: ml_collections.ConfigDict,
                  workdir: str) -> tuple[model_lib.MetaModel, int]:
  """The model with the latest checkpoint's parameters, and its step."""
  graphdef, rest, state = create_state(config)
  manager = _checkpoint_manager(workdir, config)
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints; train "
                            f"first with train.py --workdir={workdir}")
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(
          jax.tree.map(ocp.utils.to_shape_dtype_struct, state))))
  manager.close()
  return nnx.merge(graphdef, restored["state"]["params"], rest), step


def _checkpoint_manager(workdir: str, config: ml_collections.ConfigDict
                        ) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=config.checkpoints_to_keep,
          enable_async_checkpointing=False))


def _save(manager: ocp.CheckpointManager, state: State,
          iterator: grain.DatasetIterator) -> None:
  manager.save(int(state["step"]), args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=grain.checkpoint.CheckpointSave(iterator)), force=True)
  manager.wait_until_finished()


def _validation_batches(config: ml_collections.ConfigDict, path: str
                        ) -> list[dict]:
  """A fixed validation slice: no shuffle randomness across runs, no augment."""
  config = ml_collections.ConfigDict(config)
  config.input.update(augment="none", num_epochs=1, num_workers=0)
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


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> State:
  """Trains to `config.steps`, resuming from the latest checkpoint if any.

  Returns the final state (params, opt_state, step) on the host.
  """
  import tensorboardX  # pylint: disable=g-import-not-at-top

  check_config(config)
  path = ensure_dataset(config, workdir)
  if jax.process_index() == 0:  # eval.py rebuilds the model from it.
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  mesh = make_mesh()
  replicated = NamedSharding(mesh, PartitionSpec())
  batch_sharding = NamedSharding(mesh, PartitionSpec("data"))

  graphdef, rest, state = create_state(config)
  state = jax.device_put(state, replicated)
  optimizer, schedule = make_optimizer(config)
  logging.info("%s parameters on %d devices",
               f"{sum(x.size for x in jax.tree.leaves(state['params'])):,}",
               jax.device_count())

  iterator = iter(pipeline.make_dataset(dataset.data_source(path, "train"),
                                        config))
  manager = _checkpoint_manager(workdir, config)
  if manager.latest_step() is not None:
    restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(
            jax.tree.map(ocp.utils.to_shape_dtype_struct, state)),
        data=grain.checkpoint.CheckpointRestore(iterator)))
    state = restored["state"]
    logging.info("resumed from step %d", int(state["step"]))

  train_step = jax.jit(
      make_train_step(graphdef, rest, optimizer, config),
      in_shardings=(replicated, batch_sharding),
      out_shardings=(replicated, replicated), donate_argnums=(0,))
  eval_step = jax.jit(make_eval_step(graphdef, rest, config),
                      in_shardings=(replicated, batch_sharding),
                      out_shardings=replicated)
  validation = _validation_batches(config, path)
  writer = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))

  def place(batch: dict) -> dict:
    # Each process holds its own rows of the global batch.
    return jax.make_array_from_process_local_data(batch_sharding, batch) \
        if jax.process_count() > 1 else jax.device_put(batch, batch_sharding)

  start_step = int(state["step"])
  last_saved = start_step
  timer, timed_steps = time.perf_counter(), 0
  progress = tqdm.tqdm(total=config.steps, initial=start_step, desc="train",
                       disable=jax.process_index() != 0)
  for step in range(start_step + 1, config.steps + 1):
    state, metrics = train_step(state, place(next(iterator)))
    timed_steps += 1
    progress.update()
    saving = step % config.checkpoint_every == 0 or step == config.steps
    if step % config.log_every == 0 or saving:
      metrics = {k: float(v) for k, v in metrics.items()}
      if not math.isfinite(metrics["loss"]):  # Checked before any save.
        progress.close()
        raise FloatingPointError(
            f"non-finite loss {metrics['loss']} at step {step}; the last good "
            f"checkpoint is step {last_saved} in {workdir}/checkpoints")
    if step % config.log_every == 0 or step == config.steps:
      metrics["learning_rate"] = float(schedule(step))
      metrics["steps_per_second"] = timed_steps / (time.perf_counter() - timer)
      timer, timed_steps = time.perf_counter(), 0
      _log_metrics(writer, step, metrics, "train")
      progress.set_postfix(loss=f"{metrics['loss']:.3f}")
    if step % config.eval_every == 0 or step == config.steps:
      evaluation = [eval_step(state["params"], place(b)) for b in validation]
      summary = {k: float(np.mean([e[k] for e in evaluation]))
                 for k in evaluation[0]} if evaluation else {}
      if validation:
        decoded = [greedy_decode(graphdef, state["params"], rest, b, config)
                   for b in validation]
        summary["greedy_program_accuracy"] = float(np.mean([
            greedy_program_accuracy(d, np.asarray(b["program"]))
            for d, b in zip(decoded, validation)]))
      _log_metrics(writer, step, summary, "validation")
    if saving:
      _save(manager, state, iterator)
      last_saved = step
  progress.close()
  writer.close()
  manager.close()
  if validation and jax.process_index() == 0:
    batch = validation[0]
    decoded = greedy_decode(graphdef, state["params"], rest, batch, config)
    print("A held-out program, decompiled from its weights alone:\n"
          f"true:\n{tokens.render_rows(batch['program'][0])}\n"
          f"predicted:\n{tokens.render_rows(decoded[0])}", flush=True)
  return jax.device_get(state)


def _define_flags() -> None:
  """Only when run as a script, so that importing train defines no flags."""
  config_flags.DEFINE_config_file(
      "config", None, "Training config file, e.g. configs/default.py; any "
      "field can be overridden with --config.FIELD=VALUE.", lock_config=True)
  flags.DEFINE_string(
      "workdir", None, "Directory for checkpoints, TensorBoard events and (by "
      "default) the generated dataset; rerunning with it resumes.")
  flags.DEFINE_bool(
      "multihost", False, "Call jax.distributed.initialize() first (Cloud "
      "TPU VMs and other multi-process runs).")
  flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Metrics print regardless.
  if flags.FLAGS.multihost:
    jax.distributed.initialize()
  train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
