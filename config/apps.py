from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "config"
    label = "platform_config"
    verbose_name = "Platform"

    def ready(self) -> None:
        from config import checks  # noqa: F401  (registers the system checks)
