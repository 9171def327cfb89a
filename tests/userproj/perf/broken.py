"""A user scenario with a bug: importing it fails. Perf Lab must say where, and run the others."""
from harness.scenario import Scenario  # noqa: F401

import shop.does_not_exist  # noqa: F401,E402

SCENARIO = None
