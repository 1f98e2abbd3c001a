"""The real training loop on the tiny config: end to end, sharded, resumed."""

import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from configs import tiny
from encoding import pipeline
from meta_model import build, fit, optimizer as optimizer_lib
from meta_model.errors import UserError
from rasp_gen import convert, dataset, generate, records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("data"))
  generate.generate(tiny.get_config().data, path)
  return path


def _config(data_dir, **overrides):
  config = tiny.get_config()
  config.data_dir = data_dir
  config.update(overrides)
  return config


def test_train_and_evaluate_runs_and_writes_checkpoints(data_dir, tmp_path,
                                                       capsys):
  state = fit.train_and_evaluate(_config(data_dir), str(tmp_path))
  assert int(state["step"]) == 6
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state["params"]))
  steps = ocp.CheckpointManager(str(tmp_path / "checkpoints")).all_steps()
  assert sorted(steps) == [3, 6]
  assert os.listdir(tmp_path / "tensorboard")
  # The showcase: the first test program (within the tiny config's limits),
  # its decompilation and the verdict.
  out = capsys.readouterr().out
  showcase = out[out.index(fit.SHOWCASE_TITLE):]
  first = records.record_from_bytes(dataset.data_source(data_dir, "test")[0])
  assert f"true program:\n{convert.to_python(first.program)}" in showcase
  assert re.search(r"^(NOT )?verified: ", showcase, re.MULTILINE)
  assert "read off the weights (readout): verified" in showcase


def _two_steps(config, data_dir, devices):
  mesh = Mesh(np.array(devices), ("data",))
  replicated = NamedSharding(mesh, PartitionSpec())
  batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
  graphdef, params, rest = nnx.split(build.make_model(config), nnx.Param, ...)
  optimizer, _ = optimizer_lib.make_optimizer(config)
  state = jax.device_put({"params": params, "opt_state": optimizer.init(params),
                          "step": jnp.zeros((), jnp.int32)}, replicated)
  step = jax.jit(fit.make_train_step(graphdef, rest, optimizer, config),
                 in_shardings=(replicated, batch_sharding),
                 out_shardings=(replicated, replicated))
  batches = iter(pipeline.make_dataset(dataset.data_source(data_dir, "train"),
                                       config))
  losses = []
  for _ in range(2):
    state, metrics = step(state, jax.device_put(next(batches), batch_sharding))
    losses.append(float(metrics["loss"]))
  return losses, jax.device_get(state["params"])


@pytest.mark.parametrize("encoder", ["graph", "blocks"])
def test_eight_device_mesh_matches_one_device(data_dir, encoder):
  assert jax.device_count() == 8, "conftest asks XLA for 8 CPU devices"
  config = _config(data_dir)
  config.input.encoder = encoder
  losses_1, params_1 = _two_steps(config, data_dir, jax.devices()[:1])
  losses_8, params_8 = _two_steps(config, data_dir, jax.devices())
  np.testing.assert_allclose(losses_8, losses_1, rtol=1e-5)
  # Adam divides by sqrt(v): a near-zero gradient summed in another order
  # can move its parameter by a few 1e-5 (learning rate ~1e-3).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=5e-5),
               params_8, params_1)


def test_validation_batches_are_never_augmented(data_dir):
  config = _config(data_dir)
  config.input.encoder = "blocks"
  plain = fit.validation_batches(config, data_dir)
  config.blocks.augment = "permute"
  config.lock()  # As train.py passes it.
  jax.tree.map(np.testing.assert_array_equal,
               fit.validation_batches(config, data_dir), plain)
  # The training config is left as it was.
  assert config.blocks.augment == "permute"
  assert config.input.num_epochs == _config(data_dir).input.num_epochs


def test_inconsistent_config_is_refused(data_dir, tmp_path):
  config = _config(data_dir)
  config.model.max_rows = config.input.max_rows + 1
  with pytest.raises(UserError, match="model.max_rows=7 disagrees with 6 "
                     "from input.max_rows"):
    fit.train_and_evaluate(config, str(tmp_path))


def _run(workdir, data_dir, steps):
  return subprocess.Popen(
      [sys.executable, "train.py", "--config=configs/tiny.py",
       f"--workdir={workdir}", f"--config.data_dir={data_dir}",
       f"--config.steps={steps}", "--config.checkpoint_every=2"],
      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
      env=dict(os.environ, XLA_FLAGS=""), start_new_session=True)


def _final_params(workdir):
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))
  return manager.latest_step(), restored["state"]["params"]


def test_killed_run_resumes_to_the_same_parameters(data_dir, tmp_path):
  steps = 10
  straight = _run(tmp_path / "straight", data_dir, steps)
  assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()

  killed_dir = tmp_path / "killed"
  killed = _run(killed_dir, data_dir, steps)
  deadline = time.time() + 300
  while not (killed_dir / "checkpoints" / "4").exists():
    assert killed.poll() is None and time.time() < deadline
    time.sleep(0.2)
  os.killpg(killed.pid, signal.SIGKILL)
  killed.wait()
  assert not (killed_dir / "checkpoints" / str(steps)).exists()

  resumed = _run(killed_dir, data_dir, steps)
  assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
  step_a, params_a = _final_params(tmp_path / "straight")
  step_b, params_b = _final_params(killed_dir)
  assert step_a == step_b == steps
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)


