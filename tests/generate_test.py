"""The generator's contract: consistent, deduplicated, disjoint, deterministic
and resumable output, and refusal to write where it does not belong."""

import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import grain
import pytest
from flax import serialization

from configs import data, wide_data
from rasp_gen import dataset, generate, records, sampler
from rasp_gen.program import Table

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**overrides):
  """A small run over a narrow program space, so duplicates do occur and a
  program appears with more than one vocab."""
  config = data.get_config()
  config.num_programs = 40
  config.shard_size = 10
  config.num_workers = 2
  config.validation_fraction = 0.2
  config.test_fraction = 0.2
  config.sampler.length = (2, 3)
  config.sampler.vocab_size = (3, 3)
  config.sampler.vocab_offset = (0, 1)
  config.sampler.max_seq_len = (4, 4)
  for key, value in overrides.items():
    config[key] = value
  return config


def _read_all(out_dir: str) -> dict[str, list[records.Record]]:
  return {split: dataset.read_split(out_dir, split) for split in dataset.SPLITS}


def _encoded(out_dir: str) -> dict[str, list[bytes]]:
  """Decoded then re-encoded: records compare by value, arrays included."""
  return {split: [records.record_to_bytes(r) for r in split_records]
          for split, split_records in _read_all(out_dir).items()}


def _dataset_bytes(out_dir: str) -> dict[str, bytes]:
  """The manifest and every file it lists: what a dataset is."""
  names = [dataset.MANIFEST] + [
      s["path"] for s in dataset.load_manifest(out_dir)["shards"]]
  return {name: open(os.path.join(out_dir, name), "rb").read()
          for name in names}


def _snapshot(directory: str) -> dict[str, bytes]:
  return {os.path.relpath(os.path.join(root, name), directory):
          open(os.path.join(root, name), "rb").read()
          for root, _, names in os.walk(directory) for name in names}


def _key(record: records.Record) -> str:
  return generate.identity_key(records.program_to_rows(record.program),
                               record.vocab, record.max_seq_len)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> str:
  out_dir = str(tmp_path_factory.mktemp("small") / "data")
  generate.generate(_config(), out_dir)
  return out_dir


def test_manifest_counts_add_up(small_run):
  manifest = dataset.load_manifest(small_run)
  assert manifest["num_sampled"] == 40
  assert (manifest["num_compiled"] + sum(manifest["num_skipped"].values())
          == manifest["num_sampled"])
  assert manifest["num_duplicates"] > 0  # The narrow space repeats programs.
  assert (sum(manifest["counts"].values()) + manifest["num_duplicates"]
          == manifest["num_compiled"])
  for split, count in manifest["counts"].items():
    assert count > 0, split
    assert sum(s["num_records"] for s in manifest["shards"]
               if s["split"] == split) == count
    assert sum(manifest["length_histogram"][split].values()) == count
    assert all(s["num_records"] <= 10 for s in manifest["shards"])
  assert "num_workers" not in manifest["config"]
  # Draws the sampler rejected on the way, by reason, summed from samples.
  rejected = collections.Counter()
  for index in range(40):
    rejected.update(generate.compile_sample(index, _config())[2])
  assert manifest["num_rejected"] == dict(sorted(rejected.items()))
  assert manifest["num_rejected"]["unfaithful"] > 0


def test_records_match_their_samples_and_splits(small_run):
  config = _config()
  for split, split_records in _read_all(small_run).items():
    indices = [r.index for r in split_records]
    assert indices == sorted(indices), split
    for record in split_records:
      assert record.split == split
      assert (record.compiler_bos, record.compiler_pad) == (
          "compiler_bos", "compiler_pad")
      sample = sampler.sample_program(
          sampler.sampler_rng(config.seed, record.index), config.sampler)
      assert (record.program, record.vocab, record.max_seq_len,
              record.num_heads, record.output) == (
                  sample.program, sample.vocab, sample.max_seq_len,
                  sample.compiled.num_heads, sample.compiled.output_decoding)
      assert record.params["token_embed"]["embeddings"].dtype == "float32"


def test_exact_duplicates_removed_first_occurrence_kept(small_run):
  config = _config()
  first_index = {}
  for index in range(config.num_programs):
    record, _, _ = generate.compile_sample(index, config)
    if record is not None:
      first_index.setdefault(_key(record), index)
  kept = [r for rs in _read_all(small_run).values() for r in rs]
  assert sorted(r.index for r in kept) == sorted(first_index.values())


def test_splits_are_disjoint_by_program(small_run):
  splits_of_program = collections.defaultdict(set)
  vocabs_of_program = collections.defaultdict(set)
  for split, split_records in _read_all(small_run).items():
    for record in split_records:
      rows = str(records.program_to_rows(record.program))
      splits_of_program[rows].add(split)
      vocabs_of_program[rows].add(record.vocab)
  assert all(len(s) == 1 for s in splits_of_program.values())
  # The check has teeth: some program occurs with two vocabs.
  assert any(len(v) > 1 for v in vocabs_of_program.values())


