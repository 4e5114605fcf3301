"""Stage 2: each scenario -> brainstorm.n_stories stories (LLM) -> data/stories.jsonl."""

from synthempathy.errors import stage_main
from synthempathy.generation import expand_scenarios, run_generation_stage


@stage_main
def main() -> None:
    run_generation_stage(
        "brainstorm",
        input_path="data/scenarios.jsonl",
        output_path="data/stories.jsonl",
        field="story",
        required=("id", "text", "category", "severity"),
        expand=lambda scenarios, params: expand_scenarios(scenarios, params.brainstorm.n_stories),
    )


if __name__ == "__main__":
    main()
