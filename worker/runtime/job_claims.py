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

from shared import keys

# What arq's Worker.start_jobs checks and sets per job, followed by what arq's run_job reads and writes first
# (its MULTI of GET job, INCR and EXPIRE of the try count, ZREM from the abort set). A job is claimed when it
# is queued, due (score <= now) and not in progress anywhere; claiming sets its in-progress key, as arq does,
# to the claimer's token (arq only asks whether the key exists), so that only the claim's maker can give it
# back. Shared by both claims: KEYS[1] the queue, KEYS[2] arq's abort set; ARGV[1] the in-progress TTL (ms),
# ARGV[2] the in-progress key prefix, ARGV[3] the job key prefix, ARGV[4] the try-count key prefix, ARGV[5]
# the claimer's token. Each job claimed adds id, score, job (nil if it expired), try, aborted (0/1) to
# ``claimed``.
_CLAIM_ONE = """
local function claim(id, now, claimed)
  local key = ARGV[2] .. id
  if redis.call('EXISTS', key) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) <= now then
      redis.call('SET', key, ARGV[5], 'PX', ARGV[1])
      local tries = ARGV[4] .. id
      local try = redis.call('INCR', tries)
      redis.call('EXPIRE', tries, 88400)
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
      claimed[#claimed + 1] = redis.call('GET', ARGV[3] .. id)
      claimed[#claimed + 1] = try
      claimed[#claimed + 1] = redis.call('ZREM', KEYS[2], id)
    end
  end
end
"""

# The poll's claim: ARGV[6] now (ms), ARGV[7..] the job ids it found due.
CLAIM_JOBS = (
    _CLAIM_ONE
    + """
local claimed = {}
for i = 7, #ARGV do claim(ARGV[i], tonumber(ARGV[6]), claimed) end
return claimed
"""
)

# The intake's claim, sent in one pipeline behind the blocking pop that moves a new turn's id from the intake
# list to this worker's held list (KEYS[3]); Redis runs it the moment that pop is served, so the turn is
# popped and claimed in one round trip. ARGV[6] is the most turns to take: the held id, then more from the
# intake list (KEYS[4]) if they wait there. Nothing more is taken when the pop timed out or was interrupted,
# but an id a failed claim left in the held list is claimed by the next one, whatever the pop brought. Ids
# on the intake list are turns the gateway enqueued to run at once, so only the queue's own check applies
# (the job is still queued), not the due time: the gateway's clock need not agree with anyone's.
CLAIM_POPPED = (
    _CLAIM_ONE
    + """
local most = tonumber(ARGV[6])
local ids = redis.call('LPOP', KEYS[3], most)
if not ids then return {} end
if #ids < most then
  local more = redis.call('LPOP', KEYS[4], most - #ids)
  if more then for _, id in ipairs(more) do ids[#ids + 1] = id end end
end
local claimed = {}
for _, id in ipairs(ids) do claim(id, math.huge, claimed) end
return claimed
"""
)

# Giving back claims of jobs that did not start (no room for them, or the worker is stopping): the claim is
# undone (in-progress key, try count, and the abort it consumed) and the id goes back at the head of the
# intake list, first first, for the next worker with room; a poll finds it in arq's queue as ever. No
# wake-up is published: the intake list already offers it, and at saturation a wake-up per give-back would
# only make the polls read the queue again with no room to start anything. A claim is undone only while its
# in-progress key still holds its claimer's token: a give-back made again because its answer was lost must
# not undo the claim someone made since. KEYS[1] the intake list, KEYS[2] arq's abort set; ARGV[1] now (ms),
# ARGV[2] the in-progress key prefix, ARGV[3] the try-count key prefix, then id, aborted (0/1), claimer's
# token for each job.
GIVE_BACK = """
for i = #ARGV - 2, 4, -3 do
  local id = ARGV[i]
  if redis.call('GET', ARGV[2] .. id) == ARGV[i + 2] then
    redis.call('DEL', ARGV[2] .. id)
    redis.call('DECR', ARGV[3] .. id)
    if ARGV[i + 1] == '1' then redis.call('ZADD', KEYS[2], ARGV[1], id) end
    redis.call('LPUSH', KEYS[1], id)
  end
end
"""


def _claim_settings(in_progress_ttl_s: float, claimer: str) -> list[Any]:
    return [int(in_progress_ttl_s * 1000), in_progress_key_prefix, job_key_prefix, retry_key_prefix, claimer]


def claim_keys(queue_name: str) -> list[str]:
    return [queue_name, abort_jobs_ss]


def claim_args(job_ids: list[str], in_progress_ttl_s: float, claimer: str) -> list[Any]:
    return [*_claim_settings(in_progress_ttl_s, claimer), timestamp_ms(), *job_ids]


def claim_popped_keys(queue_name: str, held: str) -> list[str]:
    return [queue_name, abort_jobs_ss, held, keys.TURN_INTAKE]


def claim_popped_args(most: int, in_progress_ttl_s: float, claimer: str) -> list[Any]:
    return [*_claim_settings(in_progress_ttl_s, claimer), most]


def give_back_keys() -> list[str]:
    return [keys.TURN_INTAKE, abort_jobs_ss]


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker claimed, with what the claim fetched for arq's ``run_job``: the raw job (None if it
    expired), its try and its abort flag; and the token its claimer set on its in-progress key."""

    job_id: str
    score: int
    job: bytes | None
    job_try: int
    aborted: bool
    claimer: str


def parse_claims(reply: list[Any], claimer: str) -> list[ClaimedJob]:
    return [
        ClaimedJob(
            job_id=raw_id.decode(),
            score=int(float(raw_score)),
            job=job,
            job_try=int(job_try),
            aborted=bool(aborted),
            claimer=claimer,
        )
        for raw_id, raw_score, job, job_try, aborted in (reply[i : i + 5] for i in range(0, len(reply), 5))
    ]


def give_back_args(claims: list[ClaimedJob]) -> list[Any]:
    triples = [value for claimed in claims for value in (claimed.job_id, int(claimed.aborted), claimed.claimer)]
    return [timestamp_ms(), in_progress_key_prefix, retry_key_prefix, *triples]


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
