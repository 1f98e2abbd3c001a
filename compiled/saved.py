"""The file format for a compiled tracr model: weights plus what runs them.

A tracr params dict alone cannot be run, verified or decompiled: the token
vocabulary, `max_seq_len`, the BOS/PAD names, the head count and the output
decoding (which residual directions are the output, and the typed value
each stands for) live outside it. A saved model is one `.npz` holding

  "<module>/<param>"  float32 arrays, e.g. `transformer/layer_0/attn/query/w`,
                      `token_embed/embeddings` (haiku's `params[module][param]`)
  "__meta__"          a JSON string: `vocab` (list), `max_seq_len`,
                      `compiler_bos`, `compiler_pad`, `output` (`dims`,
                      `values`, `numerical`: `compiler.OutputDecoding`), and
                      optionally `num_heads` (int), `causal` (bool, default
                      false) and `token_order` (list, see below).

`save_compiled(path, model)` takes all of it from a tracr
`AssembledTransformerModel`. Tokens and output values must be bools, ints,
finite floats or strings, mixed as you like: JSON keeps those exactly and
apart (`true`, `1`, `1.0` and `"1"` load back as bool, int, float and str);
anything else (NaN, infinities, tuples, None, other objects) would come
back as a different value or type or not at all, so `save_compiled`
refuses it, naming the token. (Tokens Python calls equal, like 1, 1.0 and
True, are one token to tracr too, so a vocab holds at most one of them.)

Token-embedding rows follow tracr's sort of vocab, BOS and PAD
(`inputs.tracr_order`), so the file need not store them. Where that sort is
not defined (bools beside other numbers, e.g. {True, 2}: 2 < "BOS" < True
< 2; numbers beside strings that sort among their texts, e.g. {9, 10, "5"}),
the rows follow the order tracr happened to see the set in, and
`token_order` lists vocab, BOS and PAD in row order; it is written exactly
then.

Stock tracr compiles every such vocabulary, mixed ones included; what a
program can do with it is up to its functions (a Map that adds 1 to a
string fails while compiling). Where its order is not defined, though, the
parts of tracr sort the same basis differently, so the weights it builds
need not compute the program, and which weights it builds changes with
PYTHONHASHSEED; `compiled.verify` runs the weights with their own rows and
says whether they do.
"""

import collections
import dataclasses
import json
import math
import os
import zipfile
from typing import Any, Iterable, Optional, Union

import numpy as np

from compiled import compiler, forward, inputs
from compiled.compiler import OutputDecoding

Params = dict[str, dict[str, np.ndarray]]
PathLike = Union[str, os.PathLike]

META_KEY = "__meta__"
_REQUIRED = ("vocab", "max_seq_len", "compiler_bos", "compiler_pad", "output")
_OPTIONAL = ("num_heads", "causal", "token_order")


@dataclasses.dataclass(frozen=True)
class SavedModel:
  """A loaded model. `num_heads` is None when the file does not say."""

  params: Params
  vocab: tuple
  max_seq_len: int
  compiler_bos: str
  compiler_pad: str
  num_heads: Optional[int]
  causal: bool
  output: OutputDecoding
  # Vocab, BOS and PAD in token-embedding row order where tracr's sort does
  # not define it (module doc); None where it does.
  token_order: Optional[tuple] = None
  # tracr's compile setting (the numerical MLPs' slope); compiled.verify
  # recompiles candidates with it.
  mlp_exactness: int = 100
  # What a reader inferred because the file did not say it, one line each
  # (compiled.transformer_lens); () for tracr models and saved files.
  inferred: tuple = ()

  @property
  def input_tokens(self) -> list:
    """Token values in token-embedding row order (tracr sorts them)."""
    if self.token_order is not None:
      return list(self.token_order)
    return forward.input_tokens(self.vocab, self.compiler_bos,
                                self.compiler_pad)


_TOKEN_TYPES = (bool, int, float, str)


def _is_token(value: Any) -> bool:
  """A JSON-exact token: a bool, int, finite float or str (no subclasses
  but numpy scalars, which `_plain` turns into these)."""
  return type(value) in _TOKEN_TYPES and (
      type(value) is not float or math.isfinite(value))


def _vocab_problem(tokens: list, compiler_bos: str,
                   compiler_pad: str) -> Optional[str]:
  """Why `tokens` (plain values) cannot be a saved vocab, or None."""
  for token in tokens:
    if not _is_token(token):
      return (f"vocab token {token!r} is a {type(token).__name__} "
              f"({_why(token)}); only bool, int, finite float and str "
              "tokens can be saved")
  if len(set(tokens)) != len(tokens):
    return (f"vocab {tokens} has repeated tokens (Python and tracr take "
            "1, 1.0 and True for the same token)")
  for special in (compiler_bos, compiler_pad):
    if special in tokens:
      return f"vocab contains the special token {special!r}"
  return None


