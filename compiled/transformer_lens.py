"""tracr models as TransformerLens holds them, in and out, without torch.

Readers into `compiled.saved.SavedModel`:

  from_hooked_transformer(obj, encoders=...)   a HookedTransformer object
      (anything with `.cfg` and `.state_dict()`), or a state dict
      (name -> array) with an optional config (dict or object)
  load(path, encoders=...)    a `.pt`/`.pth` torch.save file holding a
      pickled HookedTransformer or its state_dict (read by
      `compiled.restricted_pickle`: nothing from the file runs), or a
      `.safetensors` state dict with its config JSON (`config=`, else
      `<stem>.json` or `config.json` beside it)
  read_encoders(source)       tracr's encoders: a pickle path (an input or
      output CategoricalEncoder / NumericalEncoder alone, or a dict with
      `input_encoder` / `output_encoder`, or a pair), the objects, or a list
      of those

and back out, `save_transformer_lens(path, model)`: a safetensors state dict
with TransformerLens's names and shapes plus `<stem>.json`, the
HookedTransformerConfig's fields, which TransformerLens loads with
`HookedTransformer(HookedTransformerConfig(**json.load(f)))` and
`load_state_dict(safetensors.torch.load_file(path))`; W_U there decodes the
output, and the vocabulary, BOS/PAD and output values ride in the
safetensors metadata (`tracr`), so `load` needs no encoders for it.

Layouts (TransformerLens -> tracr's haiku params, `compiled.params`):
W_Q/W_K/W_V [heads, d_model, d_head] -> `attn/{query,key,value}/w`
[d_model, heads*d_head], W_O [heads, d_head, d_model] -> `attn/linear/w`
[heads*d_head, d_model], biases likewise; MLP W_in/W_out -> `linear_1`,
`linear_2`; W_E, W_pos -> `token_embed`, `pos_embed` (n_ctx = max_seq_len
+ 1). TransformerLens divides attention scores by `attn_scale` where tracr
divides by sqrt(d_head): W_Q is rescaled when they differ. `attention_dir`
says causality (the mask buffer is lower-triangular even in bidirectional
models, so it is not read).

What the file does not say is inferred and recorded in
`SavedModel.inferred` (one line each; eval.py and `compiled.verify` print
them):
  output dims   W_U is usually eye(d_model, d_vocab_out) (TransformerLens's
                tracr demo), which reads the first residual directions. The
                output is what the last module writing unread directions
                writes and no module reads; W_U is used only where it
                selects exactly those.
  mlp_exactness tracr's numerical MLPs (and SelectorWidth's) put slope L =
                mlp_exactness on pairs of hidden neurons whose biases differ
                by 1 (`numerical_mlp.discretising_layer`); read off the MLP
                layers, else tracr's default 100.
  causality     from `attention_dir`; a bare state dict: not causal.
  BOS / PAD     from the input encoder; with a plain `vocab=`: 'BOS' and
                'compiler_pad', the names TransformerLens's demo compiles
                with.
"""

import json
import math
import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from compiled import compiler, inputs, restricted_pickle, saved
from compiled.compiler import OutputDecoding

PathLike = Union[str, os.PathLike]
DEFAULT_MLP_EXACTNESS = 100
DEFAULT_BOS = "BOS"  # TransformerLens's tracr demo compiles with this name.
METADATA_KEY = "tracr"


# --------------------------------------------------------------- encoders


class Encoders:
  """What tracr's encoders say: input tokens in embedding-row order with
  the BOS and PAD names, and the output values (None: numerical)."""

  def __init__(self, tokens=None, bos=None, pad=None, output_values=None,
               numerical=None, max_seq_len=None):
    self.tokens, self.bos, self.pad = tokens, bos, pad
    self.output_values, self.numerical = output_values, numerical
    self.max_seq_len = max_seq_len


def _attr(obj: Any, *names: str) -> Any:
  for name in names:
    state = getattr(obj, "state", None)
    if isinstance(obj, restricted_pickle.Placeholder) and name in state:
      return state[name]
    if not isinstance(obj, restricted_pickle.Placeholder) and hasattr(
        obj, name):
      return getattr(obj, name)
  return None


