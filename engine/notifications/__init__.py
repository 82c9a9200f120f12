"""Reminders, notifications and background jobs: see docs/reminders.md."""
