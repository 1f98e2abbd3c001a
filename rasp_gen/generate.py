r"""Writes the compiled dataset: sample -> compile -> dedupe -> split -> shard.

  python -m rasp_gen.generate --config=configs/data.py --out_dir=DIR \
      [--config.num_programs=200] [--shard_index=k --num_shards=n]

Program i (0 <= i < num_programs) is `sample_program(sampler_rng(seed, i))`,
compiled with `compiled.compiler` and tracr's default BOS/PAD names. The work
has two phases, so that resume and determinism are easy to check:

1. Chunks (parallel, resumable). Chunk c is sample indices
   [c * shard_size, (c + 1) * shard_size). A worker process compiles them and
   writes every success, in index order, to `chunks/chunk-c.array_record`,
   then `chunks/chunk-c.json`: per record its index, identity key, split and
   length; per skipped sample the reason (sampler exception, or
   `compile_timeout_s`); and the draws the sampler rejected, summed by
   reason (`sampler.REJECTIONS`, e.g. `unfaithful`: tracr's weights do not
   compute the program). Each file is written under a temporary name and
   `os.replace`d into place, the JSON last, so a chunk is done iff its JSON
   exists. A chunk's bytes depend on (config, c) alone, so a rerun after
   kill -9 redoes exactly the unfinished chunks, with any number of workers.
2. Finalize (one cheap, deterministic pass once every chunk is done). Walking
   the chunk JSONs in index order, the first record of each identity
   (canonical program, vocab, max_seq_len) is kept and later ones are counted
   as duplicates. Kept records are copied, in index order, into
   `{split}-NNNNN-of-MMMMM.array_record` shards of `shard_size` records, and
   `manifest.json` is written last: its existence marks the dataset finished
   (see `rasp_gen.dataset` for reading it). Finalizing again rewrites the same
   bytes. The chunks stay behind as working state; once the manifest exists
   they may be deleted.

A record's split is a stable hash of its canonical program alone, so one
program is never in two splits, whatever its vocab.

The first run writes `generate_config.json`. A directory that is non-empty
without it, or holds it for another config, is refused and left untouched.
`num_workers` is not part of that identity (it changes speed, not bytes), so
it may change between a run and its resume, and it is left out of the
manifest.

Multi-host: process k of n (`--shard_index=k --num_shards=n`, on a shared
filesystem) makes the chunks c with c % n == k. Each process finalizes as
soon as it sees every chunk done: the last one to finish always does, and
concurrent finalizers write identical bytes through atomic renames, so there
is one `manifest.json`. To make up for a lost process, rerun it, or rerun
with the default --num_shards=1, which makes every missing chunk.

Caveats: whether a sample hits `compile_timeout_s` depends on the machine
(typical samples take ~30 ms, the default limit is 60 s). kill -9 can leave
hidden `.*.tmp-*` files; nothing reads them and they may be deleted. If only
the parent is killed, a worker may still finish its chunk; that is harmless,
since a chunk's files are deterministic and replaced atomically.
"""

import collections
import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import signal
import time
import uuid
from typing import Any, Iterator, Optional

import ml_collections
from absl import app, flags, logging
from array_record.python import array_record_module
from ml_collections import config_flags
import tqdm

from compiled import compiler
from rasp_gen import dataset, records, sampler

CONFIG_FILE = "generate_config.json"
CHUNKS_DIR = "chunks"
COMPILER_BOS = compiler.COMPILER_BOS  # Stored in every record.
COMPILER_PAD = compiler.COMPILER_PAD
# One record per array_record chunk: the fastest random access for grain.
_WRITER_OPTIONS = "group_size:1"
# Config fields that change speed but not the dataset's bytes.
_NOT_IDENTITY = ("num_workers",)
# Sampler fields added after datasets were made, each with the test that it
# changes nothing: then it is left out of the identity, so those datasets
# keep theirs (and resume) and a config that leaves them off matches them.
_SAMPLER_OFF_WHEN = {
    "table_share": lambda sampler: not sampler.get("table_share"),
    "table_num_values": lambda sampler: not sampler.get("table_share"),
    "custom_select_share": lambda sampler: not sampler.get(
        "custom_select_share"),
    "string_vocab_share": lambda sampler: not sampler.get(
        "string_vocab_share"),
    "reuse_select_share": lambda sampler: not sampler.get(
        "reuse_select_share"),
    "grow_past_dead_code": lambda sampler: not sampler.get(
        "grow_past_dead_code"),
    "max_numerical_product": lambda sampler: not sampler.get(
        "max_numerical_product"),
}


