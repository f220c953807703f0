"""try/except/else/finally, raise forms, chaining, sys.exc_info(), except*,
exceptions crossing tiered/plain boundaries, and traceback lines."""

import sys

import pytest

from harness import cases, check, check_traceback
from tiered import stats, tiered


class MyError(Exception):
    def __init__(self, code, msg="custom"):
        super().__init__(code, msg)
        self.code = code

    def __str__(self):
        return f"MyError[{self.code}]"


class SubError(MyError):
    pass


def basic(x):
    try:
        r = 10 // x
    except ZeroDivisionError:
        r = "div by zero"
    return r


def multi_except(kind):
    try:
        if kind == 0:
            raise KeyError("k")
        if kind == 1:
            raise IndexError("i")
        if kind == 2:
            raise SubError(7)
        if kind == 3:
            raise TypeError("t")
        return "no error"
    except KeyError as e:
        return ("KeyError", e.args)
    except (IndexError, MyError) as e:
        return (type(e).__name__, str(e), getattr(e, "code", None))
    except Exception:
        return "generic"


def else_finally(x, log):
    try:
        log.append("try")
        if x:
            raise ValueError(x)
    except ValueError as e:
        log.append(("except", str(e)))
    else:
        log.append("else")
    finally:
        log.append("finally")
    log.append("after")
    return log


def as_name_deleted():
    e = "before"
    try:
        raise ValueError("v")
    except ValueError as e:  # noqa: F841
        pass
    return e  # noqa: F821


def as_name_deleted_on_return():
    try:
        raise ValueError("v")
    except ValueError as err:
        saved = err
    try:
        return err  # noqa: F821
    except UnboundLocalError as e:
        return saved.args, str(e)


def bare_reraise():
    try:
        try:
            raise KeyError("inner")
        except KeyError:
            raise
    except KeyError as e:
        return ("reraised", e.args, e.__context__)


def bare_raise_no_active():
    raise


def raise_from(x):
    try:
        1 / x
    except ZeroDivisionError as e:
        raise ValueError("wrapped") from e


def raise_from_none():
    try:
        {}["k"]
    except KeyError:
        raise ValueError("clean") from None


def raise_from_bad():
    raise ValueError("x") from 5


def raise_from_class():
    raise ValueError("x") from KeyError


def raise_class():
    raise KeyError


def raise_non_exception():
    raise 42


def raise_non_exception_class():
    raise int


def raise_exception_instance_reused(log):
    e = ValueError("reused")
    for i in range(2):
        try:
            raise e
        except ValueError as caught:
            log.append((caught is e, len(str(caught))))
    return log


def error_in_except():
    try:
        raise KeyError("first")
    except KeyError:
        raise ValueError("second")


def error_in_finally():
    try:
        raise KeyError("first")
    finally:
        raise ValueError("from finally")


def error_in_else():
    try:
        pass
    except Exception:
        return "no"
    else:
        raise RuntimeError("in else")


def error_in_finally_after_return():
    try:
        return "value"
    finally:
        raise IndexError("finally wins")


def return_in_finally_swallows():
    try:
        raise ValueError("lost")
    finally:
        return "swallowed"  # noqa: B012


def break_in_finally_swallows():
    for i in range(3):
        try:
            raise ValueError(i)
        finally:
            break  # noqa: B012
    return ("broke", i)


def continue_in_finally_swallows(log):
    for i in range(3):
        try:
            raise ValueError(i)
        finally:
            log.append(i)
            continue  # noqa: B012
    return log


def context_chain_three():
    try:
        try:
            raise KeyError("a")
        except KeyError:
            raise IndexError("b")
    except IndexError:
        raise ValueError("c")


def explicit_context_overwrite():
    try:
        raise KeyError("a")
    except KeyError:
        e = ValueError("b")
        e.__context__ = None
        raise e


def exc_info_states(log):
    log.append(sys.exc_info()[0])
    try:
        raise KeyError("k")
    except KeyError:
        log.append(sys.exc_info()[0])
        try:
            raise ValueError("v")
        except ValueError:
            log.append(sys.exc_info()[0])
        log.append(sys.exc_info()[0])
    log.append(sys.exc_info()[0])
    try:
        try:
            raise IndexError("i")
        finally:
            log.append(("in finally", sys.exc_info()[0]))
    except IndexError:
        pass
    log.append(sys.exc_info()[0])
    return [getattr(t, "__name__", t) if not isinstance(t, tuple) else t for t in log]


def exc_info_in_callee():
    def peek():
        return sys.exc_info()[0]
    try:
        raise TypeError("t")
    except TypeError:
        inside = peek()
    return inside, peek()


def exc_info_caller_state():
    # a handled exception of the caller is visible to the tiered callee
    try:
        raise LookupError("caller")
    except LookupError:
        return _peek_exc_info()


def _peek_exc_info():
    return sys.exc_info()[0]


def nested_try(x):
    log = []
    try:
        try:
            if x == 1:
                raise KeyError(x)
            if x == 2:
                raise ValueError(x)
        except KeyError:
            log.append("inner KeyError")
            raise IndexError("converted")
        finally:
            log.append("inner finally")
    except (IndexError, ValueError) as e:
        log.append(("outer", type(e).__name__, type(e.__context__).__name__))
    finally:
        log.append("outer finally")
    return log


def exception_attrs():
    try:
        raise MyError(3, "three")
    except MyError as e:
        return (e.args, e.code, str(e), repr(e), isinstance(e, Exception), e.__traceback__ is not None)


