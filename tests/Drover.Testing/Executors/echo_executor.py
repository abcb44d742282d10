#!/usr/bin/env python3
"""A tiny custom executor for Drover's tests, speaking Mesos' v1 executor HTTP API (JSON, RecordIO).

It SUBSCRIBEs to MESOS_AGENT_ENDPOINT and for each LAUNCH (and each task of a LAUNCH_GROUP, logged as one
line "LAUNCH_GROUP id:data id:data") sends TASK_RUNNING, then acts on the task's
data (base64 text): "finish" -> TASK_FINISHED, "fail" -> TASK_FAILED, "crash" -> the executor exits 3,
anything else -> keeps running until KILL (TASK_KILLED). With the task label "ignore-kill" in the data
("run ignore-kill") KILL events are ignored. MESSAGE events are echoed back as MESSAGE calls, except
"exit N", which makes the executor exit with status N at once (its tasks unfinished);
SHUTDOWN kills every running task (TASK_KILLED) and exits 0. Every event received is appended to
events.log in the sandbox (one line: TYPE and details), so tests can see what reached the executor.

With MESOS_CHECKPOINT=1 (as Drover's agent sets) it survives an agent restart as a Mesos executor does: when its
SUBSCRIBE stream breaks it subscribes again, with a random backoff growing up to MESOS_SUBSCRIPTION_BACKOFF_MAX,
for at most MESOS_RECOVERY_TIMEOUT, listing the tasks it launched but has no acknowledged update for
(unacknowledged_tasks) and its unacknowledged updates (unacknowledged_updates). UPDATE calls that fail while
the agent is away stay unacknowledged and are re-sent that way. The MESSAGE "no-reconnect" turns this off for
tests: after the next broken stream the executor stays alive without ever subscribing again.

Every call carries the executor's own token, MESOS_EXECUTOR_AUTHENTICATION_TOKEN, as "Authorization: Bearer <token>"
(Mesos' executor authentication); like Mesos' executor library it takes the variable out of its environment, so
processes it starts do not inherit it.
"""
import base64
import http.client
import json
import os
import random
import re
import sys
import time
import uuid

