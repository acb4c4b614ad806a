import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from config.runtime import ensure_data_dirs  # noqa: E402  (needs settings loaded)

ensure_data_dirs()
