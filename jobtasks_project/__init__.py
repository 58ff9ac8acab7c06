"""The reference project: runs the job_tasks app with its admin and API docs."""
