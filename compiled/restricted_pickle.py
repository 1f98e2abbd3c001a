"""Reads torch.save files and plain pickles without running code from them.

`torch.load(path, weights_only=False)` of a pickled HookedTransformer runs
whatever the pickle names. This reader needs no torch: it rebuilds every
tensor as a numpy array from the zip's storages (`data/N`, found by the
pickle's persistent ids), and accepts only a small allow-list of globals
(`ALLOWED`): TransformerLens's HookedTransformer, its config, components and
HookPoint, torch.nn modules and activation functions, torch storages,
dtypes and `torch.device`, `collections.OrderedDict`, and tracr's
CategoricalEncoder / NumericalEncoder. Each class comes back as an inert
`Placeholder` that only records its pickled state (`placeholder.state`, a
dict: an nn.Module's `_parameters`, `_modules`, `cfg`, ...); its own code is
never imported. Any other global is refused with one ValueError naming it
(`refused global os.system ...`) before anything is called.

  load(path)          a torch.save zip file, or a plain pickle
  loads(data)         a plain pickle's bytes
"""

import collections
import io
import os
import pickle
import zipfile
from typing import Any, Optional, Union

import numpy as np

PathLike = Union[str, os.PathLike]

# torch storage class -> numpy dtype of its elements.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64,
    "HalfStorage": np.float16, "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}
_TORCH_DTYPES = {
    "float32": np.float32, "float": np.float32, "float64": np.float64,
    "double": np.float64, "float16": np.float16, "half": np.float16,
    "bfloat16": "bfloat16", "int64": np.int64, "long": np.int64,
    "int32": np.int32, "int": np.int32, "int16": np.int16,
    "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}


class Placeholder:
  """An inert stand-in for an allowed class: records what the pickle gave.

  `qualname` is the global's `module.name`; `args` the constructor
  arguments (REDUCE), `state` the pickled state (BUILD): for an nn.Module
  or a dataclass, its `__dict__`.
  """

  qualname = "?"

  def __init__(self, *args, **kwargs):
    self.args = args
    self.kwargs = kwargs
    self.state = {}

  def __new__(cls, *args, **kwargs):  # NEWOBJ calls cls.__new__(cls, *args).
    del kwargs
    instance = super().__new__(cls)
    instance.args, instance.kwargs, instance.state = args, {}, {}
    return instance

  def __setstate__(self, state):
    if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
      state = {**(state[0] or {}), **(state[1] or {})}
    self.state = state if isinstance(state, dict) else {"state": state}

  # Dict-like state items that a pickle may add with SETITEM(S).
  def __setitem__(self, key, value):
    self.state[key] = value

  def __getattr__(self, name):
    state = self.__dict__.get("state") or {}
    if name in state:
      return state[name]
    raise AttributeError(f"{self.qualname} placeholder has no {name!r}")

  def __repr__(self):
    return f"<{self.qualname} placeholder>"


class TorchDtype(str):
  """A torch dtype, by its name ('float32')."""


class StorageType(str):
  """A torch storage class, by its name ('FloatStorage')."""


def _placeholder_class(module: str, name: str) -> type:
  return type(name, (Placeholder,), {"qualname": f"{module}.{name}"})


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """torch._utils._rebuild_tensor_v2 as a numpy array (a copy)."""
  del unused
  size, stride = tuple(size), tuple(stride)
  if not size:
    return np.array(storage[storage_offset])
  needed = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
  if min(size) > 0 and needed > storage.size:
    raise ValueError(f"a tensor of size {size} and stride {stride} does not "
                     f"fit its storage of {storage.size} elements")
  if min(size) == 0:
    return np.zeros(size, storage.dtype)
  base = storage[storage_offset:]
  return np.lib.stride_tricks.as_strided(
      base, size, tuple(s * storage.itemsize for s in stride)).copy()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None,
                       *unused):
  del requires_grad, backward_hooks, unused
  return data


def _numpy_dtype(*args):
  return _placeholder_class("numpy", "dtype")(*args)


def _numpy_scalar(dtype, data=None):
  """numpy._core.multiarray.scalar: a numpy scalar from its bytes."""
  code = dtype.args[0] if isinstance(dtype, Placeholder) else dtype
  state = dtype.state.get("state") if isinstance(dtype, Placeholder) else None
  order = state[1] if isinstance(state, tuple) and len(state) > 1 else "="
  np_dtype = np.dtype(code)
  if order in "<>" and np_dtype.itemsize > 1:
    np_dtype = np_dtype.newbyteorder(order)
  if not isinstance(data, bytes) or len(data) != np_dtype.itemsize:
    raise ValueError(f"a numpy scalar of dtype {code} with bad data")
  return np.frombuffer(data, np_dtype)[0].item()


def _codecs_encode(text, encoding="utf-8"):
  if encoding not in ("latin1", "latin-1"):
    raise ValueError(f"refused _codecs.encode with encoding {encoding!r}")
  return text.encode(encoding)


def _torch_device(*args):
  return "device:" + ":".join(map(str, args))


