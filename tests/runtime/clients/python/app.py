"""A handler run by awslambdaric (PyPI), Lambda's own Python runtime interface client."""

import os
import time
import uuid

instance_id = str(uuid.uuid4())  # module level: once per environment
count = 0


def handler(event, context):
    global count
    count += 1
    print("awslambdaric handler got", event)
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("sleepMs"):
        time.sleep(event["sleepMs"] / 1000)
    custom = context.client_context.custom if context.client_context else None
    return {
        "instanceId": instance_id,
        "count": count,
        "pid": os.getpid(),
        "requestId": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remainingMs": context.get_remaining_time_in_millis(),
        "custom": custom,
        "functionName": context.function_name,
        "memory": context.memory_limit_in_mb,
    }
