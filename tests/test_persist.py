"""Saved models are arrays + JSON: round trips of generic objects, and crafted files that must never run.

Every hostile file here carries a payload that creates a marker file when it is unpickled; each
test first proves the payload is live (unpickling it elsewhere creates a marker), then that zsl
refuses the file with a one-line error and the marker never appears.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn

import zsl
from zsl import persist
from zsl.errors import ZSLError
from zsl.methods.cvae_clusterable import Encoder, SigmoidMap
from zsl.preprocessing import FeaturePreprocessor


class _Payload:
    """Unpickling this runs ``os.system("touch MARKER")`` -- what an attacker's file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _live_payload(tmp_path, name="probe"):
    """Prove a payload is live: unpickling it creates its marker. Returns a fresh (not yet fired) payload."""
    probe = tmp_path / f"{name}-probe-marker"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists(), "the crafted pickle must really run code, or the tests below prove nothing"
    return _Payload(tmp_path / f"{name}-MARKER"), tmp_path / f"{name}-MARKER"


@pytest.fixture(scope="module")
def fitted():
    ds = zsl.make_synthetic(seed=0)
    Xtr, ytr = ds.subset("trainval")
    method = zsl.create_method("eszsl").fit(Xtr, ytr, ds.class_embeddings(), ds.seen_classes)
    return ds, method


def _rewrite(path, out, *, doc=None, members=None, compress=zipfile.ZIP_STORED):
    """Copy a zsl file with its JSON document and/or members replaced (what a tamperer does)."""
    with zipfile.ZipFile(path) as zf:
        items = {n: zf.read(n) for n in zf.namelist()}
    if doc is not None:
        items["zsl.json"] = json.dumps(doc).encode()
    items.update(members or {})
    with zipfile.ZipFile(out, "w", compression=compress) as zf:
        for n, b in items.items():
            zf.writestr(n, b)
    return out


# -- round trips ---------------------------------------------------------------------------------
def test_generic_module_graph_round_trips(tmp_path):
    """Any nn.Module made of zsl classes and standard torch.nn layers, plus plain data, round-trips exactly."""
    torch.manual_seed(0)
    shared = nn.Linear(4, 4)
    net = nn.Sequential(nn.Linear(8, 4, bias=False), nn.BatchNorm1d(4), nn.LeakyReLU(0.1), shared, nn.ReLU(), shared,
                        SigmoidMap(4, 3)).eval()
    net[1].running_mean += 0.5
    pre = FeaturePreprocessor(2).fit(np.random.default_rng(0).random((20, 5), dtype=np.float32))
    obj = {
        "net": net, "enc": Encoder(8, 3, 16, 2), "tuple": (1, 2.5, float("nan"), float("-inf"), np.float32(3.5), "s"),
        3: [None, True], "bf16": torch.arange(3, dtype=torch.bfloat16), "act": torch.sigmoid, "layer_class": nn.ReLU,
        "dtype": torch.float32, "pre": pre, "names": np.asarray(["a", "bc"]), "frozen": frozenset({1, 2}),
    }
    back = persist.load(persist.dump(obj, tmp_path / "x.npz"))
    x = torch.randn(5, 8)
    assert torch.equal(net(x), back["net"](x))
    assert back["net"][3] is back["net"][5], "a shared submodule must stay shared"
    assert not back["net"].training and torch.equal(back["net"][1].running_mean, net[1].running_mean)
    assert back["net"][0].bias is None and isinstance(back["net"][0].weight, nn.Parameter)
    xe, ae = torch.randn(2, 8), torch.randn(2, 3)
    for a, b in zip(obj["enc"](xe, ae), back["enc"](xe, ae)):
        assert torch.equal(a, b)
    t = back["tuple"]
    assert t[:2] == (1, 2.5) and np.isnan(t[2]) and t[3] == float("-inf") and t[5] == "s"
    assert type(t[4]) is np.float32 and t[4] == np.float32(3.5)
    assert back[3] == [None, True] and back["frozen"] == frozenset({1, 2})
    assert back["bf16"].dtype == torch.bfloat16 and torch.equal(back["bf16"], obj["bf16"])
    assert back["act"] is torch.sigmoid and back["layer_class"] is nn.ReLU and back["dtype"] is torch.float32
    Xq = np.ones((2, 5), np.float32)
    np.testing.assert_array_equal(pre.transform(Xq), back["pre"].transform(Xq))
    assert back["names"].tolist() == ["a", "bc"]
    with zipfile.ZipFile(tmp_path / "x.npz") as zf:
        assert all(n == "zsl.json" or (n.startswith("arrays/") and n.endswith(".npy")) for n in zf.namelist())
        assert not any("pkl" in n for n in zf.namelist())


