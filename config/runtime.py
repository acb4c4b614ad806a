"""Folders the embedded default writes to, made when a process first needs them."""

from pathlib import Path

from django.conf import settings


def ensure_data_dirs() -> None:
    """Create DATA_DIR's folders (database, broker, uploads, imagery, tiles); safe to repeat."""
    folders: list[Path] = [
        settings.DATA_DIR,
        Path(settings.FILE_UPLOAD_TEMP_DIR),
        settings.IMAGERY_ROOT,
        settings.MEDIA_ROOT,
        settings.STATIC_ROOT,
    ]
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if key in options:
            folders.append(Path(options[key]))
    for folder in folders:
        Path(folder).mkdir(parents=True, exist_ok=True)
