r"""Steps/s and model FLOPs utilisation of a config's training step.

  python bench/train_speed.py --config=configs/cpu.py [--steps=20]

The step's FLOPs come from XLA's cost analysis of the compiled step. The
baseline is a jitted chain of square matmuls with the same FLOPs, timed in
the same run: the last line gives both times and their ratio (the share of
matmul throughput the step reaches), which is stable across noisy machines.
"""

import time

import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from encoding import pipeline, synthetic
from meta_model import build, fit, optimizer as optimizer_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/cpu.py", "Training config whose step is timed.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after one warmup).")
_PROGRAMS = flags.DEFINE_integer(
    "programs", 64, "Sampled programs the batches are drawn from.")


def _time(fn, *args, steps: int) -> float:
  """Seconds per call, after one compiling call."""
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  for _ in range(steps):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps


def main(argv):
  del argv
  config = _CONFIG.value
  fit.check_config(config)
  batch = next(iter(pipeline.make_dataset(
      synthetic.record_source(0, _PROGRAMS.value, config.data.sampler),
      config)))
  graphdef, params, rest = nnx.split(build.make_model(config), nnx.Param, ...)
  optimizer, _ = optimizer_lib.make_optimizer(config)
  state = {"params": params, "opt_state": optimizer.init(params),
           "step": jnp.zeros((), jnp.int32)}
  step = jax.jit(fit.make_train_step(graphdef, rest, optimizer, config))
  flops = step.lower(state, batch).compile().cost_analysis()["flops"]
  step_s = _time(lambda s: step(s, batch)[1]["loss"], state, steps=_STEPS.value)

  # Matmul chain of the same FLOPs: k products of n x n matrices.
  n = 512
  k = max(1, round(flops / (2 * n ** 3)))
  matrix = jax.random.normal(jax.random.key(0), (n, n)) / n ** 0.5

  @jax.jit
  def chain(x):
    for _ in range(k):
      x = x @ matrix
    return x

  chain_s = _time(chain, matrix, steps=_STEPS.value)
  prefix_key = "blocks" if config.input.encoder == "blocks" else "node_type"
  print(f"batch {prefix_key} {batch[prefix_key].shape}, "
        f"{flops / 1e9:.2f} GFLOP/step")
  print(f"step {step_s * 1e3:.1f} ms ({1 / step_s:.2f} steps/s, "
        f"{flops / step_s / 1e9:.1f} GFLOP/s); matmul chain of the same FLOPs "
        f"{chain_s * 1e3:.1f} ms; utilisation vs matmul {chain_s / step_s:.2f}")


if __name__ == "__main__":
  app.run(main)
