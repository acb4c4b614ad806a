"""bench.volunteers' arguments: the fixture has an account for every simulated volunteer of every phase."""

from bench.volunteers.__main__ import arguments, crowd


def test_the_floor_alone_can_need_the_most_volunteers() -> None:
    # The floor's 64 volunteers ran out of accounts when only the other phases were counted (IndexError).
    assert crowd(arguments(["--volunteers", "", "--saturation", "32", "--floor", "16,64"])) == 64


def test_every_phase_counts() -> None:
    assert crowd(arguments(["--volunteers", "50,500", "--saturation", "8", "--floor", "64"])) == 500
    assert crowd(arguments(["--volunteers", "", "--saturation", "128", "--floor", ""])) == 128


def test_a_run_of_the_ceilings_alone_needs_one() -> None:
    assert crowd(arguments(["--volunteers", "", "--saturation", "", "--floor", ""])) == 1
