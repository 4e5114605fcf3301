"""Stage 4: each story -> a first-person explanation (LLM)."""

from synthempathy.checks import stage_check
from synthempathy.errors import stage_main
from synthempathy.generation import run_generation
from synthempathy.io import read_jsonl, write_json_atomic
from synthempathy.params import load_params
from synthempathy.paths import log_path


@stage_main("stories", "explanations", "rejected", "metrics")
def main(paths) -> None:
    params = load_params()
    stories = read_jsonl(paths.stories, required=("id", "scenario_id", "category", "story"))
    result, log = run_generation("rewrite", stories, "explanation", params.rewrite, params, *stage_check("explanation", params))
    result.write(paths.explanations, paths.rejected, paths.metrics)
    write_json_atomic(log_path("rewrite"), log)


if __name__ == "__main__":
    main()
