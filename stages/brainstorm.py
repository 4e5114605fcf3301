"""Stage 2: each scenario -> brainstorm.n_stories stories (LLM)."""

from synthempathy.checks import stage_check
from synthempathy.errors import stage_main
from synthempathy.generation import expand_scenarios, run_generation
from synthempathy.io import read_jsonl, write_json_atomic
from synthempathy.params import load_params
from synthempathy.paths import log_path


@stage_main("scenarios", "stories", "rejected", "metrics")
def main(paths) -> None:
    params = load_params()
    scenarios = read_jsonl(paths.scenarios, required=("id", "text", "category", "severity"))
    result, log = run_generation(
        "brainstorm", expand_scenarios(scenarios, params.brainstorm.n_stories), "story", params.brainstorm, params, *stage_check("story", params)
    )
    result.write(paths.stories, paths.rejected, paths.metrics)
    write_json_atomic(log_path("brainstorm"), log)


if __name__ == "__main__":
    main()
