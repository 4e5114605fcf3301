"""params.yaml validation: the shipped file is valid; bad values fail with a one-line fix."""

import pytest
import yaml

from synthempathy.errors import InputError
from synthempathy.params import load_params
from synthempathy.seeding import derive_seed


def write_params(tmp_path, **overrides):
    raw = yaml.safe_load(open("params.yaml"))
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_params_are_valid():
    params = load_params()
    assert params.brainstorm.n_stories >= 1 and 0 < params.brainstorm.top_p <= 1


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"brainstorm__n_stories": 0}, "brainstorm.n_stories"),
        ({"brainstorm__temperature": 0}, "brainstorm.temperature"),
        ({"rewrite__temperature": 2.5}, "rewrite.temperature"),
        ({"respond__top_p": 1.5}, "respond.top_p"),
        ({"respond__top_p": 0}, "respond.top_p"),
        ({"dedup__dup_length_threshold": 0}, "dedup.dup_length_threshold"),
        ({"scenarios__n_per_category": 0}, "scenarios.n_per_category"),
        ({"brainstorm__n_storys": 3}, "brainstorm.n_storys"),
        ({"generation__engine": "spark"}, "generation.engine"),
        ({"generation__workers": 0}, "generation.workers"),
        ({"generation__ray_address": "head"}, "generation.ray_address"),
        ({"generation__endpoints": ["127.0.0.1:8080/v1"]}, "generation.endpoints"),
        ({"generation__endpoints": []}, "generation.endpoints"),
        ({"generation__endpoints": ["http://a:1/v1", "http://a:1/v1"]}, "generation.endpoints: Value error, an endpoint is listed twice"),
        ({"generation__served_model": ""}, "generation.served_model"),
        ({"generation__concurrency": 0}, "generation.concurrency"),
        ({"generation__timeout_s": 0}, "generation.timeout_s"),
        ({"generation__api_key_env": "MY KEY"}, "generation.api_key_env"),
        ({"filter__pii_policy": "mask"}, "filter.pii_policy"),
        ({"filter__pii_types": ["email", "passport"]}, "filter.pii_types"),
        ({"filter__pii_types": []}, "filter.pii_types"),
        ({"filter__pii_phone_regions": ["US", "UK"]}, "filter.pii_phone_regions"),  # ISO code is GB
    ],
)
def test_bad_values_name_the_param(tmp_path, override, fragment):
    with pytest.raises(InputError) as err:
        load_params(write_params(tmp_path, **override))
    message = str(err.value)
    assert fragment in message and "params.yaml" in message and "\n" not in message


def test_unknown_section_and_missing_file(tmp_path):
    raw = yaml.safe_load(open("params.yaml"))
    raw["brainstrom"] = {"n_stories": 2}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match="brainstrom.*remove it"):
        load_params(tmp_path / "params.yaml")
    with pytest.raises(InputError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_seed_derivation_is_stable_and_separates_items():
    assert derive_seed(1, "brainstorm", "sad-1-s0") == derive_seed(1, "brainstorm", "sad-1-s0")
    seeds = {derive_seed(1, stage, f"sad-{i}-s{k}") for stage in ("brainstorm", "rewrite") for i in range(50) for k in range(4)}
    assert len(seeds) == 400  # no collisions across items and stages
    assert derive_seed(2, "brainstorm", "sad-1-s0") != derive_seed(1, "brainstorm", "sad-1-s0")
    assert all(0 <= s < 2**31 for s in seeds)