def identity_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config fields that decide the bytes, as plain JSON values (the
  wider-language sampler fields only where they are on)."""
  fields = {k: v for k, v in config.to_dict().items()
            if k not in _NOT_IDENTITY}
  if isinstance(fields.get("sampler"), dict):
    sampler_fields = fields["sampler"]
    fields["sampler"] = {
        k: v for k, v in sampler_fields.items()
        if not (k in _SAMPLER_OFF_WHEN and _SAMPLER_OFF_WHEN[k](
            sampler_fields))}
  return json.loads(json.dumps(fields))


def _digest(value: Any) -> str:
  return hashlib.sha256(
      json.dumps(value, separators=(",", ":")).encode()).hexdigest()


def identity_key(rows: list[list[str]], vocab: tuple,
                 max_seq_len: int) -> str:
  """Equal keys mean exact duplicates: same program, same input space."""
  return _digest([rows, list(vocab), max_seq_len])


def split_of(rows: list[list[str]], validation_fraction: float,
             test_fraction: float) -> str:
  """A hash of the canonical program alone, so splits are disjoint by program.

  `rows` must be canonical (`records.program_to_rows(canonicalize(p))`).
  """
  position = int(_digest(rows)[:16], 16) / 2**64  # Uniform in [0, 1).
  if position < validation_fraction:
    return "validation"
  if position < validation_fraction + test_fraction:
    return "test"
  return "train"


def _temp_path(path: str) -> str:
  """A unique hidden name beside `path`, so os.replace stays on one disk."""
  directory, name = os.path.split(path)
  return os.path.join(
      directory, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _is_temp(name: str) -> bool:
  return name.startswith(".") and ".tmp-" in name


def _publish(temp: str, path: str) -> None:
  """Makes `temp` durable, then visible as `path` in one atomic step."""
  with open(temp, "rb") as f:
    os.fsync(f.fileno())
  os.replace(temp, path)


def _write_records(path: str, payloads: list[bytes]) -> None:
  temp = _temp_path(path)
  writer = array_record_module.ArrayRecordWriter(temp, _WRITER_OPTIONS)
  for payload in payloads:
    writer.write(payload)
  writer.close()
  _publish(temp, path)


def _write_json(path: str, value: Any) -> None:
  temp = _temp_path(path)
  with open(temp, "w") as f:
    json.dump(value, f, indent=1)
  _publish(temp, path)


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _claim_out_dir(out_dir: str, identity: dict[str, Any]) -> None:
  """Makes `out_dir` this run's, or raises saying why not, touching nothing.

  Ours means: absent, empty, or holding CONFIG_FILE with the same identity.
  """
  marker = os.path.join(out_dir, CONFIG_FILE)
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise NotADirectoryError(f"out_dir {out_dir!r} exists and is not a "
                             "directory")
  if os.path.exists(marker):
    existing = _flatten(_read_json(marker))
    wanted = _flatten(identity)
    differences = [f"{key}: {wanted.get(key)!r} here, {existing.get(key)!r} "
                   "in the directory"
                   for key in sorted(set(existing) | set(wanted))
                   if existing.get(key) != wanted.get(key)]
    if differences:
      raise ValueError(
          f"out_dir {out_dir!r} holds a dataset generated with a different "
          f"config ({'; '.join(differences)}); use a new --out_dir or the "
          "same config")
  elif os.path.isdir(out_dir):
    foreign = sorted(n for n in os.listdir(out_dir) if not _is_temp(n))
    if foreign:
      raise FileExistsError(
          f"out_dir {out_dir!r} is not empty and is not a dataset "
          f"({CONFIG_FILE} is missing; it holds {foreign[:5]}); refusing to "
          "write into it")
  try:
    os.makedirs(out_dir, exist_ok=True)
    if not os.path.exists(marker):
      _write_json(marker, identity)
    os.makedirs(os.path.join(out_dir, CHUNKS_DIR), exist_ok=True)
  except OSError as e:
    raise OSError(f"cannot write to out_dir {out_dir!r}: {e}") from e


def _check_config(config: ml_collections.ConfigDict) -> None:
  problems = []
  if config.num_programs < 1:
    problems.append(f"num_programs={config.num_programs} must be >= 1")
  if config.shard_size < 1:
    problems.append(f"shard_size={config.shard_size} must be >= 1")
  if config.compile_timeout_s <= 0:
    problems.append(
        f"compile_timeout_s={config.compile_timeout_s} must be > 0")
  fractions = (config.validation_fraction, config.test_fraction)
  if min(fractions) < 0 or sum(fractions) > 1:
    problems.append(f"validation_fraction={fractions[0]} and test_fraction="
                    f"{fractions[1]} must be >= 0 with a sum <= 1")
  if problems:
    raise ValueError(f"bad data config: {'; '.join(problems)}")


class _Timeout(BaseException):
  """A BaseException, so that no `except Exception` in tracr swallows it."""


def _raise_timeout(signum: int, frame: Any) -> None:
  raise _Timeout("compile_timeout_s exceeded")


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
  """Raises _Timeout after `seconds`; only for a process's main thread."""
  previous = signal.signal(signal.SIGALRM, _raise_timeout)
  signal.setitimer(signal.ITIMER_REAL, seconds)
  try:
    yield
  finally:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _skip(reason: str, error: BaseException) -> dict[str, str]:
  return {"reason": reason, "error": str(error)[:500]}


