# A program on which tiered and CPython differed, found by the fuzzer
# (seed 9314, path native-first-call, mismatch); minimized.
# Replayed on every path by tests/python/test_fuzz.py.
# FUZZ-ARGS: ["(3, 'ab', [1, 2, 3])"]
# What differed:
#   call 0: references to the arguments after differs
#     from item 0 (CPython 1 items, tiered 1):
#     CPython [0:] [4]
#     tiered  [0:] [12]
class K0:

    @T
    def __init__(self, a0, b0):
        self.b0 = b0

@T
def entry(entry_p0, entry_p1, entry_p2):
    if entry_p1.replace('日本', 'a') <= entry_p1:
        x66 = K0(('src', 0), entry_p2)
        for i67 in range(12):
            if i67 % 4 == 1:
                x64 = x66 is None
            else:
                x64 = x66.b0
            del x64
    else:
        pass