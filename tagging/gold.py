"""Gold tiles: tiles whose answer and buildings a manager knows, used to score volunteers and to teach them."""

from django.db import transaction
from django.utils.translation import gettext as _

from config.errors import InvalidInput, NotFound
from imagery.models import Tile
from tagging import tile_updates
from tagging.classifications import MarkInput, check_classification
from tagging.models import Classification, GoldAnswer


def set_gold(*, tile: Tile, answer: str, marks: list[tuple[float, float]]) -> GoldAnswer:
    """Make the tile a gold tile with this known answer and these buildings (tile pixels), validated like a vote.

    Its votes so far become gold votes; its consensus is re-scored after commit. Raises InvalidInput
    for an answer or marks a vote could not have, or an abstention.
    """
    project = tile.grid.project
    check_classification(project=project, tile=tile, answer=answer, marks=[MarkInput(x, y) for x, y in marks],
                         seconds=None)
    if any(a["key"] == answer and a.get("abstain") for a in project.answers):
        raise InvalidInput(_("A gold answer must be decisive, not the abstention '%(answer)s'.") % {"answer": answer},
                           fields={"answer": ["abstention"]})
    stored = [[float(x), float(y)] for x, y in marks]
    with transaction.atomic():
        Tile.objects.filter(pk=tile.pk).update(status=Tile.Status.GOLD)  # locks the tile's row until commit
        gold = GoldAnswer.objects.filter(tile=tile).first()
        if gold is None or gold.answer != answer or gold.marks != stored:
            # A new row rather than an update: its created_at tells the periodic recompute that gold changed.
            GoldAnswer.objects.filter(tile=tile).delete()
            gold = GoldAnswer.objects.create(tile=tile, answer=answer, marks=stored)
        Classification.objects.filter(tile=tile, is_gold=False).update(is_gold=True)
        tile_updates.mark_pending([tile.pk])
    return gold


def clear_gold(*, tile: Tile) -> Tile:
    """The tile is an ordinary tile again: open, or retired when it has its votes. Raises NotFound if not gold."""
    redundancy = tile.grid.project.redundancy
    with transaction.atomic():
        locked = Tile.objects.select_for_update().get(pk=tile.pk)
        deleted = GoldAnswer.objects.filter(tile=locked).delete()[0]
        if not deleted and locked.status != Tile.Status.GOLD:
            raise NotFound(_("Tile %(tile)s is not a gold tile.") % {"tile": tile.pk})
        locked.status = Tile.Status.RETIRED if locked.vote_count >= redundancy else Tile.Status.OPEN
        locked.save(update_fields=["status"])
        Classification.objects.filter(tile=locked, is_gold=True).update(is_gold=False)
        tile_updates.mark_pending([tile.pk])
    return locked

