"""tagging_next_tile() asks "was this candidate given to the volunteer?" by one index probe per candidate
(PostgreSQL only).

The candidate scans of 0012 wrote it as NOT EXISTS, which PostgreSQL turns into an anti-join. With generic plans
(migration 0015) the planner expects about a hundred leases per volunteer, and for the gold tiles (a couple of
hundred candidates, no redundancy cap) it chose to read all of the volunteer's leases once and compare every
candidate with every one of them. The cost grows with the tiles the volunteer has done: on bench.volunteers'
database, for a volunteer with 1,534 leases, 200,682 comparisons and 24.7 ms for one scan of the gold tiles
(EXPLAIN ANALYZE of the prepared statement with plan_cache_mode=force_generic_plan). Written as a scalar subquery,
the check is a probe of one_lease_per_volunteer_tile (volunteer, tile) per candidate, whatever the count: 1.0 ms
for the same scan. Campaigns have volunteers with thousands of tiles.

Otherwise the function is 0012's; 0015's settings (ROWS 1, generic plans) are set again, as CREATE OR REPLACE
resets them.
"""

import re
from importlib import import_module

from django.db import migrations

PREVIOUS = import_module("tagging.migrations.0012_next_tile_window_constant")
SETTINGS = import_module("tagging.migrations.0015_vote_functions_generic_plans")
ANTI_JOIN = re.compile(r"NOT EXISTS \(SELECT 1 FROM tagging_assignment s\s+WHERE s\.tile_id = c\.id "
                       r"AND s\.volunteer_id = p_volunteer\)")
PROBE = "(SELECT 1 FROM tagging_assignment s WHERE s.tile_id = c.id AND s.volunteer_id = p_volunteer LIMIT 1) IS NULL"
FUNCTION, REPLACED = ANTI_JOIN.subn(PROBE, PREVIOUS.FUNCTION)
assert REPLACED == 6, REPLACED  # gold, depth-first and breadth-first, each in the window's and the whole scan


def define(function: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(function, params=None)  # no placeholders: its % is the modulo operator
            SETTINGS.force_generic(apps, schema_editor)
    return run


class Migration(migrations.Migration):
    dependencies = [("tagging", "0015_vote_functions_generic_plans")]

    operations = [migrations.RunPython(define(FUNCTION), define(PREVIOUS.FUNCTION))]
