"""Zero-shot labelling (`zsl label` and zsl.labelling): vocabularies, ConSE ranking, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from zsl.cli import main
from zsl.errors import DataError, ZSLError
from zsl.labelling import (
    ZeroShotLabeller,
    expand_images,
    imagenet1k_classes,
    load_vocabulary,
    read_vocabulary_lines,
)


def _has_timm_files() -> bool:
    try:
        from zsl.labelling import imagenet21k_synsets

        imagenet21k_synsets()
        return True
    except ZSLError:
        return False


@pytest.fixture(scope="module")
def labeller():
    return ZeroShotLabeller(["cat, kitty", "airplane, aeroplane", "espresso", "zzqxwv"], T=10)


def _peaked_logits(class_ids):
    L = np.zeros((len(class_ids), 1000), np.float32)
    L[np.arange(len(class_ids)), class_ids] = 20.0
    return L


def test_imagenet1k_class_list_matches_the_classifier_order():
    wnids, synonyms = imagenet1k_classes()
    assert len(wnids) == 1000 and wnids[0] == "n01440764" and synonyms[0] == ["tench", "Tinca tinca"]
    assert synonyms[281][0] == "tabby"


def test_vocabulary_lines_synonyms_and_comments():
    assert read_vocabulary_lines(["cat, kitty", "", "# comment", "dog # trailing"]) == [["cat", "kitty"], ["dog"]]
    with pytest.raises(DataError, match="no labels"):
        read_vocabulary_lines(["", "# only a comment"])


def test_words_without_vectors_are_reported_not_dropped(labeller):
    assert labeller.missing == ["zzqxwv"]
    assert labeller.vocabulary.names == ["cat", "airplane", "espresso"]


def test_conse_ranks_the_semantically_closest_label(labeller):
    # classifier sure of tabby cat (281), airliner (404), espresso (967)
    results = labeller.label_logits(_peaked_logits([281, 404, 967]), ["a", "b", "c"], top_k=2)
    assert [r.labels[0][0] for r in results] == ["cat", "airplane", "espresso"]
    for r in results:
        assert 0 < r.confidence <= 1.0 + 1e-6
        assert r.labels[0][1] >= r.labels[1][1]
    assert json.loads(json.dumps(results[0].to_json()))["labels"][0]["label"] == "cat"


def test_exclude_seen_removes_imagenet1k_names():
    lab = ZeroShotLabeller(["tabby, tabby cat", "cat", "goldfish"], exclude_seen=True)
    assert lab.vocabulary.names == ["cat"] and lab.excluded == 2


def test_vocabulary_embeddings_are_cached(tmp_path):
    vocab_file = tmp_path / "v.txt"
    vocab_file.write_text("lion\ntiger\n")
    v1 = load_vocabulary(vocab_file, cache_dir=tmp_path / "c")
    cached = list((tmp_path / "c" / "labelling").glob("vocab-*.npz"))
    assert len(cached) == 1
    v2 = load_vocabulary(vocab_file, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(v1.embeddings, v2.embeddings)
    with pytest.raises(DataError, match="not found"):
        load_vocabulary(tmp_path / "missing.txt")


def test_expand_images_reports_missing_paths(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    paths, problems = expand_images([str(tmp_path), str(tmp_path / "nope.png")])
    assert paths == [str(tmp_path / "a.jpg")] and "no such file" in problems[0]


@pytest.mark.skipif(not _has_timm_files(), reason="imagenet21k vocabulary needs timm's data files: pip install --no-deps timm")
def test_imagenet21k_vocabulary_and_exclusion():
    from zsl.labelling import imagenet21k_synsets

    wnids, synonyms = imagenet21k_synsets()
    assert len(wnids) == 21843 and "n02084071" in wnids
    assert synonyms[wnids.index("n02084071")][:2] == ["dog", "domestic dog"]


def test_cli_labels_images_and_skips_unreadable_ones(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "chelsea.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("cat\nairplane\nqqzzxxw\n")
    rc = main(["label", str(tmp_path), "--vocabulary", str(vocab), "--top-k", "2", "--json", "--resolution", "128"])
    out, err = capsys.readouterr()
    assert rc == 0
    lines = [json.loads(x) for x in out.strip().splitlines()]
    assert len(lines) == 1 and lines[0]["image"].endswith("chelsea.jpg")
    assert lines[0]["labels"][0]["label"] == "cat"
    assert "broken.jpg: not a readable image, skipped" in err
    assert "'qqzzxxw'" in err and "no GloVe vector" in err
    rc = main(["label", str(tmp_path / "broken.jpg"), "--vocabulary", str(vocab)])
    assert rc == 2
    assert "could be read" in capsys.readouterr().err
