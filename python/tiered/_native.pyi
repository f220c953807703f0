"""Type stubs for the Rust extension module ``tiered._native`` (bindings/)."""

from collections.abc import Callable
from types import CellType, CodeType, MethodType
from typing import Any, Generic, ParamSpec, TypedDict, TypeVar, final, overload

_P = ParamSpec("_P")
_R_co = TypeVar("_R_co", covariant=True)
_T = TypeVar("_T")

class UnsupportedError(Exception):
    """Raised in strict mode where tiered would otherwise fall back to CPython."""

@final
class TieredFunction(Generic[_P, _R_co]):
    """A Python function compiled by tiered; calls it through tiered's tiers."""

    __wrapped__: Callable[_P, _R_co]
    __name__: str
    __qualname__: str
    __module__: str
    __doc__: str | None
    __dict__: dict[str, Any]
    # Forwarded to the wrapped function.
    __defaults__: tuple[Any, ...] | None
    __kwdefaults__: dict[str, Any] | None
    __annotations__: dict[str, Any]
    @property
    def __code__(self) -> CodeType: ...
    @property
    def __globals__(self) -> dict[str, Any]: ...
    @property
    def __closure__(self) -> tuple[CellType, ...] | None: ...
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...
    @overload
    def __get__(self: _T, instance: None, owner: type | None = None, /) -> _T: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None, /) -> MethodType: ...
    def __reduce__(self) -> str: ...

class UnsupportedOp(TypedDict):
    op: str
    reason: str

class Stats(TypedDict):
    calls: int
    fallback_calls: int
    interp_calls: int
    native_calls: int
    deopts: int
    resumes: int
    native_resumes: int
    cpython_resumes: int
    unsupported: list[UnsupportedOp]
    last_fallback: str | None
    native_entry: bool
    native_compiles: int
    compile_ms: float
    code_bytes: int
    code_by_kind: dict[str, tuple[int, int]]
    native_entries: list[str]

class CoverageRow(TypedDict):
    op: str
    family: str
    doc: str
    opcodes: list[str]
    interpreted: bool
    quickened: list[str]
    native: list[str]

class UntranslatedOpcode(TypedDict):
    opcode: str
    reason: str

class TierCounts(TypedDict):
    tier1: int
    tier2: int
    deopts: int

def jit(
    func: Callable[_P, _T],
    strict: bool = ...,
    quicken: bool | None = ...,
    jit: bool | None = ...,
    jit_threshold: int | None = ...,
    osr_threshold: int | None = ...,
) -> TieredFunction[_P, _T]:
    """Wrap a plain Python function; TypeError for anything else."""

def stats(f: TieredFunction[..., Any]) -> Stats:
    """Call counters and unsupported ops of one tiered function."""

def dump(func: Callable[..., Any], native: bool = ...) -> str: ...
    """The bytecode listing beside the IR, for a plain or a tiered function."""

def coverage_table() -> list[CoverageRow]:
    """One row per IR op: the CPython opcodes it covers and which tiers run it."""

def untranslated_opcodes() -> list[UntranslatedOpcode]:
    """CPython opcodes that become Unsupported, with the reason."""

def set_counting(enabled: bool) -> None:
    """Turn the per-op execution counters on or off (off by default)."""

def op_counts() -> dict[str, TierCounts]:
    """Per-op execution counts since the last reset_counts(), by tier."""

def fallback_reasons() -> dict[str, int]:
    """Number of fallback calls per reason since the last reset_counts()."""

def reset_counts() -> None:
    """Zero the per-op counters and the fallback reasons."""