def test_grain_reads_the_records(small_run):
  source = dataset.data_source(small_run, "train")
  ds = grain.MapDataset.source(source).map(records.record_from_bytes)
  assert len(ds) == len(source)
  assert records.record_to_bytes(ds[3]) == _encoded(small_run)["train"][3]


def test_records_without_num_heads_are_refused(small_run):
  record = dataset.read_split(small_run, "train")[0]
  raw = serialization.msgpack_restore(records.record_to_bytes(record))
  del raw["num_heads"]
  with pytest.raises(ValueError, match="no num_heads.*regenerate"):
    records.record_from_bytes(serialization.msgpack_serialize(raw))


def test_records_without_output_decoding_are_refused(small_run):
  record = dataset.read_split(small_run, "train")[0]
  raw = serialization.msgpack_restore(records.record_to_bytes(record))
  del raw["output"]
  with pytest.raises(ValueError, match="no output decoding.*regenerate"):
    records.record_from_bytes(serialization.msgpack_serialize(raw))


def test_same_bytes_whatever_the_worker_count(small_run, tmp_path):
  out_dir = str(tmp_path / "one_worker")
  generate.generate(_config(num_workers=1), out_dir)
  assert _dataset_bytes(out_dir) == _dataset_bytes(small_run)


def test_rerun_of_a_finished_dataset_changes_nothing(small_run):
  before = _snapshot(small_run)
  generate.generate(_config(num_workers=1), small_run)
  assert _snapshot(small_run) == before


def test_processes_share_the_chunks_and_the_last_finalizes(small_run, tmp_path):
  out_dir = str(tmp_path / "two_hosts")
  assert generate.generate(_config(), out_dir, shard_index=1,
                           num_shards=2) is None
  assert not os.path.exists(os.path.join(out_dir, dataset.MANIFEST))
  assert generate.generate(_config(), out_dir, shard_index=0,
                           num_shards=2) is not None
  assert _dataset_bytes(out_dir) == _dataset_bytes(small_run)


