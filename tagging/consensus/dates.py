"""When each building was destroyed: a date window from volunteers' date marks.

Pure numpy/scipy: arrays in, arrays out, no Django.

A project has dates 0 < 1 < ... < n_dates - 1 (acquisitions, in order). A
building's change point tau is the first date on which it shows destroyed:
it was intact on tau - 1 and destroyed on tau. tau = 0 means destroyed on
the first date already (no intact date seen); tau = n_dates means not
destroyed by the last date (a "never destroyed" answer in building-timeline
tasks). A mark "destroyed by date k" (k in 0..n_dates) is one volunteer's
reading of tau.

The model: volunteer w names the true tau with probability accuracy[w];
otherwise a wrong date, nearer dates likelier (weight `off_by_decay` per
date of distance: confusing neighbouring acquisitions is the usual mistake).
Accuracies have a Beta prior centred on the crowd's pooled accuracy, or on a
given per-volunteer reliability. EM over all buildings estimates the
accuracies and each building's posterior over tau; gold buildings with a
known tau are clamped. Each building is scored with accuracies from which
its own marks are taken out (leave-one-out), which keeps confidence honest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax


@dataclass(frozen=True)
class DateWindows:
    posterior: np.ndarray  # (n_buildings, n_dates + 1): P(first destroyed date = tau)
    first_destroyed: np.ndarray  # most probable tau; n_dates = not destroyed by the last date
    last_intact: np.ndarray  # first_destroyed - 1; -1 = no date seen intact
    confidence: np.ndarray  # posterior of that window
    n_marks: np.ndarray  # volunteers who gave a date
    volunteer_accuracy: np.ndarray  # P(a volunteer names the true window)
    n_iter: int


@dataclass(frozen=True)
class _Marks:
    building: np.ndarray
    volunteer: np.ndarray
    date: np.ndarray
    n_buildings: int
    n_volunteers: int
    n_states: int


def compute_date_windows(
    *,
    mark_building: np.ndarray,
    mark_volunteer: np.ndarray,
    mark_date: np.ndarray,
    n_buildings: int,
    n_volunteers: int,
    n_dates: int,
    prior_accuracy: np.ndarray | None = None,
    gold_building_idx: np.ndarray | None = None,
    gold_date_idx: np.ndarray | None = None,
    off_by_decay: float = 0.5,
    prior_strength: float = 4.0,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> DateWindows:
    """Each building's destruction window (last date intact, first date destroyed) with its probability.

    `mark_date` in [0, n_dates], n_dates meaning "not destroyed by the last
    date". Only the first mark of a volunteer on a building counts (the same
    building seen on two overlapping tiles is one opinion). `prior_accuracy`
    (per volunteer, in (0, 1)) centres each volunteer's prior, e.g. on their
    reliability from tiles; by default the crowd's pooled accuracy. Buildings
    without marks get the prior over tau. Raises ValueError on out-of-range
    indices.
    """
    marks = _first_marks(mark_building, mark_volunteer, mark_date, n_buildings, n_volunteers, n_dates)
    gold = _gold(gold_building_idx, gold_date_idx, marks)
    log_kernel = _log_error_kernel(marks.n_states, off_by_decay)
    post, n_iter = _expectation_maximisation(marks, gold, prior_accuracy, prior_strength, log_kernel, max_iter, tol)
    right, total, log_prior, center = _maximisation(marks, post, prior_accuracy, prior_strength)
    honest = _honest_posterior(marks, post, right, total, center, prior_strength, log_prior, log_kernel)
    honest[gold[0]] = np.eye(marks.n_states)[gold[1]]
    accuracy = (right + prior_strength * center) / (total + prior_strength)
    return _windows(honest, marks, accuracy, n_iter)


def _expectation_maximisation(marks: _Marks, gold: tuple[np.ndarray, np.ndarray], prior_accuracy: np.ndarray | None,
                              strength: float, log_kernel: np.ndarray, max_iter: int,
                              tol: float) -> tuple[np.ndarray, int]:
    clamp = np.eye(marks.n_states)[gold[1]]
    post = _start(marks)
    post[gold[0]] = clamp
    for n_iter in range(1, max_iter + 1):
        right, total, log_prior, center = _maximisation(marks, post, prior_accuracy, strength)
        accuracy = ((right + strength * center) / (total + strength))[marks.volunteer]
        new = _posterior(marks, log_prior, np.log(accuracy), np.log1p(-accuracy), log_kernel)
        new[gold[0]] = clamp
        moved = np.abs(new - post).max(initial=0.0)
        post = new
        if moved < tol:
            return post, n_iter
    return post, max_iter


def _first_marks(building: np.ndarray, volunteer: np.ndarray, date: np.ndarray, n_buildings: int,
                 n_volunteers: int, n_dates: int) -> _Marks:
    building, volunteer, date = (np.asarray(a, dtype=np.int64) for a in (building, volunteer, date))
    for values, size, name in ((building, n_buildings, "mark_building"), (volunteer, n_volunteers, "mark_volunteer"),
                               (date, n_dates + 1, "mark_date")):
        if len(values) and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"{name} must lie in [0, {size})")
    key = building * n_volunteers + volunteer
    order = np.argsort(key, kind="stable")
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    keep = order[first]
    return _Marks(building[keep], volunteer[keep], date[keep], n_buildings, n_volunteers, n_dates + 1)


def _gold(buildings: np.ndarray | None, dates: np.ndarray | None, marks: _Marks) -> tuple[np.ndarray, np.ndarray]:
    if buildings is None or dates is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    buildings, dates = np.asarray(buildings, dtype=np.int64), np.asarray(dates, dtype=np.int64)
    if len(buildings) and (buildings.min() < 0 or buildings.max() >= marks.n_buildings):
        raise ValueError(f"gold_building_idx must lie in [0, {marks.n_buildings})")
    if len(dates) and (dates.min() < 0 or dates.max() >= marks.n_states):
        raise ValueError(f"gold_date_idx must lie in [0, {marks.n_states})")
    return buildings, dates


def _log_error_kernel(n_states: int, decay: float) -> np.ndarray:
    """log P(mark k | tau, the volunteer is wrong), shape (tau, k): nearer dates likelier."""
    distance = np.abs(np.arange(n_states)[:, None] - np.arange(n_states)[None, :])
    weight = np.where(distance > 0, decay ** np.maximum(distance - 1, 0), 0.0)
    with np.errstate(divide="ignore"):
        return np.log(weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-300))


def _start(marks: _Marks) -> np.ndarray:
    tally = np.zeros((marks.n_buildings, marks.n_states))
    np.add.at(tally, (marks.building, marks.date), 1.0)
    tally += 0.1  # buildings without marks start uniform
    return tally / tally.sum(axis=1, keepdims=True)


def _maximisation(marks: _Marks, post: np.ndarray, prior_accuracy: np.ndarray | None,
                  strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per volunteer: expected right marks, marks, and the prior's centre; the log prior over tau."""
    p_right = post[marks.building, marks.date]
    right = np.bincount(marks.volunteer, p_right, minlength=marks.n_volunteers)
    total = np.bincount(marks.volunteer, minlength=marks.n_volunteers).astype(float)
    pooled = (right.sum() + 1.0) / (total.sum() + 2.0)
    center = np.full(marks.n_volunteers, pooled) if prior_accuracy is None else np.clip(prior_accuracy, 0.01, 0.99)
    mass = post.sum(axis=0) + 1.0
    return right, total, np.log(mass / mass.sum()), center


