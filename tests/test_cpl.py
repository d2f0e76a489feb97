"""CPL: soft labels, the loss switches, the class-wise CV Optuna study (two concurrent workers),
`zsl run --params-from-study`, and the analysis commands on synthetic data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import zsl
from zsl.methods.cpl import CPL, scale_semantics, soft_labels


def test_lstsq_soft_labels_match_numpy_least_squares():
    rng = np.random.default_rng(0)
    S = rng.random((12, 30))
    seen, unseen = np.arange(8), np.arange(8, 12)
    r = soft_labels(S, seen, unseen, relation="lstsq", ridge=1e-9, scale=1.0)
    # oracle: min_R ||A_U^T - A_S^T R||  (column j of R reconstructs unseen class j from seen classes)
    R, *_ = np.linalg.lstsq(S[seen].T, S[unseen].T, rcond=None)
    # the coefficients themselves, clipped to the range of a similarity (no per-row stretch)
    np.testing.assert_allclose(r, np.clip(R, 0, 1), atol=1e-4)
    assert r.shape == (8, 4) and r.min() >= 0 and r.max() <= 1


def test_cosine_soft_labels_rank_like_cosine_and_respect_scale():
    rng = np.random.default_rng(1)
    S = rng.random((10, 5))
    S = S - 0.5  # signed vectors, so some cosines are negative
    r = soft_labels(S, np.arange(6), np.arange(6, 10), relation="cosine", scale=0.5)
    Sn = S / np.linalg.norm(S, axis=1, keepdims=True)
    cos = Sn[:6] @ Sn[6:].T
    np.testing.assert_allclose(r, 0.5 * np.clip(cos, 0, 1), atol=1e-6)
    assert (cos < 0).any() and (r[cos < 0] == 0).all()
    with pytest.raises(ValueError, match="relation"):
        soft_labels(S, np.arange(6), np.arange(6, 10), relation="euclid")


def test_scale_semantics_columns_in_unit_interval():
    S = np.array([[-1.0, 2.0, 3.0], [1.0, 4.0, 3.0]])
    A = scale_semantics(S)
    np.testing.assert_allclose(A, [[0, 0, 0.5], [1, 1, 0.5]])


@pytest.fixture(scope="module")
def syn():
    return zsl.make_synthetic()


def _fit(syn, **kw):
    m = zsl.create_method("cpl.tiny", **kw)
    return m.fit(*syn.subset("trainval"), syn.class_embeddings(), syn.seen_classes)


def _zsl_acc(m, syn):
    X, y = syn.subset("test_unseen")
    return float(np.mean(m.predict(X, syn.unseen_classes) == y))


def test_full_model_learns_and_every_switch_changes_the_fit(syn):
    full = _fit(syn)
    assert full.generator_ is not None and full.decoder_ is not None
    assert _zsl_acc(full, syn) > 2.0 / len(syn.unseen_classes)  # well above chance (0.2)
    assert set(full.history_[-1]) == {"loss", "proj", "rec", "cls", "inter"}
    assert full.history_[-1]["cls"] < full.history_[0]["cls"]
    no_gen = _fit(syn, use_generated=False)
    assert no_gen.generator_ is None
    no_dec = _fit(syn, use_decoder=False)
    assert no_dec.decoder_ is None and all(h["rec"] == 0 for h in no_dec.history_)
    no_inter = _fit(syn, use_inter_class=False)
    assert all(h["inter"] == 0 for h in no_inter.history_)
    X = syn.X[:50]
    ref = full.decision_function(X, syn.unseen_classes)
    for other in (no_gen, no_dec, no_inter):
        assert not np.allclose(other.decision_function(X, syn.unseen_classes), ref)


def test_search_space_is_the_slides_grid():
    from zsl.tune import search_grid

    grid = search_grid(CPL.search_space)
    assert len(grid) == 3 * 4 * 4 * 4
    assert len({tuple(sorted(p.items())) for p in grid}) == len(grid)
    assert {p["beta"] for p in grid} == {1e-3, 1e-2, 1e-1}
    assert {p["lambda_cls"] for p in grid} == {1e-4, 1e-3, 1e-2, 1e-1}


def test_class_folds_partition_seen_classes():
    from zsl.tune import class_folds

    folds = class_folds(np.arange(10, 25), 3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(10, 25))
    assert all(len(f) == 5 for f in folds)
    with pytest.raises(zsl.errors.ZSLError, match="folds"):
        class_folds(np.arange(4), 3)


def test_cross_validation_uses_only_seen_classes(syn):
    from zsl.tune import classwise_cv_score

    out = classwise_cv_score("cpl.tiny", syn, {"beta": 1e-2}, folds=3, max_per_class=30)
    assert len(out["fold_scores"]) == 3 and 0.0 <= out["score"] <= 1.0
    assert out["score"] == pytest.approx(np.mean(out["fold_scores"]))
    # the unseen classes' descriptions are never read: destroying them changes nothing
    import copy

    broken = copy.deepcopy(syn)
    broken.embeddings["attributes"][syn.unseen_classes] = 1.0
    broken.X[syn.splits["test_unseen"]] = 0.0
    assert classwise_cv_score("cpl.tiny", broken, {"beta": 1e-2}, folds=3, max_per_class=30) == out


WORKER = textwrap.dedent("""
    import sys, time
    from zsl.tune import open_study, run_study
    storage, n_trials = sys.argv[1], int(sys.argv[2])
    space = {"a": ("categorical", [1, 2, 3, 4]), "b": ("categorical", [10, 20, 30, 40])}
    study = open_study("toy", storage=storage, space=space, sampler="grid")
    def objective(params):
        time.sleep(0.05)  # long enough for the two workers to interleave
        return {"score": -sum(abs(v) for v in params.values()), "w": sys.argv[3]}
    print(run_study(study, objective, n_trials, space, storage=storage))
