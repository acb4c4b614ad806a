from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse

from config.errors import InvalidInput
from tagging.models import Membership, Project
from tagging.projects import RESERVED_SLUGS, check_answers, check_slug, reserved_slug_message


class ProjectForm(forms.ModelForm):
    """The admin's project form: a new or changed slug obeys the API's rules (tagging.projects.check_slug)."""

    class Meta:
        model = Project
        fields = "__all__"

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if self.instance.pk is not None and slug == self.instance.slug:
            return slug  # a project made before the rule keeps its slug until renamed (check platform.W002)
        try:
            return check_slug(slug)
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message, code=exc.fields["slug"][0]) from exc


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "redundancy", "is_public", "created_at"]
    list_filter = ["status", "is_public"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    form = ProjectForm

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        project = self.get_object(request, object_id)
        if request.method == "GET" and project is not None and project.slug in RESERVED_SLUGS:
            messages.warning(request, reserved_slug_message(project.slug))
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Project, form: object, change: bool) -> None:
        obj.answers = check_answers(obj.answers)
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role", "joined_at"]
    list_filter = ["role", "project"]
    autocomplete_fields = ["user", "project"]
