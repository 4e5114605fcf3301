"""Stage 5: each explanation -> an empathetic response (LLM)."""

from synthempathy.checks import stage_check
from synthempathy.errors import stage_main
from synthempathy.generation import run_generation
from synthempathy.io import read_jsonl, write_json_atomic
from synthempathy.params import load_params
from synthempathy.paths import log_path


@stage_main("explanations", "pairs", "rejected", "metrics")
def main(paths) -> None:
    params = load_params()
    explanations = read_jsonl(paths.explanations, required=("id", "scenario_id", "category", "explanation"))
    result, log = run_generation("respond", explanations, "response", params.respond, params, *stage_check("response", params))
    result.write(paths.pairs, paths.rejected, paths.metrics)
    write_json_atomic(log_path("respond"), log)


if __name__ == "__main__":
    main()
