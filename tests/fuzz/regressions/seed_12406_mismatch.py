# A program on which tiered and CPython differed, found by the fuzzer
# (seed 12406, path tier1-generic, mismatch); minimized.
# Replayed on every path by tests/python/test_fuzz.py.
# FUZZ-ARGS: ["(2**65, 'q', [2**64, -3, 7])"]
# What differed:
#   call 0: value/exception differs (at the fuzzer's recursion limit of 3,000)
#     CPython ('builtins.RecursionError', 'maximum recursion depth exceeded in comparison', ...)
#     tiered  ('builtins.RecursionError', 'maximum recursion depth exceeded', ...)
#   Tier 1 ran out of native stack about 2,300 levels deep, before the limit; CPython's
#   frame at the limit raises in range()'s own comparison. Fixed by segments of stack.
@T
def f1(f1_p0):
    for i17 in range(1, 6):
        for i31 in range(6):
            v32 = helper0(i17)
    f1_p0 -= f1_p0 % (f1_p0 or 1)

@T
def entry(entry_p0, entry_p1, entry_p2):
    global G0, helper0
    n101 = 0
    n106 = 0
    while n106 < 2:
        v107 = {c108: c108 * n101 for c108 in [entry_p0] * 0}
        if n101 < entry_p0 <= 1e+300 + entry_p0:
            if len(v107) < len(entry_p2):
                helper0 = f1
        v112 = helper0(max(abs(entry_p0) or 1, -1))