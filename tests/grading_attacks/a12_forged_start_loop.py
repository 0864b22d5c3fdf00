# ruff: noqa
# The answer process holds the grader's event token (an argument of answer_process.main): a forged "start" of an
# exercise that does not exist, then exit. Expect: the grader retries the same job forever.
BEFORE = {
    "conv": [
        """class _Setup:
    import json as _json, os as _os, sys as _sys
    _f = _sys._getframe()
    while _f is not None and not ("token" in _f.f_locals and "channel" in _f.f_locals):
        _f = _f.f_back
    if _f is not None:
        _f.f_locals["channel"].send_bytes((_f.f_locals["token"] + _json.dumps({"start": "nothing"})).encode())
        _os._exit(0)
"""
    ]
}
