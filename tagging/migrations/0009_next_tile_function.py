"""tagging_next_tile(): the next-tile claim of tagging.assignment as one PL/pgSQL function (PostgreSQL only).

On PostgreSQL a volunteer's next tile is one round trip: this function runs the statements that
tagging.assignment sends one by one on SQLite (the volunteer's state, the renewal of a lease they
hold, the bounded candidate scan locked with SKIP LOCKED, the lease insert that counts live leases
again in a new snapshot), and PL/pgSQL keeps their plans. tagging.assignment documents the rules;
tests/tagging run against both implementations (CI runs the suite on SQLite and on PostgreSQL).

The candidate scan is written out for its three orders (gold tiles; open tiles breadth-first; open
tiles depth-first), so that each is a static statement on the claim-order index, planned once.
"""

from django.db import migrations

CANDIDATE = """
            SELECT t.id, t.vote_count, t.status INTO v_tile, v_votes, v_status FROM imagery_tile t
            WHERE t.id IN (
                SELECT c.id FROM imagery_tile c
                WHERE c.grid_id = v_grid AND {kind_c}{room}
                  AND c.id <> ALL (v_passed)
                  AND NOT EXISTS (SELECT 1 FROM tagging_assignment s
                                  WHERE s.tile_id = c.id AND s.volunteer_id = p_volunteer)
                ORDER BY c.vote_count{desc}, c.priority DESC, c.id
                LIMIT v_window)
              AND {kind_t}
            ORDER BY t.vote_count{desc}, t.priority DESC, (t.id * p_salt) % 2147483647
            LIMIT 1 FOR UPDATE OF t SKIP LOCKED;"""

ROOM = """
                  AND (SELECT COUNT(*) FROM tagging_assignment a
                       WHERE a.tile_id = c.id AND a.expires_at > p_now) < p_redundancy - c.vote_count"""


def candidate(*, gold: bool, depth_first: bool = False) -> str:
    def kind(alias: str) -> str:
        return f"{alias}.status = 'gold'" if gold else f"{alias}.status = 'open' AND {alias}.vote_count < p_redundancy"

    return CANDIDATE.format(kind_c=kind("c"), kind_t=kind("t"), room="" if gold else ROOM,
                            desc=" DESC" if depth_first else "")


FUNCTION = """
CREATE OR REPLACE FUNCTION tagging_next_tile(
    p_project bigint, p_volunteer integer, p_now timestamptz, p_expires timestamptz, p_salt bigint,
    p_gold_draw double precision, p_exclude bigint[], p_redundancy integer, p_depth_first boolean,
    p_gold_rate double precision, p_newcomer_rate double precision, p_decay_tiles double precision,
    p_cap integer, p_window integer, p_no_window bigint, p_attempts integer)
RETURNS TABLE (out_lease bigint, out_gold boolean, out_tile bigint, out_held boolean)
LANGUAGE plpgsql VOLATILE AS $function$
DECLARE
    v_done integer;
    v_grid bigint;
    v_want_gold boolean;
    v_gold boolean;
    v_passed bigint[];
    v_window bigint;
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
            FOREACH v_window IN ARRAY ARRAY[p_window, p_no_window] LOOP
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
        schema_editor.execute(FUNCTION, params=None)  # no placeholders: its % is the modulo operator


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS tagging_next_tile")


class Migration(migrations.Migration):
    dependencies = [("tagging", "0008_pending_tile_update")]

    operations = [migrations.RunPython(create, drop)]
