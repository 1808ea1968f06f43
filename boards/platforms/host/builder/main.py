"""PlatformIO builder for the fedhead host port: the firmware as a POSIX process.

Uses the system gcc (no toolchain package, so nothing is fetched from PlatformIO's registry).
`pio run -e host -t exec` runs the firmware; it prints the pty it listens on.
"""

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
env.Replace(
    AR="ar",
    AS="gcc",
    CC="gcc",
    CXX="g++",
    LINK="gcc",
    RANLIB="ranlib",
    SIZETOOL="size",
    PROGNAME="fedhead-host",
    PROGSUFFIX="",
)
env.Append(LIBS=["m"])

program = env.BuildProgram()
AlwaysBuild(env.Alias("exec", program, "$PROGPATH"))
AlwaysBuild(env.Alias("upload", program, "$PROGPATH"))
env.AddPostAction(program, env.VerboseAction("$SIZETOOL $TARGET", "Program size:"))
Default([program])
