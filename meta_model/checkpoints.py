"""What a training workdir holds, and how to read it back.

  WORKDIR/config.json        the run's config (the model is rebuilt from it)
  WORKDIR/checkpoints/STEP   orbax Composite: `state` = {params, opt_state,
                             step}, `data` = the grain iterator's state
  WORKDIR/data               the dataset, unless `config.data_dir` is set
  WORKDIR/tensorboard        event files

Missing or unreadable workdirs raise `UserError` (a ValueError) naming the
path, so scripts can print one line instead of a traceback.
"""

import json
import os
from typing import Any, Optional

import grain
import jax
import ml_collections
import optax
import orbax.checkpoint as ocp
from flax import nnx

from meta_model import build
from meta_model import model as model_lib
from meta_model import optimizer as optimizer_lib
from meta_model.errors import UserError

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
State = dict[str, Any]


def data_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Where the run's dataset lives: `config.data_dir` or WORKDIR/data."""
  return config.data_dir or os.path.join(workdir, "data")


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a train.py run wrote into `workdir`."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise UserError(f"{path} is missing: is {workdir!r} a train.py workdir?")
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except json.JSONDecodeError as error:
    raise UserError(f"{path} is not JSON: {error}") from error


def manager(workdir: str, config: ml_collections.ConfigDict
            ) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), CHECKPOINTS),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=config.checkpoints_to_keep,
          enable_async_checkpointing=False))


def save(checkpoints: ocp.CheckpointManager, state: State,
         iterator: grain.DatasetIterator) -> None:
  """Saves the train state and the input iterator at `state["step"]`."""
  checkpoints.save(int(state["step"]), args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=grain.checkpoint.CheckpointSave(iterator)), force=True)
  checkpoints.wait_until_finished()


def restore(checkpoints: ocp.CheckpointManager, state: State,
            iterator: Optional[grain.DatasetIterator] = None,
            step: Optional[int] = None) -> State:
  """The state saved at `step` (default: the latest), shaped like `state`;
  with `iterator`, also sets the iterator to where that run had read."""
  step = checkpoints.latest_step() if step is None else step
  args = {"state": ocp.args.StandardRestore(
      jax.tree.map(ocp.utils.to_shape_dtype_struct, state))}
  if iterator is not None:
    args["data"] = grain.checkpoint.CheckpointRestore(iterator)
  return checkpoints.restore(step, args=ocp.args.Composite(**args))["state"]


def initial_state(config: ml_collections.ConfigDict,
                  optimizer: optax.GradientTransformation
                  ) -> tuple[nnx.GraphDef, nnx.State, State]:
  """The model's graph, its non-trained state and a fresh train state."""
  graphdef, params, rest = nnx.split(build.make_model(config), nnx.Param, ...)
  return graphdef, rest, {"params": params, "opt_state": optimizer.init(params),
                          "step": jax.numpy.zeros((), jax.numpy.int32)}


def restore_model(config: ml_collections.ConfigDict, workdir: str
                  ) -> tuple[model_lib.MetaModel, int]:
  """The model with the latest checkpoint's parameters, and its step."""
  optimizer, _ = optimizer_lib.make_optimizer(config)
  graphdef, rest, state = initial_state(config, optimizer)
  checkpoints = manager(workdir, config)
  step = checkpoints.latest_step()
  if step is None:
    checkpoints.close()
    raise UserError(f"no checkpoint in {os.path.join(workdir, CHECKPOINTS)}; "
                    f"train first with train.py --workdir={workdir}")
  restored = restore(checkpoints, state, step=step)
  checkpoints.close()
  return nnx.merge(graphdef, restored["params"], rest), step