def _posterior(marks: _Marks, log_prior: np.ndarray, log_right: np.ndarray, log_wrong: np.ndarray,
               log_kernel: np.ndarray) -> np.ndarray:
    """Posterior over tau per building; log_right / log_wrong are per mark."""
    per_mark = log_wrong[:, None] + log_kernel[:, marks.date].T  # (n_marks, tau)
    hit = np.arange(marks.n_states)[None, :] == marks.date[:, None]
    per_mark = np.where(hit, log_right[:, None], per_mark)
    loglik = np.zeros((marks.n_buildings, marks.n_states))
    for tau in range(marks.n_states):
        loglik[:, tau] = np.bincount(marks.building, per_mark[:, tau], minlength=marks.n_buildings)
    return np.exp(log_softmax(log_prior + loglik, axis=1))


def _honest_posterior(marks: _Marks, post: np.ndarray, right: np.ndarray, total: np.ndarray,
                      center: np.ndarray, strength: float, log_prior: np.ndarray,
                      log_kernel: np.ndarray) -> np.ndarray:
    """Posterior with each mark scored by its volunteer's accuracy less this building's own share."""
    own = post[marks.building, marks.date]
    w = marks.volunteer
    accuracy = (right[w] - own + strength * center[w]) / (total[w] - 1.0 + strength)
    return _posterior(marks, log_prior, np.log(accuracy), np.log1p(-accuracy), log_kernel)


def _windows(post: np.ndarray, marks: _Marks, accuracy: np.ndarray, n_iter: int) -> DateWindows:
    first = post.argmax(axis=1)
    n_marks = np.bincount(marks.building, minlength=marks.n_buildings)
    return DateWindows(post, first, first - 1, post.max(axis=1), n_marks, accuracy, n_iter)
