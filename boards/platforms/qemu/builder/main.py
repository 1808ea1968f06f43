"""PlatformIO builder for Cortex-M firmware that runs under QEMU (mps2-an386 board).

Toolchain: Debian's arm-none-eabi-gcc and newlib nano from the system, so the build needs no
PlatformIO package. The board manifest gives the CPU and FPU; the linker script and startup
live in boards/qemu_mps2/. After linking, arm-none-eabi-size prints the image sections.
`pio run -e qemu_m4 -t exec` boots the image in QEMU on this terminal.
"""

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
cpu = board.get("build.cpu", "cortex-m4")
fpu_flags = board.get("build.fpu_flags", "-mfloat-abi=hard -mfpu=fpv4-sp-d16").split()
machine_flags = [f"-mcpu={cpu}", "-mthumb", *fpu_flags]

env.Replace(
    AR="arm-none-eabi-gcc-ar",
    AS="arm-none-eabi-gcc",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    LINK="arm-none-eabi-gcc",
    RANLIB="arm-none-eabi-gcc-ranlib",
    OBJCOPY="arm-none-eabi-objcopy",
    SIZETOOL="arm-none-eabi-size",
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    LDSCRIPT_PATH=env.subst(board.get("build.ldscript", "")) or None,
)
env.Append(
    ASFLAGS=[*machine_flags, "-x", "assembler-with-cpp"],
    CCFLAGS=[*machine_flags, "-ffunction-sections", "-fdata-sections"],
    LINKFLAGS=[
        *machine_flags,
        "--specs=nano.specs",
        "-u", "_printf_float",
        "-Wl,--gc-sections",
        "-Wl,-Map,${BUILD_DIR}/firmware.map",
    ],
    LIBS=["c", "m", "nosys"],
)

program = env.BuildProgram()
qemu_cmd = (
    f"qemu-system-arm -M {board.get('build.qemu_machine', 'mps2-an386')} "
    "-nographic -monitor none -serial stdio -kernel $PROGPATH"
)
AlwaysBuild(env.Alias("exec", program, qemu_cmd))
AlwaysBuild(env.Alias("upload", program, qemu_cmd))
env.AddPostAction(program, env.VerboseAction("$SIZETOOL $TARGET", "arm-none-eabi-size:"))
Default([program])
