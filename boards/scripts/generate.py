"""PlatformIO `pre:` extra script: the generated model code for this build.

Options (platformio.ini):
  custom_fedhead_task      task whose trained model to use (default watch)
  custom_fedhead_backbone  ref (generated C kernels) or tflm (MicroInterpreter)

Runs `python -m model_gen.emit` (with PlatformIO's own Python) when the inputs' hash differs
from the stamp of the last emit, adds build/generated/<task>/ to the include path and builds
the generated sources the chosen backbone needs into $BUILD_DIR/generated. ESP-IDF builds
compile the generated sources in firmware/CMakeLists.txt instead: there the emit runs and the
task is handed to CMake as -DFEDHEAD_TASK=<task> (board_build.cmake_extra_args).
Without a trained model the build stops and says to run `invoke train --task <task>`.
"""

import os
import subprocess
import sys

Import("env")  # noqa: F821  (provided by PlatformIO's SCons)

PROJECT_DIR = env.subst("$PROJECT_DIR")  # noqa: F821
sys.path.insert(0, PROJECT_DIR)

from model_gen import emit, paths  # noqa: E402  (stdlib-only at import time)

SOURCES_FOR_BACKBONE = {
    "ref": ["head_init.c", "backbone_ref_model.c"],
    "tflm": ["head_init.c", "model_data.c"],
}


def _option(name, default):
    return env.GetProjectOption(name, default).strip() or default  # noqa: F821


def _stop(message):
    sys.stderr.write(f"fedhead generate: {message}\n")
    env.Exit(1)  # noqa: F821


def _regenerate(task):
    try:
        stale = emit.needs_emit(task)
    except emit.MissingModelError as err:
        _stop(str(err))
        return
    if not stale:
        print(f"fedhead generate: build/generated/{task} is up to date")
        return
    python = env.subst("$PYTHONEXE")  # noqa: F821
    result = subprocess.run([python, "-m", "model_gen.emit", "--task", task], cwd=PROJECT_DIR)
    if result.returncode != 0:
        _stop(f"model_gen.emit failed for task {task} (exit {result.returncode})")


def _pass_task_to_cmake(task):
    """ESP-IDF builds: firmware/CMakeLists.txt picks the generated code by FEDHEAD_TASK.

    PlatformIO's ESP-IDF builder adds build.cmake_extra_args to its CMake command line, but
    re-runs CMake only when CMake's own inputs changed: after a change of task the CMake cache
    is dropped so the new -DFEDHEAD_TASK takes effect."""
    board = env.BoardConfig()  # noqa: F821
    extra = board.get("build.cmake_extra_args", "")
    board.update("build.cmake_extra_args", f"{extra} -DFEDHEAD_TASK={task}".strip())
    build_dir = env.subst("$BUILD_DIR")  # noqa: F821
    stamp = os.path.join(build_dir, "fedhead_task.txt")
    previous = None
    if os.path.isfile(stamp):
        with open(stamp) as recorded:
            previous = recorded.read()
    if previous == task:
        return
    cache = os.path.join(build_dir, "CMakeCache.txt")
    if os.path.isfile(cache):
        print(f"fedhead generate: task changed ({previous} -> {task}): CMake reconfigures")
        os.remove(cache)
    os.makedirs(build_dir, exist_ok=True)
    with open(stamp, "w") as out:
        out.write(task)


def main():
    task = _option("custom_fedhead_task", "watch")
    backbone = _option("custom_fedhead_backbone", "ref")
    if backbone not in SOURCES_FOR_BACKBONE:
        _stop(f"custom_fedhead_backbone = {backbone}; expected {sorted(SOURCES_FOR_BACKBONE)}")
        return
    _regenerate(task)
    generated = str(paths.generated_dir(task))
    env.Append(CPPPATH=[generated])  # noqa: F821
    if "espidf" in env.get("PIOFRAMEWORK", []):  # noqa: F821
        _pass_task_to_cmake(task)
        return
    needed = SOURCES_FOR_BACKBONE[backbone]
    missing = [n for n in needed if not os.path.isfile(os.path.join(generated, n))]
    if missing:
        _stop(f"{generated} lacks {missing} needed by the {backbone} backbone")
        return
    # The generated code includes library headers; the LDF does not scan this folder.
    env.Append(CPPPATH=[  # noqa: F821
        os.path.join(PROJECT_DIR, "firmware", "lib", "fedcore", "include"),
        os.path.join(PROJECT_DIR, "firmware", "lib", f"backbone_{backbone}", "include"),
    ])
    env.BuildSources(  # noqa: F821
        os.path.join("$BUILD_DIR", "generated"),
        generated,
        src_filter=["-<*>"] + [f"+<{name}>" for name in SOURCES_FOR_BACKBONE[backbone]],
    )


main()
