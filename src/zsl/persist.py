"""Safe persistence of fitted objects: arrays + JSON in one file, never pickle.

``dump(obj, path)`` writes a fitted object (a zsl method, its helpers, torch modules) and
``load(path)`` rebuilds it. Loading never runs code named by the file: a pickle (or a
``torch.save`` file, which is a pickle in a zip) can call any function while it is read, so zsl
neither writes nor reads them. The format is plain data:

File layout -- a zip archive whose members are all *stored* (uncompressed, so a member's size on
disk is its size in memory: no zip bombs)::

    zsl.json          the object graph: {"format": "zsl.persist", "version": 1, "zsl_version",
                      "libraries": {numpy, torch, sklearn versions}, "root": NODE, "objects": [OBJ, ...]}
    arrays/<i>.npy    every numpy array and torch tensor, in numpy's .npy format (read with
                      ``allow_pickle=False``; object dtypes are refused on write and on read)

NODE is JSON: ``null``, booleans, integers, finite floats and strings stand for themselves; every
other value is a one-key tagged object: ``{"$list": [...]}``, ``{"$tuple": [...]}``,
``{"$dict": [[key, value], ...]}``, ``{"$set": [...]}``, ``{"$float": "nan"|"inf"|"-inf"}``,
``{"$array": i}`` (an ndarray, member ``arrays/<i>.npy``), ``{"$scalar": i}`` (a numpy scalar, a 0-d
member), ``{"$tensor": i, "dtype": "float32", "requires_grad": false, "parameter": false}``,
``{"$ref": j}`` (object j of the objects table; shared objects and cycles stay shared),
``{"$class": NAME}`` / ``{"$function": NAME}`` (an allowed class or activation function),
``{"$np_dtype": "<f4"}``, ``{"$torch_dtype": "float32"}``, ``{"$torch_device": "cpu"}``.

OBJ is ``{"class": NAME, "kind": "object", "state": {"$dict": ...}}`` for a plain object (its
``__dict__``) or ``{"class": NAME, "kind": "module", "training": bool, "attributes": ...,
"parameters": ..., "buffers": ..., "non_persistent": [...], "modules": ...}`` for a
``torch.nn.Module``.

Rebuilding: only *allowed* classes are instantiated, and never by calling a constructor or a
``__setstate__`` named by the file: a plain object is ``cls.__new__(cls)`` plus its restored
``__dict__``; a module is ``cls.__new__(cls)``, ``torch.nn.Module.__init__`` (torch's own empty
initialisation), then its attributes, parameters (``nn.Parameter`` of the stored tensors), buffers
and submodules. Allowed classes (:func:`allowed_classes`):

* zsl's registered methods and every class defined in a ``zsl.methods`` module (the helpers such
  as ``FeaturePreprocessor`` and ``RBFAnchors`` and the methods' ``nn.Module`` networks);
* the standard ``torch.nn`` layers listed in :data:`TORCH_LAYERS`;
* the scikit-learn classes a method keeps (:data:`SKLEARN_CLASSES`: ConSE's seen-class
  softmax is a ``Pipeline(StandardScaler, LogisticRegression)``);
* whatever a caller passes as ``extra_classes`` (e.g. a feature module's own networks).

Any other class -- or function, or a member that is not ``zsl.json``/``arrays/<i>.npy`` -- is
refused with an :class:`UnsafeFileError` naming what was found. The same allow-list is applied when
*writing*, so a file that could not be loaded is never written (an attribute holding a lambda, an
RNG object or a user's own classifier is a one-line error at ``dump`` time).

Class names are looked up in a dictionary built from the allowed classes; the file never causes
a module to be imported.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ZSLError
from .io import atomic_write

FORMAT = "zsl.persist"
VERSION = 1
DOC_MEMBER = "zsl.json"
MAX_DOC_BYTES = 256 << 20  # the JSON of any real model is a few kB to a few MB

#: ``torch.nn`` layers rebuilt from files (stateless activations, containers, the usual layers).
TORCH_LAYERS = (
    "Linear", "Bilinear", "Identity", "Flatten", "Unflatten", "Sequential", "ModuleList", "ModuleDict",
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Softplus",
    "Softmax", "LogSoftmax", "Hardtanh", "Hardswish", "Dropout", "AlphaDropout",
    "BatchNorm1d", "LayerNorm", "Embedding",
)
#: activation functions an attribute may name (``self.act = torch.sigmoid``)
TORCH_FUNCTIONS = (
    "torch.sigmoid", "torch.tanh", "torch.relu",
    "torch.nn.functional.relu", "torch.nn.functional.leaky_relu", "torch.nn.functional.sigmoid",
    "torch.nn.functional.tanh", "torch.nn.functional.gelu", "torch.nn.functional.elu",
    "torch.nn.functional.softplus", "torch.nn.functional.softmax", "torch.nn.functional.log_softmax",
    "torch.nn.functional.silu",
)
#: scikit-learn estimators a method may hold (public import path -> class)
SKLEARN_CLASSES = (
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing.StandardScaler",
    "sklearn.linear_model.LogisticRegression", "sklearn.linear_model.Ridge", "sklearn.decomposition.PCA",
)


class UnsafeFileError(ZSLError):
    """A file is not a zsl data file, or names a class/function zsl does not rebuild from files."""


class PersistError(ZSLError):
    """An object cannot be written as data (an attribute holds something the loader would refuse)."""


# ---------------------------------------------------------------------------------------------
# the allow-list
def _zsl_method_classes() -> dict[str, type]:
    """Registered methods + every class defined in a ``zsl.methods`` module or in ``zsl.preprocessing``."""
    import importlib
    import pkgutil

    from . import methods, preprocessing
    from ._registry import get_method_class, list_methods
    from .base import ZSLMethod

    registered = {get_method_class(n) for n in list_methods()}
    found: dict[str, type] = {}
    modules = [
        importlib.import_module(f"{methods.__name__}.{info.name}") for info in pkgutil.iter_modules(methods.__path__)
    ]
    for mod in [*modules, preprocessing]:
        for obj in vars(mod).values():
            if not isinstance(obj, type) or obj.__module__ != mod.__name__:
                continue
            if issubclass(obj, ZSLMethod) and obj not in registered:
                continue  # abstract bases (HashingMethod) are never a fitted object
            if issubclass(obj, BaseException):
                continue
            found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    for cls in registered:
        found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def _torch_classes() -> dict[str, type]:
    import torch.nn as nn

    return {f"torch.nn.{n}": getattr(nn, n) for n in TORCH_LAYERS if hasattr(nn, n)}


def _sklearn_classes() -> dict[str, type]:
    import importlib

    out = {}
    for name in SKLEARN_CLASSES:
        mod, _, attr = name.rpartition(".")
        try:
            out[name] = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):  # pragma: no cover - an sklearn without it
            continue
    return out


def allowed_classes(extra_classes: Iterable[type] = ()) -> dict[str, type]:
    """Name -> class of everything :func:`load` may rebuild (see the module docstring)."""
    out = {**_zsl_method_classes(), **_sklearn_classes()}
    try:
        out.update(_torch_classes())
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    for cls in extra_classes:
        out[f"{cls.__module__}.{cls.__qualname__}"] = cls
    for name, cls in list(out.items()):
        # rebuilding calls object.__new__ only; a class with its own __new__ (or slots) is not data
        if cls.__new__ is not object.__new__ or "__slots__" in vars(cls):
            del out[name]
    return out


def _allowed_functions() -> dict[str, Any]:
    import torch  # noqa: F401 - the allow-list below is read from the loaded modules
    import torch.nn.functional  # noqa: F401 - idem

    out = {}
    for name in TORCH_FUNCTIONS:
        mod, _, attr = name.rpartition(".")
        obj = __import__(mod, fromlist=[attr])
        out[name] = getattr(obj, attr)
    return out


def _short_list(names: Iterable[str], n: int = 6) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")


# ---------------------------------------------------------------------------------------------
# writing
class _Encoder:
    def __init__(self, allowed: dict[str, type], owner: str):
        self.allowed = allowed
        self.name_of = {cls: name for name, cls in allowed.items()}
        self.owner = owner
        self.arrays: list[np.ndarray] = []
        self.objects: list[dict | None] = []
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps memoised objects alive so ids stay unique
        self._functions: dict[int, str] | None = None

    def fail(self, where: str, what: str) -> PersistError:
        return PersistError(
            f"cannot save {self.owner}: {where or 'the object'} holds {what}; only arrays, tensors, numbers, strings, "
            "lists/tuples/dicts of those, zsl's own objects, scikit-learn's "
            f"{', '.join(n.rsplit('.', 1)[1] for n in SKLEARN_CLASSES)} "
            "and standard torch.nn layers can be saved as data"
        )

    def array(self, a: np.ndarray, where: str) -> int:
        if a.dtype.hasobject:
            raise self.fail(where, f"a numpy array of dtype {a.dtype} (Python objects)")
        self.arrays.append(a if a.flags.c_contiguous else np.array(a, order="C"))
        return len(self.arrays) - 1

    def function_name(self, obj) -> str | None:
        if self._functions is None:
            try:
                self._functions = {id(f): n for n, f in _allowed_functions().items()}
            except ImportError:  # pragma: no cover
                self._functions = {}
        return self._functions.get(id(obj))

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if type(obj) is int:
            return obj
        if type(obj) is float:
            return obj if math.isfinite(obj) else {"$float": repr(obj)}
        if type(obj) is np.ndarray or isinstance(obj, np.memmap):
            return {"$array": self.array(np.asarray(obj), where)}
        if isinstance(obj, np.ndarray):
            raise self.fail(where, f"a {type(obj).__name__} (an ndarray subclass)")
        if isinstance(obj, np.generic):
            return {"$scalar": self.array(np.asarray(obj), where)}
        if isinstance(obj, np.dtype):
            if obj.hasobject or obj.names is not None:
                raise self.fail(where, f"the structured or object dtype {obj}")
            return {"$np_dtype": obj.str}
        if type(obj) is list:
            return {"$list": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if type(obj) is tuple:
            return {"$tuple": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if type(obj) in (set, frozenset):
            return {"$set": [self.encode(v, f"{where}{{}}") for v in obj], "frozen": type(obj) is frozenset}
        if type(obj) is dict or _is_plain_ordered_dict(obj):
            return {
                "$dict": [[self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")] for k, v in obj.items()]
            }
        import torch

        if isinstance(obj, torch.Tensor):
            return self.tensor(obj, where)
        if isinstance(obj, torch.dtype):
            return {"$torch_dtype": str(obj).removeprefix("torch.")}
        if isinstance(obj, torch.device):
            return {"$torch_device": str(obj)}
        if isinstance(obj, type):
            name = self.name_of.get(obj)
            if name is None:
                raise self.fail(where, f"the class {obj.__module__}.{obj.__qualname__}")
            return {"$class": name}
        if _is_function(obj):
            name = self.function_name(obj)
            if name is None:
                raise self.fail(
                    where, f"the function {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)!s}"
                )
            return {"$function": name}
        return self.instance(obj, where)

    def tensor(self, t, where: str) -> dict:
        import torch

        if t.is_sparse or t.layout != torch.strided:
            raise self.fail(where, f"a {t.layout} tensor")
        if type(t) not in (torch.Tensor, torch.nn.Parameter):
            raise self.fail(where, f"a {type(t).__name__} tensor subclass")
        dtype = str(t.dtype).removeprefix("torch.")
        data = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            arr = data.view(torch.int16).numpy()
        else:
            try:
                arr = data.numpy()
            except TypeError:
                raise self.fail(where, f"a tensor of dtype {t.dtype}") from None
        return {"$tensor": self.array(arr, where), "dtype": dtype, "requires_grad": bool(t.requires_grad),
                "parameter": isinstance(t, torch.nn.Parameter)}

    def instance(self, obj: Any, where: str) -> dict:
        cls = type(obj)
        name = self.name_of.get(cls)
        if name is None:
            what = "a function" if _is_function(obj) else f"an object of class {cls.__module__}.{cls.__qualname__}"
            raise self.fail(where, what)
        key = id(obj)
        if key in self.memo:
            return {"$ref": self.memo[key]}
        j = len(self.objects)
        self.memo[key] = j
        self.keep.append(obj)
        self.objects.append(None)  # reserved before the state, so cycles refer back to it
        import torch

        if isinstance(obj, torch.nn.Module):
            self.objects[j] = self.module(obj, name, where)
        else:
            state = vars(obj) if hasattr(obj, "__dict__") else {}
            self.objects[j] = {"class": name, "kind": "object", "state": self.attributes(cls, state, where)}
        return {"$ref": j}

    def attributes(self, cls: type, attrs: dict, where: str) -> dict:
        for k in attrs:
            problem = attribute_name_problem(cls, k)
            if problem:
                raise self.fail(_attr(where, k), problem)
        return {"$dict": [[k, self.encode(v, _attr(where, k))] for k, v in attrs.items()]}

    def module(self, m, name: str, where: str) -> dict:
        internals = _module_internals()
        for k in internals:
            if k.endswith("hooks") and getattr(m, k, None):
                raise self.fail(_attr(where, k), "registered hooks (functions)")
        attrs = {k: v for k, v in vars(m).items() if k not in internals}
        return {
            "class": name,
            "kind": "module",
            "training": bool(m.training),
            "attributes": self.attributes(type(m), attrs, where),
            "parameters": {
                "$dict": [[k, None if p is None else self.tensor(p, _attr(where, k))] for k, p in m._parameters.items()]
            },
            "buffers": {
                "$dict": [[k, None if b is None else self.tensor(b, _attr(where, k))] for k, b in m._buffers.items()]
            },
            "non_persistent": sorted(m._non_persistent_buffers_set),
            "modules": {
                "$dict": [[k, None if s is None else self.encode(s, _attr(where, k))] for k, s in m._modules.items()]
            },
        }


def _attr(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def attribute_name_problem(cls: type, key: str) -> str | None:
    """Why ``key`` may not be an instance attribute restored from a file (None: it may).

    A restored attribute must not shadow a method, property or other descriptor of the class
    (``obj.transform = <something>`` would change what code runs), nor be a dunder name.
    """
    import inspect

    if not isinstance(key, str) or not key.isidentifier():
        return f"an attribute name {key!r} that is not an identifier"
    if key.startswith("__") and key.endswith("__"):
        return f"a special attribute name {key!r}"
    try:
        static = inspect.getattr_static(cls, key)
    except AttributeError:
        return None
    if callable(static) or hasattr(static, "__get__"):
        return f"an attribute {key!r} that would shadow the class's method or descriptor of that name"
    return None


def _is_function(obj) -> bool:
    import types

    return isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.LambdaType))


def _is_plain_ordered_dict(obj) -> bool:
    from collections import OrderedDict

    return type(obj) is OrderedDict


def _torch_if_loaded():
    import sys

    return sys.modules.get("torch")


def _module_internals() -> frozenset[str]:
    import torch.nn as nn

    return frozenset(vars(nn.Module()))


def _library_versions() -> dict[str, str]:
    import sys

    out = {"numpy": np.__version__}
    for lib in ("torch", "sklearn"):
        mod = sys.modules.get(lib)
        if mod is not None:
            out[lib] = str(getattr(mod, "__version__", "?"))
    return out


def encode(obj: Any, *, extra_classes: Iterable[type] = (), owner: str | None = None) -> tuple[dict, list[np.ndarray]]:
    """The JSON document and the arrays of ``obj`` (raises :class:`PersistError` for what cannot be data)."""
    import torch  # noqa: F401  (zsl's methods are torch-based; tensors and modules are recognised by it)

    from . import __version__

    enc = _Encoder(allowed_classes(extra_classes), owner or type(obj).__name__)
    try:
        root = enc.encode(obj, "")
    except RecursionError:
        raise PersistError(f"cannot save {enc.owner}: a container holds itself or is nested too deeply") from None
    doc = {"format": FORMAT, "version": VERSION, "zsl_version": __version__, "libraries": _library_versions(),
           "root": root, "objects": enc.objects}
    return doc, enc.arrays


def dump(obj: Any, path: str | os.PathLike, *, extra_classes: Iterable[type] = (), owner: str | None = None,
         meta: dict | None = None) -> Path:
    """Write ``obj`` to ``path`` as arrays + JSON (atomically: a crash leaves the old file or none).

    ``meta`` (JSON-serialisable) is stored in the document as ``"meta"``, for readers that want
    to describe a file without rebuilding it.
    """
    doc, arrays = encode(obj, extra_classes=extra_classes, owner=owner)
    if meta is not None:
        doc["meta"] = meta
    blob = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr(DOC_MEMBER, blob)
            for i, a in enumerate(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, a, allow_pickle=False)
                zf.writestr(f"arrays/{i}.npy", buf.getvalue())
    return path


# ---------------------------------------------------------------------------------------------
# reading
def describe_foreign(path: Path, head: bytes) -> str:
    """What a file that is not a zsl data file looks like (for the error message)."""
    if head[:1] == b"\x80" and len(head) > 1 and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return "a damaged zip archive"
        if any(n.endswith("data.pkl") for n in names):
            return "a torch.save file (a pickle inside a zip)"
        if names and all(n.endswith(".npy") for n in names):
            return "a numpy .npz archive without a zsl object graph"
        return "a zip archive without " + DOC_MEMBER
    if head[:6] == b"\x93NUMPY":
        return "a numpy .npy array"
    if head[:1] in (b"{", b"["):
        return "a JSON or text file"
    return "not a zsl data file"


def _refuse(path: Path, what: str, fix: str = "") -> UnsafeFileError:
    return UnsafeFileError(f"{path}: {what}{'; ' + fix if fix else ''}")


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One stored .npy member, its header checked before any allocation (dtype, declared size)."""
    with zf.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:  # zsl writes 1.0 (2.0 only for huge headers); 3.0 exists for unicode field names
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise _refuse(path, f"member {info.filename} is not a valid .npy array ({str(exc)[:120]})",
                          "the file is damaged") from None
        if dtype.hasobject:
            raise _refuse(path, f"member {info.filename} holds Python objects (dtype {dtype})",
                          "zsl never unpickles array contents")
        header_len = fh.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != info.file_size - header_len:
        raise _refuse(path, f"member {info.filename} declares shape {shape} ({nbytes} bytes) but holds "
                            f"{info.file_size - header_len} bytes", "the file is damaged")
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


