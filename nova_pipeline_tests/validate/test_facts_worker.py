"""validate.facts_worker and core.helper_process: source facts in a worker process, which never outlives the process
that started it."""

import subprocess
import sys
import time

import psutil

STARTER = """
import os, sys, time, psutil
from nova_pipeline.validate import facts_worker
facts_worker.start()
deadline = time.time() + 60
while not any("spawn_main" in " ".join(c.cmdline()) for c in psutil.Process().children()) and time.time() < deadline:
    time.sleep(0.1)
print(" ".join(str(c.pid) for c in psutil.Process().children() if "spawn_main" in " ".join(c.cmdline())), flush=True)
sys.stdin.readline()
os._exit(0)  # as the CLI ends: no interpreter teardown, so the pool is not shut down
"""


def test_no_worker_is_used_unless_this_process_started_one():
    probe = subprocess.run([sys.executable, "-c", "from nova_pipeline.validate import facts_worker as f; "
                            "print(f.submit(None, 't', None))"], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "None"  # the table's step computes its facts itself


def test_the_worker_ends_with_the_process_that_started_it():
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(starter.stdout.readline().split()[0])
        worker = psutil.Process(pid)
        assert worker.is_running()
        starter.stdin.write("\n")
        starter.stdin.flush()
        assert starter.wait(30) == 0
        deadline = time.time() + 30
        while worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE and time.time() < deadline:
            time.sleep(0.1)
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    finally:
        if starter.poll() is None:
            starter.kill()


STOPPER = """
import threading, time, psutil
from nova_pipeline.core import helper_process
helper_process.helper_pool("json").submit(int).result()
workers = [c for c in psutil.Process().children() if "spawn_main" in " ".join(c.cmdline())]
helper_process.stop_helpers()
threads = [t.name for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
print(len(workers), threads, [w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers])
"""


def test_stopped_helpers_leave_no_pool_thread_and_no_worker():
    # No non-daemon thread left: the CLI can then end without tearing the interpreter down.
    out = subprocess.run([sys.executable, "-c", STOPPER], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["1", "[]", "[False]"]
