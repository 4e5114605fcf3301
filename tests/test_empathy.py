"""EPITOME scorer on the real annotations and the real embedding model: beats the majority
baseline on grouped folds, is deterministic, ranks empathetic replies above dismissive ones;
bad annotation files fail with a one-line error naming the file."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from helpers import stage_argv

from synthempathy.embeddings import Embedder
from synthempathy.empathy import (
    MECHANISMS,
    EmpathyScorer,
    fit_systems,
    frame_features,
    load_epitome,
    load_epitome_file,
    load_scorer,
    pick_posts,
    sample_posts,
    save_scorer,
    scorer_manifest,
    split_heldout,
    summarise,
    train_scorer,
)
from synthempathy.errors import InputError
from synthempathy.params import load_params

ROOT = Path(__file__).resolve().parents[1]
EPITOME = {m: ROOT / f"data/external/epitome/{name}-reddit.csv" for m, name in (("er", "emotional-reactions"), ("ip", "interpretations"), ("ex", "explorations"))}
PARAMS = load_params(ROOT / "params.yaml")
CONFIG = PARAMS.train_scorer
SEED = PARAMS.seed
SUBSET_POSTS = 400  # of 2,979: embedding + 13 fits take about a minute on 2 cores
HELDOUT_POSTS = 40


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def embedder(cache_dir):
    return Embedder("default", batch_size=32, cache_dir=cache_dir / "embeddings")


@pytest.fixture(scope="module")
def data():
    """A seeded random subset of seeker posts, with all their rows in all three files."""
    data = sample_posts(load_epitome(EPITOME), SUBSET_POSTS, SEED)
    assert all(frame["sp_id"].nunique() == SUBSET_POSTS for frame in data.values())
    return data


@pytest.fixture(scope="module")
def trained(data, embedder):
    heldout, _ = split_heldout(data, HELDOUT_POSTS, SEED)
    models, metrics = train_scorer(data, heldout, embedder, folds=3, seed=SEED, text_C=CONFIG.text_C, embedding_C=CONFIG.embedding_C)
    return heldout, models, metrics


def test_scorer_beats_majority_baseline_on_grouped_folds(data, trained):
    heldout, models, metrics = trained
    for m in MECHANISMS:
        cv = metrics["cv"][m]
        assert cv["model"]["macro_f1"] > cv["majority"]["macro_f1"] + 0.1, (m, cv)
        assert cv["model"]["accuracy"] >= cv["majority"]["accuracy"], (m, cv)
        assert set(cv) == {"model", "majority", "tfidf_lr"}
        assert metrics["train_pairs"][m] + metrics["heldout_pairs"][m] == len(data[m])
        assert metrics["heldout_pairs"][m] == data[m]["sp_id"].isin(heldout).sum() > 0
        assert sorted(models[m].classes_) == [0, 1, 2]
    json.dumps(metrics)  # plain JSON types only


def test_fit_is_deterministic_for_a_seed(data, embedder, trained):
    heldout, models, _ = trained
    frame = data["ex"][~data["ex"]["sp_id"].isin(heldout)].reset_index(drop=True)
    X = frame_features(frame, embedder)
    again = fit_systems(X, frame["level"].to_numpy(), CONFIG.text_C, CONFIG.embedding_C)["model"]
    np.testing.assert_array_equal(again.predict_proba(X), models["ex"].predict_proba(X))


POST = "My dog died yesterday and I can't stop crying. I don't know how to get through this."
CASES = {
    "er": [
        (POST, "I'm so sorry, that sounds heartbreaking. Sending you a big hug.", "ok"),
        ("I failed my final exam and I feel like a total failure.", "That sounds really painful, I'm so sorry you're going through this.", "ok."),
        ("My girlfriend left me after three years.", "I'm really sorry, that must hurt so much. My heart goes out to you.", "happens"),
    ],
    "ip": [
        (POST, "I understand, I went through the same when my dog died and it feels like the house is empty.", "Just get another dog."),
        ("I feel so alone since I moved to a new city.", "I know how that feels, when I moved I felt completely isolated too.", "Go outside more."),
        ("I can't sleep because I keep worrying about losing my job.", "I understand, I have been there myself and it feels like the worry never stops at night.", "Stop worrying."),
    ],
    "ex": [
        (POST, "What happened next? How are you feeling about it?", "Dogs die, that's life."),
        ("I had a huge fight with my parents today.", "What was the fight about? How are you feeling now?", "Parents are like that."),
        ("I've been feeling really down lately.", "What do you think started it? Have you been able to talk to anyone?", "Everyone feels down sometimes."),
    ],
}


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_empathetic_reply_outranks_dismissive_one(trained, embedder, mechanism):
    scorer = EmpathyScorer(trained[1], embedder)
    for post, good, bad in CASES[mechanism]:
        high, low = scorer.score([(post, good), (post, bad)])
        assert high[mechanism] > low[mechanism] + 0.5, (good, high, low)
        assert high["empathy"] > low["empathy"]
        assert set(high) == {"er", "ip", "ex", "er_level", "ip_level", "ex_level", "empathy"}
        assert high["empathy"] == pytest.approx(np.mean([high[m] for m in MECHANISMS]))
        assert all(0 <= high[m] <= 2 and high[f"{m}_level"] in (0, 1, 2) for m in MECHANISMS)


def test_empty_response_scores_zero_and_empty_post_is_an_error(trained, embedder):
    scorer = EmpathyScorer(trained[1], embedder)
    (empty,) = scorer.score([(POST, "  ")])
    assert empty == {"er_level": 0, "ip_level": 0, "ex_level": 0, "er": 0.0, "ip": 0.0, "ex": 0.0, "empathy": 0.0}
    with pytest.raises(InputError, match="pair 1: empty seeker post"):
        scorer.score([(POST, "ok"), ("", "ok")])
    assert scorer.score([]) == []


def test_saved_scorer_round_trips_and_score_stage_keeps_every_record(trained, cache_dir, tmp_path, monkeypatch, capsys):
    from stages import score as stage

    models = trained[1]
    target = tmp_path / "models/empathy_scorer"
    manifest = scorer_manifest(models, "default", 32, CONFIG.text_C, CONFIG.embedding_C)
    save_scorer(models, manifest, target)
    save_scorer(models, manifest, target)  # replacing an existing scorer leaves no temp dirs behind
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["empathy_scorer"]
    assert json.loads((target / "manifest.json").read_text())["mechanisms"]["er"]["classes"] == [0, 1, 2]
    with pytest.raises(InputError, match="no fitted empathy scorer"):
        load_scorer(tmp_path / "missing")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNTHEMPATHY_CACHE", str(cache_dir))  # reuse the module's embeddings
    records = [
        {"id": "sad-2-s0", "explanation": POST, "response": "ok", "extra": 1},
        {"id": "sad-1-s0", "explanation": POST, "response": CASES["er"][0][1]},
        {"id": "sad-3-s0", "explanation": POST, "response": ""},
    ]
    (tmp_path / "data").mkdir()
    (tmp_path / "data/aligned.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    stage.main(stage_argv("score"))
    scored = [json.loads(line) for line in open("data/scored.jsonl")]
    assert [r["id"] for r in scored] == ["sad-2-s0", "sad-1-s0", "sad-3-s0"] and scored[0]["extra"] == 1
    assert scored[1]["er"] > scored[0]["er"] and scored[2]["empathy"] == 0.0
    assert all(r[k] == round(r[k], 4) for r in scored for k in ("er", "ip", "ex", "empathy"))
    assert scored == [{**s, **r} for r, s in zip(records, scored)]  # input fields kept as they were
    direct = load_scorer(target).score([(r["explanation"], r["response"]) for r in records])
    assert [round(d["empathy"], 4) for d in direct] == [r["empathy"] for r in scored]
    assert json.loads(open("metrics/empathy.json").read()) == summarise(scored)

    records[1]["explanation"] = " "
    (tmp_path / "data/aligned.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(SystemExit) as exit_:
        stage.main(stage_argv("score"))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "data/aligned.jsonl: record 2 (id=sad-1-s0)" in err and "\n" not in err


def test_summarise_means_stds_and_level_counts():
    records = [
        {"er": 2.0, "ip": 0.0, "ex": 1.0, "empathy": 1.0, "er_level": 2, "ip_level": 0, "ex_level": 1},
        {"er": 0.0, "ip": 1.0, "ex": 1.0, "empathy": 2 / 3, "er_level": 0, "ip_level": 1, "ex_level": 1},
    ]
    summary = summarise(records)
    assert summary["n"] == 2
    assert summary["er"] == {"mean": 1.0, "std": 1.0} and summary["ex"] == {"mean": 1.0, "std": 0.0}
    assert summary["empathy"]["mean"] == pytest.approx(0.8333, abs=1e-4)
    assert summary["levels"] == {"er": {"0": 1, "1": 0, "2": 1}, "ip": {"0": 1, "1": 1, "2": 0}, "ex": {"0": 0, "1": 2, "2": 0}}
    assert summarise([])["empathy"] == {"mean": None, "std": None}


def test_heldout_posts_are_seeded_distinct_and_stable_when_n_grows():
    data = load_epitome(EPITOME)
    ids, situations = split_heldout(data, 250, SEED)
    assert len(set(ids)) == 250 and [s["id"] for s in situations] == [f"epitome-{sp}" for sp in ids]
    assert all(s["text"] and s["text"] == " ".join(s["text"].split()) for s in situations)
    assert split_heldout(data, 250, SEED) == (ids, situations)
    assert set(pick_posts(data["er"]["sp_id"], 100, SEED, "train_scorer")) <= set(ids)
    assert set(pick_posts(data["er"]["sp_id"], 250, SEED + 1, "train_scorer")) != set(ids)
    assert set(pick_posts(data["er"]["sp_id"], 250, SEED, "train_scorer/sample")) != set(ids)
    assert all(sample_posts(data, None, SEED)[m] is data[m] for m in MECHANISMS)


def write_csv(path: Path, rows: list[str], header: str = "sp_id,rp_id,seeker_post,response_post,level,rationales") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


GOOD = 'p1,r1,"I feel so alone,\nreally.",I am sorry to hear that.,1,sorry|'


@pytest.mark.parametrize(
    "rows, header, fragment",
    [
        ([GOOD, "p2,r2,I lost my job.,What happened?,3,"], None, ":4: level '3' is not 0, 1 or 2"),  # GOOD spans lines 2-3
        ([GOOD, "p2,r2,I lost my job.,What happened?,,"], None, ":4: level '' is not 0, 1 or 2"),
        (["p1,r1,post,reply,1"], "sp_id,rp_id,seeker_post,response_post,rationales", "missing column(s) level"),
        ([], "", "file is empty"),
        (["p1,r1,post,,1,"], None, "no usable data rows"),
    ],
)
def test_bad_annotation_file_names_the_file(tmp_path, rows, header, fragment):
    path = write_csv(tmp_path / "explorations-reddit.csv", rows, *(() if header is None else (header,)))
    with pytest.raises(InputError) as err:
        load_epitome_file(path)
    message = str(err.value)
    assert str(path) in message and fragment in message and "\n" not in message


def test_missing_file_and_skipped_empty_rows(tmp_path, caplog):
    er = write_csv(tmp_path / "emotional-reactions-reddit.csv", [GOOD])
    with pytest.raises(InputError, match="interpretations-reddit.csv: file not found"):
        load_epitome({"er": er, "ip": tmp_path / "interpretations-reddit.csv", "ex": er})
    path = write_csv(tmp_path / "e.csv", [GOOD, "p2,r2,post,   ,0,", "p3,r3,I lost my job.,  What   happened? ,2,"])
    with caplog.at_level(logging.WARNING):
        frame = load_epitome_file(path)
    assert frame.to_dict("records") == [
        {"line": 2, "sp_id": "p1", "rp_id": "r1", "seeker": "I feel so alone, really.", "response": "I am sorry to hear that.", "level": 1},
        {"line": 5, "sp_id": "p3", "rp_id": "r3", "seeker": "I lost my job.", "response": "What happened?", "level": 2},
    ]
    assert "skipped 1 row(s)" in caplog.text and "lines 4" in caplog.text


def test_real_annotation_files_load_whole():
    data = load_epitome(EPITOME)
    for m, frame in data.items():
        assert len(frame) == 3084 and frame["sp_id"].nunique() == 2979 and set(frame["level"]) == {0, 1, 2}, m
    # The three files annotate the same pairs, row for row.
    ids = [frame[["sp_id", "rp_id"]].to_numpy().tolist() for frame in data.values()]
    assert ids[0] == ids[1] == ids[2]
