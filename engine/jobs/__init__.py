"""Scheduled jobs: packs' daily business jobs and the site's backups, run by ``crm worker``."""