def _kind(obj: Any) -> Optional[str]:
  """'categorical', 'numerical' or None for something else."""
  name = (obj.qualname if isinstance(obj, restricted_pickle.Placeholder)
          else type(obj).__name__)
  if name.endswith("NumericalEncoder"):
    return "numerical"
  if name.endswith("CategoricalEncoder") or isinstance(
      _attr(obj, "encoding_map"), Mapping):
    return "categorical"
  return None


def _plain(value: Any) -> Any:
  return value.item() if isinstance(value, np.generic) else value


def _in_order(encoding_map: Mapping) -> list:
  return [_plain(v) for v, _ in sorted(encoding_map.items(),
                                       key=lambda kv: kv[1])]


def _add_encoder(found: Encoders, obj: Any, role: Optional[str]) -> None:
  kind = _kind(obj)
  if kind is None:
    raise ValueError(f"not a tracr encoder: {obj!r}")
  bos = _attr(obj, "_bos_token", "bos_token")
  if role is None:  # Alone: an input encoder has a BOS token.
    role = "input" if kind == "categorical" and bos else "output"
  if role == "input":
    if kind != "categorical" or not bos:
      raise ValueError("the input encoder must be a tracr CategoricalEncoder "
                       "with a BOS token")
    found.tokens = _in_order(_attr(obj, "encoding_map"))
    found.bos = bos
    found.pad = _attr(obj, "_pad_token", "pad_token")
    max_len = _attr(obj, "_max_seq_len", "max_seq_len")
    found.max_seq_len = max_len - 1 if isinstance(max_len, int) else None
  else:
    found.numerical = kind == "numerical"
    found.output_values = (None if found.numerical
                           else _in_order(_attr(obj, "encoding_map")))


def read_encoders(source: Any, found: Optional[Encoders] = None) -> Encoders:
  """tracr's encoders from a pickle path, objects, a dict or a list (module
  doc); raises ValueError for anything else (a refused pickle included)."""
  found = found or Encoders()
  if isinstance(source, (str, os.PathLike)):
    source = restricted_pickle.load(source)
  if isinstance(source, Mapping) and ("input_encoder" in source
                                      or "output_encoder" in source):
    for role in ("input", "output"):
      if source.get(f"{role}_encoder") is not None:
        _add_encoder(found, source[f"{role}_encoder"], role)
  elif isinstance(source, (list, tuple)):
    if len(source) == 2 and all(_kind(s) for s in source):
      _add_encoder(found, source[0], "input")
      _add_encoder(found, source[1], "output")
    else:
      for item in source:
        read_encoders(item, found)
  else:
    _add_encoder(found, source, None)
  return found


# ------------------------------------------------------------ state dicts


def _array(value: Any) -> np.ndarray:
  """A numpy array of a numpy array or (duck-typed) torch tensor."""
  if hasattr(value, "detach"):
    value = value.detach().cpu()
    if str(getattr(value, "dtype", "")) == "torch.bfloat16":
      value = value.float()
    value = value.numpy()
  return np.asarray(value)


def _module_state(module: Any, prefix: str, out: dict) -> None:
  """An nn.Module placeholder's parameters and buffers, named like
  `state_dict()` names them."""
  state = module.state
  for group in ("_parameters", "_buffers"):
    for name, value in (state.get(group) or {}).items():
      if value is not None:
        out[prefix + name] = value
  for name, child in (state.get("_modules") or {}).items():
    if child is not None:
      _module_state(child, f"{prefix}{name}.", out)


def _config_dict(cfg: Any) -> dict:
  if cfg is None:
    return {}
  if isinstance(cfg, Mapping):
    return dict(cfg)
  if isinstance(cfg, restricted_pickle.Placeholder):
    return dict(cfg.state)
  if hasattr(cfg, "to_dict"):
    return dict(cfg.to_dict())
  return dict(vars(cfg))


def _unwrap(obj: Any) -> tuple[dict, dict]:
  """(state dict, config dict) of a HookedTransformer (object or
  placeholder) or a state dict."""
  if isinstance(obj, restricted_pickle.Placeholder):
    if "_modules" not in obj.state:
      raise ValueError(f"a pickled {obj.qualname}, not a HookedTransformer "
                       "or its state_dict")
    state: dict = {}
    _module_state(obj, "", state)
    return state, _config_dict(obj.state.get("cfg"))
  if hasattr(obj, "state_dict") and hasattr(obj, "cfg"):
    return dict(obj.state_dict()), _config_dict(obj.cfg)
  if isinstance(obj, Mapping):
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
      return dict(obj["state_dict"]), _config_dict(obj.get("cfg")
                                                  or obj.get("config"))
    return dict(obj), {}
  raise ValueError(f"not a HookedTransformer or a state dict: "
                   f"{type(obj).__name__}")


