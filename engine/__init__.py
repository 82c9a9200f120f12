"""VisionCRM's metadata engine.

YAML definitions are loaded and checked into an immutable registry; the
registry compiles to tables, drives the services, and through them the CLI,
the web UI and the API.
"""

__version__ = "0.1.0"
