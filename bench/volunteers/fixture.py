"""The benchmark's data, made through the product's models, and the checks of what the run stored.

Imported only after Django is set up against the run's private database (__main__ does that).
A project with a grid and Tile rows as tiling would leave them, but no imagery files: the
next-tile response lists each tile's images (TileImage rows, one per date) but never reads
them. Volunteers are accounts with DRF tokens and unusable passwords (no hashing cost).
"""

import math
import random
import time
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from rest_framework.authtoken.models import Token

from bench.volunteers.views import create_vote_table
from imagery.grid import GridSpec
from imagery.models import Grid, ImageryLayer, Tile, TileImage
from tagging.models import Assignment, Classification, GoldAnswer, PendingTileUpdate, Project, TileConsensus
from tagging.projects import create_project

SLUG = "bench-volunteers"
DATES = ("2017-05-01", "2017-10-20")  # before and after, as most damage projects have
BATCH = 5000


@dataclass(frozen=True)
class Fixture:
    project_id: int
    redundancy: int
    answers: list[dict]  # key and damage of each of the project's answers
    tile_ids: list[int]
    gold_ids: set[int]
    volunteers: list[tuple[int, str]]  # (user id, token)
    migrate_s: float
    populate_s: float


def build(*, tiles: int, gold: int, volunteers: int, redundancy: int, seed: int) -> Fixture:
    """migrate, the bare vote table, then an active project with tiles, gold tiles and volunteers."""
    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    create_vote_table()
    migrated = time.perf_counter()
    rng = random.Random(seed)
    project = create_project(slug=SLUG, name="Volunteers benchmark", status=Project.Status.ACTIVE,
                             redundancy=redundancy)
    tile_ids = _tiles(project, tiles)
    gold_ids = _gold(project, tile_ids, gold, rng)
    accounts = _volunteers(volunteers)
    vacuum_filled_tables()
    return Fixture(project.pk, redundancy, [{"key": a["key"], "damage": a["damage"]} for a in project.answers],
                   tile_ids, gold_ids, accounts, migrated - started, time.perf_counter() - migrated)


def vacuum_filled_tables() -> None:
    """VACUUM ANALYZE every table that holds rows: planner statistics and the visibility map as a live database would
    have them after bulk loading (autovacuum would long have visited the tables).

    Empty tables are left alone, never analyzed, as migrate leaves them and autovacuum would (it has nothing to
    count). An empty table that has been analyzed is one PostgreSQL believes empty: it plans for as many rows as the
    table then has, which for the leases and the votes of the benchmark is none, and a connection keeps those plans
    until the table is analyzed again, while thousands of rows arrive. PostgreSQL's CPU time per vote rose to 4.2 ms
    so, against 1.4 ms once analyzed (in process, 500 votes each), and the first saturation level of a quick run
    went at about 200 votes/s with the database's process taking 0.9 of the 2 cores. A never-analyzed table is
    planned as at least ten pages.
    """
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {connection.ops.quote_name(table)})")
            if cursor.fetchone()[0]:
                cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(table)}")


def _tiles(project: Project, count: int) -> list[int]:
    cols = math.ceil(math.sqrt(count * 2))  # a wide city: twice as many columns as rows
    rows = math.ceil(count / cols)
    spec = GridSpec("EPSG:32637", 500_000.0, 3_980_000.0, 0.5, 448 * cols + 64, 448 * rows + 64)
    grid = Grid.objects.create(project=project, crs=spec.crs, origin_x=spec.origin_x, origin_y=spec.origin_y,
                               pixel_size=spec.pixel_size, width=spec.width, height=spec.height)
    layers = [ImageryLayer.objects.create(project=project, date=d, crs=spec.crs, bounds=[0, 0, 1, 1],
                                          bounds_wgs84=[0, 0, 1, 1], resolution=0.5, width=spec.width,
                                          height=spec.height, band_count=3, dtype="uint8", status="ready")
              for d in DATES]
    cells = [(col, row) for row in range(rows) for col in range(cols)][:count]
    new = []
    for col, row in cells:
        x_off, y_off, size, _ = spec.cell_window(col, row)
        minx, miny, maxx, maxy = spec.cell_bounds(col, row)
        new.append(Tile(grid=grid, col=col, row=row, x_off=x_off, y_off=y_off, size=size, minx=minx, miny=miny,
                        maxx=maxx, maxy=maxy, west=39.0 + col * 1e-3, south=35.9 + row * 1e-3,
                        east=39.001 + col * 1e-3, north=35.901 + row * 1e-3))
    Tile.objects.bulk_create(new, batch_size=BATCH)
    tile_ids = list(Tile.objects.filter(grid=grid).order_by("pk").values_list("pk", flat=True))
    TileImage.objects.bulk_create(
        [TileImage(tile_id=tile_id, layer=layer, key=f"tiles/p{project.pk}/l{layer.pk}/{tile_id}.webp",
                   content_type="image/webp", size_bytes=40_000, etag="0" * 40)
         for tile_id in tile_ids for layer in layers], batch_size=BATCH)
    return tile_ids


