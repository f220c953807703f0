"""`with` statements: suppressing and non-suppressing context managers, the
arguments __exit__ receives, errors in __enter__/__exit__, non context
managers."""

import contextlib

import pytest

from harness import cases, check


class CM:
    """Logs enter/exit; __exit__ logs exactly what it received."""

    def __init__(self, log, name="cm", suppress=False, enter_value="entered", fail_enter=False, fail_exit=False):
        self.log = log
        self.name = name
        self.suppress = suppress
        self.enter_value = enter_value
        self.fail_enter = fail_enter
        self.fail_exit = fail_exit

    def __enter__(self):
        self.log.append(("enter", self.name))
        if self.fail_enter:
            raise RuntimeError(f"enter failed: {self.name}")
        return self.enter_value

    def __exit__(self, et, ev, tb):
        self.log.append(("exit", self.name, et.__name__ if et else None, str(ev) if ev is not None else None,
                         type(tb).__name__, tb.tb_lineno if tb is not None else None,
                         tb.tb_frame.f_code.co_name if tb is not None else None))
        if self.fail_exit:
            raise KeyError(f"exit failed: {self.name}")
        return self.suppress

    def __repr__(self):
        return f"CM({self.name!r})"


def with_plain(log):
    with CM(log) as v:
        log.append(("body", v))
    return log


def with_exception_not_suppressed(log):
    with CM(log):
        log.append("body")
        raise ValueError("from body")


def with_exception_suppressed(log):
    with CM(log, suppress=True):
        raise ValueError("suppressed")
    log.append("after")
    return log


def with_truthy_suppress(log):
    with CM(log, suppress=1):
        raise ValueError("suppressed by 1")
    with CM(log, suppress="yes"):
        raise ValueError("suppressed by 'yes'")
    with CM(log, suppress=[]):
        pass
    return log


def with_enter_fails(log):
    with CM(log, fail_enter=True):
        log.append("never")


def with_exit_fails(log, raise_in_body):
    with CM(log, fail_exit=True):
        if raise_in_body:
            raise ValueError("body")


def with_nested(log):
    with CM(log, "outer") as a, CM(log, "inner") as b:
        log.append(("body", a, b))
        raise IndexError("nested")


def with_nested_inner_suppresses(log):
    with CM(log, "outer"):
        with CM(log, "inner", suppress=True):
            raise IndexError("nested")
        log.append("after inner")
    return log


def with_return(log):
    with CM(log):
        return "from with"


def with_break_continue(log):
    for i in range(4):
        with CM(log, str(i)):
            if i == 1:
                continue
            if i == 2:
                break
            log.append(("body", i))
    return log


def with_as_unpack(log):
    with CM(log, enter_value=(1, [2, 3])) as (a, [b, c]):
        return a + b + c


class Holder:
    pass


def with_as_attr(log):
    h = Holder()
    with CM(log, enter_value="v") as h.attr:
        pass
    return h.attr


def with_in_try(log):
    try:
        with CM(log):
            raise KeyError("k")
    except KeyError as e:
        log.append(("caught", e.args))
    finally:
        log.append("finally")
    return log


def with_exception_in_loop(log):
    for i in range(3):
        with CM(log, str(i), suppress=(i % 2 == 0)):
            if i:
                raise ValueError(i)
    return log


def with_not_cm():
    with 1:
        pass


class EnterOnly:
    def __enter__(self):
        return self


class ExitOnly:
    def __exit__(self, *a):
        return False


def with_enter_only():
    with EnterOnly():
        pass


def with_exit_only():
    with ExitOnly():
        pass


def with_none():
    with None:
        pass


@contextlib.contextmanager
def gen_cm(log, suppress):
    log.append("gen enter")
    try:
        yield "gen value"
    except ValueError as e:
        log.append(("gen caught", str(e)))
        if not suppress:
            raise
    finally:
        log.append("gen finally")


def with_contextmanager(log, raise_, suppress):
    with gen_cm(log, suppress) as v:
        log.append(v)
        if raise_:
            raise ValueError("in body")
    return log


def with_suppress_and_redirect(log):
    import io
    buf = io.StringIO()
    with contextlib.suppress(KeyError):
        {}["x"]
    with contextlib.redirect_stdout(buf):
        print("captured")
    log.append(buf.getvalue())
    with contextlib.ExitStack() as stack:
        stack.callback(log.append, "exit stack callback")
    return log


def with_exit_sees_context(log):
    try:
        raise KeyError("outer")
    except KeyError:
        with CM(log):
            raise ValueError("inner")


def with_file_like(tmp_text):
    import io
    with io.StringIO(tmp_text) as f:
        lines = [line.strip() for line in f]
    return lines, f.closed


CASES = cases(
    (with_plain, ([],)), (with_exception_not_suppressed, ([],)), (with_exception_suppressed, ([],)),
    (with_truthy_suppress, ([],)), (with_enter_fails, ([],)), (with_exit_fails, ([], False)),
    (with_exit_fails, ([], True)), (with_nested, ([],)), (with_nested_inner_suppresses, ([],)),
    (with_return, ([],)), (with_break_continue, ([],)), (with_as_unpack, ([],)), (with_as_attr, ([],)),
    (with_in_try, ([],)), (with_exception_in_loop, ([],)), (with_not_cm, ()), (with_enter_only, ()),
    (with_exit_only, ()), (with_none, ()), (with_exit_sees_context, ([],)), (with_file_like, ("a\nb\n",)),
    (with_suppress_and_redirect, ([],)),
)


@pytest.mark.parametrize("f,args,kwargs", CASES)
def test_with(f, args, kwargs):
    check(f, *args, **kwargs)


# contextlib.contextmanager drives a generator: the generator may run in
# CPython, the function using `with` must still run in tier 1.
@pytest.mark.genexpr
@pytest.mark.parametrize("f,args,kwargs", cases(
    (with_contextmanager, ([], False, False)), (with_contextmanager, ([], True, False)),
    (with_contextmanager, ([], True, True)),
))
def test_with_generator_based(f, args, kwargs):
    check(f, *args, **kwargs)
