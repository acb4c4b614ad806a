"""tagging_next_tile() and tagging_cast_vote() keep one plan per statement, and say they return one row
(PostgreSQL only).

PL/pgSQL plans each statement of a function with the call's values for its first five calls on a connection,
then keeps the generic plan unless that one looks dearer than the average of those. For the claim's statements it
did look dearer: a plan made knowing `now` expects no lease to expire after it (the statistics end before it),
one without expects a third of the leases to, so PostgreSQL went on planning them anew on every call. A perf
profile of the PostgreSQL process serving next-tile and submit, one volunteer at a time on bench.volunteers'
database, had 14% of its samples in the planner (standard_planner, under GetCachedPlan); with the generic plans
forced, none. The generic plans are the better ones under load besides: they count a tile's live leases on the
(tile, expires_at) index, where a plan made for the moment's values walked every live lease of the project on
the expiry index for each of the 32 candidates.

Each returns at most one row, and now says so (ROWS 1): PostgreSQL's estimate for a set-returning function is
otherwise 1,000 rows, for which the generic plan of the next-tile statement (tagging.assignment.CLAIM_SQL)
joined the lease to its tile by hashing the whole tile table, 8 to 11 ms per call on bench.volunteers' 20,000
tiles (auto_explain), instead of reading one tile by its key (0.5 ms for the whole statement).

CREATE OR REPLACE FUNCTION resets a function's settings and row estimate: a migration that redefines either
function must set both again (tests/tagging/test_assignment_postgresql.py checks that both functions have them).
"""

from django.db import migrations

FUNCTIONS = (
    "tagging_next_tile(bigint, integer, timestamptz, timestamptz, bigint, double precision, bigint[], integer, "
    "boolean, double precision, double precision, double precision, integer, integer)",
    "tagging_cast_vote(bigint, integer, bigint, boolean, boolean, integer, text, double precision, boolean, text, "
    "timestamptz, boolean, double precision[], double precision[], double precision[], double precision[], bigint[])",
)


def force_generic(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for function in FUNCTIONS:
            schema_editor.execute(f"ALTER FUNCTION {function} ROWS 1 SET plan_cache_mode = force_generic_plan")


def reset(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for function in FUNCTIONS:
            schema_editor.execute(f"ALTER FUNCTION {function} ROWS 1000 RESET plan_cache_mode")


class Migration(migrations.Migration):
    dependencies = [("tagging", "0014_unindexed_leading_foreign_keys")]

    operations = [migrations.RunPython(force_generic, reset)]