NOT_OURS = ("zsl only loads files it wrote (arrays + JSON); pickles are refused because loading one can run any code "
            "-- if this is a model saved by an older zsl, fit it again and save it with this version")


def _open_file(path: Path) -> bytes:
    """The first bytes of ``path`` (a one-line error when it is missing, a folder or unreadable)."""
    if path.is_dir():
        raise ZSLError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise ZSLError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            return fh.read(16)
    except OSError as exc:
        raise ZSLError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _read_checked_zip(path: Path, *, what: str, member_ok) -> tuple[list[str], dict[str, Any]]:
    """Read every member of a zip that zsl wrote, refusing what it would never write.

    Members must be stored (uncompressed: no zip bombs), unique, within the file's size, and
    accepted by ``member_ok(name)``; ``.npy`` members are parsed with their header checked first
    and never unpickled; other members are returned as bytes. Returns (member names, contents).
    """
    head = _open_file(path)
    try:
        size = path.stat().st_size
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise ZSLError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not is_zip:
        raise _refuse(path, f"is {describe_foreign(path, head)}, not {what}", NOT_OURS)
    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise _refuse(path, "has duplicate zip members", "the file was tampered with or is damaged")
            if sum(i.file_size for i in infos) > size:
                # stored members cannot hold more bytes than the file: overlapping entries (a zip bomb)
                raise _refuse(path, "its members claim more bytes than the file holds", "the file was tampered with")
            for info in infos:
                if not member_ok(info.filename):
                    kind = describe_foreign(path, head)
                    if "pickle" in kind:
                        raise _refuse(path, f"is {kind}, not {what}", NOT_OURS)
                    raise _refuse(path, f"has an unexpected member {info.filename!r}, so it is not {what}", NOT_OURS)
                if info.compress_type != zipfile.ZIP_STORED:
                    raise _refuse(path, f"member {info.filename} is compressed; zsl writes stored members only",
                                  "the file was not written by zsl")
                if info.filename.endswith(".npy"):
                    out[info.filename] = _read_npy(zf, info, path)
                else:
                    if info.file_size > MAX_DOC_BYTES:
                        raise _refuse(path, f"member {info.filename} is {info.file_size} bytes (limit {MAX_DOC_BYTES})")
                    out[info.filename] = zf.read(info)
    except (
        zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError, struct.error,
    ) as exc:
        raise _refuse(
            path, f"is a damaged zip archive ({type(exc).__name__}: {str(exc)[:120]})",
            "the file is damaged or was not written by zsl",
        ) from None
    return names, out


