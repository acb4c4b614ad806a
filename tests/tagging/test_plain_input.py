"""The volunteers' hot requests read plain JSON without DRF's fields (tagging.tasks_api.validated): whatever
the plain readers accept, they read exactly as the serializers do; whatever else, the serializers judge."""

import datetime

import pytest

from config.errors import PlatformError
from tagging.tasks_api import (
    ClassificationInput,
    NextTaskInput,
    plain_classification,
    plain_next_task,
    validated,
)

MARK = {"x": 120.5, "y": 88}
CLASSIFICATIONS = [
    {"answer": "destroyed", "marks": [MARK, {"x": 0, "y": 512}], "seconds": 8.5},
    {"answer": "no_damage"},
    {"answer": "no_damage", "marks": [], "seconds": None},
    {"answer": "destroyed", "marks": [{**MARK, "date": "2017-10-01"}, {**MARK, "date": None}], "seconds": 3},
    {"answer": "destroyed", "marks": [{**MARK, "extra": "ignored"}], "other": 1},
    {"answer": "cant-tell", "seconds": 0},
    # Forms the plain reader leaves to the serializer, valid or not.
    {"answer": " destroyed ", "marks": []},
    {"answer": "", "marks": []},
    {"answer": "x" * 41},
    {"answer": "مدمر"},
    {"answer": 5},
    {"marks": [MARK]},
    {"answer": "destroyed", "marks": [{"x": "12.5", "y": 3}]},
    {"answer": "destroyed", "marks": [{"x": True, "y": 3}]},
    {"answer": "destroyed", "marks": [{"x": 1}]},
    {"answer": "destroyed", "marks": [{"x": 10**400, "y": 1}]},
    {"answer": "destroyed", "marks": [[1, 2]]},
    {"answer": "destroyed", "marks": {"x": 1, "y": 2}},
    {"answer": "destroyed", "marks": [{**MARK, "date": "2017-1-5"}]},
    {"answer": "destroyed", "marks": [{**MARK, "date": "2017-02-30"}]},
    {"answer": "destroyed", "marks": [{**MARK, "date": "٢٠١٧-١٠-٠١"}]},
    {"answer": "destroyed", "marks": [{**MARK, "date": 20171001}]},
    {"answer": "destroyed", "seconds": "9"},
    {"answer": "destroyed", "seconds": False},
    ["destroyed"],
    "destroyed",
]
NEXT_TASKS = [{}, {"exclude": []}, {"exclude": [4, 5]}, {"exclude": list(range(10))}, {"exclude": list(range(11))},
              {"exclude": ["4"]}, {"exclude": [True]}, {"exclude": 4}, {"exclude": [4.0]}, {"other": 1}]


def serializer_says(serializer, data):
    checked = serializer(data=data)
    return ("valid", dict(checked.validated_data)) if checked.is_valid() else ("invalid", None)


def plain_json(value):
    """Validated data as plain values (DRF gives its nested rows as OrderedDicts)."""
    if isinstance(value, dict):
        return {key: plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_json(item) for item in value]
    return value


@pytest.mark.parametrize(("serializer", "plain", "data"),
                         [(ClassificationInput, plain_classification, data) for data in CLASSIFICATIONS]
                         + [(NextTaskInput, plain_next_task, data) for data in NEXT_TASKS])
def test_what_the_plain_reader_accepts_it_reads_as_the_serializer_does(serializer, plain, data) -> None:
    read = plain(data)
    if read is not None:
        assert serializer_says(serializer, data) == ("valid", plain_json(read))


def test_the_common_bodies_take_the_plain_path() -> None:
    for data in CLASSIFICATIONS[:6]:
        assert plain_classification(data) is not None, data
    assert plain_classification(CLASSIFICATIONS[3])["marks"][0]["date"] == datetime.date(2017, 10, 1)
    for data in NEXT_TASKS[:4]:
        assert plain_next_task(data) is not None, data


def test_what_the_plain_reader_leaves_the_serializer_judges() -> None:
    assert validated(ClassificationInput, {"answer": "destroyed", "seconds": "9"}, plain_classification)[
        "seconds"] == 9.0
    with pytest.raises(Exception) as raised:
        validated(ClassificationInput, {"answer": "destroyed", "marks": [{"x": 1}]}, plain_classification)
    assert not isinstance(raised.value, PlatformError)  # DRF's ValidationError, worded by DRF
    assert "y" in str(raised.value.detail["marks"])
