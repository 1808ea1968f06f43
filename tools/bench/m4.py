"""Run functions of a Cortex-M4 ELF under unicorn and count their instructions exactly.

A reusable harness: build C for Cortex-M4 with arm-none-eabi-gcc (`build_m4_elf`), load the
ELF (`M4Machine`), place arguments in emulated memory (`alloc`, `write`), call any function by
symbol (`call`) and read results back (`read`). Integer and pointer arguments follow the AAPCS
(r0-r3, then the stack); the hard-float ABI is used, and the FPU is available from the start.

    machine = M4Machine(build_m4_elf([...sources], out=Path("build/bench/x.elf")))
    src = machine.alloc(window_bytes)
    dst = machine.alloc(64)
    result = machine.call("backbone_embed_int8", src, dst)
    print(result.return_value, result.instructions, machine.read(dst, 48))

Instruction counts: every Thumb instruction of every translation block the emulator executes,
counted from each block's bytes (16- or 32-bit encodings), so the count is exact and the same
on every run. Conditional instructions skipped inside an IT block still count, as they take
an issue slot on the real core. Counts exclude nothing the callee executes (libc included).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from unicorn import UC_ARCH_ARM, UC_HOOK_BLOCK, UC_MODE_MCLASS, UC_MODE_THUMB, Uc, UcError
from unicorn.arm_const import UC_ARM_REG_LR, UC_ARM_REG_PC, UC_ARM_REG_R0, UC_ARM_REG_SP

from model_gen.refgen import M4_CFLAGS

M4_FLAGS = M4_CFLAGS  # the flags the generated backbone's flash size is measured with
PAGE = 0x1000
# Regions the M-profile memory map lets code execute from (0x40000000+ is execute-never).
RETURN_STUB = 0x1FFF_0000  # the callee "returns" here; emulation stops at this address
STACK_TOP = 0x2004_0000
STACK_SIZE = 0x0004_0000
HEAP_BASE = 0x3000_0000
HEAP_SIZE = 0x0040_0000
ARG_REGS = 4


class M4Error(RuntimeError):
    """The emulated call faulted, or the ELF cannot be loaded or built."""


@dataclass(frozen=True)
class CallResult:
    return_value: int  # r0 as an unsigned 32-bit value
    instructions: int


def build_m4_elf(
    sources: Sequence[Path],
    out: Path,
    include_dirs: Sequence[Path] = (),
    keep: Sequence[str] = (),
    flags: Sequence[str] = M4_FLAGS,
    libs: Sequence[str] = (),
) -> Path:
    """Compile and link `sources` into a Cortex-M4 ELF without startup code (newlib-nano for
    libc calls). `keep` names functions that must survive --gc-sections."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        raise M4Error("arm-none-eabi-gcc not found (Debian package gcc-arm-none-eabi)")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        gcc,
        *flags,
        *(f"-I{d}" for d in include_dirs),
        *map(str, sources),
        "-nostartfiles",
        "-specs=nano.specs",
        "-specs=nosys.specs",
        "-Wl,--gc-sections",
        *(f"-Wl,--undefined={name}" for name in keep),
        *([f"-Wl,-e,{keep[0]}"] if keep else []),
        "-o",
        str(out),
        *libs,  # after the objects, so the linker resolves what they need
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise M4Error(f"Cortex-M4 build failed:\n{' '.join(cmd)}\n{result.stderr}")
    return out


def _thumb_instruction_count(code: bytes) -> int:
    """Instructions in a run of Thumb code: a halfword whose top five bits are 0b11101,
    0b11110 or 0b11111 starts a 32-bit instruction, any other a 16-bit one."""
    count, i = 0, 0
    while i + 1 < len(code):
        top = code[i + 1] >> 3
        i += 4 if top in (0b11101, 0b11110, 0b11111) else 2
        count += 1
    return count


