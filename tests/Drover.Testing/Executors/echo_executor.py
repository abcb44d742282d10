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
"""
import base64
import http.client
import json
import os
import sys
import uuid

ENDPOINT = os.environ["MESOS_AGENT_ENDPOINT"]
FRAMEWORK_ID = os.environ["MESOS_FRAMEWORK_ID"]
EXECUTOR_ID = os.environ["MESOS_EXECUTOR_ID"]
SANDBOX = os.environ.get("MESOS_SANDBOX", ".")
HOST, PORT = ENDPOINT.rsplit(":", 1)
running = {}


def log(line):
    with open(os.path.join(SANDBOX, "events.log"), "a") as f:
        f.write(line + "\n")
    print(line, flush=True)  # also in the sandbox's stdout, readable through the master's files API


def call(body):
    body["framework_id"] = {"value": FRAMEWORK_ID}
    body["executor_id"] = {"value": EXECUTOR_ID}
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=10)
    conn.request("POST", "/api/v1/executor", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    if resp.status != 202:
        log("CALL-FAILED %s %d %s" % (body["type"], resp.status, text))


def update(task_id, state, message=""):
    call({"type": "UPDATE", "update": {"status": {
        "task_id": {"value": task_id}, "state": state, "source": "SOURCE_EXECUTOR",
        "message": message, "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}}})


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


def main():
    conn = http.client.HTTPConnection(HOST, int(PORT))
    body = {"type": "SUBSCRIBE", "subscribe": {},
            "framework_id": {"value": FRAMEWORK_ID}, "executor_id": {"value": EXECUTOR_ID}}
    conn.request("POST", "/api/v1/executor", json.dumps(body),
                 {"Content-Type": "application/json", "Accept": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        log("SUBSCRIBE-FAILED %d %s" % (resp.status, resp.read().decode()))
        return 2
    for event in records(resp):
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            s = event["subscribed"]
            log("SUBSCRIBED %s %s" % (s["executor_info"]["executor_id"]["value"], s.get("container_id", {}).get("value", "")))
        elif kind == "LAUNCH":
            task = event["launch"]["task"]
            log("LAUNCH %s %s" % (task["task_id"]["value"], data_of(task)))
            if not start(task):
                return 3
        elif kind == "LAUNCH_GROUP":
            tasks = event["launch_group"]["task_group"]["tasks"]
            log("LAUNCH_GROUP %s" % " ".join("%s:%s" % (t["task_id"]["value"], data_of(t)) for t in tasks))
            for task in tasks:
                if not start(task):
                    return 3
        elif kind == "KILL":
            task_id = event["kill"]["task_id"]["value"]
            log("KILL %s" % task_id)
            if task_id in running and "ignore-kill" not in running[task_id]:
                del running[task_id]
                update(task_id, "TASK_KILLED", "killed by the executor")
        elif kind == "ACKNOWLEDGED":
            a = event["acknowledged"]
            log("ACKNOWLEDGED %s %s" % (a["task_id"]["value"], a["uuid"]))
        elif kind == "MESSAGE":
            data = event["message"]["data"]
            text = base64.b64decode(data).decode()
            log("MESSAGE %s" % text)
            if text.startswith("exit "):
                log("EXITING %s" % text[5:])
                return int(text[5:])
            call({"type": "MESSAGE", "message": {"data": data}})
        elif kind == "SHUTDOWN":
            log("SHUTDOWN")
            for task_id in list(running):
                update(task_id, "TASK_KILLED", "executor shut down")
            return 0
        elif kind == "HEARTBEAT":
            pass
        else:
            log("OTHER %s" % kind)
    log("STREAM-ENDED")
    return 1


if __name__ == "__main__":
    sys.exit(main())
