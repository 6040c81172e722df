"""What a scheduled maintenance cycle logs: one short INFO line, its whole record at DEBUG."""

from __future__ import annotations

import logging

from priorizer.maintenance.service import MaintenancePolicy
from priorizer.queue.policy import queue_policy
from priorizer.scheduler import _scheduled_cycle, summary
from tests.support.factories import add_assets, allocate_in, asset


def test_a_cycle_logs_one_short_info_line_and_its_record_at_debug(
    database, settings, clock, caplog
):
    add_assets(database, settings, [asset(n) for n in range(40)], clock())
    with database.write() as session:
        leases = allocate_in(session, settings, clock(), node_id="n-1", free_space_gb=1)
    clock.advance(hours=25)  # the leases are overdue
    policy = MaintenancePolicy.from_settings(settings, queue_policy(settings))

    with caplog.at_level(logging.DEBUG, logger="priorizer.scheduler"):
        _scheduled_cycle(database=database, policy=policy, clock=clock)

    records = [r for r in caplog.records if r.name == "priorizer.scheduler"]
    [info] = [r for r in records if r.levelno == logging.INFO]
    line = info.getMessage()
    assert len(line) < 200, line
    assert line.startswith("maintenance cycle 1 done in ")
    assert f"expired_leases {len(leases)}" in line and "priorities_redrawn 40" in line
    assert "lost_nodes" not in line  # steps that did nothing are left out
    [debug] = [r for r in records if r.levelno == logging.DEBUG]
    assert "priority_distribution" in debug.getMessage()  # the statistics, for who wants them


def test_summary_of_a_cycle_that_did_nothing():
    assert summary({"steps": {"expired_leases": 0, "runs_pruned": 0}}) == "nothing to do"
    assert summary({"steps": {"expired_leases": 2, "runs_pruned": 0}}) == "expired_leases 2"