def compile_sample(index: int, config: ml_collections.ConfigDict
                   ) -> tuple[Optional[records.Record], Optional[dict],
                              dict[str, int]]:
  """Sample `index`'s record or None, why it was skipped or None, and the
  draws the sampler rejected on the way, by reason (`sampler.REJECTIONS`).

  The skip reason (`timeout`, or `sampler:SamplingError` when no draw
  passed; the sampler only returns programs that compile) is what the
  manifest counts; the error message goes to the chunk's JSON only. A
  timeout loses the rejection counts of its sample. Any other exception is
  a config error or a bug, not a skip: it propagates.
  """
  try:
    with _time_limit(config.compile_timeout_s):
      sample = sampler.sample_program(
          sampler.sampler_rng(config.seed, index), config.sampler)
  except _Timeout as e:
    return None, _skip("timeout", e), {}
  except sampler.SamplingError as e:  # No draw passed: a counted skip.
    return (None, _skip(f"sampler:{type(e).__name__}", e),
            dict(e.rejections))
  # Anything else (a config error, a bug) is not a skip: it fails the run
  # with its message instead of becoming thousands of counted skips.
  rows = records.program_to_rows(sample.program)
  split = split_of(rows, config.validation_fraction, config.test_fraction)
  return records.Record(
      program=sample.program, params=sample.compiled.params,
      num_heads=sample.compiled.num_heads, vocab=sample.vocab,
      max_seq_len=sample.max_seq_len, compiler_bos=COMPILER_BOS,
      compiler_pad=COMPILER_PAD, index=index, split=split,
      output=sample.compiled.output_decoding), None, sample.rejections


def _chunk_paths(out_dir: str, chunk: int) -> tuple[str, str]:
  """The chunk's records file and its JSON (written last: 'done')."""
  stem = os.path.join(out_dir, CHUNKS_DIR, f"chunk-{chunk:05d}")
  return f"{stem}.array_record", f"{stem}.json"


def _chunk_range(config: ml_collections.ConfigDict, chunk: int) -> range:
  start = chunk * config.shard_size
  return range(start, min(start + config.shard_size, config.num_programs))


