"""Programs/s of compiled.compiler vs stock tracr, on sampled programs.

Compiles the same sampled programs with both, asserts identical params for
every program, and prints both rates and the speedup as the last line:

  python bench/compile_speed.py --num_programs=200 --seed=0

The fast path runs first, in the fresh process: the fast path never touches
JAX, so stock gets no help from compile caches warmed by it. Sampling and
RASP conversion are not timed.
"""

import time

import numpy as np
from absl import app, flags

_NUM_PROGRAMS = flags.DEFINE_integer("num_programs", 200,
                                     "Programs to sample and compile.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampler seed.")


def _compile_all(compile_fn, jobs) -> tuple[list, float]:
  """Compiles every (sop, vocab, max_seq_len); failures become exceptions."""
  results = []
  start = time.perf_counter()
  for sop, vocab, max_seq_len in jobs:
    try:
      results.append(compile_fn(sop, vocab, max_seq_len))
    except Exception as e:  # pylint: disable=broad-except
      results.append(e)
  return results, time.perf_counter() - start


def _same_params(fast: dict, stock: dict) -> bool:
  """Same keys in order, dtypes, shapes and bytes."""
  if list(fast) != list(stock):
    return False
  for module, params in stock.items():
    if list(fast[module]) != list(params):
      return False
    for name, value in params.items():
      want, got = np.asarray(value), fast[module][name]
      if (got.dtype != want.dtype or got.shape != want.shape
          or got.tobytes() != want.tobytes()):
        return False
  return True


def main(argv) -> None:
  del argv
  from configs import data  # pylint: disable=g-import-not-at-top
  from compiled import compiler  # pylint: disable=g-import-not-at-top
  from rasp_gen import convert, sampler  # pylint: disable=g-import-not-at-top
  from tracr.compiler import compiling  # pylint: disable=g-import-not-at-top

  config = data.get_config().sampler
  jobs = []
  for i in range(_NUM_PROGRAMS.value):
    sample = sampler.sample_program(sampler.sampler_rng(_SEED.value, i), config)
    jobs.append((convert.to_rasp(sample.program), set(sample.vocab),
                 sample.max_seq_len))
  print(f"sampled {len(jobs)} programs", flush=True)

  fast, fast_s = _compile_all(compiler.compile_rasp_to_params, jobs)
  print(f"fast: {fast_s:.2f} s", flush=True)
  stock, stock_s = _compile_all(
      lambda *a: compiling.compile_rasp_to_model(*a).params, jobs)
  print(f"stock: {stock_s:.2f} s", flush=True)

  rejected = 0
  for i, (f, s) in enumerate(zip(fast, stock)):
    if isinstance(s, Exception):
      rejected += 1
      assert (type(f), str(f)) == (type(s), str(s)), (i, f, s)
    else:
      assert not isinstance(f, Exception), (i, f)
      assert _same_params(f, s), f"params differ for program {i}"
  print(f"identical params for {len(jobs) - rejected} programs; "
        f"{rejected} rejected by both compilers")
  fast_rate, stock_rate = len(jobs) / fast_s, len(jobs) / stock_s
  print(f"fast {fast_rate:.1f} programs/s, stock {stock_rate:.1f} programs/s, "
        f"speedup {fast_rate / stock_rate:.1f}x")


if __name__ == "__main__":
  app.run(main)