def _gold(project: Project, tile_ids: list[int], count: int, rng: random.Random) -> set[int]:
    """Every k-th tile is gold, with a known answer (and known buildings when it says damage)."""
    gold_ids = set(tile_ids[:: max(1, len(tile_ids) // count)][:count]) if count else set()
    Tile.objects.filter(pk__in=gold_ids).update(status=Tile.Status.GOLD)
    answers = [a for a in project.answers if not a["abstain"]]
    known = []
    for tile_id in sorted(gold_ids):
        answer = rng.choice(answers)
        marks = [[rng.uniform(20, 490), rng.uniform(20, 490)] for _ in range(rng.randint(1, 4))] if answer[
            "damage"] else []
        known.append(GoldAnswer(tile_id=tile_id, answer=answer["key"], marks=marks))
    GoldAnswer.objects.bulk_create(known, batch_size=BATCH)
    return gold_ids


def _volunteers(count: int) -> list[tuple[int, str]]:
    user_model = get_user_model()
    password = make_password(None)  # unusable: these accounts only ever use their token
    user_model.objects.bulk_create([user_model(username=f"bench-volunteer-{i:05d}", password=password)
                                    for i in range(count)], batch_size=BATCH)
    users = list(user_model.objects.filter(username__startswith="bench-volunteer-").order_by("username"))
    tokens = [Token(key=Token.generate_key(), user=user) for user in users]
    Token.objects.bulk_create(tokens, batch_size=BATCH)
    return [(token.user.pk, token.key) for token in tokens]


@dataclass
class Checks:
    """What the database holds after the run, against what the clients were told."""

    told_stored: int = 0
    told_stored_twice: int = 0
    in_database: int = 0
    missing: list[tuple[int, int]] = field(default_factory=list)  # told 201, not in the database
    unannounced: list[tuple[int, int]] = field(default_factory=list)  # in the database, never told 201
    over_redundancy: int = 0  # open or retired tiles with more counted votes than the redundancy
    most_votes_open: int = 0
    most_votes_gold: int = 0
    count_mismatch: int = 0  # tiles whose vote_count differs from their counted votes
    retired_wrong: int = 0  # tiles retired below, or still open at or above, the redundancy
    repeat_votes: int = 0  # (volunteer, tile) pairs with two classifications
    repeat_handed: int = 0  # (volunteer, tile) pairs handed out twice by next-tile
    repeat_leases: int = 0  # (volunteer, tile) pairs with two assignment rows
    pending: int = 0  # tiles still waiting for their consensus update
    consensus_stale: int = 0  # voted tiles whose consensus row does not count every counted vote

    @property
    def failures(self) -> list[str]:
        return [name for name, bad in (
            ("stored votes differ from the 201s", self.missing or self.unannounced or self.told_stored_twice),
            ("a tile has more counted votes than its redundancy", self.over_redundancy),
            ("vote_count differs from the stored votes", self.count_mismatch),
            ("a tile's status does not follow its votes", self.retired_wrong),
            ("a volunteer got or voted on a tile twice",
             self.repeat_votes or self.repeat_handed or self.repeat_leases),
            ("a voted tile's consensus misses a vote", self.pending or self.consensus_stale)) if bad]


def check(fixture: Fixture, stored: list[tuple[int, int]], handed: list[tuple[int, int]]) -> Checks:
    """Compare the database with the clients' 201s, and check redundancy, counters and repeats."""
    result = Checks(told_stored=len(stored), told_stored_twice=len(stored) - len(set(stored)))
    votes = Classification.objects.filter(project_id=fixture.project_id)
    in_db = set(votes.values_list("volunteer_id", "tile_id"))
    result.in_database = votes.count()
    told = set(stored)
    result.missing = sorted(told - in_db)
    result.unannounced = sorted(in_db - told)
    counted = dict(votes.filter(too_fast=False).values("tile").annotate(n=Count("pk")).values_list("tile", "n"))
    open_counts = [n for tile, n in counted.items() if tile not in fixture.gold_ids]
    result.over_redundancy = sum(n > fixture.redundancy for n in open_counts)
    result.most_votes_open = max(open_counts, default=0)
    result.most_votes_gold = max((n for tile, n in counted.items() if tile in fixture.gold_ids), default=0)
    for tile_id, vote_count, status in Tile.objects.filter(grid__project_id=fixture.project_id).values_list(
            "pk", "vote_count", "status"):
        n = counted.get(tile_id, 0)
        result.count_mismatch += vote_count != n
        if status != Tile.Status.GOLD:
            result.retired_wrong += (status == Tile.Status.RETIRED) != (n >= fixture.redundancy)
    result.repeat_votes = votes.values("volunteer", "tile").annotate(n=Count("pk")).filter(n__gt=1).count()
    result.repeat_handed = len(handed) - len(set(handed))
    result.repeat_leases = (Assignment.objects.filter(project_id=fixture.project_id)
                            .values("volunteer", "tile").annotate(n=Count("pk")).filter(n__gt=1).count())
    result.pending = PendingTileUpdate.objects.filter(tile__grid__project_id=fixture.project_id).count()
    scored = dict(TileConsensus.objects.filter(project_id=fixture.project_id).values_list("tile_id", "n_votes"))
    result.consensus_stale = sum(scored.get(tile_id) != n for tile_id, n in counted.items())
    return result