def _why(token: Any) -> str:
  if isinstance(token, float):
    return "JSON has no NaN or infinity"
  return "JSON would not give it back as it is"


def _check_vocab(vocab: Iterable, compiler_bos: str,
                 compiler_pad: str) -> list:
  """The vocabulary as a sorted JSON list; ValueError naming a bad token."""
  tokens = [_plain(t) for t in vocab]
  problem = _vocab_problem(tokens, compiler_bos, compiler_pad)
  if problem:
    raise ValueError(problem)
  return inputs.sorted_vocab(tokens)


def _typed(values: Iterable) -> collections.Counter:
  """The values as a multiset that tells 1, 1.0 and True apart."""
  return collections.Counter((type(v), v) for v in values)


def _token_order_problem(meta: dict) -> Optional[str]:
  """Why the meta's `token_order` (or its absence) does not fit its vocab."""
  all_tokens = [*meta["vocab"], meta["compiler_bos"], meta["compiler_pad"]]
  defined = inputs.tracr_order(all_tokens)
  order = meta.get("token_order")
  if order is None:
    if defined is None:
      return (f"tracr's token order of vocab {meta['vocab']} is not defined "
              "(see compiled.inputs.tracr_order) and there is no "
              "token_order to say the token-embedding rows")
    return None
  if not isinstance(order, list) or not all(map(_is_token, order)) or (
      _typed(order) != _typed(all_tokens)):
    return (f"token_order {order!r} must list the vocab, compiler_bos and "
            "compiler_pad, each once")
  typed = lambda values: [(type(v), v) for v in values]
  if defined is not None and typed(order) != typed(defined):
    return (f"token_order {order} is not tracr's order of these tokens, "
            f"{defined}")
  return None


def _check_meta(meta: Any) -> None:
  """ValueError naming the first missing, unknown or mistyped meta field."""
  if not isinstance(meta, dict):
    raise ValueError(f"{META_KEY} must be a JSON object, got "
                     f"{type(meta).__name__}")
  missing = [f for f in _REQUIRED if f not in meta]
  if missing == ["output"]:
    raise ValueError(f"{META_KEY} has no output decoding: the file was saved "
                     "before saved models stored it; save the model again "
                     "with save_compiled(path, tracr_model)")
  if missing:
    raise ValueError(f"{META_KEY} is missing {missing}")
  unknown = sorted(set(meta) - set(_REQUIRED) - set(_OPTIONAL))
  if unknown:
    raise ValueError(f"{META_KEY} has unknown fields {unknown}")
  if not isinstance(meta["vocab"], list):
    raise ValueError(f"{META_KEY} vocab must be a list, got "
                     f"{meta['vocab']!r}")
  positive = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0
  if not positive(meta["max_seq_len"]):
    raise ValueError(f"{META_KEY} max_seq_len must be a positive int, got "
                     f"{meta['max_seq_len']!r}")
  for field in ("compiler_bos", "compiler_pad"):
    if not isinstance(meta[field], str):
      raise ValueError(f"{META_KEY} {field} must be a string, got "
                       f"{meta[field]!r}")
  if meta.get("num_heads") is not None and not positive(meta["num_heads"]):
    raise ValueError(f"{META_KEY} num_heads must be a positive int or null, "
                     f"got {meta['num_heads']!r}")
  if not isinstance(meta.get("causal", False), bool):
    raise ValueError(f"{META_KEY} causal must be true or false, got "
                     f"{meta['causal']!r}")
  problem = (_vocab_problem(meta["vocab"], meta["compiler_bos"],
                            meta["compiler_pad"])
             or _token_order_problem(meta))
  if problem:
    raise ValueError(f"{META_KEY} {problem}")
  try:
    OutputDecoding.from_dict(meta["output"])
  except ValueError as error:
    raise ValueError(f"{META_KEY} output: {error}") from error