def _torch_size(dims=()):
  return tuple(dims)


_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("torch", "device"): _torch_device,
    ("torch", "Size"): _torch_size,
}
# Classes that load as Placeholders.
_CLASSES = {
    ("transformer_lens.HookedTransformer", "HookedTransformer"),
    ("transformer_lens.HookedTransformerConfig", "HookedTransformerConfig"),
    ("transformer_lens.hook_points", "HookPoint"),
    ("tracr.transformer.encoder", "CategoricalEncoder"),
    ("tracr.transformer.encoder", "NumericalEncoder"),
}
# Modules whose every class loads as a Placeholder (modules only, no code).
_CLASS_MODULES = ("transformer_lens.components", "torch.nn.modules")
ALLOWED = (sorted(f"{m}.{n}" for m, n in [*_FUNCTIONS, *_CLASSES])
           + [f"{m}.*" for m in _CLASS_MODULES]
           + ["torch.nn.functional.*", "torch.<dtype>", "torch.<Storage>"])


def _allowed_module(module: str) -> bool:
  return any(module == m or module.startswith(m + ".")
             for m in _CLASS_MODULES)


class _Unpickler(pickle.Unpickler):
  """pickle.Unpickler with an allow-list and torch's storages."""

  def __init__(self, file, storages: Optional[dict] = None):
    super().__init__(file)
    self._storages = storages
    self._classes = {}

  def find_class(self, module: str, name: str) -> Any:
    key = (module, name)
    if key in _FUNCTIONS:
      return _FUNCTIONS[key]
    if key in _CLASSES or (_allowed_module(module) and name[:1].isupper()):
      if key not in self._classes:
        self._classes[key] = _placeholder_class(module, name)
      return self._classes[key]
    if module == "torch.nn.functional" and name.isidentifier():
      return f"torch.nn.functional.{name}"  # An activation, by name.
    if module == "torch" and name in _TORCH_DTYPES:
      return TorchDtype(name)
    if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
      return StorageType(name)
    raise ValueError(f"refused global {module}.{name}: not one of the "
                     "tensor, TransformerLens, torch.nn and tracr-encoder "
                     "classes this reader rebuilds (nothing from the file "
                     "was run)")

  def persistent_load(self, pid: Any) -> Any:
    if (self._storages is None or not isinstance(pid, tuple) or not pid
        or pid[0] != "storage" or len(pid) < 3):
      raise ValueError(f"refused persistent id {pid!r}: not a torch "
                       "storage in a torch.save zip file")
    storage_type, key = pid[1], str(pid[2])
    dtype = _STORAGE_DTYPES.get(str(storage_type))
    if isinstance(storage_type, TorchDtype):
      dtype = _TORCH_DTYPES[storage_type]
    if dtype is None:
      raise ValueError(f"refused storage type {storage_type!r}")
    if key not in self._storages:
      raise ValueError(f"the pickle names storage {key!r}, which the zip "
                       "file does not hold")
    raw = self._storages[key]
    if isinstance(dtype, str):  # bfloat16: the high half of a float32.
      bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
      return bits.view(np.float32)
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))


def loads(data: bytes) -> Any:
  """A plain pickle's object, with only the allowed globals (module doc)."""
  try:
    return _Unpickler(io.BytesIO(data)).load()
  except ValueError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    raise ValueError(f"not a readable pickle: {type(error).__name__}: "
                     f"{error}") from error


def load(path: PathLike) -> Any:
  """The object in a torch.save zip file or a plain pickle (module doc).

  Raises ValueError naming a refused global, for a file that is neither
  (torch's legacy pre-1.6 format included), or one whose storages are
  missing.
  """
  with open(path, "rb") as file:
    data = file.read()
  if not data.startswith(b"PK\x03\x04"):
    if data[:1] != b"\x80":
      raise ValueError(f"{path}: neither a torch.save zip file nor a pickle")
    try:
      return loads(data)
    except ValueError as error:
      raise ValueError(f"{path}: {error}") from error
  try:
    archive = zipfile.ZipFile(io.BytesIO(data))
  except zipfile.BadZipFile as error:
    raise ValueError(f"{path}: not a torch.save zip file ({error})") from error
  names = archive.namelist()
  pickles = [n for n in names if n.endswith("data.pkl")
             and n.count("/") == 1]
  if len(pickles) != 1:
    raise ValueError(f"{path}: a zip file without one '<name>/data.pkl'; "
                     "not written by torch.save")
  prefix = pickles[0][:-len("data.pkl")]
  byteorder = (archive.read(prefix + "byteorder").decode().strip()
               if prefix + "byteorder" in names else "little")
  if byteorder != "little":
    raise ValueError(f"{path}: storages in {byteorder}-endian order")
  storages = {n[len(prefix) + len("data/"):]: archive.read(n)
              for n in names if n.startswith(prefix + "data/")}
  try:
    return _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from error
  except Exception as error:  # pylint: disable=broad-except
    raise ValueError(f"{path}: not a readable torch.save file: "
                     f"{type(error).__name__}: {error}") from error
