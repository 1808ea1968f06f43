"""libFuzzer harnesses for the link decoder and the device message handler (tests/fuzz/harness).

`build(target)` compiles one target with clang `-fsanitize=fuzzer,address,undefined`,
`run(target, seconds)` fuzzes it from the seed corpus in tests/fuzz/corpus/<target>/ and reports
executions and crashes. Used by `invoke fuzz` and tests/fuzz.
"""
