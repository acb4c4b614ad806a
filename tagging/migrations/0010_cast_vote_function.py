"""tagging_cast_vote(): a vote's lock, checks and writes (tagging.classifications) as one PL/pgSQL function.

On PostgreSQL a vote is then one round trip after the tile is read: lock the tile's row and read
the voter's lease and vote on it; a replay returns the stored vote; otherwise check that they may
answer it (unless imported), insert the vote and its marks, count it on the tile (retiring the tile
at its redundancy), let the voter's lease lapse and mark the tile for its consensus update. On
SQLite tagging.classifications sends the same steps one by one; the rules are documented there and
the tests run against both (CI runs the suite on SQLite and on PostgreSQL).

Outcomes (out_outcome): stored, replay, no_tile, inactive, practice, not_given.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION tagging_cast_vote(
    p_tile bigint, p_volunteer integer, p_project bigint, p_check boolean, p_active boolean, p_redundancy integer,
    p_answer text, p_seconds double precision, p_too_fast boolean, p_source text, p_created_at timestamptz,
    p_pending boolean, p_x double precision[], p_y double precision[], p_ground_x double precision[],
    p_ground_y double precision[], p_layer bigint[])
RETURNS TABLE (out_outcome text, out_vote bigint, out_gold boolean)
LANGUAGE plpgsql VOLATILE AS $function$
DECLARE
    v_status text;
    v_votes integer;
    v_lease boolean;  -- the voter's lease: NULL without one, FALSE when it was never live (the tutorial's)
    v_vote bigint;
BEGIN
    SELECT t.status, t.vote_count,
           (SELECT a.expires_at > a.created_at FROM tagging_assignment a
            WHERE a.tile_id = t.id AND a.volunteer_id = p_volunteer),
           (SELECT c.id FROM tagging_classification c WHERE c.tile_id = t.id AND c.volunteer_id = p_volunteer)
    INTO v_status, v_votes, v_lease, v_vote
    FROM imagery_tile t WHERE t.id = p_tile FOR UPDATE OF t;
    IF NOT FOUND THEN
        out_outcome := 'no_tile';
        RETURN NEXT;
        RETURN;
    END IF;
    out_gold := v_status = 'gold';
    IF v_vote IS NOT NULL THEN
        out_outcome := 'replay';
        out_vote := v_vote;
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_check THEN
        IF NOT p_active THEN
            out_outcome := 'inactive';
        ELSIF v_lease IS FALSE THEN
            out_outcome := 'practice';
        ELSIF v_lease IS NULL AND NOT (v_status = 'open' AND v_votes < p_redundancy) THEN
            out_outcome := 'not_given';
        END IF;
        IF out_outcome IS NOT NULL THEN
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    INSERT INTO tagging_classification (project_id, tile_id, volunteer_id, answer, seconds, too_fast, is_gold,
                                        source, created_at)
    VALUES (p_project, p_tile, p_volunteer, p_answer, p_seconds, p_too_fast, v_status = 'gold', p_source,
            p_created_at)
    RETURNING id INTO v_vote;
    INSERT INTO tagging_mark (classification_id, x, y, ground_x, ground_y, layer_id)
    SELECT v_vote, m.x, m.y, m.ground_x, m.ground_y, m.layer
    FROM unnest(p_x, p_y, p_ground_x, p_ground_y, p_layer) WITH ORDINALITY AS m(x, y, ground_x, ground_y, layer, n)
    ORDER BY m.n;
    IF NOT p_too_fast THEN
        UPDATE imagery_tile
        SET vote_count = vote_count + 1,
            status = CASE WHEN v_status = 'open' AND v_votes + 1 >= p_redundancy THEN 'retired' ELSE status END
        WHERE id = p_tile;
    END IF;
    IF v_lease THEN
        UPDATE tagging_assignment SET expires_at = p_created_at
        WHERE volunteer_id = p_volunteer AND tile_id = p_tile AND expires_at > p_created_at;
    END IF;
    IF p_pending THEN
        INSERT INTO tagging_pendingtileupdate (tile_id, since) VALUES (p_tile, p_created_at) ON CONFLICT DO NOTHING;
    END IF;
    out_outcome := 'stored';
    out_vote := v_vote;
    RETURN NEXT;
END
$function$
"""


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION, params=None)


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS tagging_cast_vote")


class Migration(migrations.Migration):
    dependencies = [("tagging", "0009_next_tile_function")]

    operations = [migrations.RunPython(create, drop)]