def make_chunk(out_dir: str, config: ml_collections.ConfigDict,
               chunk: int) -> dict[str, Any]:
  """Compiles the chunk's samples and writes its two files; returns the JSON.

  Runs in a worker process: the records go to disk, not back to the parent.
  """
  entries, skipped, payloads = [], [], []
  rejected = collections.Counter()
  for index in _chunk_range(config, chunk):
    record, skip, rejections = compile_sample(index, config)
    rejected.update(rejections)
    if record is None:
      skipped.append({"index": index, **skip})
      continue
    entries.append({
        "index": index,
        "key": identity_key(records.program_to_rows(record.program),
                            record.vocab, record.max_seq_len),
        "split": record.split,
        "length": len(record.program),
    })
    payloads.append(records.record_to_bytes(record))
  records_path, json_path = _chunk_paths(out_dir, chunk)
  _write_records(records_path, payloads)
  stats = {"chunk": chunk, "records": entries, "skipped": skipped,
           "rejected": dict(sorted(rejected.items()))}
  _write_json(json_path, stats)
  return stats


def _make_chunks(out_dir: str, config: ml_collections.ConfigDict,
                 chunks: list[int]) -> None:
  """Runs `make_chunk` over worker processes, with a progress bar."""
  if not chunks:
    return
  num_workers = min(config.num_workers or os.cpu_count() or 1, len(chunks))
  # 'spawn': JAX (imported by flax, for records) and fork do not mix.
  context = multiprocessing.get_context("spawn")
  total = sum(len(_chunk_range(config, c)) for c in chunks)
  with concurrent.futures.ProcessPoolExecutor(
      num_workers, mp_context=context) as pool, tqdm.tqdm(
          total=total, unit="program", desc="compiling") as progress:
    futures = {pool.submit(make_chunk, out_dir, config, c): c for c in chunks}
    for future in concurrent.futures.as_completed(futures):
      future.result()
      progress.update(len(_chunk_range(config, futures[future])))