# Every run config in configs/; data.py is the data group the others embed,
# wide_data.py a data config of its own (rasp_gen.generate's tests run it).
RUN_CONFIGS = sorted(
    name[:-len(".py")] for name in os.listdir(os.path.join(ROOT, "configs"))
    if name.endswith(".py")
    and name not in ("__init__.py", "data.py", "wide_data.py"))


def test_the_run_configs_include_the_readme_ones():
  assert {"tiny", "default", "quick", "cpu", "gpu", "tpu"} <= set(RUN_CONFIGS)


@pytest.mark.parametrize("name", RUN_CONFIGS)
def test_every_config_is_consistent(name):
  module = __import__(f"configs.{name}", fromlist=["get_config"])
  fit.check_config(module.get_config())


def test_non_finite_loss_stops_naming_the_step(data_dir, tmp_path):
  # An infinite learning rate makes every parameter non-finite after step 1.
  config = _config(data_dir, learning_rate=float("inf"), log_every=1)
  with pytest.raises(FloatingPointError, match="at step 2; the last good "
                     "checkpoint is step 0"):
    fit.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "checkpoints").exists() or not os.listdir(
      tmp_path / "checkpoints")


def test_steps_at_or_below_warmup_is_a_config_error():
  config = tiny.get_config()
  config.steps = config.warmup_steps
  with pytest.raises(UserError, match=r"warmup_steps=2 must be in \[0, "
                     "steps=2\\)"):
    fit.check_config(config)


def test_validation_metrics_sum_before_dividing():
  """Two batches of unequal weight: one denominator, not a mean of ratios."""
  small = dict(loss_sum=1.0, slots=1, token_right=1, token_counted=1,
               programs_right=1, programs=1, greedy_right=1,
               greedy_programs=1)
  large = dict(loss_sum=30.0, slots=10, token_right=0, token_counted=9,
               programs_right=0, programs=3, greedy_right=0,
               greedy_programs=3)
  summary = fit.validation_summary([small, large])
  assert summary == pytest.approx(dict(
      loss=31 / 11, token_accuracy=1 / 10, sequence_accuracy=1 / 4,
      greedy_program_accuracy=1 / 4))


def test_every_record_over_the_size_limits_fails_with_counts(data_dir,
                                                             tmp_path):
  """Instead of a pipeline that never yields a batch (training hangs)."""
  config = _config(data_dir)
  config.graph.buckets = ((4, 4, 2), (8, 8, 4), (16, 16, 8))
  with pytest.raises(UserError, match=r"(\d+) of the first \1 training "
                     "records are over the encoder's size limits.*nothing "
                     "left to train on"):
    fit.train_and_evaluate(config, str(tmp_path))


def test_a_dropped_share_above_the_limit_stops_the_run(data_dir, tmp_path):
  config = _config(data_dir, max_dropped_share=0.0)
  config.graph.buckets = ((16, 16, 8), (32, 64, 16), (160, 320, 96))
  with pytest.raises(UserError, match="above max_dropped_share=0.0"):
    fit.train_and_evaluate(config, str(tmp_path))


def test_waiting_for_another_host_times_out(monkeypatch, tmp_path):
  monkeypatch.setattr(generate, "generate", lambda *a, **k: None)
  config = _config(str(tmp_path / "never"), data_wait_timeout_s=0.05)
  with pytest.raises(TimeoutError, match="manifest.json.*did one of them "
                     "die"):
    fit.ensure_dataset(config, str(tmp_path))


def test_a_resumed_run_says_from_which_step(data_dir, tmp_path, capsys):
  fit.train_and_evaluate(_config(data_dir), str(tmp_path))
  assert "resumed" not in capsys.readouterr().out
  fit.train_and_evaluate(_config(data_dir, steps=8), str(tmp_path))
  assert f"resumed from step 6 of 8 ({tmp_path}/checkpoints)" in (
      capsys.readouterr().out)


class _Bar:
  def __init__(self):
    self.n = 0

  def update(self, k):
    self.n += k


def test_progress_counts_completed_steps_not_dispatched_ones():
  bar = _Bar()
  progress = fit.StepProgress(bar)
  ready = []

  class Loss:  # Stands in for a step's loss; ready once blocked on.
    def __init__(self, i):
      self.i = i

    def block_until_ready(self):
      ready.append(self.i)
      return self

  progress.dispatched(Loss(1))
  assert bar.n == 0  # Step 1 is in flight, not done.
  progress.dispatched(Loss(2))
  assert (bar.n, ready) == (1, [1])
  progress.flush()
  assert (bar.n, ready) == (2, [1, 2])