def _check_embeddings(params: Params, num_tokens: int, max_seq_len: int,
                      output: OutputDecoding) -> None:
  """The embeddings agree with the meta: a wrong vocab, length or output dim
  fails here, not as a silently wrong token id or output later."""
  for module, rows, what in (
      ("token_embed", num_tokens, f"{num_tokens - 2} vocab tokens + BOS, PAD"),
      ("pos_embed", max_seq_len + 1, f"max_seq_len {max_seq_len} + BOS")):
    embeddings = params.get(module, {}).get("embeddings")
    if embeddings is None:
      raise ValueError(f"params has no '{module}/embeddings'")
    if embeddings.ndim != 2 or embeddings.shape[0] != rows:
      raise ValueError(f"'{module}/embeddings' has shape {embeddings.shape}; "
                       f"expected {rows} rows ({what})")
  d_model = params["token_embed"]["embeddings"].shape[1]
  unembed = params.get("unembed")
  if unembed is not None:
    width = np.shape(unembed.get("w"))
    expected = 1 if output.numerical else len(output.values)
    if output.dims or len(width) != 2 or width != (d_model, expected):
      raise ValueError(f"'unembed/w' has shape {width}; expected "
                       f"({d_model}, {expected}) and no output dims")
    return
  if not output.dims:
    raise ValueError("the output decoding has no dims and the params no "
                     "'unembed' module: nothing reads the output")
  if max(output.dims) >= d_model:
    raise ValueError(f"output dims {list(output.dims)} are outside the "
                     f"residual stream of width {d_model}")


def _split_key(key: str) -> tuple[str, str]:
  module, _, param = key.rpartition("/")
  if not module or not param:
    raise ValueError(f"array {key!r} is not named '<module>/<param>'")
  return module, param


def _plain(value: Any) -> Any:
  return value.item() if isinstance(value, np.generic) else value


def _unembedding(model: Any, d_model: int) -> np.ndarray:
  """tracr's residual -> output projection [d_model, outputs], read by
  running the model's own unembed module on the identity."""
  import haiku as hk  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  unembed = hk.transform(lambda: model.get_compiled_model().unembed(
      jnp.eye(d_model), use_unembed_argmax=False))
  return np.asarray(unembed.apply(unembed.init(None), None),
                    np.float64).reshape(d_model, -1)


def _output_by_labels(labels: list[str], values: list) -> tuple[int, ...]:
  """The dims of the one variable whose labels are `name:value` for exactly
  the output values; ValueError when there is no such variable or several."""
  names = {}
  for i, label in enumerate(labels):
    name, _, value = label.rpartition(":")
    names.setdefault(name, {})[value] = i
  wanted = [str(v) for v in values]
  matches = [dims for dims in names.values() if sorted(dims) == sorted(wanted)]
  if len(matches) != 1:
    raise ValueError(f"{len(matches)} residual variables have exactly the "
                     f"output values {values}")
  return tuple(matches[0][v] for v in wanted)


def output_decoding(model: Any) -> OutputDecoding:
  """The output decoding of a tracr `AssembledTransformerModel`.

  The output dims are the residual directions its unembedding reads (each
  column of the projection must be one-hot); where that cannot be run, the
  one variable whose residual labels (`name:value`) are exactly the output
  encoder's values. Categorical values come from `model.output_encoder`, in
  its order. Raises ValueError when the output cannot be determined.
  """
  d_model = np.asarray(model.params["token_embed"]["embeddings"]).shape[1]
  encoder = model.output_encoder
  decoding_map = getattr(encoder, "encoding_map", None)
  numerical = encoder is not None and decoding_map is None
  if encoder is None:
    raise ValueError("the tracr model has no output encoder, so whether its "
                     "output is categorical or numerical is unknown")
  values = [] if numerical else [
      _plain(v) for v, _ in sorted(decoding_map.items(), key=lambda kv: kv[1])]
  try:
    projection = _unembedding(model, d_model)
  except Exception as error:  # pylint: disable=broad-except
    if numerical:
      raise ValueError("cannot find the numerical output dimension: running "
                       f"the model's unembedding failed ({error})") from error
    dims = _output_by_labels(list(model.residual_labels), values)
  else:
    one_hot = ((projection == 0) | (projection == 1)).all() and (
        (projection == 1).sum(axis=0) == 1).all()
    if not one_hot or projection.shape[1] != max(len(values), 1):
      raise ValueError("the model's unembedding is not a projection onto "
                       f"{max(len(values), 1)} residual directions")
    dims = tuple(int(d) for d in projection.argmax(axis=0))
  labels = list(model.residual_labels)
  if not numerical and any(not labels[d].endswith(f":{v}")
                           for d, v in zip(dims, values)):
    raise ValueError(f"the output dims' residual labels "
                     f"{[labels[d] for d in dims]} do not match the output "
                     f"values {values}")
  return OutputDecoding(dims, tuple(values), numerical)


