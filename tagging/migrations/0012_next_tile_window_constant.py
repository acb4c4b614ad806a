"""tagging_next_tile() with its candidate window as a constant (PostgreSQL only).

Migration 0009's function took the window's size as a parameter, LIMIT v_window. For a LIMIT that is a
parameter PostgreSQL's generic plan assumes a tenth of the rows are wanted; with that plan a call cost
about 7 ms (forced with plan_cache_mode), so PL/pgSQL kept planning the candidate scan anew on every
call: planning was about 15% of the PostgreSQL process's CPU time in a perf profile of next-tile and
submit. With LIMIT 32 written in, the generic plan is a good one and is kept after the first few calls
on a connection; PostgreSQL's CPU time per next-tile fell from 0.94 to 0.70 ms (its process's CPU time,
read around each request, on the benchmark's database, one volunteer at a time). The window's second pass, when every candidate of the window is
locked by others, scans the whole order with no LIMIT at all.

WINDOW must equal tagging.assignment.CANDIDATE_WINDOW, which the SQLite path uses
(tests/tagging/test_assignment_postgresql.py checks it on PostgreSQL). Otherwise the function is 0009's.
"""

from django.db import migrations

WINDOW = 32

CANDIDATE = """
            SELECT t.id, t.vote_count, t.status INTO v_tile, v_votes, v_status FROM imagery_tile t
            WHERE t.id IN (
                SELECT c.id FROM imagery_tile c
                WHERE c.grid_id = v_grid AND {kind_c}{room}
                  AND c.id <> ALL (v_passed)
                  AND NOT EXISTS (SELECT 1 FROM tagging_assignment s
                                  WHERE s.tile_id = c.id AND s.volunteer_id = p_volunteer)
                ORDER BY c.vote_count{desc}, c.priority DESC, c.id
                {limit})
              AND {kind_t}
            ORDER BY t.vote_count{desc}, t.priority DESC, (t.id * p_salt) % 2147483647
            LIMIT 1 FOR UPDATE OF t SKIP LOCKED;"""

ROOM = """
                  AND (SELECT COUNT(*) FROM tagging_assignment a
                       WHERE a.tile_id = c.id AND a.expires_at > p_now) < p_redundancy - c.vote_count"""


def candidate(*, gold: bool, depth_first: bool = False) -> str:
    """The statement for one order: the window's (LIMIT WINDOW), else the whole order's (no LIMIT)."""
    def kind(alias: str) -> str:
        return f"{alias}.status = 'gold'" if gold else f"{alias}.status = 'open' AND {alias}.vote_count < p_redundancy"

    def scan(limit: str) -> str:
        return CANDIDATE.format(kind_c=kind("c"), kind_t=kind("t"), room="" if gold else ROOM,
                                desc=" DESC" if depth_first else "", limit=limit).replace("\n", "\n    ")

    return f"""
                    IF v_whole THEN{scan("")}
                    ELSE{scan(f"LIMIT {WINDOW}")}
                    END IF;"""


