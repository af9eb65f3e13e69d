"""schemathesis hooks of scripts/schemathesis.sh (loaded through schemathesis.toml).

CPython 3.11 before 3.11.9 (gh-106905) can fail `ast.parse` with "SystemError: AST constructor
recursion depth mismatch" when it is called deep in a stack. Hypothesis calls it from deep
inside the fuzzer to describe its own strategies, and the run then ends in a runtime error that
says nothing about the API. The same parse in a fresh thread (a shallow stack) succeeds: do that
then. Nothing else is changed.
"""

import ast
import threading

_parse = ast.parse


def _parse_on_a_shallow_stack(*args, **kwargs):
    try:
        return _parse(*args, **kwargs)
    except SystemError:
        outcome = {}

        def run():
            try:
                outcome["tree"] = _parse(*args, **kwargs)
            except BaseException as error:  # handed back to the caller below
                outcome["error"] = error

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["tree"]


ast.parse = _parse_on_a_shallow_stack
