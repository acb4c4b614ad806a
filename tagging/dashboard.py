"""The coordinators' dashboard: a project's figures, each from one aggregate query.

Nothing here loops over tiles or votes in Python: a project of 200,000 tiles and a million votes
costs the same handful of queries as a small one (the per-day series loops over at most `days`
rows, the histogram over ten). The figures:

- tiles per status, overall and per imagery date (a tile has an image in each date that covers it);
- votes: all, counted (not too fast), and per day with the volunteers active that day;
- agreement: a histogram of the tiles' consensus agreement in ten bins;
- volunteer reliability: the most and the least reliable volunteers of the latest consensus run;
- tiling: each layer's status and progress;
- what is left: the votes open tiles still need (redundancy minus votes, summed), and at the pace of
  the last seven days, how many days that takes.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, F, FloatField, IntegerField, Q, Sum, Value
from django.db.models.functions import Cast, Floor, Least, TruncDate
from django.utils import timezone

from imagery.models import ImageryLayer, Tile, TileImage
from tagging.models import Classification, Project, TileConsensus, VolunteerReliability

SERIES_DAYS = 60
PACE_DAYS = 7
AGREEMENT_BINS = 10
RELIABILITY_ROWS = 5


def project_dashboard(*, project: Project, days: int = SERIES_DAYS, reliability_rows: int = RELIABILITY_ROWS,
                      now: Any = None) -> dict[str, Any]:
    """Every figure of the project's dashboard (see the module's docstring), as plain values."""
    now = now or timezone.now()
    tiles = tile_figures(project=project)
    votes = vote_figures(project=project, now=now)
    return {
        "project": project.slug,
        "status": project.status,
        "redundancy": project.redundancy,
        "tiles": tiles,
        "votes": votes,
        "per_day": votes_per_day(project=project, days=days, today=timezone.localdate(now)),
        "agreement": agreement_histogram(project=project),
        "reliability": reliability_extremes(project=project, rows=reliability_rows),
        "layers": layer_figures(project=project),
        "left": what_is_left(needed=tiles["votes_needed"], pace=votes["pace_per_day"], today=timezone.localdate(now)),
    }


def tile_figures(*, project: Project) -> dict[str, int]:
    """Tiles per status, and the votes still needed: over open tiles, the sum of max(0, redundancy - votes)."""
    short = Q(status=Tile.Status.OPEN, vote_count__lt=project.redundancy)
    figures = Tile.objects.filter(grid__project=project).order_by().aggregate(
        total=Count("id"),
        open=Count("id", filter=Q(status=Tile.Status.OPEN)),
        retired=Count("id", filter=Q(status=Tile.Status.RETIRED)),
        gold=Count("id", filter=Q(status=Tile.Status.GOLD)),
        votes_needed=Sum(Value(project.redundancy) - F("vote_count"), filter=short, output_field=IntegerField()),
    )
    return {key: value or 0 for key, value in figures.items()}


def vote_figures(*, project: Project, now: Any) -> dict[str, Any]:
    """All votes, the counted ones (not too fast), volunteers who voted, and the recent pace per day.

    The pace counts the last PACE_DAYS days' counted votes on tiles that are not gold: the votes that
    bring open tiles towards their redundancy.
    """
    since = now - timedelta(days=PACE_DAYS)
    votes = Classification.objects.filter(project=project).order_by()
    figures = votes.aggregate(
        total=Count("id"),
        counted=Count("id", filter=Q(too_fast=False)),
        flagged=Count("id", filter=Q(too_fast=True)),
        recent=Count("id", filter=Q(created_at__gte=since, too_fast=False, is_gold=False)),
    )
    # SELECT COUNT(*) FROM (SELECT DISTINCT ...): a hash of the volunteers, cheaper than COUNT(DISTINCT ...).
    volunteers = votes.exclude(volunteer=None).values("volunteer").distinct().count()
    return {"total": figures["total"], "counted": figures["counted"], "too_fast": figures["flagged"],
            "volunteers": volunteers, "pace_days": PACE_DAYS, "pace_per_day": round(figures["recent"] / PACE_DAYS, 2)}


def votes_per_day(*, project: Project, days: int, today: date) -> list[dict[str, Any]]:
    """The last `days` days, oldest first, each with its votes and distinct volunteers (zero on quiet days)."""
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, time.min))
    rows = (Classification.objects.filter(project=project, created_at__gte=start).order_by()
            .annotate(day=TruncDate("created_at")).values("day")
            .annotate(votes=Count("id"), volunteers=Count("volunteer", distinct=True)))
    found = {row["day"]: row for row in rows}
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = found.get(day, {})
        series.append({"date": day, "votes": row.get("votes", 0), "volunteers": row.get("volunteers", 0)})
    return series


def agreement_histogram(*, project: Project, bins: int = AGREEMENT_BINS) -> dict[str, Any]:
    """Tiles with a consensus per agreement bin: bin i holds agreement in [i/bins, (i+1)/bins), the last one 1.0.

    Tiles whose votes were all abstentions have no agreement; they are counted apart.
    """
    # The small epsilon keeps 0.3 * 10 = 2.9999... in bin 3, where a person puts it.
    index = Least(Cast(Floor(F("agreement") * Value(float(bins), output_field=FloatField()) + Value(1e-9)),
                       IntegerField()), Value(bins - 1))
    consensus = TileConsensus.objects.filter(project=project).order_by()
    counts = dict(consensus.filter(agreement__isnull=False).annotate(bin=index).values("bin")
                  .annotate(n=Count("id")).values_list("bin", "n"))
    return {
        "bins": [{"low": round(i / bins, 4), "high": round((i + 1) / bins, 4), "tiles": counts.get(i, 0)}
                 for i in range(bins)],
        "without_agreement": consensus.filter(agreement__isnull=True).count(),
    }


def reliability_extremes(*, project: Project, rows: int) -> dict[str, Any]:
    """The `rows` most reliable volunteers of the latest estimate, and the `rows` least reliable of the others."""
    estimates = VolunteerReliability.objects.filter(project=project).select_related("volunteer")
    top = list(estimates.order_by("-reliability", "-n_votes", "volunteer__username")[:rows])
    bottom = list(estimates.exclude(pk__in=[r.pk for r in top])
                  .order_by("reliability", "-n_votes", "volunteer__username")[:rows])
    return {"volunteers": estimates.count(), "top": top, "bottom": bottom}


def layer_figures(*, project: Project) -> list[dict[str, Any]]:
    """Each imagery date with its tiling progress and its tiles per status."""
    per_layer = {row["layer_id"]: row for row in (
        TileImage.objects.filter(layer__project=project).order_by().values("layer_id").annotate(
            tiles=Count("id"),
            open=Count("id", filter=Q(tile__status=Tile.Status.OPEN)),
            retired=Count("id", filter=Q(tile__status=Tile.Status.RETIRED)),
            gold=Count("id", filter=Q(tile__status=Tile.Status.GOLD))))}
    layers = []
    for layer in ImageryLayer.objects.filter(project=project).order_by("date", "id"):
        counts = per_layer.get(layer.pk, {})
        layers.append({
            "id": layer.pk, "date": layer.date, "source": layer.source, "status": layer.status,
            "progress": layer_progress(layer), "tiles_done": layer.tiles_done, "tiles_total": layer.tiles_total,
            "tile_count": layer.tile_count, "error": layer.error,
            "tiles": {key: counts.get(key, 0) for key in ("tiles", "open", "retired", "gold")},
        })
    return layers


def layer_progress(layer: ImageryLayer) -> float:
    if layer.status == ImageryLayer.Status.READY:
        return 1.0
    return round(layer.tiles_done / layer.tiles_total, 4) if layer.tiles_total else 0.0


def what_is_left(*, needed: int, pace: float, today: date) -> dict[str, Any]:
    """Votes still needed and, at `pace` votes a day, the days that takes (None when nobody voted lately).

    An upper bound when the project retires confident tiles early.
    """
    if needed == 0:
        return {"votes_needed": 0, "days_left": 0, "finish_date": today}
    if pace <= 0:
        return {"votes_needed": needed, "days_left": None, "finish_date": None}
    days_left = math.ceil(needed / pace)
    return {"votes_needed": needed, "days_left": days_left, "finish_date": today + timedelta(days=days_left)}
