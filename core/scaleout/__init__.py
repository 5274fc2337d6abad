"""Scale-out: the whole Redis protocol, for front ends that hand work to `chatscribe worker` processes.

schema.py        every key and stream name written to Redis, in one place
connection.py    clients and the errors that mean "Redis is unreachable"
broker.py        the task stream (taskiq on a Redis stream with a consumer group)
runner.py        RedisRunner: the front end's runner, sending each job to the workers
worker.py        a worker's steps: take a job, transcribe it, publish the outcome
shared_cache.py, limits.py, presence.py   the cache, the limits and the list of live processes, shared

Needs the `scaleout` extra (redis, taskiq): `import chatscribe.core` does not import this package.
"""

from . import schema
from .broker import StreamBroker
from .connection import describe_url
from .limits import SharedLimits
from .runner import RedisRunner, attach, ping
from .shared_cache import SharedCache
from .worker import Worker

__all__ = ["RedisRunner", "SharedCache", "SharedLimits", "StreamBroker", "Worker", "attach", "describe_url", "ping",
           "schema"]
