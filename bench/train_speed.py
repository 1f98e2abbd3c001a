r"""Training speed: the step alone, the whole loop, and FLOPs utilisation.

  python bench/train_speed.py --config=configs/cpu.py [--steps=50] \
      [--data_dir=/path/to/dataset]

Prints, from one run:
  step alone  the jitted train step on one batch, back to back;
  full loop   what train.py does per step: the next batch from the input
              pipeline, the step, waiting for the previous step's loss, and
              fetching the metrics every `log_every` steps;
  loop / step their ratio: 1.0 when pipeline and logging cost nothing;
  MFU         model FLOPs (XLA's cost analysis of the step, per batch
              shape) per second over the device's peak dense bf16 FLOP/s,
              where `PEAK_FLOPS` knows the device ("unknown", e.g. on CPU);
  matmul      a jitted chain of square matmuls with the step's FLOPs: the
              share of matmul throughput the step reaches, which is stable
              across noisy machines and needs no peak.
Batches come from --data_dir's training split (through its cache) or from
--programs programs sampled in memory.
"""

import dataclasses
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from encoding import pipeline, synthetic
from meta_model import build, fit, optimizer as optimizer_lib
from rasp_gen import dataset

# Peak dense bf16 FLOP/s of one chip, by the first name that is part of
# jax's `device_kind` (vendor data sheets).
PEAK_FLOPS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12),
              ("A100", 312e12), ("TPU v4", 275e12), ("TPU v5 lite", 197e12),
              ("TPU v5", 459e12), ("TPU v6 lite", 918e12))


def peak_flops(device_kind: str) -> Optional[float]:
  """The device's peak FLOP/s from `PEAK_FLOPS`, None if unknown."""
  return next((peak for name, peak in PEAK_FLOPS if name in device_kind),
              None)


class _CompiledStep:
  """The train step compiled once per batch shape (a bucket), with its
  FLOPs and the seconds spent compiling."""

  def __init__(self, step: Callable):
    self._step = jax.jit(step)
    self._compiled: dict[Any, tuple[Any, float]] = {}
    self.compile_seconds = 0.0

  def _get(self, state: dict, batch: dict) -> tuple[Any, float]:
    key = tuple((k, v.shape) for k, v in sorted(batch.items()))
    if key not in self._compiled:
      start = time.perf_counter()
      compiled = self._step.lower(state, batch).compile()
      self.compile_seconds += time.perf_counter() - start
      self._compiled[key] = compiled, compiled.cost_analysis()["flops"]
    return self._compiled[key]

  @property
  def num_shapes(self) -> int:
    return len(self._compiled)

  def flops(self, state: dict, batch: dict) -> float:
    return self._get(state, batch)[1]

  def __call__(self, state: dict, batch: dict) -> tuple[dict, dict]:
    return self._get(state, batch)[0](state, batch)


@dataclasses.dataclass(frozen=True)
class Report:
  """Seconds per step and FLOPs per step of both timings."""

  device_kind: str
  peak_flops: Optional[float]
  batch_shape: tuple[int, ...]  # node_type's (graphs) or blocks' shape.
  step_seconds: float
  step_flops: float
  loop_seconds: float
  loop_flops: float  # Mean over the loop's batches (their buckets vary).
  loop_compiles: int  # New bucket shapes met in the loop (not timed).
  matmul_seconds: float

  def utilisation(self, flops: float, seconds: float) -> str:
    if self.peak_flops is None:
      return "unknown"
    return f"{flops / seconds / self.peak_flops:.2%}"


def _time_steps(step: _CompiledStep, state: dict, batch: dict,
                steps: int) -> tuple[dict, float]:
  """Seconds per step of the step alone on `batch`, after one call."""
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return state, (time.perf_counter() - start) / steps


def _time_loop(step: _CompiledStep, state: dict, batches: Iterator[dict],
               steps: int, log_every: int) -> tuple[float, float, int]:
  """Seconds and FLOPs per step of train.py's loop, and the bucket shapes
  compiled during it (their compile time left out)."""
  flops, pending = 0.0, None
  shapes, compile_seconds = step.num_shapes, step.compile_seconds
  start = time.perf_counter()
  for i in range(1, steps + 1):
    batch = next(batches)
    flops += step.flops(state, batch)
    state, metrics = step(state, batch)
    if pending is not None:  # One step in flight, as fit.StepProgress.
      jax.block_until_ready(pending)
    pending = metrics["loss"]
    if i % log_every == 0:
      jax.device_get(metrics)
  jax.block_until_ready(pending)
  seconds = (time.perf_counter() - start
             - (step.compile_seconds - compile_seconds))
  return seconds / steps, flops / steps, step.num_shapes - shapes