def test_unsavable_attribute_is_refused_before_writing(tmp_path, fitted):
    ds, method = fitted
    out = tmp_path / "m.npz"
    method.odd_ = lambda x: x  # what a careless subclass might keep
    try:
        with pytest.raises(persist.PersistError, match=r"odd_ holds the function"):
            method.save(out)
    finally:
        del method.odd_
    assert not out.exists(), "a file that could not be loaded must never be written"
    gen = zsl.create_method("conse.tiny", seen_model=lambda X: np.ones((len(X), 2)) / 2, seen_model_classes=[0, 1])
    with pytest.raises(persist.PersistError, match="seen_model"):
        gen.save(out)


def test_loaded_method_scores_identically(tmp_path, fitted):
    ds, method = fitted
    loaded = zsl.ZSLMethod.load(method.save(tmp_path / "m.npz"))
    Xq = ds.X[:7]
    np.testing.assert_array_equal(
        method.decision_function(Xq, ds.unseen_classes), loaded.decision_function(Xq, ds.unseen_classes)
    )
    assert loaded.get_params() == method.get_params()
    assert persist.read_meta(tmp_path / "m.npz")["method"] == "eszsl"


# -- hostile files --------------------------------------------------------------------------------
def test_crafted_pickle_is_refused_and_never_runs(tmp_path):
    payload, marker = _live_payload(tmp_path)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ZSLError, match="Python pickle") as err:
        zsl.ZSLMethod.load(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_crafted_torch_save_file_is_refused_and_never_runs(tmp_path):
    payload, marker = _live_payload(tmp_path)
    path = tmp_path / "model.pt"
    torch.save({"model": payload}, path)
    assert not marker.exists()
    with pytest.raises(ZSLError, match=r"torch\.save file"):
        zsl.ZSLMethod.load(path)
    assert not marker.exists()


def test_pickled_array_member_is_refused_and_never_runs(tmp_path, fitted):
    _, method = fitted
    payload, marker = _live_payload(tmp_path)
    good = method.save(tmp_path / "m.npz")
    buf = io.BytesIO()
    np.save(buf, np.asarray([payload], dtype=object), allow_pickle=True)
    bad = _rewrite(good, tmp_path / "bad.npz", members={"arrays/0.npy": buf.getvalue()})
    with pytest.raises(ZSLError, match="Python objects"):
        zsl.ZSLMethod.load(bad)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["os.system", "posix.system", "builtins.eval", "this.Thing", "subprocess.Popen"])
def test_class_outside_the_allow_list_is_refused_without_importing(tmp_path, fitted, name):
    _, method = fitted
    good = method.save(tmp_path / "m.npz")
    with zipfile.ZipFile(good) as zf:
        doc = json.loads(zf.read("zsl.json"))
    doc["objects"][0]["class"] = name
    bad = _rewrite(good, tmp_path / "bad.npz", doc=doc)
    had_this = "this" in sys.modules
    with pytest.raises(persist.UnsafeFileError, match=f"refers to '{name}', which zsl does not rebuild") as err:
        zsl.ZSLMethod.load(bad)
    assert "nothing was executed" in str(err.value)
    assert ("this" in sys.modules) == had_this, "a class name in a file must never import a module"


def test_function_outside_the_allow_list_is_refused(tmp_path, fitted):
    _, method = fitted
    good = method.save(tmp_path / "m.npz")
    with zipfile.ZipFile(good) as zf:
        doc = json.loads(zf.read("zsl.json"))
    doc["objects"][0]["state"]["$dict"].append(["hook_", {"$function": "os.system"}])
    with pytest.raises(persist.UnsafeFileError, match="function 'os.system'"):
        zsl.ZSLMethod.load(_rewrite(good, tmp_path / "bad.npz", doc=doc))


