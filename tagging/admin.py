from django.contrib import admin
from django.http import HttpRequest

from tagging.models import Membership, Project
from tagging.projects import check_answers


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