def exception_tb_lines():
    try:
        x = [1]
        x[5]
    except IndexError as e:
        tb = e.__traceback__
        return tb.tb_lineno - exception_tb_lines.__code__.co_firstlineno, tb.tb_frame.f_code.co_name


def loop_with_handlers(xs):
    out = []
    for x in xs:
        try:
            try:
                out.append(int(x))
            except ValueError:
                out.append(float(x))
        except (ValueError, TypeError) as e:
            out.append(type(e).__name__)
            if x is None:
                break
        else:
            out.append("ok")
    return out


def stop_iteration_handling():
    it = iter([1])
    next(it)
    try:
        next(it)
    except StopIteration as e:
        return ("stop", e.value, e.args)


def system_exit():
    raise SystemExit(3)


def catch_base_exception():
    try:
        raise SystemExit("bye")
    except BaseException as e:
        return type(e).__name__, e.code


def exception_in_comprehension_caught():
    try:
        return [1 // x for x in (1, 0)]
    except ZeroDivisionError as e:
        return ("caught", str(e))


def except_star(kind):
    log = []
    try:
        if kind == 0:
            raise ExceptionGroup("eg", [ValueError(1), TypeError(2), ValueError(3)])
        if kind == 1:
            raise ValueError("naked")
        if kind == 2:
            raise ExceptionGroup("eg", [KeyError("unhandled")])
    except* ValueError as eg:
        log.append(("ValueError", [str(e) for e in eg.exceptions]))
    except* TypeError as eg:
        log.append(("TypeError", [str(e) for e in eg.exceptions]))
    return log


def except_star_reraise():
    try:
        try:
            raise ExceptionGroup("outer", [ValueError("a"), KeyError("b")])
        except* ValueError:
            pass
    except ExceptionGroup as eg:
        return (str(eg), [repr(e) for e in eg.exceptions])


def _raise_value(x):
    raise ValueError(f"level {x}")


_tiered_raise = tiered(_raise_value)


def _plain_between(x):
    try:
        return _tiered_raise(x)
    except ValueError as e:
        raise RuntimeError("plain layer") from e


def crossing_layers(x):
    try:
        _plain_between(x)
    except RuntimeError as e:
        return (str(e), str(e.__cause__), type(e.__cause__).__name__, e.__suppress_context__)


def exception_escapes_through_layers(x):
    return _plain_between(x)


CASES = cases(
    (basic, (2,)), (basic, (0,)), (basic, ("x",)), *[(multi_except, (k,)) for k in range(5)],
    (else_finally, (0, [])), (else_finally, (1, [])), (as_name_deleted, ()), (as_name_deleted_on_return, ()),
    (bare_reraise, ()), (bare_raise_no_active, ()), (raise_from, (0,)), (raise_from, (1,)), (raise_from_none, ()),
    (raise_from_bad, ()), (raise_from_class, ()), (raise_class, ()), (raise_non_exception, ()),
    (raise_non_exception_class, ()), (raise_exception_instance_reused, ([],)), (error_in_except, ()),
    (error_in_finally, ()), (error_in_else, ()), (error_in_finally_after_return, ()),
    (return_in_finally_swallows, ()), (break_in_finally_swallows, ()), (continue_in_finally_swallows, ([],)),
    (context_chain_three, ()), (explicit_context_overwrite, ()), (exc_info_states, ([],)),
    (exc_info_in_callee, ()), (exc_info_caller_state, ()), (nested_try, (0,)), (nested_try, (1,)),
    (nested_try, (2,)), (exception_attrs, ()), (exception_tb_lines, ()),
    (loop_with_handlers, (["1", "2.5", "x", [], None, "3"],)), (stop_iteration_handling, ()), (system_exit, ()),
    (catch_base_exception, ()), (exception_in_comprehension_caught, ()),
    (except_star, (0,)), (except_star, (1,)), (except_star, (2,)), (except_star, (3,)), (except_star_reraise, ()),
    (crossing_layers, (1,)), (exception_escapes_through_layers, (2,)),
)


@pytest.mark.parametrize("f,args,kwargs", CASES)
def test_exceptions(f, args, kwargs):
    check(f, *args, **kwargs)


def test_tiered_callee_inside_layers_ran_in_tier1():
    check(crossing_layers, 5)
    s = stats(_tiered_raise)
    assert s["interp_calls"] + s["native_calls"] >= 1 and s["fallback_calls"] == 0, s


def raise_on_line(x):
    y = x + 1
    if y > 1:
        raise ValueError("line check")
    return y


def raise_in_loop(xs):
    total = 0
    for x in xs:
        total += 100 // x
    return total


def raise_in_callee():
    return _raise_value("callee")


def reraise_line():
    try:
        {}["missing"]
    except KeyError:
        raise


def raise_in_finally_line():
    try:
        pass
    finally:
        [][0]


def raise_in_nested_call_args():
    return max(
        1,
        int("not a number"),
    )


def recursive_raise(n):
    if n == 0:
        raise ValueError("bottom")
    return recursive_raise(n - 1)


@pytest.mark.parametrize("f,args", [
    (raise_on_line, (5,)), (raise_in_loop, ([1, 2, 0],)), (raise_in_callee, ()), (reraise_line, ()),
    (raise_in_finally_line, ()), (raise_in_nested_call_args, ()), (raise_from, (0,)), (error_in_finally, ()),
    (context_chain_three, ()), (recursive_raise, (3,)), (exception_escapes_through_layers, (1,)),
], ids=lambda v: getattr(v, "__name__", None))
def test_traceback_lines(f, args):
    check_traceback(f, *args)