def _get(state: dict, key: str) -> np.ndarray:
  if key not in state:
    raise ValueError(f"the state dict has no {key!r} (not a "
                     "TransformerLens HookedTransformer of a tracr model)")
  return _array(state[key]).astype(np.float64)


def _check_config(cfg: dict) -> None:
  """ValueError for a HookedTransformer that is not tracr's architecture."""
  for field, want in (("normalization_type", None), ("act_fn", "relu"),
                      ("positional_embedding_type", "standard"),
                      ("gated_mlp", False), ("parallel_attn_mlp", False),
                      ("final_rms", False), ("use_local_attn", False)):
    value = cfg.get(field, want)
    if value != want and not (want is False and value is None):
      raise ValueError(f"config {field}={cfg[field]!r}; a tracr model has "
                       f"{want!r}")


def _to_params(state: dict, cfg: dict) -> tuple[saved.Params, int, bool]:
  """tracr's haiku params, the head count and causality (module doc)."""
  _check_config(cfg)
  num_layers = 1 + max((int(k.split(".")[1]) for k in state
                        if k.startswith("blocks.")), default=-1)
  embed = _get(state, "embed.W_E")
  d_model = embed.shape[1]
  params: saved.Params = {
      "token_embed": {"embeddings": embed},
      "pos_embed": {"embeddings": _get(state, "pos_embed.W_pos")},
  }
  num_heads = None
  for l in range(num_layers):
    block = f"blocks.{l}"
    attn = f"transformer/layer_{l}/attn"
    w_q = _get(state, f"{block}.attn.W_Q")
    heads, _, d_head = w_q.shape
    num_heads = heads
    scale = math.sqrt(d_head)
    if cfg.get("use_attn_scale", True):
      scale /= float(cfg.get("attn_scale") or math.sqrt(d_head))
    for name, tl in (("query", "Q"), ("key", "K"), ("value", "V")):
      w = _get(state, f"{block}.attn.W_{tl}")
      b = (_get(state, f"{block}.attn.b_{tl}")
           if f"{block}.attn.b_{tl}" in state else np.zeros(w.shape[::2]))
      factor = scale if tl == "Q" else 1.0
      params[f"{attn}/{name}"] = {
          "w": np.transpose(w, (1, 0, 2)).reshape(d_model, -1) * factor,
          "b": b.reshape(-1) * factor}
    w_o = _get(state, f"{block}.attn.W_O")
    params[f"{attn}/linear"] = {
        "w": w_o.reshape(-1, d_model),
        "b": (_get(state, f"{block}.attn.b_O")
              if f"{block}.attn.b_O" in state else np.zeros(d_model))}
    mlp = f"transformer/layer_{l}/mlp"
    if f"{block}.mlp.W_in" in state:
      params[f"{mlp}/linear_1"] = {"w": _get(state, f"{block}.mlp.W_in"),
                                   "b": _get(state, f"{block}.mlp.b_in")}
      params[f"{mlp}/linear_2"] = {"w": _get(state, f"{block}.mlp.W_out"),
                                   "b": _get(state, f"{block}.mlp.b_out")}
    else:  # attn_only: tracr's unused MLPs are zero.
      hidden = int(cfg.get("d_mlp") or 1)
      params[f"{mlp}/linear_1"] = {"w": np.zeros((d_model, hidden)),
                                   "b": np.zeros(hidden)}
      params[f"{mlp}/linear_2"] = {"w": np.zeros((hidden, d_model)),
                                   "b": np.zeros(d_model)}
  params = {m: {n: v.astype(np.float32) for n, v in p.items()}
            for m, p in params.items()}
  causal = cfg.get("attention_dir", "bidirectional") == "causal"
  return params, num_heads, causal


def _layer_modules(params: saved.Params) -> list[tuple[str, np.ndarray,
                                                       np.ndarray]]:
  """(name, read matrix [d_model, *], write matrix [*, d_model]) per
  module, in order."""
  modules = []
  for l in range(sum(1 for k in params if k.endswith("/attn/linear"))):
    attn = f"transformer/layer_{l}/attn"
    reads = np.concatenate([params[f"{attn}/{n}"]["w"]
                            for n in ("query", "key", "value")], axis=1)
    modules.append((attn, reads, params[f"{attn}/linear"]["w"]))
    mlp = f"transformer/layer_{l}/mlp"
    modules.append((mlp, params[f"{mlp}/linear_1"]["w"],
                    params[f"{mlp}/linear_2"]["w"]))
  return modules


