"""The cheap checks run where a text is made (synthempathy/checks.py): the person rules, the
"your friend" rule, and the alignment bars, on crafted records and a stand-in embedder."""

import numpy as np
import pytest
from test_filters import EXPLANATION, PARAMS, RESPONSE, record

from synthempathy.checks import check_reasons, make_check, writer_as_friend
from synthempathy.params import AlignParams

ALIGN = AlignParams(min_scenario_similarity=0.3, min_story_similarity=0.4, min_response_similarity=0.3, near_duplicate_threshold=0.95)


def same_vector(texts):
    """Every text the same unit vector: every cosine is 1, so only the text rules can fail."""
    return np.ones((len(texts), 4)) / 2.0


def response_verdict(**changes):
    (drop,) = make_check("response", PARAMS, ALIGN, same_vector)([record(**changes)])
    return drop and drop.reason


@pytest.mark.parametrize(
    ("response", "explanation", "reason"),
    [
        (RESPONSE, EXPLANATION, None),
        ("I'm so sorry to hear about your friend. " + RESPONSE, EXPLANATION, "writer_as_friend"),
        ("It hurts to read what your best friend is going through. " + RESPONSE, EXPLANATION, "writer_as_friend"),
        # The writer named a friend: "your friend" is then that friend, not the writer.
        ("I'm so sorry your friend stopped talking to you. " + RESPONSE, EXPLANATION + " My friend stopped talking to me.", None),
        ("Could you talk to your friends about it? " + RESPONSE, EXPLANATION, None),  # advice, not a third party
        ("She is struggling and he is worried; her exams and his job weigh on them. " + RESPONSE.replace("you", "they"), EXPLANATION, "third_person_response"),
    ],
)
def test_response_person_rules(response, explanation, reason):
    assert response_verdict(response=response, explanation=explanation) == reason


def test_writer_as_friend_names_the_words_found():
    drop = writer_as_friend(record(response="Your dear friend sounds so tired. " + RESPONSE))
    assert drop.reason == "writer_as_friend"
    assert "'Your dear friend'" in drop.detail


def test_every_reason_a_check_gives_is_declared():
    reasons = check_reasons("response", PARAMS)
    assert {"writer_as_friend", "third_person_response", "truncated", "off_topic_response"} <= set(reasons)
    assert "writer_as_friend" not in check_reasons("explanation", PARAMS)


def test_alignment_bar_rejects_a_response_far_from_its_explanation():
    def orthogonal(texts):
        """Responses (the first half) on one axis, explanations on another: cosine 0."""
        n = len(texts) // 2
        return np.array([[1.0, 0.0]] * n + [[0.0, 1.0]] * n)

    (drop,) = make_check("response", PARAMS, ALIGN, orthogonal)([record()])
    assert drop.reason == "off_topic_response"
    assert "min_response_similarity=0.3" in drop.detail
