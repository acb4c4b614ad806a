#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import execute_from_command_line

    django.setup()
    from config.runtime import ensure_data_dirs

    ensure_data_dirs()  # DATA_DIR's folders, before any command checks or writes them
    execute_from_command_line(sys.argv)