""")


def test_two_concurrent_workers_share_one_sqlite_study_exactly_once(tmp_path):
    pytest.importorskip("optuna")
    from zsl.tune import open_study, study_best_params

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    n_trials = 12
    space = {"a": ("categorical", [1, 2, 3, 4]), "b": ("categorical", [10, 20, 30, 40])}
    open_study("toy", storage=storage, space=space, sampler="grid")  # both workers then load it
    env = {**os.environ, "PYTHONPATH": str(Path(zsl.__file__).parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, storage, str(n_trials), f"w{i}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sum(int(o[0].strip().splitlines()[-1]) for o in outs) == n_trials

    study = open_study("toy", storage=storage, space=space, sampler="grid")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n_trials  # no grid point twice
    assert {t.user_attrs["w"] for t in trials} <= {"w0", "w1"}
    assert study_best_params("toy", storage) == max(trials, key=lambda t: t.value).params
    # resuming with a larger budget adds only the missing trials
    run = subprocess.run([sys.executable, "-c", WORKER, storage, str(n_trials + 2), "w2"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().splitlines()[-1] == "2"


def test_run_uses_a_study_only_when_asked(tmp_path):
    """`zsl run cpl` gives the same result before and after a search unless --params-from-study names it."""
    pytest.importorskip("optuna")
    env = {**os.environ, "ZSL_CACHE": str(tmp_path)}

    def cli(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "zsl.cli", *args], env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    run = ("run", "cpl.tiny", "--dataset", "synthetic", "--selection", "none", "--json")
    before = json.loads(cli(*run))
    search = json.loads(
        cli(
            "cpl", "search", "--dataset", "synthetic", "--preset", "tiny", "--n-trials", "2", "--folds", "2",
            "--max-per-class", "20", "--json",
        )
    )
    after = json.loads(cli(*run))
    assert after["metrics"] == before["metrics"] and after["config"]["params"] == before["config"]["params"]
    name = search["study"]
    assert "classwise-cv" in name and "cpl.tiny" in name
    tuned = json.loads(cli(*run, "--params-from-study", name))
    prov = tuned["config"]["params_from_study"]
    assert prov["study"] == name and prov["params"] == search["best_params"]
    assert set(prov["params"]) == {"beta", "lambda_rec", "lambda_cls", "lambda_inter"}
    assert all(tuned["config"]["params"][k] == v for k, v in prov["params"].items())


@pytest.mark.slow
def test_cli_similarity_and_ablation_write_png_and_markdown(tmp_path):
    pytest.importorskip("matplotlib")
    from zsl.cli import main

    out = tmp_path / "figs"
    assert main(["cpl", "similarity", "--dataset", "synthetic", "--out", str(out)]) == 0
    assert main(["cpl", "ablation", "--dataset", "synthetic", "--preset", "tiny", "--out", str(out)]) == 0
    for name in ("similarity", "ablation"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    table = (out / "ablation.md").read_text()
    for variant in ("full", "no generated", "no inter-class", "no decoder"):
        assert f"| {variant} |" in table


@pytest.mark.slow
def test_cli_remaining_analyses_on_synthetic(tmp_path):
    pytest.importorskip("matplotlib")
    from zsl.cli import main

    out = tmp_path / "figs"
    for analysis in ("relation", "confusion", "tsne"):
        assert main(["cpl", analysis, "--dataset", "synthetic", "--preset", "tiny", "--out", str(out)]) == 0
    assert main(["cpl", "sensitivity", "--dataset", "synthetic", "--preset", "tiny", "--params", "beta",
                 "--out", str(out)]) == 0
    for name in ("relation", "confusion", "tsne", "sensitivity"):
        assert (out / f"{name}.png").stat().st_size > 5000


def test_cli_errors_are_one_line(capsys):
    from zsl.cli import main

    assert main(["cpl", "sensitivity", "--dataset", "synthetic", "--params", "gamma"]) == 2
    assert "--params" in capsys.readouterr().err


def test_cli_similarity_writes_png_and_markdown(tmp_path):
    pytest.importorskip("matplotlib")
    from zsl.cli import main

    out = tmp_path / "figs"
    assert main(["cpl", "similarity", "--dataset", "synthetic", "--out", str(out)]) == 0
    assert (out / "similarity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "most related unseen" in (out / "similarity.md").read_text()
