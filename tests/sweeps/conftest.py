"""The jobs suite's fixtures (a workspace, each compute target, clean-up of job processes)."""

from tests.jobs.conftest import _stop_jobs, ray_head, served_ws, sshd, target, tmp_path, ws

__all__ = ["_stop_jobs", "ray_head", "served_ws", "sshd", "target", "tmp_path", "ws"]
