"""The web app's operator commands, in one list: manage.py adds them beside tenancy's."""

from portal.demo import demo_command
from portal.staff import create_staff_command, createsuperuser_command

COMMANDS = [createsuperuser_command, create_staff_command, demo_command]