def output_candidates(params: saved.Params) -> list[int]:
  """Residual dims the last module that writes unread dims writes and no
  module reads, ascending. (An earlier variable can have values nothing
  reads, e.g. `opp_idx` values no query matches in lib.make_reverse; the
  output is computed last.)"""
  modules = _layer_modules(params)
  d_model = params["token_embed"]["embeddings"].shape[1]
  last_writer = np.full(d_model, -1)
  read = np.zeros(d_model, bool)
  for i, (_, reads, writes) in enumerate(modules):
    read |= (np.abs(reads) > 1e-6).any(axis=1)
    last_writer[(np.abs(writes) > 1e-6).any(axis=0)] = i
  unread = (last_writer >= 0) & ~read
  if not unread.any():
    return []
  return [int(d) for d in np.flatnonzero(
      unread & (last_writer == last_writer[unread].max()))]


def infer_mlp_exactness(params: saved.Params) -> Optional[int]:
  """tracr's mlp_exactness off the MLPs' discretising neurons, or None when
  no MLP has them (module doc)."""
  slopes = []
  for name, w_in, _ in _layer_modules(params):
    if not name.endswith("/mlp"):
      continue
    w_in = np.asarray(w_in, np.float64)
    columns = [c for c in range(w_in.shape[1])
               if 1 <= np.count_nonzero(w_in[:, c]) <= 2]
    for i in columns:
      for j in columns:
        diff = w_in[:, i] - w_in[:, j]
        nonzero = np.flatnonzero(np.abs(diff) > 1e-4)
        if len(nonzero) != 1 or abs(diff[nonzero[0]] - 1) > 1e-4:
          continue
        rest = np.delete(w_in[:, j], nonzero[0])
        slope = rest[np.abs(rest) > 1e-6]
        if len(slope) == 1 and slope[0] > 1.5:
          slopes.append(float(slope[0]))
  if not slopes:
    return None
  values, counts = np.unique(np.round(slopes, 3), return_counts=True)
  best = float(values[counts.argmax()])
  return int(round(best)) if abs(best - round(best)) < 1e-3 else best


def _one_hot_columns(w_u: np.ndarray) -> Optional[list[int]]:
  if w_u.ndim != 2 or not (((w_u == 0) | (w_u == 1)).all()
                           and (w_u.sum(axis=0) == 1).all()):
    return None
  return [int(d) for d in w_u.argmax(axis=0)]


def _output(params: saved.Params, state: dict, encoders: Encoders,
            notes: list) -> tuple[OutputDecoding, Optional[dict]]:
  """The output decoding (and an `unembed` module where only a general W_U
  reads the output)."""
  numerical = bool(encoders.numerical)
  values = () if numerical else tuple(encoders.output_values)
  width = 1 if numerical else len(values)
  candidates = output_candidates(params)
  w_u = _array(state["unembed.W_U"]).astype(np.float64) if (
      "unembed.W_U" in state) else None
  b_u = _array(state["unembed.b_U"]).astype(np.float64) if (
      "unembed.b_U" in state) else None
  selected = _one_hot_columns(w_u) if w_u is not None else None
  if b_u is not None and np.abs(b_u).max(initial=0) > 0:
    selected = None
  if selected is not None and len(selected) == width and (
      sorted(selected) == candidates or len(candidates) != width):
    return OutputDecoding(tuple(selected), values, numerical), None
  if len(candidates) == width:
    reads = (f"reads dims {selected[:8]}{'...' if len(selected) > 8 else ''}"
             if selected is not None else "is not a projection onto them")
    notes.append(f"output dims {candidates}: inferred, the residual "
                 "directions the last module writes and none reads (W_U "
                 f"{reads})")
    return OutputDecoding(tuple(candidates), values, numerical), None
  if w_u is not None and w_u.shape[1] == width:
    notes.append(f"output: read by W_U (no {width} residual directions are "
                 f"written and unread; found {len(candidates)})")
    return (OutputDecoding((), values, numerical),
            {"w": w_u.astype(np.float32),
             "b": (b_u if b_u is not None else np.zeros(width)).astype(
                 np.float32)})
  raise ValueError(f"cannot find the output: {len(candidates)} residual "
                   f"directions are written and never read ({candidates}), "
                   f"the output has {width} values, and W_U does not decode "
                   "them")


