from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_noop

# The labels are stored with each project as written; pages translate them when they are these defaults.
DEFAULT_ANSWERS: list[dict[str, Any]] = [
    {"key": "destroyed", "label": gettext_noop("Destroyed"), "damage": True, "abstain": False},
    {"key": "damaged", "label": gettext_noop("Damaged"), "damage": True, "abstain": False},
    {"key": "no_damage", "label": gettext_noop("No damage"), "damage": False, "abstain": False},
    {"key": "cant_tell", "label": gettext_noop("Can't tell"), "damage": False, "abstain": True},
]


def default_answers() -> list[dict[str, Any]]:
    return [dict(answer) for answer in DEFAULT_ANSWERS]


class Project(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        FINISHED = "finished"

    class Scheduling(models.TextChoices):
        BREADTH_FIRST = "breadth_first"
        DEPTH_FIRST = "depth_first"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    instructions = models.TextField(blank=True)
    question = models.CharField(max_length=300, default="Do you see destroyed buildings on this image?")
    # Each answer: key, label, damage (asks for point marks), abstain ("can't tell").
    answers = models.JSONField(default=default_answers)
    redundancy = models.PositiveSmallIntegerField(default=5)
    retire_confidence = models.FloatField(
        null=True, blank=True, help_text="Retire a tile early once the consensus is this sure (0-1).")
    consensus_settings = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    scheduling = models.CharField(max_length=14, choices=Scheduling.choices, default=Scheduling.BREADTH_FIRST)
    gold_rate = models.FloatField(default=0.1)
    is_public = models.BooleanField(default=True)
    published_at = models.DateTimeField(null=True, blank=True,
                                        help_text="When the results were published to the project's volunteers.")
    # The grid is made from the first imagery layer with these settings.
    tile_size = models.PositiveIntegerField(default=512)
    overlap = models.PositiveIntegerField(default=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_any_project", "Can manage every project (admin role)")]

    def __str__(self) -> str:
        return self.name

    @property
    def answer_keys(self) -> list[str]:
        return [answer["key"] for answer in self.answers]


class Membership(models.Model):
    class Role(models.TextChoices):
        VOLUNTEER = "volunteer"
        COORDINATOR = "coordinator"
        MANAGER = "manager"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.VOLUNTEER)
    joined_at = models.DateTimeField(auto_now_add=True)
    tutorial_done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} {self.role} of {self.project}"


class Assignment(models.Model):
    """A lease of a tile to a volunteer, so that concurrent volunteers are not all handed the same tile.

    Every vote inserts a lease and updates it (its expiry, which is indexed: every index takes the new row), so
    a foreign key that leads another index has no index of its own (db_index=False, migration 0014)."""

    tile = models.ForeignKey("imagery.Tile", on_delete=models.CASCADE, related_name="assignments",
                             db_index=False)  # (tile, expires_at)
    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments",
                                  db_index=False)  # one_lease_per_volunteer_tile, live_lease_of_volunteer
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    is_gold = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["volunteer", "tile"], name="one_lease_per_volunteer_tile")]
        # (volunteer, project, expires_at): the live lease a volunteer holds on a project, read by every next-tile
        # request, found without reading the leases of every tile they have done (migration 0013).
        indexes = [models.Index(fields=["tile", "expires_at"]), models.Index(fields=["expires_at"]),
                   models.Index(fields=["volunteer", "project", "expires_at"], name="live_lease_of_volunteer")]


class Classification(models.Model):
    """One volunteer's answer on one tile; at most one per volunteer and tile.

    As on Assignment, a foreign key that leads another index has no index of its own (migration 0014)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classifications",
                                db_index=False)  # (project, created_at)
    tile = models.ForeignKey("imagery.Tile", on_delete=models.CASCADE, related_name="classifications")
    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                  related_name="classifications",
                                  db_index=False)  # one_vote_per_volunteer_tile, votes_of_volunteer_project
    answer = models.CharField(max_length=40)
    seconds = models.FloatField(null=True, blank=True, help_text="Time the volunteer spent on the tile.")
    too_fast = models.BooleanField(default=False, help_text="Answered implausibly fast: kept out of the consensus.")
    is_gold = models.BooleanField(default=False)
    source = models.CharField(max_length=10, default="api")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["volunteer", "tile"], name="one_vote_per_volunteer_tile")]
        # (volunteer, project): a volunteer's votes on a project, counted by every next-tile request (the gold
        # rate). Without it PostgreSQL intersects the volunteer's and the whole project's index entries.
        indexes = [models.Index(fields=["project", "created_at"]), models.Index(fields=["volunteer", "created_at"]),
                   models.Index(fields=["volunteer", "project"], name="votes_of_volunteer_project")]


class Mark(models.Model):
    """A point on a destroyed building: tile pixels as clicked, ground metres in the grid CRS."""

    classification = models.ForeignKey(Classification, on_delete=models.CASCADE, related_name="marks")
    x = models.FloatField()
    y = models.FloatField()
    ground_x = models.FloatField()
    ground_y = models.FloatField()
    layer = models.ForeignKey("imagery.ImageryLayer", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", help_text="The date on which the building first shows destruction.")


class GoldAnswer(models.Model):
    """The known answer of a gold tile: used to score volunteers and to teach them."""

    tile = models.OneToOneField("imagery.Tile", on_delete=models.CASCADE, related_name="gold")
    answer = models.CharField(max_length=40)
    marks = models.JSONField(default=list, blank=True, help_text="[[x, y], ...] in tile pixels.")
    created_at = models.DateTimeField(auto_now_add=True)


class Invitation(models.Model):
    """A link that lets a volunteer join a private project; usable once, until it expires."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    token = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=12, choices=Membership.Role.choices, default=Membership.Role.VOLUNTEER)
    note = models.CharField(max_length=200, blank=True, help_text="Who it is for (not shown to the invitee).")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)


