"""Stage 3: ExactSubstr (Lee et al. 2021) + exact-duplicate removal -> data/stories_dedup.jsonl."""

from synthempathy.dedup.exact_substr import ExactSubstrConfig
from synthempathy.dedup.stories import dedup_stories
from synthempathy.errors import stage_main
from synthempathy.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from synthempathy.params import load_params

INPUT = "data/stories.jsonl"
OUTPUT = "data/stories_dedup.jsonl"
REJECTED = "data/rejected/dedup.jsonl"
METRICS = "metrics/dedup.json"


@stage_main
def main() -> None:
    params = load_params()
    config = ExactSubstrConfig(dup_length_threshold=params.dedup.dup_length_threshold)
    kept, rejected, metrics = dedup_stories(read_jsonl(INPUT, required=("id", "story")), config)
    write_jsonl_atomic(OUTPUT, kept)
    write_jsonl_atomic(REJECTED, rejected)
    write_json_atomic(METRICS, metrics)


if __name__ == "__main__":
    main()
