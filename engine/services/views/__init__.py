"""Read-only views over records: dashboards, report figures, the stage-flow pipeline,
pack reports, the calendar and saved list filters.
"""
