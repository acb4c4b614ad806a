from django.apps import AppConfig


class ImageryConfig(AppConfig):
    name = "imagery"
    verbose_name = "Imagery"