class M4Machine:
    """One loaded ELF in an emulated Cortex-M4F; `call` may be used any number of times."""

    def __init__(self, elf_path: Path, count_instructions: bool = True) -> None:
        """count_instructions=False runs without the per-block hook (several times faster, for
        equivalence tests); `call` then reports 0 instructions."""
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self.symbols: dict[str, int] = {}
        self._load(Path(elf_path))
        self.uc.mem_map(RETURN_STUB, PAGE)
        self.uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE)
        self.uc.mem_map(HEAP_BASE, HEAP_SIZE)
        self._heap_next = HEAP_BASE
        self._block_sizes: dict[tuple[int, int], int] = {}
        self._executed = 0
        if count_instructions:
            self.uc.hook_add(UC_HOOK_BLOCK, self._on_block)

    def _load(self, elf_path: Path) -> None:
        with elf_path.open("rb") as handle:
            elf = ELFFile(handle)
            if elf["e_machine"] != "EM_ARM":
                raise M4Error(f"{elf_path} is not an ARM ELF")
            mapped: set[int] = set()
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                    continue
                start = seg["p_vaddr"] // PAGE * PAGE
                end = -(-(seg["p_vaddr"] + seg["p_memsz"]) // PAGE) * PAGE
                for page in range(start, end, PAGE):
                    if page not in mapped:
                        self.uc.mem_map(page, PAGE)
                        mapped.add(page)
                self.uc.mem_write(seg["p_vaddr"], seg.data())  # .bss stays zero
            symtab = elf.get_section_by_name(".symtab")
            for sym in symtab.iter_symbols() if symtab else ():
                if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT"):
                    self.symbols[sym.name] = sym["st_value"]

    def _on_block(self, uc: Uc, address: int, size: int, user_data: object) -> None:
        key = (address, size)
        count = self._block_sizes.get(key)
        if count is None:
            count = _thumb_instruction_count(bytes(uc.mem_read(address, size)))
            self._block_sizes[key] = count
        self._executed += count

    def symbol(self, name: str) -> int:
        """Address of a function (Thumb bit cleared) or object."""
        if name not in self.symbols:
            raise M4Error(f"symbol {name!r} not in the ELF")
        return self.symbols[name] & ~1

    def alloc(self, data: bytes | int) -> int:
        """Reserve heap memory (8-byte aligned): initial bytes, or a size (zero-filled)."""
        size = data if isinstance(data, int) else len(data)
        address = self._heap_next
        if address + size > HEAP_BASE + HEAP_SIZE:
            raise M4Error("emulated heap exhausted")
        self._heap_next = (address + size + 7) // 8 * 8
        self.uc.mem_write(address, bytes(size) if isinstance(data, int) else bytes(data))
        return address

    def reset_heap(self) -> None:
        self._heap_next = HEAP_BASE

    def write(self, address: int, data: bytes) -> None:
        self.uc.mem_write(address, bytes(data))

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(address, size))

    def call(self, name: str, *args: int, max_instructions: int = 0) -> CallResult:
        """Call `name(*args)` with integer/pointer arguments; returns r0 and the exact
        instruction count of this call. max_instructions > 0 bounds a runaway callee."""
        sp = STACK_TOP - 4 * max(0, len(args) - ARG_REGS)
        sp -= sp % 8  # AAPCS: 8-byte aligned stack at a public interface
        for i, value in enumerate(args[ARG_REGS:]):
            self.uc.mem_write(sp + 4 * i, (value & 0xFFFFFFFF).to_bytes(4, "little"))
        for i, value in enumerate(args[:ARG_REGS]):
            self.uc.reg_write(UC_ARM_REG_R0 + i, value & 0xFFFFFFFF)
        self.uc.reg_write(UC_ARM_REG_SP, sp)
        self.uc.reg_write(UC_ARM_REG_LR, RETURN_STUB | 1)
        self._executed = 0
        try:
            self.uc.emu_start(self.symbol(name) | 1, RETURN_STUB, count=max_instructions)
        except UcError as err:
            pc = self.uc.reg_read(UC_ARM_REG_PC)
            raise M4Error(f"{name} faulted at pc=0x{pc:08x}: {err}") from err
        if self.uc.reg_read(UC_ARM_REG_PC) & ~1 != RETURN_STUB:
            raise M4Error(f"{name} did not return within {max_instructions} instructions")
        return CallResult(self.uc.reg_read(UC_ARM_REG_R0), self._executed)
