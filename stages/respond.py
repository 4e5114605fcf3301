"""Stage 5: each explanation -> an empathetic response (LLM) -> data/pairs.jsonl."""

from synthempathy.errors import stage_main
from synthempathy.generation import run_generation_stage


@stage_main
def main() -> None:
    run_generation_stage(
        "respond", input_path="data/explanations.jsonl", output_path="data/pairs.jsonl", field="response", required=("id", "explanation")
    )


if __name__ == "__main__":
    main()
