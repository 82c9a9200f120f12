"""Definitions as written by consultants: YAML files, their schemas and their checks."""