def test_resume_after_kill_equals_an_uninterrupted_run(small_run, tmp_path):
  out_dir = str(tmp_path / "killed")
  command = [sys.executable, "-m", "rasp_gen.generate",
             "--config=configs/data.py", f"--out_dir={out_dir}",
             "--config.num_programs=200", "--config.shard_size=10",
             "--config.num_workers=2"]
  process = subprocess.Popen(command, cwd=_REPO, start_new_session=True,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  chunks_dir = os.path.join(out_dir, generate.CHUNKS_DIR)
  deadline = time.time() + 60
  while time.time() < deadline and process.poll() is None:
    if os.path.isdir(chunks_dir) and sum(
        n.endswith(".json") for n in os.listdir(chunks_dir)) >= 3:
      break
    time.sleep(0.05)
  # The whole process group: the generator and its workers, as a lost
  # machine would.
  os.killpg(process.pid, signal.SIGKILL)
  process.wait()
  done = {n: os.stat(os.path.join(chunks_dir, n)).st_mtime_ns
          for n in os.listdir(chunks_dir) if n.endswith(".json")}
  assert 3 <= len(done) < 20, "the kill did not land mid-run"
  assert not os.path.exists(os.path.join(out_dir, dataset.MANIFEST))

  config = data.get_config()
  config.num_programs, config.shard_size, config.num_workers = 200, 10, 2
  resumed = generate.generate(config, out_dir)
  assert {n: os.stat(os.path.join(chunks_dir, n)).st_mtime_ns
          for n in done} == done  # Finished chunks were not redone.
  reference_dir = str(tmp_path / "uninterrupted")
  reference = generate.generate(config, reference_dir)
  assert resumed == reference
  assert _dataset_bytes(out_dir) == _dataset_bytes(reference_dir)
  assert _encoded(out_dir) == _encoded(reference_dir)


def test_skipped_samples_are_counted_not_fatal(tmp_path):
  out_dir = str(tmp_path / "timeouts")
  manifest = generate.generate(
      _config(num_programs=5, num_workers=1, compile_timeout_s=1e-4), out_dir)
  assert manifest["num_skipped"] == {"timeout": 5}
  assert manifest["counts"] == {split: 0 for split in dataset.SPLITS}
  assert dataset.read_split(out_dir, "train") == []


def test_foreign_directory_is_refused_untouched(tmp_path):
  (tmp_path / "notes.txt").write_text("mine")
  before = _snapshot(str(tmp_path))
  with pytest.raises(FileExistsError, match="not a dataset"):
    generate.generate(_config(), str(tmp_path))
  assert _snapshot(str(tmp_path)) == before


def test_different_config_is_refused_untouched(small_run):
  before = _snapshot(small_run)
  with pytest.raises(ValueError, match="different config.*seed: 1 here, 0"):
    generate.generate(_config(seed=1), small_run)
  assert _snapshot(small_run) == before


def test_unwritable_out_dir_is_named(tmp_path):
  (tmp_path / "file").write_text("")
  out_dir = str(tmp_path / "file" / "data")
  with pytest.raises(OSError, match="cannot write to out_dir .*file/data"):
    generate.generate(_config(), out_dir)


def test_bad_config_and_flags_are_named(tmp_path):
  with pytest.raises(ValueError, match="shard_size=0"):
    generate.generate(_config(shard_size=0), str(tmp_path / "a"))
  with pytest.raises(ValueError, match="shard_index=2"):
    generate.generate(_config(), str(tmp_path / "b"), shard_index=2,
                      num_shards=2)
  with pytest.raises(ValueError, match="unknown split 'dev'"):
    dataset.read_split(str(tmp_path), "dev")
  with pytest.raises(FileNotFoundError, match="not a finished dataset"):
    dataset.read_split(str(tmp_path), "train")


def test_a_bug_in_sampling_fails_the_run_instead_of_counting_skips(
    monkeypatch):
  def broken(rng, config):
    raise KeyError("operator_weights")  # A config error or a bug.
  monkeypatch.setattr(sampler, "sample_program", broken)
  with pytest.raises(KeyError, match="operator_weights"):
    generate.compile_sample(0, _config())

  def gives_up(rng, config):  # What the sampler raises when no draw passes.
    raise sampler.SamplingError("no program", {"invalid": 3})
  monkeypatch.setattr(sampler, "sample_program", gives_up)
  record, skip, rejections = generate.compile_sample(0, _config())
  assert record is None and skip["reason"] == "sampler:SamplingError"
  assert rejections == {"invalid": 3}


def test_a_truncated_or_corrupted_shard_is_named(small_run, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  out_dir = str(tmp_path / "copy")
  shutil.copytree(small_run, out_dir)
  dataset.check_shards(out_dir)
  shard = dataset.load_manifest(out_dir)["shards"][0]
  path = os.path.join(out_dir, shard["path"])
  content = open(path, "rb").read()
  with open(path, "wb") as f:  # Same size, one byte flipped.
    f.write(content[:-1] + bytes([content[-1] ^ 1]))
  with pytest.raises(ValueError, match=f"shard {path} does not match"):
    dataset.check_shards(out_dir)
  with open(path, "wb") as f:
    f.write(content[:len(content) // 2])
  with pytest.raises(ValueError, match=f"shard {path} has {len(content) // 2}"
                     " bytes"):
    dataset.read_split(out_dir, shard["split"])


# sha256 of json.dumps(identity_config(data.get_config()), sort_keys=True),
# [:16], before the wider-language sampler knobs existed.
DATA_IDENTITY_BEFORE_THE_WIDER_LANGUAGE = "bd68865a16ced7dc"
WIDER_LANGUAGE_KEYS = {"table_share", "table_num_values",
                       "custom_select_share", "string_vocab_share",
                       "reuse_select_share", "grow_past_dead_code",
                       "max_numerical_product"}


def test_the_wider_language_off_keeps_the_dataset_identity(small_run):
  identity = generate.identity_config(data.get_config())
  assert not WIDER_LANGUAGE_KEYS & set(identity["sampler"])
  assert hashlib.sha256(json.dumps(identity, sort_keys=True).encode(
  )).hexdigest()[:16] == DATA_IDENTITY_BEFORE_THE_WIDER_LANGUAGE
  # On, a knob is part of the identity, with what it reads.
  config = _config()
  config.sampler.table_share = 0.5
  on = generate.identity_config(config)["sampler"]
  assert on["table_share"] == 0.5 and on["table_num_values"] == [2, 4]
  assert not {"custom_select_share", "string_vocab_share"} & set(on)
  # So a dataset made without it is not resumed with it.
  before = _snapshot(small_run)
  with pytest.raises(ValueError, match=r"sampler\.table_share: 0\.5 here, "
                     r"None in the directory"):
    generate.generate(config, small_run)
  assert _snapshot(small_run) == before


def test_a_wide_run_writes_records_that_read_back(tmp_path):
  config = wide_data.get_config()
  config.num_programs, config.shard_size, config.num_workers = 12, 6, 1
  config.validation_fraction = config.test_fraction = 0.0
  out_dir = str(tmp_path / "wide")
  manifest = generate.generate(config, out_dir)
  assert manifest["config"]["sampler"]["table_share"] == 0.5
  read = dataset.read_split(out_dir, "train")
  assert len(read) == manifest["counts"]["train"] >= 10
  for record in read:
    sample = sampler.sample_program(
        sampler.sampler_rng(config.seed, record.index), config.sampler)
    assert (record.program, record.vocab, record.output) == (
        sample.program, sample.vocab, sample.compiled.output_decoding)
    assert records.record_to_bytes(record) == records.record_to_bytes(
        records.record_from_bytes(records.record_to_bytes(record)))
  functions = [i.function for r in read for i in r.program.instructions]
  assert any(isinstance(f, Table) for f in functions)
  assert any(isinstance(r.vocab[0], str) for r in read)
  assert max(len(r.program) for r in read) > 8
