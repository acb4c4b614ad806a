from typing import Any

from django.conf import settings
from django.db import models

DEFAULT_ANSWERS: list[dict[str, Any]] = [
    {"key": "destroyed", "label": "Destroyed", "damage": True, "abstain": False},
    {"key": "damaged", "label": "Damaged", "damage": True, "abstain": False},
    {"key": "no_damage", "label": "No damage", "damage": False, "abstain": False},
    {"key": "cant_tell", "label": "Can't tell", "damage": False, "abstain": True},
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
    """A lease of a tile to a volunteer, so that concurrent volunteers are not all handed the same tile."""

    tile = models.ForeignKey("imagery.Tile", on_delete=models.CASCADE, related_name="assignments")
    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    is_gold = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["volunteer", "tile"], name="one_lease_per_volunteer_tile")]
        indexes = [models.Index(fields=["tile", "expires_at"]), models.Index(fields=["expires_at"])]


class Classification(models.Model):
    """One volunteer's answer on one tile; at most one per volunteer and tile."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classifications")
    tile = models.ForeignKey("imagery.Tile", on_delete=models.CASCADE, related_name="classifications")
    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                  related_name="classifications")
    answer = models.CharField(max_length=40)
    seconds = models.FloatField(null=True, blank=True, help_text="Time the volunteer spent on the tile.")
    too_fast = models.BooleanField(default=False, help_text="Answered implausibly fast: kept out of the consensus.")
    is_gold = models.BooleanField(default=False)
    source = models.CharField(max_length=10, default="api")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["volunteer", "tile"], name="one_vote_per_volunteer_tile")]
        indexes = [models.Index(fields=["project", "created_at"]), models.Index(fields=["volunteer", "created_at"])]


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