def from_tracr(model: Any) -> SavedModel:
  """A tracr `AssembledTransformerModel` as a SavedModel (numpy float32).

  Vocab, BOS/PAD, max_seq_len, head count and causality come from its input
  encoder, embeddings and model config, the output decoding from
  `output_decoding`. Raises ValueError if the input encoder is missing or
  does not list the tokens in tracr's (sorted) embedding order, or for
  tokens a saved model cannot hold. Where tracr's sort does not define the
  order (`inputs.tracr_order`), the encoder's order is kept as
  `token_order`.
  """
  encoder = model.input_encoder
  encoding_map = getattr(encoder, "encoding_map", None)
  if encoding_map is None or not encoder.bos_token:
    raise ValueError("the tracr model has no categorical input encoder with "
                     "a BOS token; pass params, vocab, max_seq_len and the "
                     "output decoding explicitly")
  bos, pad = encoder.bos_token, encoder.pad_token or compiler.COMPILER_PAD
  tokens = [_plain(v) for v, _ in sorted(encoding_map.items(),
                                        key=lambda kv: kv[1])]
  vocab = [t for t in tokens if t not in (bos, pad)]
  defined = inputs.tracr_order(tokens)
  if defined is not None and tokens != defined:
    raise ValueError(f"the input encoder's token order {tokens} is not "
                     "tracr's sorted order of vocab, BOS and PAD")
  params = {module: {name: np.asarray(value, np.float32)
                     for name, value in module_params.items()}
            for module, module_params in model.params.items()}
  config = model.model_config
  return SavedModel(
      params=params, vocab=tuple(_check_vocab(vocab, bos, pad)),
      max_seq_len=params["pos_embed"]["embeddings"].shape[0] - 1,
      compiler_bos=bos, compiler_pad=pad, num_heads=int(config.num_heads),
      causal=bool(config.causal), output=output_decoding(model),
      token_order=None if defined is not None else tuple(tokens))


def _is_tracr_model(value: Any) -> bool:
  return all(hasattr(value, a) for a in ("params", "input_encoder",
                                         "output_encoder", "residual_labels",
                                         "get_compiled_model"))


def save_compiled(path: PathLike,
                  model: Any,
                  vocab: Optional[Iterable] = None,
                  max_seq_len: Optional[int] = None,
                  compiler_bos: str = compiler.COMPILER_BOS,
                  compiler_pad: str = compiler.COMPILER_PAD,
                  num_heads: Optional[int] = None,
                  causal: bool = False,
                  output: Optional[OutputDecoding] = None,
                  token_order: Optional[Iterable] = None) -> None:
  """Writes a model and its meta to `path`.

  Either `save_compiled(path, tracr_model)`: everything comes from a tracr
  `AssembledTransformerModel` (see `from_tracr`); or
  `save_compiled(path, params, vocab, max_seq_len, ..., output=...)` with
  tracr's `.params` (jax or numpy) and the output decoding, e.g.
  `compiler.CompiledModel.output_decoding`, and, only where tracr's sort of
  vocab, BOS and PAD is not defined (module doc), `token_order=` the
  token-embedding row order (`compiler.CompiledModel.input_tokens`).

  The file is written at `path` as given (numpy would otherwise append
  `.npz`). Raises ValueError for a missing output decoding, arguments beside
  a tracr model, tokens other than bools, ints, finite floats and strings
  (the message names the token), a BOS/PAD name inside the vocab, a missing
  or wrong token order, parameter names that do not form
  '<module>/<param>', embeddings whose row counts disagree with the vocab or
  max_seq_len, output dims outside the residual stream, or meta that
  `load_compiled` would reject.
  """
  if _is_tracr_model(model):
    if any(v is not None for v in (vocab, max_seq_len, output, token_order)):
      raise ValueError("save_compiled(path, tracr_model) takes vocab, "
                       "max_seq_len, the output decoding and the token "
                       "order from the model; pass them only with a params "
                       "dict")
    saved_model = from_tracr(model)
    params, vocab, max_seq_len = (saved_model.params, saved_model.vocab,
                                  saved_model.max_seq_len)
    compiler_bos, compiler_pad = (saved_model.compiler_bos,
                                  saved_model.compiler_pad)
    num_heads, causal = saved_model.num_heads, saved_model.causal
    output, token_order = saved_model.output, saved_model.token_order
  else:
    params = model
    if vocab is None or max_seq_len is None:
      raise ValueError("save_compiled(path, params, ...) needs vocab and "
                       "max_seq_len (or pass a tracr AssembledTransformerModel)")
    if not isinstance(output, OutputDecoding):
      raise ValueError("save_compiled(path, params, ...) needs output=, the "
                       "compiler.OutputDecoding: tracr's params do not say "
                       "which residual directions are the output or what "
                       "values they stand for (or pass a tracr "
                       "AssembledTransformerModel)")
  plain = lambda v: int(v) if isinstance(v, np.integer) else v  # For JSON.
  meta = {
      "vocab": _check_vocab(vocab, compiler_bos, compiler_pad),
      "max_seq_len": plain(max_seq_len), "compiler_bos": compiler_bos,
      "compiler_pad": compiler_pad, "num_heads": plain(num_heads),
      "causal": causal, "output": output.to_dict(),
  }
  if token_order is not None:
    meta["token_order"] = [_plain(t) for t in token_order]
  _check_meta(meta)
  float_params: Params = {}
  for module, module_params in params.items():
    for param, value in module_params.items():
      if not module or not param or "/" in param:
        raise ValueError(f"params[{module!r}][{param!r}] cannot be saved as "
                         "'<module>/<param>'")
      float_params.setdefault(module, {})[param] = np.asarray(value,
                                                              np.float32)
  _check_embeddings(float_params, len(meta["vocab"]) + 2,
                    meta["max_seq_len"], output)
  arrays = {f"{module}/{param}": value
            for module, module_params in float_params.items()
            for param, value in module_params.items()}
  with open(path, "wb") as file:
    np.savez(file, **arrays,
             **{META_KEY: np.array(json.dumps(meta, allow_nan=False))})


