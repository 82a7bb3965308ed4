"""Sample handlers for the runtime tests (imported by the runtime under test, never by pytest)."""

import asyncio
import logging
import os
import sys
import threading
import time

print("BASIC-MODULE-IMPORTED", flush=True)  # Init must run exactly once per process

INIT_TIME = time.time()
INIT_THREAD = threading.get_ident()
COUNT = 0
NOT_CALLABLE = 42
_LOOPS = []


def count(event, context):
    global COUNT
    COUNT += 1
    return {"count": COUNT, "initTime": INIT_TIME}


def echo(event, context):
    return event


def none(event, context):
    return None


def threads(event, context):
    return {"init": INIT_THREAD, "handler": threading.get_ident(), "main": threading.main_thread().ident}


async def async_echo(event, context):
    await asyncio.sleep(0.01)
    _LOOPS.append(id(asyncio.get_running_loop()))
    return {
        "event": event,
        "thread": threading.get_ident(),
        "init": INIT_THREAD,
        "sameLoopAsBefore": len(set(_LOOPS)) == 1,
        "requestId": context.aws_request_id,
    }


def _fields(obj):
    """An object of the context as {"type": class name, its slots...}; None as None."""
    if obj is None:
        return None
    out = {"type": type(obj).__name__}
    for name in type(obj).__slots__:
        value = getattr(obj, name)
        out[name] = _fields(value) if hasattr(type(value), "__slots__") and value is not None else value
    return out


def context_info(event, context):
    return {
        "aws_request_id": context.aws_request_id,
        "request_id": context.request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "client_context": _fields(context.client_context),
        "identity": _fields(context.identity),
        "tenant_id": context.tenant_id,
        "timeout_seconds": context.timeout_seconds,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def lambda_style(event, context):
    """What a handler written for Lambda reads: attributes of the context's objects."""
    cc = context.client_context
    return {
        "custom": cc.custom if cc else None,
        "env": cc.env if cc else None,
        "installation_id": cc.client.installation_id if cc and cc.client else None,
        "app_title": cc.client.app_title if cc and cc.client else None,
        "cognito_identity_id": context.identity.cognito_identity_id,
        "cognito_identity_pool_id": context.identity.cognito_identity_pool_id,
        "account": context.invoked_function_arn.split(":")[4]
        if context.invoked_function_arn.startswith("arn:")
        else None,
        "invoked_function_arn": context.invoked_function_arn,
        "memory": int(context.memory_limit_in_mb),
    }


def slow(event, context):
    print(f"SLOW-START {context.aws_request_id}", flush=True)
    time.sleep(event.get("seconds", 0.5))
    return {"slept": event.get("seconds", 0.5)}


def boom(event, context):
    raise ValueError(f"boom: {event.get('why')}")


def chatty(event, context):
    print(f"hello from print {context.aws_request_id}")
    print("hello from stderr", file=sys.stderr)
    logging.getLogger("app").warning("a warning via logging")
    return "ok"


def flood(event, context):
    for i in range(event["lines"]):
        print(f"line {i:05d} " + "x" * 60)
    return event["lines"]


def unserialisable(event, context):
    return {1, 2, 3}


def exits(event, context):
    sys.exit(3)


def env(event, context):
    return {key: os.environ.get(key) for key in event["keys"]}


async def async_boom(event, context):
    await asyncio.sleep(0)
    raise LookupError("async failure")


def closes_stdout(event, context):
    """Closes sys.stdout (the runtime's tee), then prints: the pod log must survive."""
    sys.stdout.close()
    print(f"after close {context.aws_request_id}")
    return "closed"
