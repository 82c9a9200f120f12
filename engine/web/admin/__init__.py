"""What administrators and operators see: health, readiness and metrics (the
``operations`` blueprint) and background work (the ``job_admin`` blueprint).
"""