def load_compiled(path: PathLike) -> SavedModel:
  """Reads a file written by `save_compiled` (or by hand, same layout).

  Raises ValueError, naming the problem, for a file that is not an .npz
  (random bytes, a pickle, a single array), a missing or non-JSON
  `__meta__`, missing or mistyped meta fields (a file saved before the
  output decoding was stored says so), a vocab with tokens other than
  bools, ints, finite floats and strings, a missing or wrong token order,
  arrays not named '<module>/<param>', and embeddings whose row counts
  disagree with the vocab or max_seq_len.
  """
  try:
    with open(path, "rb") as file:
      magic = file.read(4)
  except IsADirectoryError as error:
    raise ValueError(f"{path}: not a saved model (a directory)") from error
  if magic != b"PK\x03\x04":  # Every .npz is a zip file.
    raise ValueError(f"{path}: not a saved model (not an .npz file: it does "
                     "not start like a zip archive)")
  try:
    data = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
    if isinstance(error, FileNotFoundError):
      raise
    raise ValueError(f"{path}: not a saved model (not a numpy .npz file: "
                     f"{error})") from error
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise ValueError(f"{path}: not a saved model (a single numpy array, not "
                     "an .npz file)")
  try:
    with data:
      arrays = {key: data[key] for key in data.files}
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
    raise ValueError(f"{path}: not a saved model (unreadable .npz: "
                     f"{error})") from error
  if META_KEY not in arrays:
    raise ValueError(f"{path}: no {META_KEY!r} array; not a saved model")
  raw = arrays.pop(META_KEY)
  if raw.ndim != 0 or raw.dtype.kind != "U":
    raise ValueError(f"{path}: {META_KEY!r} must be a string, got "
                     f"{raw.dtype} array of shape {raw.shape}")
  try:
    meta = json.loads(str(raw[()]))
  except json.JSONDecodeError as error:
    raise ValueError(f"{path}: {META_KEY!r} is not JSON: {error}") from error
  _check_meta(meta)

  params: Params = {}
  for key, value in sorted(arrays.items()):
    module, param = _split_key(key)
    if value.dtype.kind not in "fiu":
      raise ValueError(f"{path}: array {key!r} has dtype {value.dtype}, not "
                       "a number")
    params.setdefault(module, {})[param] = value.astype(np.float32)
  vocab = tuple(meta["vocab"])
  output = OutputDecoding.from_dict(meta["output"])
  try:
    _check_embeddings(params, len(vocab) + 2, meta["max_seq_len"], output)
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from error
  return SavedModel(params=params, vocab=vocab,
                    max_seq_len=meta["max_seq_len"],
                    compiler_bos=meta["compiler_bos"],
                    compiler_pad=meta["compiler_pad"],
                    num_heads=meta.get("num_heads"),
                    causal=meta.get("causal", False), output=output,
                    token_order=(tuple(meta["token_order"])
                                 if "token_order" in meta else None))
