"""The command line: dump (bytecode, IR, quickened IR, native code), coverage (static table
and --run counts) and demo, as a user runs them."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def tiered_cli(*args, cwd=None):
    # The CLI as a user runs it: default settings whatever path the suite runs on.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERED_")}
    return subprocess.run([sys.executable, "-m", "tiered", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "work.py"
    p.write_text(textwrap.dedent("""
        from tiered import tiered

        def total(xs):
            s = 0
            for x in xs:
                s += x
            return s

        if __name__ == "__main__":
            t = tiered(total)
            for _ in range(50):
                assert t(list(range(2000))) == sum(range(2000))
    """))
    return p


def test_dump_shows_ir_quickened_ir_and_native_code(script):
    r = tiered_cli("dump", f"{script}:total", "--call", "(list(range(100)),)", "--native")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "== bytecode of total ==" in out and "FOR_ITER" in out
    assert "== IR ==" in out and "ForIter" in out
    assert "ForIter[ForIterList]" in out and "Binary[BinaryInt]" in out
    assert "== Cranelift IR ==" in out and "== machine code ==" in out


def test_dump_quickened_ir_names_each_ops_own_variant(tmp_path):
    # Lowering puts releases (Drop instructions) between ops: each IR op must still show
    # the variant its own site quickened to, not a neighbour's.
    p = tmp_path / "rep.py"
    p.write_text(textwrap.dedent('''
        def double(x):
            return x * 2

        def rep(x, n):
            res = x
            while n:
                res += double(x)
                n -= 1
            return res
    '''))
    r = tiered_cli("dump", f"{p}:rep", "--call", "(7, 100)")
    assert r.returncode == 0, r.stderr
    quick = r.stdout.split("quickened IR ==")[1]
    assert "Call[CallPyFunction]" in quick and "Binary[BinaryInt] += " in quick, quick
    assert "Binary[BinaryInt] -= " in quick and "Truth[BinaryInt]" not in quick, quick


def test_dump_call_sees_the_module_and_runs_generators(tmp_path):
    # --call's expression is evaluated in the function's module, and a generator
    # function's generators are run to their end, so its body is quickened too.
    p = tmp_path / "tree.py"
    p.write_text(textwrap.dedent('''
        class Node:
            def __init__(self, left, value):
                self.left, self.value = left, value

        def walk(node):
            while node is not None:
                yield node.value
                node = node.left

        CHAIN = Node(Node(None, 2), 1)
    '''))
    r = tiered_cli("dump", f"{p}:walk", "--call", "(CHAIN,)")
    assert r.returncode == 0, r.stderr
    quick = r.stdout.split("quickened IR ==")[1]
    assert "LoadAttr[AttrInstanceValue] 'value'" in quick, quick


@pytest.mark.parametrize("kind", ["coroutine", "async generator"])
def test_dump_call_runs_coroutines_and_async_generators(tmp_path, kind):
    # A coroutine's or async generator's body runs only when awaited or iterated: --call
    # runs each to its end (in an event loop: it may await asyncio's own futures), so the
    # dump shows its body quickened, and no "never awaited" warning.
    p = tmp_path / "aio.py"
    p.write_text(textwrap.dedent('''
        import asyncio

        async def fib(n):
            if n <= 1:
                await asyncio.sleep(0)
                return n
            return await fib(n - 1) + await fib(n - 2)

        async def agen(n):
            i = 0
            while i < n:
                await asyncio.sleep(0)
                yield i - 1
                i += 1
    '''))
    name, args = ("fib", "(6,)") if kind == "coroutine" else ("agen", "(5,)")
    r = tiered_cli("dump", f"{p}:{name}", "--call", args, "--times", "20")
    assert r.returncode == 0, r.stderr
    assert "never awaited" not in r.stderr, r.stderr
    quick = r.stdout.split("quickened IR ==")[1]
    assert "Binary[BinaryInt] - " in quick, quick


def test_dump_bad_target_is_a_usage_error(script):
    r = tiered_cli("dump", f"{script}:nope")
    assert r.returncode == 2 and "nope" in r.stderr


def test_coverage_table_lists_every_op_with_its_tiers():
    r = tiered_cli("coverage", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    rows = {row["op"]: row for row in report["ops"]}
    assert "BINARY_OP" in rows["Binary"]["opcodes"]
    assert "BinaryInt" in rows["Binary"]["quickened"] and rows["Binary"]["native"]
    assert any(u["opcode"] == "PRINT_EXPR" for u in report["untranslated"])
    assert not any(u["opcode"] == "ASYNC_GEN_WRAP" for u in report["untranslated"])
    assert not any(u["opcode"] == "YIELD_VALUE" for u in report["untranslated"])


def test_coverage_run_counts_ops_per_tier(script):
    r = tiered_cli("coverage", "--run", str(script))
    assert r.returncode == 0, r.stderr
    assert "ops executed:" in r.stdout
    line = next(l for l in r.stdout.splitlines() if l.startswith("ops executed:"))
    # "ops executed: 1,234 in tier 1, 99,999 in tier 2"
    counts = [int(part.split(" in ")[0].replace(",", "")) for part in line.split(": ", 1)[1].split(", ") if " in " in part]
    assert counts[1] > 0, line  # the script's loop ran native code
    assert "no fallback calls" in r.stdout