def _input_tokens(encoders: Encoders, vocab, compiler_bos, compiler_pad,
                  rows: int, notes: list) -> tuple[list, str, str]:
  """Tokens in embedding-row order, BOS and PAD."""
  if encoders.tokens is not None:
    return (encoders.tokens, compiler_bos or encoders.bos,
            compiler_pad or encoders.pad or compiler.COMPILER_PAD)
  if vocab is None:
    raise ValueError("no input vocabulary: pass the tracr encoders "
                     "(--encoders=FILE.pkl, a pickled input_encoder / "
                     "output_encoder) or vocab=")
  bos = compiler_bos or DEFAULT_BOS
  pad = compiler_pad or compiler.COMPILER_PAD
  if not compiler_bos or not compiler_pad:
    notes.append(f"BOS/PAD: assumed {bos!r}/{pad!r} (no input encoder)")
  tokens = [_plain(t) for t in vocab]
  order = inputs.tracr_order([*tokens, bos, pad])
  if order is None:
    raise ValueError(f"tracr's token order of vocab {tokens} is not "
                     "defined; pass the input encoder, which lists it")
  if len(order) != rows:
    raise ValueError(f"vocab of {len(tokens)} tokens + BOS + PAD is "
                     f"{len(order)} tokens; W_E has {rows} rows")
  return order, bos, pad


def from_hooked_transformer(
    model: Any,
    encoders: Any = None,
    *,
    config: Any = None,
    vocab: Optional[Iterable] = None,
    output_values: Optional[Sequence] = None,
    numerical: Optional[bool] = None,
    compiler_bos: Optional[str] = None,
    compiler_pad: Optional[str] = None,
    causal: Optional[bool] = None,
    mlp_exactness: Optional[int] = None) -> saved.SavedModel:
  """A HookedTransformer (object, placeholder or state dict) as a SavedModel.

  `encoders`: tracr's encoders (`read_encoders`), or give `vocab=` and
  `output_values=` (or `numerical=True`) plainly. `config` overrides the
  model's own cfg (a state dict has none). Anything else not given is
  inferred and noted in `.inferred` (module doc). Raises ValueError naming
  what is missing or not tracr's architecture.
  """
  state, cfg = _unwrap(model)
  cfg.update(_config_dict(config))
  if isinstance(encoders, Encoders):
    found = encoders
  else:
    found = read_encoders(encoders) if encoders is not None else Encoders()
  if output_values is not None:
    found.output_values, found.numerical = [_plain(v) for v in
                                            output_values], False
  if numerical:
    found.output_values, found.numerical = None, True
  if found.numerical is None:
    raise ValueError("no output values: pass the tracr encoders "
                     "(--encoders=FILE.pkl with an output_encoder) or "
                     "output_values= / numerical=True")
  notes: list[str] = []
  params, num_heads, file_causal = _to_params(state, cfg)
  if causal is None:
    causal = file_causal
    if "attention_dir" not in cfg:
      notes.append("causal: assumed false (no config says attention_dir)")
  rows = params["token_embed"]["embeddings"].shape[0]
  tokens, bos, pad = _input_tokens(found, vocab, compiler_bos, compiler_pad,
                                   rows, notes)
  if len(tokens) != rows:
    raise ValueError(f"the input encoder has {len(tokens)} tokens; W_E has "
                     f"{rows} rows")
  token_vocab = [t for t in tokens if t not in (bos, pad)]
  defined = inputs.tracr_order(tokens)
  token_order = None
  if defined is None:
    token_order = tuple(tokens)
  elif defined != tokens:  # Rows to tracr's order: ids follow input_tokens.
    index = {(type(t), t): i for i, t in enumerate(tokens)}
    rows_order = [index[(type(t), t)] for t in defined]
    params["token_embed"]["embeddings"] = params["token_embed"][
        "embeddings"][rows_order]
  output, unembed = _output(params, state, found, notes)
  if unembed is not None:
    params["unembed"] = unembed
  if mlp_exactness is None:
    mlp_exactness = infer_mlp_exactness(params)
    if mlp_exactness is None:
      mlp_exactness = DEFAULT_MLP_EXACTNESS
      notes.append(f"mlp_exactness: {mlp_exactness}, tracr's default (no "
                   "numerical MLP to read it from)")
    else:
      notes.append(f"mlp_exactness: {mlp_exactness}, read off the MLP "
                   "slopes")
  max_seq_len = params["pos_embed"]["embeddings"].shape[0] - 1
  if found.max_seq_len is not None and found.max_seq_len != max_seq_len:
    raise ValueError(f"the input encoder says max_seq_len "
                     f"{found.max_seq_len}; W_pos has {max_seq_len + 1} rows")
  return saved.SavedModel(
      params=params, vocab=tuple(saved._check_vocab(token_vocab, bos, pad)),  # pylint: disable=protected-access
      max_seq_len=max_seq_len, compiler_bos=bos, compiler_pad=pad,
      num_heads=num_heads, causal=bool(causal), output=output,
      token_order=token_order, mlp_exactness=mlp_exactness,
      inferred=tuple(notes))