class TileReport(models.Model):
    """A volunteer's "bad image" report on a tile (clouds, blur, blank, misaligned dates)."""

    class Reason(models.TextChoices):
        CLOUDS = "clouds"
        BLURRED = "blurred"
        BLANK = "blank"
        MISALIGNED = "misaligned"
        OTHER = "other"

    tile = models.ForeignKey("imagery.Tile", on_delete=models.CASCADE, related_name="reports")
    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=12, choices=Reason.choices, default=Reason.OTHER)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tile", "volunteer"], name="one_report_per_volunteer_tile")]


class ConsensusRun(models.Model):
    """One whole-project consensus estimate: when, with which method and parameters, how long, on what.

    Exports state the run they come from, so a finding can be re-derived. The latest finished
    run also holds the fitted label model that the cheap per-vote update uses.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="consensus_runs")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    method = models.TextField(help_text="What was estimated and how, with the method's version.")
    parameters = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per phase.")
    counts = models.JSONField(default=dict, blank=True, help_text="Votes, tiles, clicks, buildings ...")
    # Votes with an id up to this one were in the estimate (the per-vote update takes their share out).
    last_classification_id = models.BigIntegerField(default=0)
    label_model = models.BinaryField(null=True, blank=True, editable=False,
                                     help_text="The fitted label model (numpy .npz), kept on the latest runs only.")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["project", "status", "-id"])]

    def __str__(self) -> str:
        return f"consensus run {self.pk} of {self.project} ({self.status})"


class TileConsensus(models.Model):
    """What the crowd said on a tile: label (an answer key), calibrated confidence, agreement, votes per answer."""

    tile = models.OneToOneField("imagery.Tile", on_delete=models.CASCADE, related_name="consensus")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tile_consensus")
    label = models.CharField(max_length=40)
    confidence = models.FloatField(help_text="Probability that the label is right (0-1).")
    agreement = models.FloatField(null=True, blank=True,
                                  help_text="Share of decisive votes that gave the label; empty without any.")
    counts = models.JSONField(default=dict, help_text="{answer key: counted votes}, abstentions included.")
    n_votes = models.PositiveIntegerField(default=0, help_text="Counted votes (not too fast).")
    n_decisive = models.PositiveIntegerField(default=0, help_text="Counted votes other than abstentions.")
    method = models.CharField(max_length=40, help_text="Which estimate wrote the row, with its version.")
    run = models.ForeignKey(ConsensusRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["project", "confidence"]), models.Index(fields=["project", "label"])]

    def __str__(self) -> str:
        return f"{self.label} ({self.confidence:.2f}) on tile {self.tile_id}"


class Building(models.Model):
    """A destroyed building found by the crowd's point marks, with the evidence behind it.

    Ground coordinates are in the grid's CRS (metres); lon/lat in WGS84. A building keeps its id
    across runs while the new estimate finds it at the same spot, so reviews can point at it.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="buildings")
    run = models.ForeignKey(ConsensusRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    ground_x = models.FloatField()
    ground_y = models.FloatField()
    lon = models.FloatField()
    lat = models.FloatField()
    confidence = models.FloatField(help_text="Probability that this is a real destroyed building (0-1).")
    uncertainty_m = models.FloatField(help_text="Standard error of the location, ground metres.")
    n_support = models.PositiveIntegerField(default=0, help_text="Volunteers who marked it.")
    n_oppose = models.PositiveIntegerField(default=0, help_text="Volunteers who saw the spot and did not mark it.")
    is_gold = models.BooleanField(default=False)
    last_intact = models.DateField(null=True, blank=True, help_text="Last date it shows intact.")
    first_destroyed = models.DateField(null=True, blank=True, help_text="First date it shows destroyed.")
    window_confidence = models.FloatField(null=True, blank=True, help_text="Probability of that date window.")
    classification_ids = models.JSONField(default=list, help_text="Classifications that marked it.")
    opposing_classification_ids = models.JSONField(default=list, help_text="Classifications that saw it unmarked.")
    mark_ids = models.JSONField(default=list)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["project", "confidence"]),
                   models.Index(fields=["project", "lon", "lat"], name="tagging_building_lonlat")]  # map in view

    def __str__(self) -> str:
        return f"building {self.pk} ({self.confidence:.2f}) of {self.project}"


