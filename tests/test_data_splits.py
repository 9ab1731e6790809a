"""thinlab.data layout / splits / tasks: the real sample, the official rule, and bad folders."""
from __future__ import annotations

import os
from collections import Counter

import pytest
from data_helpers import make_folder, speaker

from thinlab.data import DataError, plan_task, scan, which_set
from thinlab.data.layout import WORDS10, speaker_of
from thinlab.data.splits import SPLITS


def _speakers(plan):
    return {s: {r[2] for r in plan.rows[s] if r[2]} for s in SPLITS}


@pytest.mark.parametrize("version", ["v0.01", "v0.02"])
def test_which_set_reproduces_the_official_lists(shared_sample, version):
    """The official lists were made by which_set(10, 10): every name must land where its list says."""
    for split, fname in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        names = (shared_sample / "lists" / version / fname).read_text().split()
        assert len(names) > 6000
        assert Counter(which_set(n) for n in names) == Counter({split: len(names)})


def test_reader_counts_match_the_disk(shared_sample):
    folder = scan(shared_sample)
    on_disk = {d: len([n for n in os.listdir(shared_sample / d) if n.endswith(".wav")])
               for d in os.listdir(shared_sample) if (shared_sample / d).is_dir() and d != "lists"}
    by_folder = Counter(c.folder for c in folder.clips)
    assert len(folder.background) == on_disk.pop("_background_noise_")
    assert dict(by_folder) == on_disk
    assert folder.words == sorted(WORDS10)
    unknown = [c for c in folder.clips if c.folder == "_unknown_"]
    assert all(c.rel.split("/")[1].startswith(c.word + "_") and len(c.speaker) == 8 for c in unknown)
    assert all(c.speaker == "" for c in folder.clips if c.folder == "_silence_")
    assert folder.lists_where == "lists/v0.02/"  # names more of these clips than lists/v0.01/


def test_speaker_of():
    assert speaker_of("3b4f8f24_nohash_1.wav") == "3b4f8f24"
    assert speaker_of("bed_0c540988_nohash_0.wav", folder="_unknown_") == "0c540988"
    assert speaker_of("1057.wav", folder="_silence_") == ""


@pytest.mark.parametrize("task", ["10words", "12class"])
def test_sample_speaker_split_is_disjoint_and_says_why(shared_sample, task):
    plan = plan_task(scan(shared_sample), task=task)
    spk = _speakers(plan)
    assert not (spk["training"] & spk["validation"] or spk["training"] & spk["testing"]
                or spk["validation"] & spk["testing"])
    assert all(len(spk[s]) >= 3 for s in SPLITS)
    # the official lists put every sample clip in testing: both list and hash rule must be rejected, and said so
    assert "speaker-rank rule" in plan.rule and "official lists (lists/v0.02/)" in plan.rule
    assert "clips in training/validation/testing" in plan.rule and "gets 0/0/" in plan.rule
    n_classes = len(plan.labels)
    assert n_classes == (12 if task == "12class" else 10)
    for s in SPLITS:
        assert {r[1] for r in plan.rows[s]} == set(range(n_classes))


def test_sample_12class_uses_its_unknown_and_silence_folders(shared_sample):
    plan = plan_task(scan(shared_sample), task="12class")
    assert plan.labels[-2:] == ["_unknown_", "_silence_"]
    for s in SPLITS:
        counts = Counter(r[1] for r in plan.rows[s])
        cap = round(sum(counts[i] for i in range(10)) / 10)
        assert 0 < counts[10] <= cap and 0 < counts[11] <= cap
        assert all(r[0].startswith("_unknown_/") for r in plan.rows[s] if r[1] == 10)
        assert all(r[0].startswith("_silence_/") for r in plan.rows[s] if r[1] == 11)


def test_12class_unknown_and_silence_sized_like_a_keyword_class(tmp_path):
    folder = scan(make_folder(tmp_path / "d", n_speakers=40, extra_words=("cat", "dog", "bird")))
    plan = plan_task(folder, task="12class", words=["yes", "no"])
    for s in SPLITS:
        counts = Counter(r[1] for r in plan.rows[s])
        cap = round((counts[0] + counts[1]) / 2)
        assert counts[2] == cap and counts[3] == cap  # 3 other words supply more than enough unknowns
        assert {r[0].split("/")[0] for r in plan.rows[s] if r[1] == 2} <= {"cat", "dog", "bird"}


def test_random_split_leaks_speakers(shared_sample):
    plan = plan_task(scan(shared_sample), split="random")
    spk = _speakers(plan)
    assert "NOT speaker-disjoint" in plan.rule and not plan.speaker_disjoint
    assert len(spk["training"] & spk["testing"]) > 10


def test_hash_rule_used_when_it_works(tmp_path):
    folder = scan(make_folder(tmp_path / "d", n_speakers=60))
    plan = plan_task(folder, words=["yes", "no"])
    assert plan.rule.startswith("speaker-hash rule") and "no official lists" in plan.rule
    for s in SPLITS:
        for rel, _, spk in plan.rows[s]:
            assert which_set(rel) == s


