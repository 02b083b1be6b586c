"""The modules holding the operation registry's entries (``bot.jobs.registry``).

Importing this module registers every entry, in the order of its imports (the order of
``/help`` and of the buttons). Start-up (``bot.app``) imports it, and so does anything else
that uses the registry on its own (the tests). The registry itself imports none of them, so
entries depend on the registry and never the other way round.
"""

from __future__ import annotations

# In this order (isort: split keeps it): the order of ``/help`` and of the buttons.
from bot.jobs import hub_operations

# isort: split
from bot.jobs import volume_operations

# isort: split
from bot.jobs import assignment_operations

# isort: split
from bot.jobs import account_operations

ENTRY_MODULES = (hub_operations, volume_operations, assignment_operations, account_operations)
