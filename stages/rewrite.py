"""Stage 4: each story -> a first-person explanation (LLM) -> data/explanations.jsonl."""

from synthempathy.errors import stage_main
from synthempathy.generation import run_generation_stage


@stage_main
def main() -> None:
    run_generation_stage(
        "rewrite", input_path="data/stories_dedup.jsonl", output_path="data/explanations.jsonl", field="explanation", required=("id", "story")
    )


if __name__ == "__main__":
    main()