FUNCTION = """
CREATE OR REPLACE FUNCTION tagging_next_tile(
    p_project bigint, p_volunteer integer, p_now timestamptz, p_expires timestamptz, p_salt bigint,
    p_gold_draw double precision, p_exclude bigint[], p_redundancy integer, p_depth_first boolean,
    p_gold_rate double precision, p_newcomer_rate double precision, p_decay_tiles double precision,
    p_cap integer, p_attempts integer)
RETURNS TABLE (out_lease bigint, out_gold boolean, out_tile bigint, out_held boolean)
LANGUAGE plpgsql VOLATILE AS $function$
DECLARE
    v_done integer;
    v_grid bigint;
    v_want_gold boolean;
    v_gold boolean;
    v_passed bigint[];
    v_whole boolean;
    v_tile bigint;
    v_votes integer;
    v_status text;
    v_lease bigint;
BEGIN
    -- The volunteer's votes on the project, counted up to where the gold rate no longer changes.
    SELECT COUNT(*) INTO v_done FROM (SELECT 1 FROM tagging_classification
                                      WHERE project_id = p_project AND volunteer_id = p_volunteer
                                      LIMIT p_cap) done;
    -- A live lease they hold on a tile they have not answered (a reload, a second tab): renewed.
    SELECT a.id, a.is_gold, a.tile_id INTO out_lease, out_gold, out_tile
    FROM tagging_assignment a
    WHERE a.volunteer_id = p_volunteer AND a.project_id = p_project AND a.expires_at > p_now
      AND a.tile_id <> ALL (p_exclude)
      AND NOT EXISTS (SELECT 1 FROM tagging_classification c
                      WHERE c.tile_id = a.tile_id AND c.volunteer_id = p_volunteer)
    ORDER BY a.created_at LIMIT 1;
    IF FOUND THEN
        UPDATE tagging_assignment SET expires_at = p_expires WHERE id = out_lease;
        out_held := TRUE;
        RETURN NEXT;
        RETURN;
    END IF;
    out_held := FALSE;
    v_want_gold := p_gold_draw < p_gold_rate + (GREATEST(p_newcomer_rate, p_gold_rate) - p_gold_rate)
                                               * exp(-v_done / p_decay_tiles);
    SELECT g.id INTO v_grid FROM imagery_grid g WHERE g.project_id = p_project ORDER BY g.id LIMIT 1;
    FOREACH v_gold IN ARRAY ARRAY[v_want_gold, NOT v_want_gold] LOOP
        v_passed := '{}';
        FOR attempt IN 1..p_attempts LOOP
            v_tile := NULL;
            -- The first `window` candidates in the project's order, the first one nobody has locked, locked;
            -- only skipped locks can empty a window that has candidates, so then the whole order is scanned.
            FOREACH v_whole IN ARRAY ARRAY[FALSE, TRUE] LOOP
                IF v_gold THEN{gold}
                ELSIF p_depth_first THEN{depth_first}
                ELSE{breadth_first}
                END IF;
                EXIT WHEN v_tile IS NOT NULL;
            END LOOP;
            EXIT WHEN v_tile IS NULL;  -- none of this kind left for the volunteer
            -- A new snapshot: it sees every lease committed before the lock, and nobody adds one while we hold it.
            v_lease := NULL;
            INSERT INTO tagging_assignment (tile_id, volunteer_id, project_id, is_gold, created_at, expires_at)
            SELECT v_tile, p_volunteer, p_project, v_status = 'gold', p_now, p_expires
            WHERE v_status = 'gold' OR (SELECT COUNT(*) FROM tagging_assignment a
                                        WHERE a.tile_id = v_tile AND a.expires_at > p_now) < p_redundancy - v_votes
            ON CONFLICT DO NOTHING
            RETURNING id INTO v_lease;
            IF v_lease IS NOT NULL THEN
                out_lease := v_lease;
                out_gold := v_status = 'gold';
                out_tile := v_tile;
                RETURN NEXT;
                RETURN;
            END IF;
            v_passed := v_passed || v_tile;  -- full after all: the next candidate
        END LOOP;
    END LOOP;
    RETURN;  -- nothing left for this volunteer
END
$function$
""".replace("{gold}", candidate(gold=True)).replace("{depth_first}", candidate(gold=False, depth_first=True)).replace(
    "{breadth_first}", candidate(gold=False))


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS tagging_next_tile(bigint, integer, timestamptz, timestamptz, "
                              "bigint, double precision, bigint[], integer, boolean, double precision, "
                              "double precision, double precision, integer, integer, bigint, integer)")
        schema_editor.execute(FUNCTION, params=None)  # no placeholders: its % is the modulo operator


def restore(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        from importlib import import_module

        schema_editor.execute("DROP FUNCTION IF EXISTS tagging_next_tile(bigint, integer, timestamptz, timestamptz, "
                              "bigint, double precision, bigint[], integer, boolean, double precision, "
                              "double precision, double precision, integer, integer)")
        schema_editor.execute(import_module("tagging.migrations.0009_next_tile_function").FUNCTION, params=None)


class Migration(migrations.Migration):
    dependencies = [("tagging", "0011_volunteer_project_indexes")]

    operations = [migrations.RunPython(create, restore)]