# ------------------------------------------------------------------ files


def _config_path(path: str) -> Optional[str]:
  stem = path[:-len(".safetensors")]
  for candidate in (stem + ".json", stem + "_config.json",
                    os.path.join(os.path.dirname(path) or ".",
                                 "config.json")):
    if os.path.exists(candidate):
      return candidate
  return None


def _read_safetensors(path: str) -> tuple[dict, dict]:
  """(state dict, tracr metadata) of a safetensors file (numpy API)."""
  import safetensors  # pylint: disable=g-import-not-at-top
  try:
    with safetensors.safe_open(path, framework="numpy") as file:
      metadata = file.metadata() or {}
      state = {key: file.get_tensor(key) for key in file.keys()}
  except Exception as error:  # pylint: disable=broad-except
    raise ValueError(f"{path}: not a readable safetensors file: "
                     f"{error}") from error
  tracr_meta = {}
  if METADATA_KEY in metadata:
    tracr_meta = json.loads(metadata[METADATA_KEY])
  return state, tracr_meta


def is_transformer_lens_path(path: Any) -> bool:
  return isinstance(path, (str, os.PathLike)) and os.fspath(path).endswith(
      (".pt", ".pth", ".safetensors", ".bin"))


def load(path: PathLike, encoders: Any = None, *, config: Any = None,
         **kwargs) -> saved.SavedModel:
  """A SavedModel from a `.pt`/`.pth` or `.safetensors` file (module doc).

  `config`: a config dict or JSON path (safetensors: default `<stem>.json`
  or `config.json` beside it). Other keywords as `from_hooked_transformer`.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(path)
  if isinstance(config, (str, os.PathLike)):
    with open(config) as f:
      config = json.load(f)
  try:
    if path.endswith(".safetensors"):
      state, meta = _read_safetensors(path)
      if config is None:
        config_path = _config_path(path)
        if config_path:
          with open(config_path) as f:
            config = json.load(f)
      if encoders is None and meta:
        kwargs.setdefault("vocab", meta["vocab"])
        kwargs.setdefault("compiler_bos", meta["compiler_bos"])
        kwargs.setdefault("compiler_pad", meta["compiler_pad"])
        if meta["numerical"]:
          kwargs.setdefault("numerical", True)
        else:
          kwargs.setdefault("output_values", meta["output_values"])
        kwargs.setdefault("mlp_exactness", meta.get("mlp_exactness"))
        if meta.get("token_order"):
          encoders = Encoders(tokens=meta["token_order"],
                              bos=meta["compiler_bos"],
                              pad=meta["compiler_pad"])
      model = state
    else:
      model = restricted_pickle.load(path)
    return from_hooked_transformer(model, encoders, config=config, **kwargs)
  except ValueError as error:
    message = str(error)
    raise ValueError(message if message.startswith(path)
                     else f"{path}: {message}") from error


# --------------------------------------------------------------- back out


def to_state_dict(model: saved.SavedModel) -> tuple[dict, dict]:
  """(state dict of float32 arrays with TransformerLens's names and shapes,
  HookedTransformerConfig fields) of a SavedModel."""
  params = model.params
  d_model = params["token_embed"]["embeddings"].shape[1]
  num_layers = sum(1 for k in params if k.endswith("/attn/linear"))
  heads = model.num_heads
  n_ctx = model.max_seq_len + 1
  state = {"embed.W_E": params["token_embed"]["embeddings"],
           "pos_embed.W_pos": params["pos_embed"]["embeddings"]}
  d_head, d_mlp = 1, 1
  for l in range(num_layers):
    attn = f"transformer/layer_{l}/attn"
    width = params[f"{attn}/query"]["w"].shape[1]
    d_head = width // heads
    for name, tl in (("query", "Q"), ("key", "K"), ("value", "V")):
      state[f"blocks.{l}.attn.W_{tl}"] = np.transpose(
          params[f"{attn}/{name}"]["w"].reshape(d_model, heads, d_head),
          (1, 0, 2))
      state[f"blocks.{l}.attn.b_{tl}"] = params[f"{attn}/{name}"][
          "b"].reshape(heads, d_head)
    state[f"blocks.{l}.attn.W_O"] = params[f"{attn}/linear"]["w"].reshape(
        heads, d_head, d_model)
    state[f"blocks.{l}.attn.b_O"] = params[f"{attn}/linear"]["b"]
    state[f"blocks.{l}.attn.mask"] = np.tril(np.ones((n_ctx, n_ctx), bool))
    state[f"blocks.{l}.attn.IGNORE"] = np.array(-np.inf, np.float32)
    mlp = f"transformer/layer_{l}/mlp"
    state[f"blocks.{l}.mlp.W_in"] = params[f"{mlp}/linear_1"]["w"]
    state[f"blocks.{l}.mlp.b_in"] = params[f"{mlp}/linear_1"]["b"]
    state[f"blocks.{l}.mlp.W_out"] = params[f"{mlp}/linear_2"]["w"]
    state[f"blocks.{l}.mlp.b_out"] = params[f"{mlp}/linear_2"]["b"]
    d_mlp = params[f"{mlp}/linear_1"]["w"].shape[1]
  width = 1 if model.output.numerical else len(model.output.values)
  if "unembed" in params:
    w_u, b_u = params["unembed"]["w"], params["unembed"]["b"]
  else:
    w_u = np.zeros((d_model, width), np.float32)
    w_u[list(model.output.dims), np.arange(width)] = 1
    b_u = np.zeros(width, np.float32)
  state["unembed.W_U"], state["unembed.b_U"] = w_u, b_u
  state = {k: np.ascontiguousarray(v, np.bool_ if v.dtype == np.bool_
                                   else np.float32)
           for k, v in state.items()}
  cfg = {
      "n_layers": num_layers, "d_model": int(d_model), "n_ctx": n_ctx,
      "d_head": int(d_head), "n_heads": int(heads), "d_mlp": int(d_mlp),
      "d_vocab": int(params["token_embed"]["embeddings"].shape[0]),
      "d_vocab_out": int(width), "act_fn": "relu",
      "normalization_type": None, "positional_embedding_type": "standard",
      "attention_dir": "causal" if model.causal else "bidirectional",
      "use_attn_scale": True, "model_name": "tracr",
  }
  return state, cfg


def save_transformer_lens(path: PathLike, model: Any) -> str:
  """Writes `model` (anything `compiled.verify.load_model` takes) as a
  safetensors TransformerLens state dict at `path` and its config at
  `<stem>.json`; returns the config's path (module doc)."""
  from compiled import verify  # pylint: disable=g-import-not-at-top
  import safetensors.numpy  # pylint: disable=g-import-not-at-top
  model = verify.load_model(model)
  if model.num_heads is None:
    raise ValueError("the model does not say its number of heads")
  path = os.fspath(path)
  if not path.endswith(".safetensors"):
    raise ValueError(f"{path}: the file name must end in .safetensors")
  state, cfg = to_state_dict(model)
  meta = {"vocab": list(model.vocab), "compiler_bos": model.compiler_bos,
          "compiler_pad": model.compiler_pad,
          "numerical": model.output.numerical,
          "output_values": list(model.output.values),
          "mlp_exactness": model.mlp_exactness,
          "token_order": (list(model.token_order)
                          if model.token_order is not None else None)}
  safetensors.numpy.save_file(state, path, metadata={
      METADATA_KEY: json.dumps(meta, allow_nan=False)})
  config_path = path[:-len(".safetensors")] + ".json"
  with open(config_path, "w") as f:
    json.dump(cfg, f, indent=1)
  return config_path
