"""Stage 1: SAD stressor sentences -> scenarios (n per category, deterministic)."""

from collections import Counter

from synthempathy.errors import stage_main
from synthempathy.io import write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params
from synthempathy.scenarios import load_sad, sample_per_category, stressor_scenarios


@stage_main("seeds", "scenarios", "metrics")
def main(paths) -> None:
    params = load_params()
    stressors = stressor_scenarios(load_sad(paths.seeds), source=paths.seeds)
    chosen = sample_per_category(stressors, params.scenarios.n_per_category, params.seed)
    write_jsonl_atomic(paths.scenarios, chosen)
    write_json_atomic(
        paths.metrics,
        {"stressors": len(stressors), "scenarios": len(chosen), "per_category": dict(sorted(Counter(r["category"] for r in chosen).items()))},
    )


if __name__ == "__main__":
    main()
