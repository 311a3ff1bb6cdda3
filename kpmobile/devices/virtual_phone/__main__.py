"""`python -m kpmobile.devices.virtual_phone serve ...`: run a virtual phone in the foreground."""

import sys

from kpmobile.devices.virtual_phone.command import main

sys.exit(main())