def _is_graph_member(name: str) -> bool:
    if name == DOC_MEMBER:
        return True
    stem = name[len("arrays/"):-len(".npy")] if name.startswith("arrays/") and name.endswith(".npy") else ""
    return stem.isdigit() and str(int(stem)) == stem


def read_document(path: str | os.PathLike) -> tuple[dict, dict[int, np.ndarray]]:
    """The JSON document and arrays of a zsl data file, every structural check done; no object built."""
    path = Path(path)
    names, members = _read_checked_zip(path, what="a zsl data file", member_ok=_is_graph_member)
    if DOC_MEMBER not in members:
        raise _refuse(path, f"has no {DOC_MEMBER}, so it is not a zsl data file", NOT_OURS)
    arrays = {int(n[len("arrays/"):-len(".npy")]): a for n, a in members.items() if n != DOC_MEMBER}

    def _no_constants(name):
        raise ValueError(f"non-standard JSON constant {name}")

    try:
        doc = json.loads(members[DOC_MEMBER].decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _refuse(path, f"its {DOC_MEMBER} is not valid JSON ({str(exc)[:120]})", "the file is damaged") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise _refuse(path, f"its {DOC_MEMBER} is not a zsl object graph (format {found!r})", NOT_OURS)
    if doc.get("version") != VERSION:
        raise _refuse(
            path, f"format version {doc.get('version')!r} is not {VERSION}", "re-save it with this zsl version"
        )
    return doc, arrays


# ---------------------------------------------------------------------------------------------
# plain named arrays (an .npz that numpy reads too)
def save_npz(path: str | os.PathLike, /, **arrays) -> Path:
    """Write named arrays as an uncompressed ``.npz`` (``np.load`` reads it), atomically; no object dtypes.

    (``path`` is positional-only, so an array may be called ``path``.)"""
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, value in arrays.items():
                a = np.asarray(value)
                if a.dtype.hasobject:
                    raise PersistError(f"cannot save {path}: array {key!r} holds Python objects (dtype object)")
                buf = io.BytesIO()
                np.lib.format.write_array(buf, a, allow_pickle=False)
                zf.writestr(f"{key}.npy", buf.getvalue())
    return path


def load_npz(path: str | os.PathLike, *, required: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Named arrays of an uncompressed ``.npz`` (as :func:`save_npz` or ``np.savez`` write), checked
    like every zsl data file: stored members only, headers checked before allocation, no objects."""
    path = Path(path)
    _, members = _read_checked_zip(path, what="an uncompressed .npz of arrays",
                                   member_ok=lambda n: n.endswith(".npy") and "/" not in n)
    out = {n[:-len(".npy")]: a for n, a in members.items()}
    missing = [k for k in required if k not in out]
    if missing:
        raise _refuse(path, f"has no array {', '.join(map(repr, missing))} (found: {', '.join(out) or 'none'})",
                      "the file is damaged or was not written by zsl")
    return out


class _Decoder:
    def __init__(self, doc: dict, arrays: dict[int, np.ndarray], allowed: dict[str, type], path: Path):
        self.doc, self.arrays, self.allowed, self.path = doc, arrays, allowed, path
        objects = doc.get("objects", [])
        if not isinstance(objects, list):
            raise self.bad("'objects' is not a list")
        self.specs = objects
        self.built: dict[int, Any] = {}
        self._functions: dict[str, Any] | None = None

    def bad(self, what: str) -> UnsafeFileError:
        return _refuse(self.path, f"malformed object graph: {what}", "the file is damaged or was not written by zsl")

    def cls(self, name: Any) -> type:
        if not isinstance(name, str):
            raise self.bad(f"class name {name!r} is not a string")
        cls = self.allowed.get(name)
        if cls is None:
            raise _refuse(
                self.path,
                f"refers to {name!r}, which zsl does not rebuild from files "
                "(allowed: zsl's methods and their helpers, scikit-learn's "
                f"{', '.join(n.rsplit('.', 1)[1] for n in SKLEARN_CLASSES)}, "
                f"torch.nn layers {_short_list(TORCH_LAYERS, 5)})",
                "nothing was executed; do not use files from untrusted sources",
            )
        return cls

    def array(self, i: Any) -> np.ndarray:
        if type(i) is not int or i not in self.arrays:
            raise self.bad(f"array reference {i!r} has no member")
        return self.arrays[i]

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, str, int, float)):
            return node
        if isinstance(node, list):
            raise self.bad("an untagged list")
        if not isinstance(node, dict) or not node:
            raise self.bad(f"unexpected node {str(node)[:60]}")
        tag = next(iter(node))
        val = node[tag]
        if tag == "$list":
            return [self.decode(v) for v in self.seq(val)]
        if tag == "$tuple":
            return tuple(self.decode(v) for v in self.seq(val))
        if tag == "$set":
            items = [self.decode(v) for v in self.seq(val)]
            return frozenset(items) if node.get("frozen") else set(items)
        if tag == "$dict":
            out = {}
            for pair in self.seq(val):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise self.bad("a dict entry is not a [key, value] pair")
                key = self.decode(pair[0])
                try:
                    hash(key)
                except TypeError:
                    raise self.bad(f"unhashable dict key {key!r}") from None
                out[key] = self.decode(pair[1])
            return out
        if tag == "$float":
            if val not in ("nan", "inf", "-inf"):
                raise self.bad(f"float {val!r}")
            return float(val)
        if tag == "$array":
            return self.array(val)
        if tag == "$scalar":
            a = self.array(val)
            if a.ndim != 0:
                raise self.bad("a scalar member is not 0-d")
            return a[()]
        if tag == "$tensor":
            return self.tensor(node)
        if tag == "$ref":
            return self.ref(val)
        if tag == "$class":
            return self.cls(val)
        if tag == "$function":
            return self.function(val)
        if tag == "$np_dtype":
            try:
                dt = np.dtype(str(val))
            except TypeError:
                raise self.bad(f"dtype {val!r}") from None
            if dt.hasobject:
                raise self.bad("an object dtype")
            return dt
        if tag == "$torch_dtype":
            import torch

            dt = getattr(torch, str(val), None)
            if not isinstance(dt, torch.dtype):
                raise self.bad(f"torch dtype {val!r}")
            return dt
        if tag == "$torch_device":
            import torch

            try:
                return torch.device(str(val))
            except RuntimeError:
                raise self.bad(f"torch device {val!r}") from None
        raise self.bad(f"unknown tag {tag!r}")

    def check_names(self, cls: type, attrs: dict) -> None:
        for k in attrs:
            problem = attribute_name_problem(cls, k)
            if problem:
                raise _refuse(self.path, f"{cls.__qualname__} has {problem}",
                              "nothing was executed; the file was tampered with or not written by zsl")

    def seq(self, val) -> list:
        if not isinstance(val, list):
            raise self.bad("a container's items are not a list")
        return val

    def function(self, name: Any):
        if self._functions is None:
            self._functions = _allowed_functions()
        fn = self._functions.get(name) if isinstance(name, str) else None
        if fn is None:
            raise _refuse(self.path, f"refers to the function {name!r}, which zsl does not rebuild from files "
                                     f"(allowed: {_short_list(TORCH_FUNCTIONS, 4)})",
                          "nothing was executed; do not use files from untrusted sources")
        return fn

    def tensor(self, node: dict):
        import torch

        a = self.array(node["$tensor"])
        dtype = node.get("dtype")
        tdtype = getattr(torch, str(dtype), None)
        if not isinstance(tdtype, torch.dtype):
            raise self.bad(f"tensor dtype {dtype!r}")
        if tdtype == torch.bfloat16:
            if a.dtype != np.int16:
                raise self.bad("a bfloat16 tensor not stored as int16")
            t = torch.from_numpy(a).view(torch.bfloat16)
        else:
            t = torch.from_numpy(a)
            if t.dtype != tdtype:
                raise self.bad(f"tensor stored as {t.dtype} but declared {tdtype}")
        if node.get("parameter"):
            return torch.nn.Parameter(t, requires_grad=bool(node.get("requires_grad")))
        if node.get("requires_grad"):
            t.requires_grad_(True)
        return t

    def ref(self, j: Any):
        if type(j) is not int or not 0 <= j < len(self.specs):
            raise self.bad(f"object reference {j!r}")
        if j in self.built:
            return self.built[j]
        spec = self.specs[j]
        if not isinstance(spec, dict):
            raise self.bad(f"object {j} is not a JSON object")
        cls = self.cls(spec.get("class"))
        kind = spec.get("kind")
        torch = _torch_if_loaded()
        is_module = torch is not None and issubclass(cls, torch.nn.Module)
        if kind == "module" and not is_module:
            raise self.bad(f"{spec.get('class')} is stored as a module but is not one")
        if kind == "object" and is_module:
            raise self.bad(f"{spec.get('class')} is a torch module stored as a plain object")
        if kind not in ("module", "object"):
            raise self.bad(f"object kind {kind!r}")
        obj = cls.__new__(cls)
        self.built[j] = obj  # before the state: cycles and shared references resolve to it
        if kind == "object":
            state = self.decode(spec.get("state"))
            if not isinstance(state, dict):
                raise self.bad(f"the state of {spec.get('class')} is not a dict")
            self.check_names(cls, state)
            obj.__dict__.update(state)
            return obj
        self.fill_module(obj, spec)
        return obj

    def fill_module(self, m, spec: dict) -> None:
        import torch.nn as nn

        nn.Module.__init__(m)  # torch's own empty initialisation (parameter/buffer/module tables)
        internals = _module_internals()
        attrs = self.decode(spec.get("attributes"))
        params = self.decode(spec.get("parameters"))
        buffers = self.decode(spec.get("buffers"))
        modules = self.decode(spec.get("modules"))
        for what, d in (("attributes", attrs), ("parameters", params), ("buffers", buffers), ("modules", modules)):
            if not isinstance(d, dict) or not all(isinstance(k, str) for k in d):
                raise self.bad(f"a module's {what} are not a dict of names")
        bad = sorted(set(attrs) & internals)
        if bad:
            raise self.bad(f"a module attribute overwrites torch internals {bad}")
        self.check_names(type(m), attrs)
        m.training = bool(spec.get("training", False))
        m.__dict__.update(attrs)
        for k, p in params.items():
            if p is not None and not isinstance(p, nn.Parameter):
                raise self.bad(f"parameter {k!r} is not a tensor")
            m._parameters[k] = p
        for k, b in buffers.items():
            if b is not None and (isinstance(b, nn.Parameter) or not _is_tensor(b)):
                raise self.bad(f"buffer {k!r} is not a tensor")
            m._buffers[k] = b
        non_persistent = spec.get("non_persistent", [])
        if not isinstance(non_persistent, list) or not all(isinstance(k, str) and k in buffers for k in non_persistent):
            raise self.bad("non-persistent buffer names")
        m._non_persistent_buffers_set.update(non_persistent)
        for k, s in modules.items():
            if s is not None and not isinstance(s, nn.Module):
                raise self.bad(f"submodule {k!r} is not a module")
            m._modules[k] = s


def _is_tensor(x) -> bool:
    torch = _torch_if_loaded()
    return torch is not None and isinstance(x, torch.Tensor)


def decode(
    doc: dict, arrays: dict[int, np.ndarray], *, extra_classes: Iterable[type] = (),
    path: str | os.PathLike = "<memory>",
) -> Any:
    """Rebuild the object of a document (see :func:`read_document`)."""
    import torch  # noqa: F401  (modules and tensors are rebuilt as torch objects)

    path = Path(path)
    dec = _Decoder(doc, arrays, allowed_classes(extra_classes), path)
    try:
        return dec.decode(doc.get("root"))
    except RecursionError:
        raise dec.bad("nested too deeply") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise dec.bad(f"{type(exc).__name__}: {str(exc)[:120]}") from None


def load(path: str | os.PathLike, *, extra_classes: Iterable[type] = ()) -> Any:
    """Rebuild the object stored at ``path`` by :func:`dump`; refuses anything else with one clear line."""
    doc, arrays = read_document(path)
    return decode(doc, arrays, extra_classes=extra_classes, path=path)


def read_meta(path: str | os.PathLike) -> dict:
    """The ``meta`` a file was written with (no object is rebuilt)."""
    doc, _ = read_document(path)
    meta = doc.get("meta", {})
    return meta if isinstance(meta, dict) else {}


__all__ = ["PersistError", "UnsafeFileError", "allowed_classes", "decode", "dump", "encode", "load", "load_npz",
           "read_document", "read_meta", "save_npz", "TORCH_LAYERS", "TORCH_FUNCTIONS", "SKLEARN_CLASSES"]