def _matmul_chain_seconds(flops: float, steps: int) -> float:
  """Seconds per call of jitted square matmuls totalling `flops`."""
  n = 512
  k = max(1, round(flops / (2 * n ** 3)))
  matrix = jax.random.normal(jax.random.key(0), (n, n)) / n ** 0.5

  @jax.jit
  def chain(x):
    for _ in range(k):
      x = x @ matrix
    return x

  jax.block_until_ready(chain(matrix))
  start = time.perf_counter()
  for _ in range(steps):
    out = chain(matrix)
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / steps


def run(config: ml_collections.ConfigDict, source: Sequence[bytes],
        steps: int, warmup_steps: int) -> Report:
  """Times the step alone and the full loop on batches of `source`."""
  fit.check_config(config)
  batches = iter(pipeline.make_dataset(source, config))
  graphdef, params, rest = nnx.split(build.make_model(config), nnx.Param, ...)
  optimizer, _ = optimizer_lib.make_optimizer(config)
  state = {"params": params, "opt_state": optimizer.init(params),
           "step": jnp.zeros((), jnp.int32)}
  step = _CompiledStep(fit.make_train_step(graphdef, rest, optimizer,
                                           config))
  batch = next(batches)
  state, step_seconds = _time_steps(step, state, batch, steps)
  for _ in range(warmup_steps):  # Compiles the buckets met first.
    state, _ = step(state, next(batches))
  loop_seconds, loop_flops, compiles = _time_loop(
      step, state, batches, steps, config.log_every)
  batches.close()
  size_key = "blocks" if config.input.encoder == "blocks" else "node_type"
  device_kind = jax.devices()[0].device_kind
  return Report(device_kind, peak_flops(device_kind),
                tuple(batch[size_key].shape), step_seconds,
                step.flops(state, batch), loop_seconds, loop_flops, compiles,
                _matmul_chain_seconds(step.flops(state, batch), steps))


def format_report(report: Report) -> str:
  peak = (f"peak {report.peak_flops / 1e12:.0f} TFLOP/s dense bf16"
          if report.peak_flops else "peak unknown")
  line = lambda name, seconds, flops: (
      f"{name}: {seconds * 1e3:.2f} ms/step ({1 / seconds:.1f} steps/s, "
      f"{flops / 1e9:.2f} GFLOP/step, {flops / seconds / 1e12:.3f} TFLOP/s, "
      f"MFU {report.utilisation(flops, seconds)})")
  compiles = (f"; {report.loop_compiles} bucket shapes first met in the "
              "loop, their compile time left out" if report.loop_compiles
              else "")
  return "\n".join([
      f"device: {report.device_kind} ({peak}); first batch "
      f"{report.batch_shape}",
      line("step alone", report.step_seconds, report.step_flops),
      line("full loop (pipeline + step + logging)", report.loop_seconds,
           report.loop_flops) + compiles,
      f"loop / step: {report.loop_seconds / report.step_seconds:.2f}",
      f"matmul chain of the step's FLOPs: {report.matmul_seconds * 1e3:.2f} "
      f"ms; step utilisation vs matmul "
      f"{report.matmul_seconds / report.step_seconds:.2f}"])


def _define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", "configs/cpu.py", "Training config whose step is timed.")
  flags.DEFINE_integer("steps", 20, "Timed steps of each timing.")
  flags.DEFINE_integer("warmup_steps", 5, "Loop steps before timing it "
                       "(compiles the buckets met first).")
  flags.DEFINE_string("data_dir", "", "Dataset directory written by "
                      "rasp_gen.generate; empty: --programs sampled programs.")
  flags.DEFINE_integer("programs", 64, "Programs to sample (the config's "
                       "sampler) when --data_dir is empty.")


def main(argv):
  del argv
  config = flags.FLAGS.config
  source = (dataset.data_source(flags.FLAGS.data_dir, "train")
            if flags.FLAGS.data_dir else synthetic.record_source(
                0, flags.FLAGS.programs, config.data.sampler))
  print(format_report(run(config, source, flags.FLAGS.steps,
                          flags.FLAGS.warmup_steps)))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
