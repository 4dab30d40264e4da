"""Claiming arq jobs in one Lua call, with what arq's ``run_job`` reads first, for the poll and the intake.

arq claims job by job: WATCH, EXISTS, ZSCORE, then MULTI/SET/EXEC — four round trips each, one job after the
other, and it even does that for the jobs a worker is already running (they stay in the queue's sorted set
until they finish); then each job's ``run_job`` makes one more. Under load each round trip waits for a busy
event loop, so starting 50 turns took seconds and the queue hop grew to seconds at 100 turns in flight
(bench/hop_relay.py). One Lua call makes the same check-and-claim for a batch, atomically, and fetches what
``run_job`` reads first, which ``ClaimedJobPool`` then hands to it instead of a second round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms

# What arq's Worker.start_jobs checks and sets per job, followed by what arq's run_job reads and writes first
# (its MULTI of GET job, INCR and EXPIRE of the try count, ZREM from the abort set). A job is claimed when it
# is due (score <= now) and not in progress anywhere; claiming sets its in-progress key, as arq does.
CLAIM_JOBS = """
-- KEYS[1] the queue, KEYS[2] arq's abort set; ARGV[1] now (ms), ARGV[2] in-progress TTL (ms), ARGV[3]
-- in-progress key prefix, ARGV[4] job key prefix, ARGV[5] try-count key prefix, ARGV[6..] job ids.
-- Returns id, score, job (nil if it expired), try, aborted (0/1), ... for each job claimed.
local claimed = {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local key = ARGV[3] .. id
  if redis.call('EXISTS', key) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) <= tonumber(ARGV[1]) then
      redis.call('SET', key, '1', 'PX', ARGV[2])
      local tries = ARGV[5] .. id
      local try = redis.call('INCR', tries)
      redis.call('EXPIRE', tries, 88400)
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
      claimed[#claimed + 1] = redis.call('GET', ARGV[4] .. id)
      claimed[#claimed + 1] = try
      claimed[#claimed + 1] = redis.call('ZREM', KEYS[2], id)
    end
  end
end
return claimed
"""


def claim_keys(queue_name: str) -> list[str]:
    return [queue_name, abort_jobs_ss]


def claim_args(job_ids: list[str], in_progress_ttl_s: float) -> list[Any]:
    ttl_ms = int(in_progress_ttl_s * 1000)
    return [timestamp_ms(), ttl_ms, in_progress_key_prefix, job_key_prefix, retry_key_prefix, *job_ids]


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker claimed, with what the claim fetched for arq's ``run_job``: the raw job (None if it
    expired), its try and its abort flag."""

    job_id: str
    score: int
    job: bytes | None
    job_try: int
    aborted: bool


def parse_claims(reply: list[Any]) -> list[ClaimedJob]:
    return [
        ClaimedJob(
            job_id=raw_id.decode(), score=int(float(raw_score)), job=job, job_try=int(job_try), aborted=bool(aborted)
        )
        for raw_id, raw_score, job, job_try, aborted in (reply[i : i + 5] for i in range(0, len(reply), 5))
    ]


class _ClaimedJobPipeline:
    """Stands in for the one pipeline arq's ``run_job`` opens before running a job, answering with what the
    claim fetched (in the order arq queued its commands) instead of a second round trip."""

    def __init__(self, claimed: ClaimedJob) -> None:
        self._claimed = claimed
        self._results: list[Any] = []

    async def __aenter__(self) -> _ClaimedJobPipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def get(self, _key: str) -> None:
        self._results.append(self._claimed.job)

    def incr(self, _key: str) -> None:
        self._results.append(self._claimed.job_try)

    def expire(self, _key: str, _seconds: int) -> None:
        self._results.append(True)

    def zrem(self, _key: str, *_ids: str) -> None:
        self._results.append(int(self._claimed.aborted))

    async def execute(self) -> list[Any]:
        return self._results


class ClaimedJobPool:
    """``Worker.pool`` for the first pipeline of a claimed job's ``run_job``; nothing else is asked of it."""

    def __init__(self, claimed: ClaimedJob) -> None:
        self._claimed = claimed

    def pipeline(self, transaction: bool = True) -> _ClaimedJobPipeline:
        return _ClaimedJobPipeline(self._claimed)