def test_attribute_shadowing_a_method_is_refused(tmp_path, fitted):
    _, method = fitted
    good = method.save(tmp_path / "m.npz")
    with zipfile.ZipFile(good) as zf:
        doc = json.loads(zf.read("zsl.json"))
    doc["objects"][0]["state"]["$dict"].append(["decision_function", {"$class": "torch.nn.ReLU"}])
    with pytest.raises(persist.UnsafeFileError, match="shadow"):
        zsl.ZSLMethod.load(_rewrite(good, tmp_path / "bad.npz", doc=doc))


def test_compressed_or_foreign_members_are_refused(tmp_path, fitted):
    _, method = fitted
    good = method.save(tmp_path / "m.npz")
    with pytest.raises(persist.UnsafeFileError, match="compressed"):
        zsl.ZSLMethod.load(_rewrite(good, tmp_path / "c.npz", compress=zipfile.ZIP_DEFLATED))
    with pytest.raises(persist.UnsafeFileError, match="is a torch.save file"):
        zsl.ZSLMethod.load(_rewrite(good, tmp_path / "f.npz", members={"data.pkl": b"junk"}))


def test_array_header_lying_about_its_size_is_refused(tmp_path, fitted):
    _, method = fitted
    good = method.save(tmp_path / "m.npz")
    with zipfile.ZipFile(good) as zf:
        raw = zf.read("arrays/0.npy")
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 10**3)})
    bad = _rewrite(good, tmp_path / "huge.npz", members={"arrays/0.npy": buf.getvalue() + raw[-64:]})
    with pytest.raises(persist.UnsafeFileError, match="declares shape"):
        zsl.ZSLMethod.load(bad)


def test_tampered_weights_fail_at_load_not_at_predict(tmp_path, fitted):
    _, method = fitted
    good = method.save(tmp_path / "m.npz")
    with zipfile.ZipFile(good) as zf:
        doc = json.loads(zf.read("zsl.json"))
        arrays = {n: zf.read(n) for n in zf.namelist() if n != "zsl.json"}
    # swap in a wrongly shaped projection for every 2-d float array
    members = {}
    for n, raw in arrays.items():
        a = np.lib.format.read_array(io.BytesIO(raw))
        if a.ndim == 2:
            buf = io.BytesIO()
            np.save(buf, np.zeros((a.shape[0] + 3, a.shape[1] + 1), a.dtype))
            members[n] = buf.getvalue()
    with pytest.raises(ZSLError, match="does not run"):
        zsl.ZSLMethod.load(_rewrite(good, tmp_path / "bad.npz", doc=doc, members=members))


def test_invalid_saved_parameter_is_refused(tmp_path, fitted):
    _, method = fitted
    good = method.save(tmp_path / "m.npz")
    with zipfile.ZipFile(good) as zf:
        doc = json.loads(zf.read("zsl.json"))
    state = doc["objects"][0]["state"]["$dict"]
    for pair in state:
        if pair[0] == "lambda_":
            pair[1] = {"$float": "nan"}
    with pytest.raises(ZSLError, match="lambda_=nan"):
        zsl.ZSLMethod.load(_rewrite(good, tmp_path / "bad.npz", doc=doc))


@pytest.mark.parametrize("content", [b"", b"not a model", b"PK\x03\x04garbage", b'{"format": "zsl.persist"}'])
def test_junk_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(ZSLError) as err:
        zsl.ZSLMethod.load(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_non_method_object_is_refused_by_method_load(tmp_path):
    path = persist.dump({"a": np.zeros(3)}, tmp_path / "d.npz")
    with pytest.raises(ZSLError, match="not a zsl method"):
        zsl.ZSLMethod.load(path)


def test_implausible_sizes_are_refused_before_allocating(tmp_path, fitted):
    _, method = fitted
    good = method.save(tmp_path / "m.npz")
    with zipfile.ZipFile(good) as zf:
        doc = json.loads(zf.read("zsl.json"))
    for pair in doc["objects"][0]["state"]["$dict"]:
        if pair[0] == "n_features_in_":
            pair[1] = 10**12  # a 4 TB zero vector for the smoke run
    with pytest.raises(ZSLError, match="n_features_in_=1000000000000"):
        zsl.ZSLMethod.load(_rewrite(good, tmp_path / "bad.npz", doc=doc))
