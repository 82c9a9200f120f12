"""The pack test kit: temporary sites with given packs, actors per role, a clock to move.

Installing VisionCRM registers :mod:`engine.testing.plugin` as a pytest
plugin, so a pack's tests use the fixtures ``crm_site``, ``crm_clock`` and
``crm_database_url`` without any set-up of their own.  See
docs/pack_testing.md.
"""

from engine.testing.files import write_pack, write_site
from engine.testing.kit import DEFAULT_START, PackSite, open_pack_site

__all__ = ["DEFAULT_START", "PackSite", "open_pack_site", "write_pack", "write_site"]