class VolunteerReliability(models.Model):
    """How far a volunteer's answers can be trusted on one project, from gold tiles and agreement with the crowd."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reliabilities")
    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reliabilities")
    reliability = models.FloatField(help_text="Chance-corrected balanced accuracy: 0 = guessing, 1 = always right.")
    accuracy = models.FloatField(help_text="Expected share of right decisive answers.")
    confusion = models.JSONField(default=dict, help_text="{true answer: {answer: probability}}.")
    n_votes = models.PositiveIntegerField(default=0)
    n_gold = models.PositiveIntegerField(default=0, help_text="Decisive votes on gold tiles the estimate rests on.")
    n_gold_correct = models.PositiveIntegerField(default=0)
    hit_rate = models.FloatField(null=True, blank=True, help_text="P(marks a destroyed building in view).")
    false_rate = models.FloatField(null=True, blank=True, help_text="P(marks a spot that is not one).")
    run = models.ForeignKey(ConsensusRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "volunteer"], name="one_reliability_per_volunteer")]


class Review(models.Model):
    """A coordinator's decision on a tile or a building. It overrides the crowd in every output.

    Reviews are never edited or deleted: undoing one sets undone_at, and a later review of the
    same tile or building supersedes an earlier one. Together they are the audit trail (who,
    when, what before, what after). A building a coordinator added has no Building row: the
    "add" review is the building, and later reviews of it name it in `added`. When a new
    consensus no longer finds a reviewed building, `building` becomes empty and the review stays
    in the trail, its before and after saying which building it was and where.
    """

    class Action(models.TextChoices):
        CONFIRM = "confirm"  # the crowd is right
        REJECT = "reject"  # a building that is not one; a tile label that is wrong without a better one
        RELABEL = "relabel"  # a tile's label becomes `label`
        MOVE = "move"  # a building's location becomes (ground_x, ground_y)
        ADD = "add"  # a building the crowd missed, at (ground_x, ground_y)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reviews")
    tile = models.ForeignKey("imagery.Tile", null=True, blank=True, on_delete=models.CASCADE, related_name="reviews")
    building = models.ForeignKey(Building, null=True, blank=True, on_delete=models.SET_NULL, related_name="reviews")
    added = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="later_reviews",
                              help_text="For a building a coordinator added: the add review that is the building.")
    action = models.CharField(max_length=10, choices=Action.choices)
    label = models.CharField(max_length=40, blank=True, help_text="The tile's answer, for relabel.")
    ground_x = models.FloatField(null=True, blank=True, help_text="Grid CRS metres, for move and add.")
    ground_y = models.FloatField(null=True, blank=True)
    lon = models.FloatField(null=True, blank=True)
    lat = models.FloatField(null=True, blank=True)
    note = models.TextField(blank=True)
    before = models.JSONField(default=dict, help_text="The crowd's (or the previous review's) values.")
    after = models.JSONField(default=dict, help_text="The values this review sets.")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")

    class Meta:
        indexes = [models.Index(fields=["project", "created_at"]), models.Index(fields=["tile", "created_at"]),
                   models.Index(fields=["building", "created_at"])]
        # A review names a tile, a building or an added building; `building` alone may become empty later (above).
        constraints = [models.CheckConstraint(
            condition=~(models.Q(added__isnull=False) & (models.Q(building__isnull=False) | models.Q(action="add"))),
            name="review_of_an_added_building_names_only_it")]


class PendingTileUpdate(models.Model):
    """A tile voted on whose consensus a worker has not re-scored since (tagging.tile_updates).

    Written by the vote's own statement, so a vote never commits without it; deleted by the worker in
    the transaction that re-scores the tile, so a crashed worker leaves it for the next one.
    """

    tile = models.OneToOneField("imagery.Tile", primary_key=True, on_delete=models.CASCADE, related_name="+")
    since = models.DateTimeField(default=timezone.now, help_text="The first vote since the last update.")

    class Meta:
        indexes = [models.Index(fields=["since"])]