ENDPOINT = os.environ["MESOS_AGENT_ENDPOINT"]
FRAMEWORK_ID = os.environ["MESOS_FRAMEWORK_ID"]
EXECUTOR_ID = os.environ["MESOS_EXECUTOR_ID"]
SANDBOX = os.environ.get("MESOS_SANDBOX", ".")
HOST, PORT = ENDPOINT.rsplit(":", 1)
TOKEN = os.environ.pop("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "")
running = {}     # task id -> data, of tasks not ended
launched = {}    # task id -> TaskInfo, until an update of the task is acknowledged
unacked = {}     # uuid -> TaskStatus sent (or to send), until ACKNOWLEDGED; in sending order
options = {"reconnect": os.environ.get("MESOS_CHECKPOINT") == "1", "subscribed": False}


def duration(text, default):
    """Seconds of a Mesos duration text (5secs, 250ms, 15mins)."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ns|us|ms|secs|mins|hrs|days)\s*", text or "")
    if not m:
        return default
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1, "mins": 60, "hrs": 3600, "days": 86400}[m.group(2)]
    return float(m.group(1)) * scale


BACKOFF_MAX = duration(os.environ.get("MESOS_SUBSCRIPTION_BACKOFF_MAX"), 2.0)
RECOVERY_TIMEOUT = duration(os.environ.get("MESOS_RECOVERY_TIMEOUT"), 900.0)


class Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def log(line):
    with open(os.path.join(SANDBOX, "events.log"), "a") as f:
        f.write(line + "\n")
    print(line, flush=True)  # also in the sandbox's stdout, readable through the master's files API


def headers(extra=None):
    h = {"Content-Type": "application/json"}
    if TOKEN:
        h["Authorization"] = "Bearer " + TOKEN
    h.update(extra or {})
    return h


def call(body):
    body["framework_id"] = {"value": FRAMEWORK_ID}
    body["executor_id"] = {"value": EXECUTOR_ID}
    try:
        conn = http.client.HTTPConnection(HOST, int(PORT), timeout=10)
        conn.request("POST", "/api/v1/executor", json.dumps(body), headers())
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
    except (OSError, http.client.HTTPException) as e:
        log("CALL-FAILED %s %s" % (body["type"], e))  # an UPDATE stays unacknowledged: re-sent on SUBSCRIBE
        return
    if resp.status != 202:
        log("CALL-FAILED %s %d %s" % (body["type"], resp.status, text))


def update(task_id, state, message=""):
    status = {"task_id": {"value": task_id}, "state": state, "source": "SOURCE_EXECUTOR",
              "message": message, "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}
    unacked[status["uuid"]] = status
    call({"type": "UPDATE", "update": {"status": status}})


def records(resp):
    while True:
        size = b""
        while not size.endswith(b"\n"):
            c = resp.read(1)
            if not c:
                return
            size += c
        data = b""
        n = int(size)
        while len(data) < n:
            chunk = resp.read(n - len(data))
            if not chunk:
                return
            data += chunk
        yield json.loads(data)


def data_of(task):
    return base64.b64decode(task.get("data", "")).decode()


def start(task):
    """Runs a launched task as its data asks; False when the executor is to crash."""
    task_id = task["task_id"]["value"]
    data = data_of(task)
    if task_id in running:
        log("LAUNCH-DUPLICATE %s" % task_id)
        return True
    launched[task_id] = task
    running[task_id] = data
    update(task_id, "TASK_RUNNING")
    if data == "finish":
        update(task_id, "TASK_FINISHED", "done")
        del running[task_id]
    elif data == "fail":
        update(task_id, "TASK_FAILED", "asked to fail")
        del running[task_id]
    elif data == "crash":
        log("CRASHING")
        return False
    return True


def handle(event):
    """Acts on one event; raises Exit to end the executor."""
    kind = event.get("type")
    if kind == "SUBSCRIBED":
        s = event["subscribed"]
        options["subscribed"] = True
        log("SUBSCRIBED %s %s pid=%d" % (s["executor_info"]["executor_id"]["value"], s.get("container_id", {}).get("value", ""), os.getpid()))
    elif kind == "LAUNCH":
        task = event["launch"]["task"]
        log("LAUNCH %s %s" % (task["task_id"]["value"], data_of(task)))
        if not start(task):
            raise Exit(3)
    elif kind == "LAUNCH_GROUP":
        tasks = event["launch_group"]["task_group"]["tasks"]
        log("LAUNCH_GROUP %s" % " ".join("%s:%s" % (t["task_id"]["value"], data_of(t)) for t in tasks))
        for task in tasks:
            if not start(task):
                raise Exit(3)
    elif kind == "KILL":
        task_id = event["kill"]["task_id"]["value"]
        log("KILL %s" % task_id)
        if task_id in running and "ignore-kill" not in running[task_id]:
            del running[task_id]
            update(task_id, "TASK_KILLED", "killed by the executor")
    elif kind == "ACKNOWLEDGED":
        a = event["acknowledged"]
        log("ACKNOWLEDGED %s %s" % (a["task_id"]["value"], a["uuid"]))
        unacked.pop(a["uuid"], None)
        launched.pop(a["task_id"]["value"], None)
    elif kind == "MESSAGE":
        data = event["message"]["data"]
        text = base64.b64decode(data).decode()
        log("MESSAGE %s" % text)
        if text.startswith("exit "):
            log("EXITING %s" % text[5:])
            raise Exit(int(text[5:]))
        if text == "no-reconnect":
            options["reconnect"] = False
            options["silent"] = True
        call({"type": "MESSAGE", "message": {"data": data}})
    elif kind == "SHUTDOWN":
        log("SHUTDOWN")
        for task_id in list(running):
            update(task_id, "TASK_KILLED", "executor shut down")
        raise Exit(0)
    elif kind == "HEARTBEAT":
        pass
    else:
        log("OTHER %s" % kind)


def session():
    """One SUBSCRIBE stream, until it ends. Raises OSError/HTTPException when the agent cannot be reached."""
    subscribe = {}
    if launched:
        subscribe["unacknowledged_tasks"] = list(launched.values())
    if unacked:
        subscribe["unacknowledged_updates"] = [
            {"framework_id": {"value": FRAMEWORK_ID}, "status": status} for status in unacked.values()]
    conn = http.client.HTTPConnection(HOST, int(PORT))
    body = {"type": "SUBSCRIBE", "subscribe": subscribe,
            "framework_id": {"value": FRAMEWORK_ID}, "executor_id": {"value": EXECUTOR_ID}}
    conn.request("POST", "/api/v1/executor", json.dumps(body), headers({"Accept": "application/json"}))
    resp = conn.getresponse()
    if resp.status != 200:
        log("SUBSCRIBE-FAILED %d %s" % (resp.status, resp.read().decode()))
        raise Exit(2)
    for event in records(resp):
        handle(event)
    log("STREAM-ENDED")


def main():
    backoff = 0.1
    disconnected_at = None
    while True:
        options["subscribed"] = False
        try:
            session()
        except Exit as e:
            return e.code
        except (OSError, http.client.HTTPException):
            pass  # the agent is away (restarting): retried below
        if not options["reconnect"]:
            if options.get("silent"):
                log("STAYING-SILENT")
                while True:
                    time.sleep(3600)
            return 1
        now = time.monotonic()
        if options["subscribed"] or disconnected_at is None:
            disconnected_at = now
            backoff = 0.1
        if now - disconnected_at > RECOVERY_TIMEOUT:
            log("RECOVERY-TIMEOUT")
            return 1
        time.sleep(random.uniform(0, backoff))
        backoff = min(backoff * 2, BACKOFF_MAX)


if __name__ == "__main__":
    sys.exit(main())
