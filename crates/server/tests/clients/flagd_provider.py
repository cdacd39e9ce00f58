"""The published OpenFeature Python SDK with the published flagd provider
(`openfeature-provider-flagd`), unchanged, as a client of a running Switchyard server:
with the RPC resolver it evaluates over flagd.evaluation.v2; in process it syncs flag
definitions over flagd.sync.v1 and evaluates them with flagd's own engine. Driven by
crates/server/tests/flagd_python.rs.

    python3 flagd_provider.py --port PORT --resolver rpc|in-process --cases CASES.json [--watch KEY]

CASES.json is a list of {"name", "key", "type" (boolean|string|float|integer|object),
"default", "context": {"targetingKey": ..., attributes...}}. Prints the line
`initial {name: {value, reason, variant, error_code}}` (JSON after the word); with
--watch, then waits (up to 60 s) for a configuration change naming KEY (from the
provider's EventStream, or its sync stream in process) after which an answer differs,
and prints `changed {"flags": [...], "results": {...}}` with the cases re-evaluated. Exits 2 when the package is missing, 3 on no change."""
import argparse
import json
import sys
import threading
import time

try:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import ProviderEvent
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import CacheType, ResolverType
except ImportError as error:
    print(f"FATAL: {error}: install openfeature-provider-flagd (scripts/test.sh does)", file=sys.stderr)
    sys.exit(2)


def evaluate(client, cases):
    results = {}
    for case in cases:
        context = dict(case.get("context") or {})
        targeting_key = context.pop("targetingKey", None)
        ctx = EvaluationContext(targeting_key=targeting_key, attributes=context)
        method = {
            "boolean": client.get_boolean_details,
            "string": client.get_string_details,
            "float": client.get_float_details,
            "integer": client.get_integer_details,
            "object": client.get_object_details,
        }[case["type"]]
        details = method(case["key"], case["default"], ctx)
        results[case["name"]] = {
            "value": details.value,
            "reason": str(details.reason.value if hasattr(details.reason, "value") else details.reason)
            if details.reason is not None else None,
            "variant": details.variant,
            "error_code": details.error_code.value if details.error_code is not None else None,
        }
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cases", required=True)
    parser.add_argument("--watch")
    parser.add_argument("--resolver", choices=["rpc", "in-process"], default="rpc")
    args = parser.parse_args()
    with open(args.cases) as f:
        cases = json.load(f)

    changed = threading.Event()
    seen = []

    def on_change(details):
        flags = list(details.flags_changed or [])
        seen.extend(flags)
        if args.watch in flags:
            changed.set()

    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    provider = FlagdProvider(
        host="127.0.0.1",
        port=args.port,
        resolver_type=ResolverType.RPC if args.resolver == "rpc" else ResolverType.IN_PROCESS,
        cache=CacheType.DISABLED,
        deadline_ms=10_000,
    )
    api.set_provider_and_wait(provider)
    client = api.get_client()
    initial = evaluate(client, cases)
    print("initial " + json.dumps(initial), flush=True)
    if args.watch:
        # A change naming KEY that changes an answer: a provider may also report the
        # configuration it connected with as a change.
        deadline = time.monotonic() + 60
        while True:
            if not changed.wait(max(0.0, deadline - time.monotonic())):
                print(f"no configuration change naming {args.watch} that changes an answer within 60 s (saw {seen})", file=sys.stderr)
                sys.exit(3)
            changed.clear()
            results = evaluate(client, cases)
            if results == initial:
                continue
            # The provider may apply a configuration while the cases are evaluated:
            # wait until two passes in a row agree.
            while True:
                again = evaluate(client, cases)
                if again == results:
                    break
                results = again
            break
        print("changed " + json.dumps({"flags": seen, "results": results}), flush=True)
    api.shutdown()


if __name__ == "__main__":
    main()
