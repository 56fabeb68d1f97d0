# retort sandbox session driver: a persistent interpreter for one trajectory.
# Protocol: the parent writes one JSON object per line on stdin, {"code": str, "max_output": int};
# the driver answers one JSON object per line on its original stdout. Cells run in one shared
# namespace; their stdout/stderr (including C-level writes) go to capture files in the work
# directory, and user code sees /dev/null as stdin. A final bare expression is echoed (repr).
import ast
import builtins
import json
import os
import sys
import traceback


def _read_capped(path, cap):
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError:
        return "", False
    return data[:cap].decode("utf-8", "replace"), len(data) > cap


def _run_cell(code, cap, ns, out_path, err_path):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    for fd, path in ((1, out_path), (2, err_path)):
        tmp = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(tmp, fd)
        os.close(tmp)
    exc_type = exc_message = None
    exit_code = None
    try:
        tree = ast.parse(code, "<cell>", "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<cell>", "exec"), ns)
        if last is not None:
            value = eval(compile(last, "<cell>", "eval"), ns)
            if value is not None:
                print(repr(value))
    except SystemExit as e:
        code_ = e.code
        exit_code = 0 if code_ is None else (code_ if isinstance(code_, int) else 1)
        if exit_code != 0:
            exc_type, exc_message = "SystemExit", str(code_)
    except BaseException as e:  # noqa: BLE001 - the cell's failure is the answer
        tb = e.__traceback__
        if tb is not None and tb.tb_frame.f_code is _run_cell.__code__:
            tb = tb.tb_next
        try:
            traceback.print_exception(type(e), e, tb)
        except Exception:
            pass
        exc_type, exc_message = type(e).__name__, str(e)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    stdout, out_trunc = _read_capped(out_path, cap)
    stderr, err_trunc = _read_capped(err_path, cap)
    return {
        "stdout": stdout,
        "stderr": stderr,
        "truncated": out_trunc or err_trunc,
        "exc_type": exc_type,
        "exc_message": exc_message,
        "exit_code": exit_code,
    }


def main():
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    here = os.getcwd()
    out_path = os.path.join(here, ".retort_cell_stdout")
    err_path = os.path.join(here, ".retort_cell_stderr")
    ns = {"__name__": "__main__", "__builtins__": builtins}
    del sys.argv[:]
    sys.argv.append("")
    proto_out.write(b'{"ready": true}\n')
    proto_out.flush()
    while True:
        line = proto_in.readline()
        if not line:
            return
        req = json.loads(line)
        reply = _run_cell(req["code"], int(req["max_output"]), ns, out_path, err_path)
        proto_out.write(json.dumps(reply).encode("utf-8") + b"\n")
        proto_out.flush()


main()