def _dedupe(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Each identity's first record in index order: the same on every rerun."""
  seen, kept = set(), []
  for entry in entries:
    if entry["key"] not in seen:
      seen.add(entry["key"])
      kept.append(entry)
  return kept


def _read_payloads(out_dir: str, entries: list[dict[str, Any]]) -> list[bytes]:
  """The records' bytes from their chunk files, in the entries' order."""
  payloads = []
  for chunk, group in itertools.groupby(entries, lambda e: e["chunk"]):
    reader = array_record_module.ArrayRecordReader(
        _chunk_paths(out_dir, chunk)[0])
    payloads += reader.read([entry["position"] for entry in group])
    reader.close()
  return payloads


def _write_split(out_dir: str, split: str, entries: list[dict[str, Any]],
                 shard_size: int) -> list[dict[str, Any]]:
  """Writes the split's shards; returns their manifest entries."""
  batches = [entries[i:i + shard_size]
             for i in range(0, len(entries), shard_size)]
  shards = []
  for number, batch in enumerate(batches):
    name = dataset.shard_name(split, number, len(batches))
    path = os.path.join(out_dir, name)
    _write_records(path, _read_payloads(out_dir, batch))
    shards.append({"path": name, "split": split, "num_records": len(batch),
                   "num_bytes": os.path.getsize(path),
                   "sha256": dataset.file_sha256(path)})
  return shards


def _finalize(out_dir: str, config: ml_collections.ConfigDict,
              num_chunks: int) -> dict[str, Any]:
  """Dedupes, writes the split shards, then the manifest; returns it."""
  stats = [_read_json(_chunk_paths(out_dir, c)[1]) for c in range(num_chunks)]
  compiled = [dict(entry, chunk=s["chunk"], position=position)
              for s in stats for position, entry in enumerate(s["records"])]
  kept = _dedupe(compiled)
  by_split = {split: [e for e in kept if e["split"] == split]
              for split in dataset.SPLITS}
  shards = [shard for split, entries in by_split.items()
            for shard in _write_split(out_dir, split, entries,
                                      config.shard_size)]
  skipped = collections.Counter(
      skip["reason"] for s in stats for skip in s["skipped"])
  rejected = collections.Counter()
  for s in stats:
    rejected.update(s["rejected"])
  manifest = {
      "config": identity_config(config),
      "seeds": {"seed": config.seed,
                "program_rng": "numpy.random.default_rng([seed, index])"},
      "compiler_bos": COMPILER_BOS,
      "compiler_pad": COMPILER_PAD,
      "num_sampled": config.num_programs,
      "num_compiled": len(compiled),
      "num_skipped": dict(sorted(skipped.items())),
      "num_rejected": dict(sorted(rejected.items())),
      "num_duplicates": len(compiled) - len(kept),
      "counts": {split: len(entries) for split, entries in by_split.items()},
      "length_histogram": {
          split: {str(length): count for length, count in sorted(
              collections.Counter(e["length"] for e in entries).items())}
          for split, entries in by_split.items()},
      "shards": shards,
  }
  _write_json(os.path.join(out_dir, dataset.MANIFEST), manifest)
  return manifest


def generate(config: ml_collections.ConfigDict, out_dir: str,
             shard_index: int = 0, num_shards: int = 1
             ) -> Optional[dict[str, Any]]:
  """Makes (or resumes) this process's chunks; finalizes once all are done.

  Returns:
    The manifest, or None while chunks of other processes are missing.
  """
  _check_config(config)
  if not 0 <= shard_index < num_shards:
    raise ValueError(f"shard_index={shard_index} must be in [0, num_shards="
                     f"{num_shards})")
  _claim_out_dir(out_dir, identity_config(config))
  if os.path.exists(os.path.join(out_dir, dataset.MANIFEST)):
    logging.info("%s is already finished", out_dir)
    return dataset.load_manifest(out_dir)
  num_chunks = -(-config.num_programs // config.shard_size)
  is_done = lambda c: os.path.exists(_chunk_paths(out_dir, c)[1])
  mine = range(shard_index, num_chunks, num_shards)
  todo = [c for c in mine if not is_done(c)]
  logging.info("%d of this process's %d chunks to make (%d already done)",
               len(todo), len(mine), len(mine) - len(todo))
  _make_chunks(out_dir, config, todo)
  missing = [c for c in range(num_chunks) if not is_done(c)]
  if missing:
    logging.info("%d chunks of other processes are not done yet (first: %d); "
                 "the last process to finish writes the manifest",
                 len(missing), missing[0])
    return None
  return _finalize(out_dir, config, num_chunks)


def _main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  start = time.time()
  out_dir = flags.FLAGS.out_dir
  manifest = generate(flags.FLAGS.config, out_dir, flags.FLAGS.shard_index,
                      flags.FLAGS.num_shards)
  if manifest is not None:
    logging.info(
        "%s: %s records; %d sampled, %d skipped %s, %d duplicates; "
        "draws rejected on the way %s; %.0f s",
        out_dir, manifest["counts"], manifest["num_sampled"],
        sum(manifest["num_skipped"].values()), manifest["num_skipped"],
        manifest["num_duplicates"], manifest["num_rejected"],
        time.time() - start)


def _define_flags() -> None:
  """Only when run as a script: importing the module defines no flags, so it
  cannot clash with another entry point's --config."""
  config_flags.DEFINE_config_file(
      "config", None, "Path to the data config, e.g. configs/data.py.")
  flags.DEFINE_string(
      "out_dir", None, "Dataset directory: created, or resumed if it holds a "
      "run with the same config.")
  flags.DEFINE_integer(
      "shard_index", 0, "This process's index among --num_shards generator "
      "processes (on multi-host, jax.process_index()).")
  flags.DEFINE_integer(
      "num_shards", 1, "Number of generator processes sharing the chunks "
      "(on multi-host, jax.process_count()).")
  flags.mark_flags_as_required(["config", "out_dir"])


if __name__ == "__main__":
  _define_flags()
  app.run(_main)
