# A program on which tiered and CPython differed, found by the fuzzer
# (seed 5005, path native-first-call, mismatch); minimized.
# Replayed on every path by tests/python/test_fuzz.py.
# FUZZ-ARGS: ["(3, 'ab', [1, 2, 3])"]
# What differed:
#   call 0: objects released (GDEL) during the call differs
#     from item 21 (CPython 121 items, tiered 110):
#     CPython [19:] ["('K0', ('x', 4))", "('K0', ('v', 4))", "('K0', ('x', 5))", "('K0', ('link', 5))", "('K0', ('src', 0))"]
#     tiered  [19:] ["('K0', ('x', 4))", "('K0', ('v', 4))", "('K0', ('link', 5))", "('K0', ('src', 0))", "('K0', ('v', 5))"]
class K0:

    @T
    def __init__(self, a0, b0):
        self.b0 = b0

@T
def entry(entry_p0, entry_p1, entry_p2):
    for i51 in entry_p2:
        for i55 in range(6):
            x52 = K0(('x', i55), entry_p2)
            if i55 % 4 == 1:
                x52 = i55 + 0.5