def test_official_lists_at_root_are_used(tmp_path):
    root = make_folder(tmp_path / "d", n_speakers=10)
    val = [f"{w}/{speaker(0)}_nohash_0.wav" for w in ("yes", "no")]
    test = [f"{w}/{speaker(1)}_nohash_0.wav" for w in ("yes", "no")]
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    plan = plan_task(scan(root), words=["yes", "no"])
    assert plan.rule.startswith("official lists (validation_list.txt / testing_list.txt at the root)")
    assert sorted(r[0] for r in plan.rows["validation"]) == sorted(val)
    assert sorted(r[0] for r in plan.rows["testing"]) == sorted(test)
    assert len(plan.rows["training"]) == 16


def test_other_percentages_bypass_the_official_lists(tmp_path):
    root = make_folder(tmp_path / "d", n_speakers=60)
    (root / "validation_list.txt").write_text(f"yes/{speaker(0)}_nohash_0.wav\n")
    (root / "testing_list.txt").write_text(f"yes/{speaker(1)}_nohash_0.wav\n")
    plan = plan_task(scan(root), words=["yes", "no"], validation_percentage=20, testing_percentage=20)
    assert plan.rule.startswith("speaker-hash rule (TensorFlow which_set, 20% validation / 20% testing)")
    assert "official lists ignored" in plan.rule
    for s in SPLITS:
        assert all(which_set(rel, 20, 20) == s for rel, _, _ in plan.rows[s])
    with pytest.raises(DataError, match="uses the lists' fixed 10%/10%; got 20/20"):
        plan_task(scan(root), words=["yes", "no"], split="official", validation_percentage=20,
                  testing_percentage=20)


def test_list_naming_missing_clips(tmp_path):
    root = make_folder(tmp_path / "d", n_speakers=10)
    (root / "validation_list.txt").write_text(f"yes/{speaker(0)}_nohash_0.wav\nno/{speaker(0)}_nohash_0.wav\n")
    (root / "testing_list.txt").write_text(f"yes/{speaker(1)}_nohash_0.wav\nno/{speaker(1)}_nohash_0.wav\n"
                                           "yes/deadbeef_nohash_0.wav\n")
    with pytest.raises(DataError, match=r"split='official' cannot be used .*name 1 clips missing from this folder "
                                        r"\(e\.g\. yes/deadbeef_nohash_0\.wav\).*Re-download"):
        plan_task(scan(root), words=["yes", "no"], split="official")
    plan = plan_task(scan(root), words=["yes", "no"])  # default: falls back and says why
    assert "missing from this folder" in plan.rule and plan.speaker_disjoint


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; expected a Speech Commands folder.*make data"):
        scan(tmp_path / "nowhere")


def test_empty_folder(tmp_path):
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(DataError, match=r"holds no \.wav clips in word folders \(found folders: \['yes'\]\)"):
        scan(tmp_path / "empty")


def test_folder_with_no_known_words(tmp_path):
    folder = scan(make_folder(tmp_path / "d", words=("apple", "pear"), n_speakers=3))
    with pytest.raises(DataError, match=r"has none of the keywords .*word folders are \['apple', 'pear'\]"):
        plan_task(folder)


def test_folder_missing_some_keywords(tmp_path):
    folder = scan(make_folder(tmp_path / "d", words=("yes", "no"), n_speakers=3))
    with pytest.raises(DataError, match=r"lacks the keyword folders \['up'.*words=\['yes', 'no'\]"):
        plan_task(folder)


def test_12class_needs_other_words(tmp_path):
    folder = scan(make_folder(tmp_path / "d", n_speakers=10))
    with pytest.raises(DataError, match="needs clips of other words"):
        plan_task(folder, task="12class", words=["yes", "no"])


def test_12class_cuts_silence_from_background_by_time(tmp_path):
    folder = scan(make_folder(tmp_path / "d", n_speakers=40, extra_words=("cat",)))
    plan = plan_task(folder, task="12class", words=["yes", "no"])
    n = 12 * 16000  # samples of the one 12-s background recording
    for s, (lo, hi) in zip(SPLITS, [(0, 0.8 * n), (0.8 * n, 0.9 * n), (0.9 * n, n)]):
        sil = [r[0] for r in plan.rows[s] if r[1] == 3]
        assert sil, s
        for rel in sil:
            start = int(rel.split("#start=")[1].split("&")[0])
            assert lo <= start and start + 16000 <= hi + 1


def test_too_few_speakers(tmp_path):
    folder = scan(make_folder(tmp_path / "d", n_speakers=2))
    with pytest.raises(DataError, match=r"only 2 speaker\(s\).*split='random'"):
        plan_task(folder, words=["yes", "no"])


def test_max_per_class_is_deterministic_and_capped(real_folder):
    folder = scan(real_folder)
    a = plan_task(folder, max_per_class=5, seed=3)
    b = plan_task(folder, max_per_class=5, seed=3)
    c = plan_task(folder, max_per_class=5, seed=4)
    assert a.rows == b.rows and a.rows != c.rows
    for s in SPLITS:
        assert max(Counter(r[1] for r in a.rows[s]).values()) <= 5


def test_bad_split_mode_and_percentages(real_fixture):
    folder = scan(real_fixture)
    with pytest.raises(DataError, match="split='speakers' is not a split mode"):
        plan_task(folder, split="speakers")
    with pytest.raises(DataError, match="percentages 60.0/50.0"):
        plan_task(folder, validation_percentage=60, testing_percentage=50)
    with pytest.raises(DataError, match="task='20words' is unknown"):
        plan_task(folder, task="20words")
