r"""Trains the meta-model.

  python train.py --config=configs/default.py --workdir=DIR [--config.steps=100]

Configs: configs/{tiny,default,quick,cpu,gpu_short,gpu,tpu}.py; any field can be
overridden with --config.FIELD=VALUE. The data come from `config.data_dir`
(default DIR/data) and are generated there first if missing. Rerunning the
same command resumes from the latest checkpoint in DIR/checkpoints, input
iterator included. Everything else is `meta_model.fit`.
"""

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from meta_model import errors, fit

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/default.py; any "
    "field can be overridden with --config.FIELD=VALUE (e.g. "
    "--config.steps=100).", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for config.json, checkpoints, TensorBoard "
    "events and (unless --config.data_dir is set) the generated dataset; "
    "rerunning with the same directory resumes.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Call jax.distributed.initialize() first: run the "
    "same command on every host of a Cloud TPU pod slice or other "
    "multi-process setup.")
flags.mark_flags_as_required(["config", "workdir"])


@errors.exit_on_user_error
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Metrics print regardless.
  if _MULTIHOST.value:
    jax.distributed.initialize()
  fit.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
