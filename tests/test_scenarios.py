"""SAD loading, stressor selection and deterministic per-category sampling."""

import pytest

from synthempathy.errors import InputError
from synthempathy.records import sort_key, sorted_by_id
from synthempathy.scenarios import load_sad, sample_per_category, stressor_scenarios

SAD = "data/seeds/SAD_v1.csv"


def test_real_sad_has_the_published_counts():
    stressors = stressor_scenarios(load_sad(SAD))
    assert len(stressors) == 6476
    assert len({s["category"] for s in stressors}) == 9
    assert all(s["id"].startswith("sad-") and s["text"] and 0 <= s["severity"] <= 10 for s in stressors)


def test_sampling_is_deterministic_and_grows_without_reshuffling():
    stressors = stressor_scenarios(load_sad(SAD))
    three = sample_per_category(stressors, 3, seed=5)
    assert three == sample_per_category(stressors, 3, seed=5)
    assert len(three) == 27
    four_ids = {s["id"] for s in sample_per_category(stressors, 4, seed=5)}
    assert {s["id"] for s in three} <= four_ids  # raising n keeps the earlier picks
    assert {s["id"] for s in sample_per_category(stressors, 3, seed=6)} != {s["id"] for s in three}
    assert len(sample_per_category(stressors, "all", seed=5)) == 6476
    assert three == sorted_by_id(three)


def test_natural_id_order():
    assert sorted(["sad-10-s0", "sad-9-s2", "sad-10-s10", "sad-10-s2"], key=sort_key) == ["sad-9-s2", "sad-10-s0", "sad-10-s2", "sad-10-s10"]


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "empty"),
        (b"sID,sentence,is_stressor\n1,hi,1\n", "missing column"),
        (b"sID,sentence,is_stressor,top_label,avg_severity\n1,caf\xe9,1,Work,3\n", ":2: not UTF-8"),
    ],
)
def test_bad_seed_files(tmp_path, content, fragment):
    path = tmp_path / "sad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=fragment):
        load_sad(path)
    with pytest.raises(InputError, match="not found"):
        load_sad(tmp_path / "nope.csv")


def test_bad_row_is_named(tmp_path):
    path = tmp_path / "sad.csv"
    path.write_text("sID,sentence,is_stressor,top_label,avg_severity\n1,ok,1,Work,3\nx2,bad,1,Work,3\n")
    with pytest.raises(InputError, match=r"sad.csv:3:"):
        stressor_scenarios(load_sad(path), source=str(path))


@pytest.mark.parametrize(
    "rows, fragment",
    [
        ("1,not a stressor,0,Work,3\n2,nor this,0,Work,3\n", r"sad.csv: no row with is_stressor == 1"),
        ("1,ok,1,Work,3\n2,unsure,maybe,Work,3\n", r"sad.csv:3: is_stressor 'maybe' is not 0 or 1"),
        ("1,ok,yes,Work,3\n", r"sad.csv:2: is_stressor 'yes' is not 0 or 1"),
    ],
)
def test_no_stressor_or_a_non_binary_flag_is_an_error(tmp_path, rows, fragment):
    path = tmp_path / "sad.csv"
    path.write_text("sID,sentence,is_stressor,top_label,avg_severity\n" + rows)
    with pytest.raises(InputError, match=fragment):
        stressor_scenarios(load_sad(path), source=str(path))
