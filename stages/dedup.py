"""Stage 3: ExactSubstr (Lee et al. 2021) + exact-duplicate removal of the stories."""

from synthempathy.dedup.exact_substr import ExactSubstrConfig
from synthempathy.dedup.stories import dedup_stories
from synthempathy.errors import stage_main
from synthempathy.io import read_jsonl
from synthempathy.params import load_params


@stage_main("stories", "kept", "rejected", "metrics")
def main(paths) -> None:
    config = ExactSubstrConfig(dup_length_threshold=load_params().dedup.dup_length_threshold)
    dedup_stories(read_jsonl(paths.stories, required=("id", "story")), config).write(paths.kept, paths.rejected, paths.metrics)


if __name__ == "__main__":
    main()
